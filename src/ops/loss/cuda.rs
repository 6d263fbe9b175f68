//! Softmax and weighted cross-entropy on the CUDA backend (`kernels/loss.cu`). Argument checks
//! are the reference's ([`check`]), so errors are identical; labels are validated on the host
//! before they are converted to i32 and uploaded.

use std::sync::Arc;

use super::{Reduction, check};
use crate::cuda::{Arg, CudaTensor, Device, Dims, Elem, int_arg};
use crate::error::{Result, shape_err};
use crate::ops::elementwise::cuda::elementwise_dims;
use crate::tensor::ShapeFmt;

/// Threads of the single cross-entropy block (a multiple of 32; the kernel reduces per warp).
const CE_THREADS: u32 = 256;

pub fn softmax(dev: &Arc<Device>, logits: &CudaTensor) -> Result<CudaTensor> {
    let &[n, k] = logits.shape() else {
        return Err(shape_err(
            "softmax",
            format!("logits must be 2-d, got {}", ShapeFmt(logits.shape())),
        ));
    };
    let (ni, ki) = (int_arg("loss", "rows", n)?, int_arg("loss", "classes", k)?);
    let y = CudaTensor::alloc(dev, logits.shape())?;
    dev.launch(
        "softmax_forward",
        elementwise_dims(n),
        &[
            Arg::Buf(logits.buf()),
            Arg::Buf(y.buf()),
            Arg::I32(ni),
            Arg::I32(ki),
        ],
    )?;
    Ok(y)
}

pub fn weighted_cross_entropy(
    dev: &Arc<Device>,
    logits: &CudaTensor,
    labels: &[usize],
    class_weights: &[f32],
    reduction: Reduction,
) -> Result<(f64, CudaTensor)> {
    let (n, k) = check(logits.shape(), labels, class_weights)?;
    let (ni, ki) = (int_arg("loss", "rows", n)?, int_arg("loss", "classes", k)?);
    // check() put every label below k, which fits in i32.
    let labels_i32: Vec<i32> = labels.iter().map(|&y| y as i32).collect();
    let labels_d = dev.upload_i32(&labels_i32)?;
    let weights_d = dev.upload_f32(class_weights)?;
    let grad = CudaTensor::alloc(dev, logits.shape())?;
    let loss = dev.alloc(1, Elem::F32)?;
    let seed = match reduction {
        Reduction::Normalized => 0,
        Reduction::Seed => 1,
    };
    dev.launch(
        "cross_entropy_weighted",
        Dims::new([1, 1, 1], [CE_THREADS, 1, 1]),
        &[
            Arg::Buf(logits.buf()),
            Arg::Buf(&labels_d),
            Arg::Buf(&weights_d),
            Arg::Buf(grad.buf()),
            Arg::Buf(&loss),
            Arg::I32(ni),
            Arg::I32(ki),
            Arg::I32(seed),
        ],
    )?;
    let l = dev.download_f32(&loss)?[0] as f64;
    Ok((l, grad))
}
