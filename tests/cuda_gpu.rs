//! The CUDA checks of `tests/cuda/` on a real GPU. Ignored by default (CI has no GPU); the GPU
//! check (`tools/gpu_check.sh`) runs them with `--ignored`, where a missing GPU is a failure.

mod common;
mod cuda;

use skinengine::backend::cuda::CudaBackend;

fn gpu() -> CudaBackend {
    CudaBackend::gpu().expect("the GPU tests need a GPU")
}

#[test]
#[ignore = "needs a GPU: run by tools/gpu_check.sh"]
fn selftest_kernels() {
    cuda::selftest::all(&gpu());
}

#[test]
#[ignore = "needs a GPU: run by tools/gpu_check.sh"]
fn elementwise() {
    cuda::elementwise::all(&gpu());
}
