//! Command implementations behind `src/main.rs` (argument structs live with their command).

pub mod ablate;
pub mod bench;
pub mod demo;
pub mod embed;
pub mod eval;
pub mod inspect;
pub mod synth;
pub mod train;

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Device {
    /// CUDA when usable, else the CPU.
    #[default]
    Auto,
    /// The fast multithreaded CPU backend.
    Cpu,
    /// NVIDIA GPU through NVRTC-compiled kernels.
    Cuda,
    /// The plain-loop f64-accumulating reference backend (slow; for checking).
    Reference,
}

/// A backend that can actually run here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolved {
    Cpu,
    Reference,
}

impl Device {
    pub fn resolve(self) -> Result<Resolved> {
        match self {
            // The CUDA backend is not part of this build yet, so auto means the CPU.
            Device::Auto | Device::Cpu => Ok(Resolved::Cpu),
            Device::Reference => Ok(Resolved::Reference),
            Device::Cuda => Err(Error::Backend {
                backend: "cuda",
                detail: "the CUDA backend is not available in this build yet; use --device cpu (or auto)".into(),
            }),
        }
    }
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
        match $resolved {
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
