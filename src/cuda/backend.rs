//! The `cuda` backend: every op a CUDA kernel (`src/ops/<op>/<op>.cu`), launched through
//! [`Device`](crate::cuda::Device) — on the GPU, or on the CPU emulator in tests. Tensors stay on
//! the device between ops; only `upload`/`download` (and the scalar loss) cross to the host.
//! Each op's launch code lives beside its reference in `src/ops/<op>/cuda.rs`.

use std::sync::Arc;

use crate::cuda::{CudaTensor, Device, Elem, Precision};
use crate::error::Result;
use crate::ops::BackendBase;
use crate::tensor::Tensor;

/// The arithmetic of the backend's matrix products, per kind of op: PyTorch sets the two apart
/// (`torch.backends.cudnn.allow_tf32` for convolutions, `torch.backends.cuda.matmul.allow_tf32`
/// for matmuls / linear layers), so `--precision auto` needs both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Precisions {
    /// Convolutions: forward and both gradients.
    pub conv: Precision,
    /// Dense layers (forward and both gradient GEMMs).
    pub matmul: Precision,
}

impl Precisions {
    /// One precision for every op.
    pub fn all(p: Precision) -> Precisions {
        Precisions { conv: p, matmul: p }
    }
}

#[derive(Clone)]
pub struct CudaBackend {
    dev: Arc<Device>,
    precisions: Precisions,
    /// How the NCHW convolutions store their outputs, and so every activation and activation
    /// gradient after them ([`CudaBackend::activation_storage`]).
    storage: Elem,
    /// Compute capability as major * 10 + minor; the emulator claims 80 (it runs every
    /// tensor-core instruction `tensor_core.cuh` uses).
    arch: u32,
}

impl CudaBackend {
    /// The first GPU; an error (never a panic) names what is missing: driver, GPU or NVRTC.
    /// FP32 everywhere until [`CudaBackend::with_precisions`] says otherwise.
    pub fn gpu() -> Result<CudaBackend> {
        CudaBackend::gpu_on(0)
    }
    /// GPU number `ordinal` (`--device cuda:N`); an error naming how many GPUs there are when
    /// there is no such GPU.
    pub fn gpu_on(ordinal: usize) -> Result<CudaBackend> {
        let (dev, (major, minor)) = crate::cuda::gpu::gpu_on(ordinal)?;
        Ok(CudaBackend {
            dev,
            precisions: Precisions::default(),
            storage: Elem::F32,
            arch: (major * 10 + minor) as u32,
        })
    }
    /// The CPU emulator running the same kernels with `threads` OS threads (0 = all cores).
    #[cfg(skinengine_emu)]
    pub fn emulator(threads: usize) -> CudaBackend {
        CudaBackend {
            dev: crate::cuda::emu::emulator(threads),
            precisions: Precisions::default(),
            storage: Elem::F32,
            arch: 80,
        }
    }
    /// The emulator claiming compute capability `arch` (tests of the sm_80 check).
    #[cfg(all(test, skinengine_emu))]
    pub(crate) fn emulator_as(threads: usize, arch: u32) -> CudaBackend {
        CudaBackend {
            arch,
            ..CudaBackend::emulator(threads)
        }
    }
    pub fn device(&self) -> &Arc<Device> {
        &self.dev
    }
    /// Compute capability, major * 10 + minor (80 for the emulator).
    pub fn arch(&self) -> u32 {
        self.arch
    }
    pub fn precisions(&self) -> Precisions {
        self.precisions
    }
    /// This backend computing at `p`; anything but FP32 needs tensor cores with `mma` for
    /// TF32/BF16/FP16 and `cp.async` (sm_80, Ampere, or later): refused below, naming the GPU.
    pub fn with_precisions(mut self, p: Precisions) -> Result<CudaBackend> {
        if self.arch < 80 {
            for q in [p.conv, p.matmul] {
                if q != Precision::Fp32 {
                    return Err(self.dev.err(format!(
                        "--precision {q} needs tensor cores of compute capability 8.0 (Ampere) \
                         or later; this GPU is {}.{}: use --precision fp32 (or auto)",
                        self.arch / 10,
                        self.arch % 10
                    )));
                }
            }
        }
        self.precisions = p;
        self.storage = default_storage(p.conv);
        Ok(self)
    }
    /// Activation storage: FP32, or the convolutions' 16-bit format at `--precision bf16|fp16`
    /// (what PyTorch's autocast leaves activations in). The NCHW convolutions write their
    /// outputs in it; relu, batch norm, max pooling and the residual add keep their input's
    /// format; the gradients of activations are stored like the activations; the global average
    /// pool returns FP32 (the head, the loss and every parameter and parameter gradient stay
    /// FP32, the optimiser's master copy). A 16-bit network holds and moves half the bytes.
    pub fn activation_storage(&self) -> Elem {
        self.storage
    }
    /// This backend with activations stored as `e` (FP32 or, at a 16-bit convolution
    /// precision, that format): tests of the arithmetic alone, and
    /// `SKINENGINE_FP32_ACTIVATIONS=1`.
    pub fn with_activation_storage(mut self, e: Elem) -> Result<CudaBackend> {
        if e != Elem::F32 && e != default_storage(self.precisions.conv) {
            return Err(self.dev.err(format!(
                "activations stored as {e:?} need the convolutions to compute in that format \
                 (they run at {})",
                self.precisions.conv
            )));
        }
        self.storage = e;
        Ok(self)
    }
}

