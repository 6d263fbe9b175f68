//! Pooling on the CUDA backend (`kernels/pool.cu`).

use std::sync::Arc;

use super::Pool2dParams;
use crate::cuda::{CudaTensor, Device};
use crate::error::Result;

pub fn maxpool2d(dev: &Arc<Device>, _x: &CudaTensor, _p: &Pool2dParams) -> Result<CudaTensor> {
    Err(dev.err("pool: in progress"))
}
pub fn maxpool2d_backward(
    dev: &Arc<Device>,
    _dy: &CudaTensor,
    _x: &CudaTensor,
    _p: &Pool2dParams,
) -> Result<CudaTensor> {
    Err(dev.err("pool: in progress"))
}
pub fn global_avg_pool(dev: &Arc<Device>, _x: &CudaTensor) -> Result<CudaTensor> {
    Err(dev.err("pool: in progress"))
}
pub fn global_avg_pool_backward(
    dev: &Arc<Device>,
    _dy: &CudaTensor,
    _x_shape: &[usize],
) -> Result<CudaTensor> {
    Err(dev.err("pool: in progress"))
}
