//! Activations and the residual add on the CUDA backend (`elementwise.cu`): one grid-stride
//! kernel per direction, named `<activation>_forward` / `<activation>_backward`.
//!
//! Tensors may be FP32 or 16-bit ([`CudaBackend::activation_storage`]): an activation and its
//! gradient keep the input's format; a sum is 16-bit only when both terms are stored in the same
//! 16-bit format (PyTorch's type promotion), FP32 otherwise.

use super::{Activation, ElementwiseKernels};
use crate::cuda::launch::grid_stride;
use crate::cuda::{Arg, CudaBackend, CudaTensor, Elem};
use crate::error::Result;

impl ElementwiseKernels for CudaBackend {
    fn activation_forward(&self, act: Activation, x: &CudaTensor) -> Result<CudaTensor> {
        let y = CudaTensor::alloc_as(self.device(), x.shape(), x.elem())?;
        let kernel = format!("{}_forward", act.name());
        let ([xb, xf], [yb, yf]) = (x.act(), y.act());
        self.device().launch(
            &kernel,
            grid_stride(x.len()),
            &[xb, xf, yb, yf, Arg::Int(x.len())],
        )?;
        Ok(y)
    }
    fn activation_backward(
        &self,
        act: Activation,
        dy: &CudaTensor,
        x: &CudaTensor,
    ) -> Result<CudaTensor> {
        let dx = CudaTensor::alloc_as(self.device(), x.shape(), x.elem())?;
        let kernel = format!("{}_backward", act.name());
        let ([db, df], [xb, xf], [ob, of]) = (dy.act(), x.act(), dx.act());
        self.device().launch(
            &kernel,
            grid_stride(x.len()),
            &[db, df, xb, xf, ob, of, Arg::Int(x.len())],
        )?;
        Ok(dx)
    }
    fn add_forward(&self, a: &CudaTensor, b: &CudaTensor) -> Result<CudaTensor> {
        let elem = if a.elem() == b.elem() {
            a.elem()
        } else {
            Elem::F32
        };
        let y = CudaTensor::alloc_as(self.device(), a.shape(), elem)?;
        let ([ab, af], [bb, bf], [yb, yf]) = (a.act(), b.act(), y.act());
        self.device().launch(
            "add_forward",
            grid_stride(a.len()),
            &[ab, af, bb, bf, yb, yf, Arg::Int(a.len())],
        )?;
        Ok(y)
    }
}

/// `t` as FP32: itself when it is stored so, else an exact copy (`act_widen`), for kernels that
/// read FP32 only (the dense layers' GEMMs, when VGG's flattened 16-bit features reach them).
pub(crate) fn widened(be: &CudaBackend, t: &CudaTensor) -> Result<CudaTensor> {
    if t.elem() == Elem::F32 {
        return Ok(t.clone());
    }
    let y = CudaTensor::alloc(be.device(), t.shape())?;
    let [xb, xf] = t.act();
    be.device().launch(
        "act_widen",
        grid_stride(t.len()),
        &[xb, xf, Arg::Buf(y.buf()), Arg::Int(t.len())],
    )?;
    Ok(y)
}
