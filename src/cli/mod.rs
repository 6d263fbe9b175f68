//! Command implementations behind `src/main.rs` (argument structs live with their command).

pub mod ablate;
pub mod bench;
pub mod bench_kernels;
pub mod demo;
pub mod embed;
pub mod eval;
pub mod inspect;
pub mod synth;
pub mod train;

#[cfg(not(skinengine_emu))]
use crate::error::Error;
use crate::error::Result;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Device {
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

/// A backend that can actually run here.
#[derive(Clone)]
pub enum Resolved {
    Cpu,
    Reference,
    Cuda(crate::cuda::CudaBackend),
}

impl Device {
    pub fn resolve(self) -> Result<Resolved> {
        match self {
            Device::Cpu => Ok(Resolved::Cpu),
            Device::Reference => Ok(Resolved::Reference),
            Device::Cuda => Ok(Resolved::Cuda(crate::cuda::CudaBackend::gpu()?)),
            Device::CudaEmulator => emulator(),
            Device::Auto => match crate::cuda::CudaBackend::gpu() {
                Ok(b) => Ok(Resolved::Cuda(b)),
                Err(e) => {
                    // Once per process: demo and ablate resolve the device several times.
                    static SAID: std::sync::Once = std::sync::Once::new();
                    SAID.call_once(|| eprintln!("note: using the CPU ({e})"));
                    Ok(Resolved::Cpu)
                }
            },
        }
    }
}

#[cfg(skinengine_emu)]
fn emulator() -> Result<Resolved> {
    Ok(Resolved::Cuda(crate::cuda::CudaBackend::emulator(
        rayon::current_num_threads(),
    )))
}

#[cfg(not(skinengine_emu))]
fn emulator() -> Result<Resolved> {
    Err(Error::Backend {
        backend: "cuda-emulator",
        detail: "the CUDA emulator is built on Linux only".into(),
    })
}

/// Sets the size of the global thread pool (0 = one per logical core). Call before any work.
pub fn set_threads(n: usize) {
    if n > 0 {
        // Fails only if the pool was already built, in which case the existing one is used.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global();
    }
}

/// Runs `$body` with `$b` bound to the resolved backend (the backends' tensor types differ, so
/// dispatch happens once here, at the top, and everything below is generic).
#[macro_export]
macro_rules! with_backend {
    ($resolved:expr, |$b:ident| $body:expr) => {
        match &$resolved {
            $crate::cli::Resolved::Cuda(c) => {
                let $b = c;
                $body
            }
            $crate::cli::Resolved::Cpu => {
                let $b = &$crate::CpuBackend;
                $body
            }
            $crate::cli::Resolved::Reference => {
                let $b = &$crate::ReferenceBackend;
                $body
            }
        }
    };
}
