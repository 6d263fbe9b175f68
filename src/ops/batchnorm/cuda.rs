//! Batch norm on the CUDA backend (`kernels/batchnorm.cu`).

use std::sync::Arc;

use crate::backend::{BnBatchStats, BnParams};
use crate::cuda::{CudaTensor, Device};
use crate::error::Result;

pub fn inference(
    dev: &Arc<Device>,
    _x: &CudaTensor,
    _bn: &BnParams<CudaTensor>,
) -> Result<CudaTensor> {
    Err(dev.err("batchnorm: in progress"))
}
pub fn train(
    dev: &Arc<Device>,
    _x: &CudaTensor,
    _bn: &BnParams<CudaTensor>,
) -> Result<(CudaTensor, BnBatchStats<CudaTensor>)> {
    Err(dev.err("batchnorm: in progress"))
}
pub fn train_backward(
    dev: &Arc<Device>,
    _dy: &CudaTensor,
    _x: &CudaTensor,
    _bn: &BnParams<CudaTensor>,
    _stats: &BnBatchStats<CudaTensor>,
) -> Result<(CudaTensor, CudaTensor, CudaTensor)> {
    Err(dev.err("batchnorm: in progress"))
}
pub fn inference_backward(
    dev: &Arc<Device>,
    _dy: &CudaTensor,
    _x: &CudaTensor,
    _bn: &BnParams<CudaTensor>,
) -> Result<(CudaTensor, CudaTensor, CudaTensor)> {
    Err(dev.err("batchnorm: in progress"))
}
pub fn update_running(
    dev: &Arc<Device>,
    _bn: &mut BnParams<CudaTensor>,
    _stats: &BnBatchStats<CudaTensor>,
    _momentum: f64,
) -> Result<()> {
    Err(dev.err("batchnorm: in progress"))
}
