//! New output buffers written in parallel without a zeroing pass first: a kernel that writes
//! every value of its output (most do) would otherwise pay one more pass over memory, about a
//! third of the time of a memory-bound op such as an elementwise backward.

use rayon::prelude::*;
use std::mem::MaybeUninit;

/// A `len`-value vector whose consecutive `chunk`-value pieces (the last may be shorter) are
/// written in parallel by `f(piece index, piece)`; `f` must write every value of its piece.
pub fn par_new<F>(len: usize, chunk: usize, f: F) -> Vec<f32>
where
    F: Fn(usize, &mut [MaybeUninit<f32>]) + Sync,
{
    let mut v: Vec<f32> = Vec::with_capacity(len);
    if len > 0 {
        v.spare_capacity_mut()[..len]
            .par_chunks_mut(chunk.max(1))
            .enumerate()
            .for_each(|(i, piece)| f(i, piece));
        // SAFETY: the pieces cover the first len values and `f` wrote each of them (its
        // contract).
        unsafe { v.set_len(len) };
    }
    v
}

/// [`par_new`] where each piece also yields a value: (the vector, the values in piece order).
pub fn par_new_map<R, F>(len: usize, chunk: usize, f: F) -> (Vec<f32>, Vec<R>)
where
    R: Send,
    F: Fn(usize, &mut [MaybeUninit<f32>]) -> R + Sync,
{
    let mut v: Vec<f32> = Vec::with_capacity(len);
    if len == 0 {
        return (v, Vec::new());
    }
    let r = v.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk.max(1))
        .enumerate()
        .map(|(i, piece)| f(i, piece))
        .collect();
    // SAFETY: as in par_new.
    unsafe { v.set_len(len) };
    (v, r)
}
