//! The command line behind `src/main.rs`: one file per command with its argument struct, which
//! it turns into the library's config, resolves the device once ([`DeviceChoice::resolve`])
//! and calls the library. No library logic lives here.

pub mod ablate;
pub mod bench;
pub mod bench_kernels;
pub mod convert;
pub mod demo;
pub mod embed;
pub mod eval;
pub mod grads;
pub mod inspect;
pub mod merge;
pub mod serve;
pub mod synth;
pub mod train;

pub use crate::backend::select::{DeviceChoice, PrecisionChoice};

/// Sets the size of the global thread pool (0 = one per logical core). Call before any work.
pub fn set_threads(n: usize) {
    if n > 0 {
        // Fails only if the pool was already built, in which case the existing one is used.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global();
    }
}
