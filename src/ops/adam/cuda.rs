//! Adam on the CUDA backend (`kernels/adam.cu`): one element-wise kernel updating param, m and v
//! in place. Checks are the reference's (`validate`, then the same shape messages). The scalar
//! factors (lr*wd, 1 - b_i, lr / (1 - b1^t), 1 / sqrt(1 - b2^t)) are computed here in f64 exactly
//! as the reference's bias corrections, and passed rounded to float.

use std::sync::Arc;

use super::AdamConfig;
use crate::cuda::{Arg, CudaTensor, Device, int_arg};
use crate::error::Result;
use crate::ops::elementwise::cuda::elementwise_dims;

pub fn step(
    dev: &Arc<Device>,
    param: &mut CudaTensor,
    grad: &CudaTensor,
    m: &mut CudaTensor,
    v: &mut CudaTensor,
    cfg: &AdamConfig,
    step: u64,
) -> Result<()> {
    const OP: &str = "adam";
    let (bc1, bc2) = cfg.check_step(step, param.shape(), grad.shape(), m.shape(), v.shape())?;
    let n = int_arg(OP, "elements", param.len())?;
    let scalars = [
        cfg.lr * cfg.weight_decay,
        cfg.beta1,
        1.0 - cfg.beta1,
        cfg.beta2,
        1.0 - cfg.beta2,
        cfg.lr / bc1,
        1.0 / bc2.sqrt(),
        cfg.eps,
    ];
    let (p_buf, m_buf, v_buf) = (param.buf_mut()?, m.buf_mut()?, v.buf_mut()?);
    let mut args = vec![
        Arg::Buf(p_buf),
        Arg::Buf(grad.buf()),
        Arg::Buf(m_buf),
        Arg::Buf(v_buf),
        Arg::I32(n),
    ];
    args.extend(scalars.iter().map(|&s| Arg::F32(s as f32)));
    dev.launch("adam_step", elementwise_dims(n as usize), &args)
}
