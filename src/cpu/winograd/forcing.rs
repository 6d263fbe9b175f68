//! Winograd forced on or off per thread (tests and benchmarks compare it with the direct
//! kernel in one process), apart from the kernels so that `cpu::par::on_pool` can carry it to
//! a pool worker without importing them.

use std::cell::Cell;

thread_local! {
    static FORCED: Cell<Option<bool>> = const { Cell::new(None) };
}

/// Runs `f` with Winograd forced on or off for the convolutions this thread dispatches (tests
/// and benchmarks compare it with the direct kernel in one process).
pub fn with_winograd<R>(on: bool, f: impl FnOnce() -> R) -> R {
    with_forced(Some(on), f)
}

/// This thread's forcing: what [`with_forced`] takes to reproduce it on another thread.
pub(crate) fn forced() -> Option<bool> {
    FORCED.with(|c| c.get())
}

/// Runs `f` with this thread's forcing set to `forced` (None: the default choice). The
/// previous setting comes back even if `f` panics: passes now run on pool workers
/// (`cpu::par::on_pool`), threads that outlive a caught panic and serve every later pass.
pub(crate) fn with_forced<R>(forced: Option<bool>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<bool>);
    impl Drop for Restore {
        fn drop(&mut self) {
            FORCED.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(FORCED.with(|c| c.replace(forced)));
    f()
}
