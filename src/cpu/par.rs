//! New output buffers written in parallel without a zeroing pass first: a kernel that writes
//! every value of its output (most do) would otherwise pay one more pass over memory, about a
//! third of the time of a memory-bound op such as an elementwise backward. And whole passes
//! run on a worker of the thread pool ([`on_pool`]).

use crate::cpu::winograd::forcing;
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

/// Runs `f` on a worker of the current thread pool (in place when this thread is one), with
/// this thread's Winograd forcing (`winograd::with_winograd`, a thread-local) carried along.
/// Every parallel region `f` opens then starts on its own thread instead of waking a worker
/// and sleeping until the region ends (`BackendBase::run_on_workers`).
pub fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let forced = forcing::forced();
    rayon::scope(|_| forcing::with_forced(forced, f))
}

/// How to cut an `a` x `b` grid of work units (a convolution's pixel tiles x its weight
/// panels) into `pa` x `pb` parts ([`part`] gives each part's units) for `threads` threads:
/// at most `cap_a` / `cap_b` units per part (what fits the caches), at least two parts per
/// thread where the grid allows (`b` split first: splitting `a` makes every part stream all
/// the weights), and then, where `a` allows, a part count that is a multiple of `threads`.
/// Parts are equal to within one unit, so 9 parts on 2 threads would leave one thread a
/// ninth of the layer alone at the end (measured on ResNet50's 28x28 layers at batch 1).
pub fn grid_split(
    (a, b): (usize, usize),
    (cap_a, cap_b): (usize, usize),
    threads: usize,
) -> (usize, usize) {
    let (a, b, threads) = (a.max(1), b.max(1), threads.max(1));
    let mut pa = a.div_ceil(cap_a.clamp(1, a));
    let mut pb = b.div_ceil(cap_b.clamp(1, b));
    while pa * pb < 2 * threads && (pb < b || pa < a) {
        if pb < b {
            pb = (2 * pb).min(b);
        } else {
            pa = (2 * pa).min(a);
        }
    }
    // At most threads - 1 more parts of `a`: a little more weight traffic for no thread idle
    // at the end.
    if let Some(up) = (pa..=a).find(|&n| (n * pb) % threads == 0) {
        pa = up;
    }
    (pa, pb)
}

/// Part `i` of `n` units cut into `parts` parts whose sizes differ by at most one.
pub fn part(n: usize, parts: usize, i: usize) -> std::ops::Range<usize> {
    i * n / parts..(i + 1) * n / parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_pool_runs_on_a_worker_with_the_callers_winograd_forcing() {
        use crate::cpu::winograd::forcing::{forced, with_winograd};
        // From outside the pool (a fresh thread, as the CLI's main thread is): on a worker.
        let on_worker = std::thread::spawn(|| on_pool(|| rayon::current_thread_index().is_some()))
            .join()
            .unwrap();
        assert!(on_worker);
        // The forcing travels to the worker, and the worker's own comes back afterwards.
        for f in [false, true] {
            let seen = with_winograd(f, || on_pool(forced));
            assert_eq!(seen, Some(f));
        }
        assert_eq!(on_pool(forced), None);
        // Restored even when the pass panics (the worker thread lives on).
        let caught = std::panic::catch_unwind(|| {
            with_winograd(true, || on_pool::<()>(|| panic!("a failing pass")))
        });
        assert!(caught.is_err());
        assert_eq!(forced(), None);
        let all: Vec<Option<bool>> = on_pool(|| {
            use rayon::prelude::*;
            (0..64).into_par_iter().map(|_| forced()).collect()
        });
        assert!(all.iter().all(Option::is_none), "{all:?}");
    }

    #[test]
    fn grid_split_balances_and_respects_caps() {
        // ResNet50's 28x28 layers at batch 1: 131 tiles of 6 pixels, 8 panels, 16 tiles per
        // part at most: 9 parts before, now 10 (even on 2 threads), sizes 13-14.
        assert_eq!(grid_split((131, 8), (16, 16), 2), (10, 1));
        let sizes: Vec<usize> = (0..10).map(|i| part(131, 10, i).len()).collect();
        assert!(sizes.iter().all(|&s| s == 13 || s == 14), "{sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), 131);
        // Few tiles: the panels are split first, to 2 parts per thread.
        assert_eq!(grid_split((9, 32), (16, 16), 2), (1, 4));
        assert_eq!(grid_split((9, 8), (16, 16), 2), (1, 4));
        // Too small a grid to split further: one unit, or as many parts as units.
        assert_eq!(grid_split((1, 1), (16, 16), 2), (1, 1));
        assert_eq!(grid_split((3, 1), (16, 16), 4), (3, 1));
        // Caps hold and every part count is a multiple of the threads where possible.
        for a in 1..60 {
            for b in 1..20 {
                for t in 1..5 {
                    let (pa, pb) = grid_split((a, b), (7, 5), t);
                    assert!(pa <= a && pb <= b && pa >= 1 && pb >= 1);
                    assert!(a.div_ceil(pa) <= 7 && b.div_ceil(pb) <= 5, "{a} {b} {t}");
                    if (pa * pb) % t != 0 {
                        // Only where no part count of `a` up to `a` itself is a multiple.
                        assert!(!(pa..=a).any(|n| (n * pb) % t == 0), "{a} {b} {t}");
                    }
                }
            }
        }
        // The parts cover the units exactly, in order.
        for (n, parts) in [(131, 10), (5, 5), (7, 3), (100, 1)] {
            let all: Vec<usize> = (0..parts).flat_map(|i| part(n, parts, i)).collect();
            assert_eq!(all, (0..n).collect::<Vec<_>>());
        }
    }
}
