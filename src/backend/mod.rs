//! The backends, by name, and the user's choice among them. Each backend is a type implementing
//! every op's kernel trait (the implementations live in the op folders,
//! `src/ops/<op>/{reference,cpu,cuda}.rs`), which makes it a [`Backend`]:
//! - [`ReferenceBackend`] (`src/reference.rs`): plain loops, f64 accumulation; checks the others;
//! - [`CpuBackend`] (`src/cpu/`): fast, multithreaded f32;
//! - [`CudaBackend`] (`src/cuda/`): NVRTC-compiled kernels on a GPU, or on the CPU emulator.
//!
//! [`select`] resolves `--device` once into one of them.

mod device_arg;
pub mod select;

pub use device_arg::DeviceParser;

pub use crate::cpu::CpuBackend;
pub use crate::cuda::CudaBackend;
pub use crate::ops::{Backend, BackendBase};
pub use crate::reference::ReferenceBackend;
