//! Every CUDA kernel, run by the CPU emulator (the `kernels/*.cu` sources compiled as C++, driven
//! by the CUDA backend's own launch code), against the reference ops. The checks live in
//! `tests/cuda/`; `tests/cuda_gpu.rs` runs the same checks on a real GPU.
#![cfg(target_os = "linux")]

mod common;
mod cuda;

use skinengine::backend::cuda::CudaBackend;

fn emu() -> CudaBackend {
    CudaBackend::emulator(0)
}

#[test]
fn selftest_kernels() {
    cuda::selftest::all(&emu());
}

#[test]
fn elementwise() {
    cuda::elementwise::all(&emu());
}

#[test]
fn conv2d() {
    cuda::conv::conv(&emu());
}

#[test]
fn dense() {
    cuda::conv::dense(&emu());
}

#[test]
fn batchnorm() {
    cuda::batchnorm::all(&emu());
}

#[test]
fn pool() {
    cuda::pool::all(&emu());
}

#[test]
fn loss() {
    cuda::loss::all(&emu());
}

#[test]
fn adam() {
    cuda::adam::all(&emu());
}

#[test]
fn resnet50_parity() {
    cuda::model::resnet50_matches_torchvision(&emu());
}
