//! Choosing the backend a run uses: the user's [`DeviceChoice`] (`--device`), resolved once per
//! run into a [`ResolvedBackend`] that can actually run here, and [`with_backend!`](crate::with_backend)
//! to call generic code with it. (The CUDA device itself is `cuda::Device`; this is only the
//! choice between backends.)

#[cfg(not(skinengine_emu))]
use crate::error::Error;
use crate::error::Result;

/// Which backend the user asked for (`--device`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DeviceChoice {
    /// CUDA when a GPU, its driver and NVRTC are usable, else the CPU (with a note saying why).
    #[default]
    Auto,
    /// The fast multithreaded CPU backend.
    Cpu,
    /// NVIDIA GPU through NVRTC-compiled kernels.
    Cuda,
    /// The CUDA kernels run by the CPU emulator (slow; for checking the CUDA path without a GPU).
    CudaEmulator,
    /// The plain-loop f64-accumulating reference backend (slow; for checking).
    Reference,
}

/// A backend that can actually run here (the outcome of [`DeviceChoice::resolve`]).
#[derive(Clone)]
pub enum ResolvedBackend {
    Cpu,
    Reference,
    Cuda(crate::cuda::CudaBackend),
}

impl DeviceChoice {
    /// The backend for this choice; `Auto` falls back to the CPU with a note on stderr.
    pub fn resolve(self) -> Result<ResolvedBackend> {
        match self {
            DeviceChoice::Cpu => Ok(ResolvedBackend::Cpu),
            DeviceChoice::Reference => Ok(ResolvedBackend::Reference),
            DeviceChoice::Cuda => Ok(ResolvedBackend::Cuda(crate::cuda::CudaBackend::gpu()?)),
            DeviceChoice::CudaEmulator => emulator(),
            DeviceChoice::Auto => match crate::cuda::CudaBackend::gpu() {
                Ok(b) => Ok(ResolvedBackend::Cuda(b)),
                Err(e) => {
                    eprintln!("note: using the CPU ({e})");
                    Ok(ResolvedBackend::Cpu)
                }
            },
        }
    }
}

#[cfg(skinengine_emu)]
fn emulator() -> Result<ResolvedBackend> {
    Ok(ResolvedBackend::Cuda(crate::cuda::CudaBackend::emulator(
        rayon::current_num_threads(),
    )))
}

#[cfg(not(skinengine_emu))]
fn emulator() -> Result<ResolvedBackend> {
    Err(Error::Backend {
        backend: "cuda-emulator",
        detail: "the CUDA emulator is built on Linux only".into(),
    })
}

/// Runs `$body` with `$b` bound to the backend of a [`ResolvedBackend`] (the backends' tensor
/// types differ, so dispatch happens once here, at the top, and everything below is generic).
/// The ops' entry traits are in scope in `$body`, so it can call ops on the concrete backend.
#[macro_export]
macro_rules! with_backend {
    ($resolved:expr, |$b:ident| $body:expr) => {{
        #[allow(unused_imports)]
        use $crate::ops::prelude::*;
        match &$resolved {
            $crate::backend::select::ResolvedBackend::Cuda(c) => {
                let $b = c;
                $body
            }
            $crate::backend::select::ResolvedBackend::Cpu => {
                let $b = &$crate::CpuBackend;
                $body
            }
            $crate::backend::select::ResolvedBackend::Reference => {
                let $b = &$crate::ReferenceBackend;
                $body
            }
        }
    }};
}
