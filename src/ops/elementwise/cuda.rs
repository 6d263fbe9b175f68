//! ReLU and residual add on the CUDA backend (`kernels/elementwise.cu`).

use std::sync::Arc;

use super::check_same;
use crate::cuda::{Arg, CudaTensor, Device, Dims, int_arg};
use crate::error::Result;

/// Threads per block for the element-wise grid-stride loops; the grid is capped so huge tensors
/// loop instead of launching millions of blocks.
const THREADS: u32 = 256;

pub(crate) fn elementwise_dims(n: usize) -> Dims {
    let mut d = Dims::linear(n, THREADS);
    d.grid[0] = d.grid[0].min(65_535);
    d
}

pub fn relu(dev: &Arc<Device>, x: &CudaTensor) -> Result<CudaTensor> {
    let n = x.len();
    int_arg("relu", "elements", n)?;
    let y = CudaTensor::alloc(dev, x.shape())?;
    dev.launch(
        "relu_forward",
        elementwise_dims(n),
        &[Arg::Buf(x.buf()), Arg::Buf(y.buf()), Arg::I32(n as i32)],
    )?;
    Ok(y)
}

pub fn relu_backward(dev: &Arc<Device>, dy: &CudaTensor, x: &CudaTensor) -> Result<CudaTensor> {
    check_same("relu_backward", dy.shape(), x.shape())?;
    int_arg("relu_backward", "elements", x.len())?;
    let dx = CudaTensor::alloc(dev, x.shape())?;
    let n = x.len();
    dev.launch(
        "relu_backward",
        elementwise_dims(n),
        &[
            Arg::Buf(dy.buf()),
            Arg::Buf(x.buf()),
            Arg::Buf(dx.buf()),
            Arg::I32(n as i32),
        ],
    )?;
    Ok(dx)
}

pub fn add(dev: &Arc<Device>, a: &CudaTensor, b: &CudaTensor) -> Result<CudaTensor> {
    check_same("add", a.shape(), b.shape())?;
    int_arg("add", "elements", a.len())?;
    let y = CudaTensor::alloc(dev, a.shape())?;
    let n = a.len();
    dev.launch(
        "add_forward",
        elementwise_dims(n),
        &[
            Arg::Buf(a.buf()),
            Arg::Buf(b.buf()),
            Arg::Buf(y.buf()),
            Arg::I32(n as i32),
        ],
    )?;
    Ok(y)
}
