//! Choosing the backend a run uses: the user's [`DeviceChoice`] (`--device`), resolved once per
//! run into a [`ResolvedBackend`] that can actually run here, and [`with_backend!`](crate::with_backend)
//! to call generic code with it. (The CUDA device itself is `cuda::Device`; this is only the
//! choice between backends.)

use crate::cuda::{CudaBackend, Precision, Precisions};
use crate::error::{Error, Result};

/// Which backend the user asked for (`--device`; parsed and printed by `device_arg`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// CUDA when a GPU, its driver and NVRTC are usable, else the CPU (with a note saying why).
    #[default]
    Auto,
    /// The fast multithreaded CPU backend.
    Cpu,
    /// NVIDIA GPU number N (`cuda:N`; plain `cuda` is 0) through NVRTC-compiled kernels.
    Cuda(usize),
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

/// The arithmetic the user asked for (`--precision`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PrecisionChoice {
    /// PyTorch's default on this device: on CUDA with compute capability 8.0+ (and the
    /// emulator), convolutions in TF32 (`torch.backends.cudnn.allow_tf32 = True`) and matmuls
    /// in FP32 (`torch.backends.cuda.matmul.allow_tf32 = False` since PyTorch 1.12); FP32
    /// everywhere else.
    #[default]
    Auto,
    /// IEEE single precision throughout.
    Fp32,
    /// TensorFloat-32 inputs on tensor cores, FP32 accumulation (CUDA, sm_80+).
    Tf32,
    /// bfloat16 inputs on tensor cores, FP32 accumulation (CUDA, sm_80+).
    Bf16,
    /// IEEE half inputs on tensor cores, FP32 accumulation (CUDA, sm_80+).
    Fp16,
}

impl PrecisionChoice {
    /// The precisions for a CUDA backend of compute capability `arch` (major * 10 + minor).
    pub fn for_cuda(self, arch: u32) -> Precisions {
        match self {
            PrecisionChoice::Auto if arch >= 80 => Precisions {
                conv: Precision::Tf32,
                matmul: Precision::Fp32,
            },
            PrecisionChoice::Auto | PrecisionChoice::Fp32 => Precisions::all(Precision::Fp32),
            PrecisionChoice::Tf32 => Precisions::all(Precision::Tf32),
            PrecisionChoice::Bf16 => Precisions::all(Precision::Bf16),
            PrecisionChoice::Fp16 => Precisions::all(Precision::Fp16),
        }
    }

    /// The CPU and reference backends compute in FP32 (reference: f64 accumulation) only.
    fn check_cpu(self, backend: &'static str) -> Result<()> {
        match self {
            PrecisionChoice::Auto | PrecisionChoice::Fp32 => Ok(()),
            p => Err(Error::Backend {
                backend,
                detail: format!(
                    "--precision {} runs on CUDA tensor cores only; the {backend} backend \
                     computes in fp32 (use --precision fp32 or auto, or --device cuda / \
                     cuda-emulator)",
                    p.name()
                ),
            }),
        }
    }

    fn name(self) -> &'static str {
        match self {
            PrecisionChoice::Auto => "auto",
            PrecisionChoice::Fp32 => "fp32",
            PrecisionChoice::Tf32 => "tf32",
            PrecisionChoice::Bf16 => "bf16",
            PrecisionChoice::Fp16 => "fp16",
        }
    }
}

impl DeviceChoice {
    /// The backend for this choice at PyTorch's default precision (`--precision auto`).
    pub fn resolve(self) -> Result<ResolvedBackend> {
        self.resolve_at(PrecisionChoice::Auto)
    }

    /// The backend for this choice computing at `precision`; `Auto` falls back to the CPU with
    /// a note on stderr (an error instead when `precision` needs a GPU).
    pub fn resolve_at(self, precision: PrecisionChoice) -> Result<ResolvedBackend> {
        let cuda = |b: CudaBackend| -> Result<ResolvedBackend> {
            let p = precision.for_cuda(b.arch());
            Ok(ResolvedBackend::Cuda(b.with_precisions(p)?))
        };
        match self {
            DeviceChoice::Cpu => precision.check_cpu("cpu").map(|_| ResolvedBackend::Cpu),
            DeviceChoice::Reference => precision
                .check_cpu("reference")
                .map(|_| ResolvedBackend::Reference),
            DeviceChoice::Cuda(n) => cuda(CudaBackend::gpu_on(n).map_err(|e| naming(self, e))?),
            DeviceChoice::CudaEmulator => cuda(emulator()?),
            DeviceChoice::Auto => match CudaBackend::gpu() {
                Ok(b) => cuda(b),
                Err(e) => {
                    precision.check_cpu("cpu").map_err(|p| Error::Backend {
                        backend: "cuda",
                        detail: format!("no GPU to run on ({e}); {p}"),
                    })?;
                    eprintln!("note: using the CPU ({e})");
                    Ok(ResolvedBackend::Cpu)
                }
            },
        }
    }
}

/// `e` with the `--device` value the user gave in front (unless it already names it), so "no
/// CUDA driver" says which device was asked for.
fn naming(d: DeviceChoice, e: Error) -> Error {
    match e {
        Error::Backend { backend, detail } if !detail.starts_with("--device") => Error::Backend {
            backend,
            detail: format!("--device {d}: {detail}"),
        },
        e => e,
    }
}

#[cfg(skinengine_emu)]
fn emulator() -> Result<CudaBackend> {
    Ok(CudaBackend::emulator(rayon::current_num_threads()))
}

#[cfg(not(skinengine_emu))]
fn emulator() -> Result<CudaBackend> {
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
