//! The CUDA side of the engine: shared plumbing every op's CUDA code sits on (mirroring
//! `src/cpu/`). Kernels are CUDA C beside each op (`src/ops/<op>/<op>.cu`) plus the shared ones
//! here (`gemm.cu`, `selftest.cu`) and device headers (`*.cuh`):
//! - [`nvrtc`]: compiles a kernel file at run time (CUBIN for the GPU's architecture, disk cache);
//! - [`gpu`]: the GPU driver (cudarc, loaded dynamically; absence is an error, never a panic);
//! - [`emu`]: the CPU emulator driver, running the same sources compiled as C++ (`emu/`);
//! - [`device`]: the one interface over both (buffers, memory reuse, checked launches);
//! - [`launch`], [`gemm`], [`kernel_args`]: launch geometry, the strided SGEMM launcher, and
//!   the structs kernels take by value;
//! - [`gemm_tc`]: GEMM at a [`Precision`] (FP32, or TF32/BF16/FP16 on tensor cores through
//!   `tensor_core.cuh`, the one place mma / ldmatrix / cp.async are written, and emulated);
//! - [`backend`]: the `cuda` backend type;
//! - `act.cuh`: activations stored as FP32 or 16-bit, read and written by every kernel that
//!   touches them (`--precision bf16|fp16` stores them in that format).
//!
//! Tests under emulation run exactly the launches the GPU gets.

pub mod args;
pub mod backend;
pub mod device;
#[cfg(skinengine_emu)]
pub mod emu;
pub mod gemm;
pub mod gemm_tc;
pub mod gpu;
pub mod kernel_args;
pub mod launch;
pub mod nvrtc;
#[cfg(test)]
mod precision_tests;
#[cfg(all(test, skinengine_emu))]
mod storage_tests;
#[cfg(test)]
mod tc_tests;
pub mod tensor;
#[cfg(test)]
mod tests;

pub use backend::{CudaBackend, Precisions};
pub use device::{Arg, DevBuf, Device, Dims, Elem, KInt, KernelStruct};
pub use gemm_tc::Precision;
pub use tensor::CudaTensor;
