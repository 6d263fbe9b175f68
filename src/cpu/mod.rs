//! The fast CPU backend: the backend type, the GEMM every heavy op reduces to, and scratch
//! buffers reused across calls so the hot path does not allocate per image. Each op's CPU
//! kernels live in its folder (`src/ops/<op>/cpu.rs`).

pub mod conv_gemm;
pub mod gemm;
pub mod nhwc;
pub mod par;
pub mod scratch;
pub mod simd;
pub mod weight_cache;
pub mod winograd;

/// Threads the CPU backend uses (rayon's global pool).
pub fn threads() -> usize {
    rayon::current_num_threads()
}

/// The `cpu` backend: fast, multithreaded (rayon) f32 on host tensors.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuBackend;

crate::host_backend_base!(CpuBackend, "cpu");
