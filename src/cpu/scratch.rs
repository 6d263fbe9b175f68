//! Per-thread scratch buffers (im2col columns and the like). Each rayon worker keeps its own
//! buffer and grows it to the largest size seen, so steady-state inference allocates nothing.

use std::cell::RefCell;

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's scratch buffer of at least `len` elements (contents unspecified).
pub fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| {
        let mut buf = cell.borrow_mut();
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        f(&mut buf[..len])
    })
}

thread_local! {
    static OUTER: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Like [`with_scratch`], for a caller that runs parallel work while it holds the buffer (the
/// convolution gradients' image-group buffers): a second buffer per thread, kept across calls
/// so a training step does not fault in fresh pages for it at every layer. Should this thread's
/// buffer be lent already (a rayon worker that took up another such call while waiting), `f`
/// gets a fresh one instead of a panic.
pub fn with_outer_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    OUTER.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < len {
                buf.resize(len, 0.0);
            }
            f(&mut buf[..len])
        }
        Err(_) => f(&mut vec![0.0; len]),
    })
}
