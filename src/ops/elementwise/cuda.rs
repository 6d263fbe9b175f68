//! Activations and the residual add on the CUDA backend (`elementwise.cu`): one grid-stride
//! kernel per direction, named `<activation>_forward` / `<activation>_backward`.

use super::{Activation, ElementwiseKernels};
use crate::cuda::launch::grid_stride;
use crate::cuda::{Arg, CudaBackend, CudaTensor};
use crate::error::Result;

impl ElementwiseKernels for CudaBackend {
    fn activation_forward(&self, act: Activation, x: &CudaTensor) -> Result<CudaTensor> {
        let y = CudaTensor::alloc(self.device(), x.shape())?;
        let kernel = format!("{}_forward", act.name());
        self.device().launch(
            &kernel,
            grid_stride(x.len()),
            &[Arg::Buf(x.buf()), Arg::Buf(y.buf()), Arg::Int(x.len())],
        )?;
        Ok(y)
    }
    fn activation_backward(
        &self,
        act: Activation,
        dy: &CudaTensor,
        x: &CudaTensor,
    ) -> Result<CudaTensor> {
        let dx = CudaTensor::alloc(self.device(), x.shape())?;
        let kernel = format!("{}_backward", act.name());
        self.device().launch(
            &kernel,
            grid_stride(x.len()),
            &[
                Arg::Buf(dy.buf()),
                Arg::Buf(x.buf()),
                Arg::Buf(dx.buf()),
                Arg::Int(x.len()),
            ],
        )?;
        Ok(dx)
    }
    fn add_forward(&self, a: &CudaTensor, b: &CudaTensor) -> Result<CudaTensor> {
        let y = CudaTensor::alloc(self.device(), a.shape())?;
        self.device().launch(
            "add_forward",
            grid_stride(a.len()),
            &[
                Arg::Buf(a.buf()),
                Arg::Buf(b.buf()),
                Arg::Buf(y.buf()),
                Arg::Int(a.len()),
            ],
        )?;
        Ok(y)
    }
}
