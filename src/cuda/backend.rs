//! The `cuda` backend: every op a CUDA kernel (`src/ops/<op>/<op>.cu`), launched through
//! [`Device`](crate::cuda::Device) — on the GPU, or on the CPU emulator in tests. Tensors stay on
//! the device between ops; only `upload`/`download` (and the scalar loss) cross to the host.
//! Each op's launch code lives beside its reference in `src/ops/<op>/cuda.rs`.

use std::sync::Arc;

use crate::cuda::{CudaTensor, Device};
use crate::error::Result;
use crate::ops::BackendBase;
use crate::tensor::Tensor;

#[derive(Clone)]
pub struct CudaBackend {
    dev: Arc<Device>,
}

impl CudaBackend {
    /// The first GPU; an error (never a panic) names what is missing: driver, GPU or NVRTC.
    pub fn gpu() -> Result<CudaBackend> {
        Ok(CudaBackend {
            dev: crate::cuda::gpu::gpu()?,
        })
    }
    /// The CPU emulator running the same kernels with `threads` OS threads (0 = all cores).
    #[cfg(skinengine_emu)]
    pub fn emulator(threads: usize) -> CudaBackend {
        CudaBackend {
            dev: crate::cuda::emu::emulator(threads),
        }
    }
    pub fn device(&self) -> &Arc<Device> {
        &self.dev
    }
}

impl BackendBase for CudaBackend {
    type Tensor = CudaTensor;

    fn name(&self) -> &'static str {
        "cuda"
    }
    fn upload(&self, t: &Tensor) -> Result<CudaTensor> {
        CudaTensor::upload(&self.dev, t)
    }
    fn download(&self, t: &CudaTensor) -> Result<Tensor> {
        t.download()
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
