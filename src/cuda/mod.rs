//! The CUDA side of the engine. Kernels are CUDA C in `kernels/*.cu`; this module gets them
//! onto a device and launches them:
//! - [`nvrtc`]: compiles a kernel file at run time (CUBIN for the GPU's architecture, disk cache);
//! - [`gpu`]: the GPU driver (cudarc, loaded dynamically; absence is an error, never a panic);
//! - [`emu`]: the CPU emulator driver, running the same sources compiled as C++ (`emu/`);
//! - [`device`]: the one interface over both (buffers, memory reuse, checked launches).
//!
//! The CUDA backend (`backend::cuda`) and each op's launch code (`ops/<op>/cuda.rs`) sit on
//! [`device::Device`], so tests under emulation run exactly the launches the GPU gets.

pub mod device;
#[cfg(skinengine_emu)]
pub mod emu;
pub mod gpu;
pub mod nvrtc;
pub mod tensor;

pub use device::{Arg, DevBuf, Device, Dims, Elem, int_arg};
pub use tensor::CudaTensor;
