//! Building blocks of the fast CPU backend: the GEMM every heavy op reduces to, and scratch
//! buffers reused across calls so the hot path does not allocate per image.

pub mod conv_gemm;
pub mod gemm;
pub mod scratch;
pub mod weight_cache;

/// Threads the CPU backend uses (rayon's global pool).
pub fn threads() -> usize {
    rayon::current_num_threads()
}