/// The 16-bit convolution precisions store activations in their own format; FP32 and TF32
/// store FP32 (TF32 is only how the tensor cores read FP32 values), as does every precision
/// when `SKINENGINE_FP32_ACTIVATIONS=1` (to compare the two on a GPU).
fn default_storage(conv: Precision) -> Elem {
    if std::env::var("SKINENGINE_FP32_ACTIVATIONS").is_ok_and(|v| v == "1") {
        return Elem::F32;
    }
    match conv {
        Precision::Bf16 => Elem::Bf16,
        Precision::Fp16 => Elem::F16,
        Precision::Fp32 | Precision::Tf32 => Elem::F32,
    }
}

impl BackendBase for CudaBackend {
    type Tensor = CudaTensor;

    fn name(&self) -> &'static str {
        "cuda"
    }
    fn precisions(&self) -> Precisions {
        CudaBackend::precisions(self)
    }
    fn activation_storage(&self) -> Elem {
        self.storage
    }
    fn stored_bytes(&self, t: &CudaTensor) -> usize {
        t.len() * t.elem().size()
    }
    fn upload(&self, t: &Tensor) -> Result<CudaTensor> {
        CudaTensor::upload(&self.dev, t)
    }
    fn download(&self, t: &CudaTensor) -> Result<Tensor> {
        t.download()
    }
    // Pinned host buffers: batches are decoded into them and copied asynchronously (issue 13).
    fn host_buffer(&self, len: usize) -> Result<crate::ops::host_buf::HostBuf> {
        self.dev.host_buffer(len)
    }
    fn upload_host(
        &self,
        buf: &crate::ops::host_buf::HostBuf,
        shape: &[usize],
    ) -> Result<CudaTensor> {
        let n = shape.iter().product::<usize>();
        if buf.len() < n {
            return Err(crate::error::invalid(
                "upload",
                format!("{} floats for shape {shape:?}", buf.len()),
            ));
        }
        if buf.is_pinned() {
            CudaTensor::upload_async(&self.dev, &buf[..n], shape)
        } else {
            // Pageable memory: an asynchronous copy would block anyway.
            self.upload(&Tensor::new(shape, buf[..n].to_vec())?)
        }
    }
    fn host_fence(&self) -> Result<()> {
        self.dev.synchronize()
    }
    fn shape<'a>(&self, t: &'a CudaTensor) -> &'a [usize] {
        t.shape()
    }
    fn free_memory(&self) -> Option<u64> {
        self.dev.free_memory()
    }
    fn reshape(&self, t: &CudaTensor, shape: &[usize]) -> Result<CudaTensor> {
        if shape.iter().product::<usize>() != t.len() {
            return Err(crate::error::shape_err(
                "reshape",
                format!(
                    "cannot reshape {} to {}",
                    crate::tensor::ShapeFmt(t.shape()),
                    crate::tensor::ShapeFmt(shape)
                ),
            ));
        }
        Ok(t.reshaped(shape))
    }
}
