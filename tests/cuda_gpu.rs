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

#[test]
#[ignore = "needs a GPU: run by tools/gpu_check.sh"]
fn conv2d() {
    cuda::conv::conv(&gpu());
}

#[test]
#[ignore = "needs a GPU: run by tools/gpu_check.sh"]
fn dense() {
    cuda::conv::dense(&gpu());
}

#[test]
#[ignore = "needs a GPU: run by tools/gpu_check.sh"]
fn batchnorm() {
    cuda::batchnorm::all(&gpu());
}

#[test]
#[ignore = "needs a GPU: run by tools/gpu_check.sh"]
fn pool() {
    cuda::pool::all(&gpu());
}

#[test]
#[ignore = "needs a GPU: run by tools/gpu_check.sh"]
fn loss() {
    cuda::loss::all(&gpu());
}

#[test]
#[ignore = "needs a GPU: run by tools/gpu_check.sh"]
fn adam() {
    cuda::adam::all(&gpu());
}

#[test]
#[ignore = "needs a GPU: run by tools/gpu_check.sh"]
fn resnet50_parity() {
    cuda::model::resnet50_matches_torchvision(&gpu());
}
