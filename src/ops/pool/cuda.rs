//! Pooling on the CUDA backend (`kernels/pool.cu`). Shape checks are the reference's
//! (`Pool2dParams::output_shape` and the same messages), so errors are identical.

use std::sync::Arc;

use super::Pool2dParams;
use crate::cuda::{Arg, CudaTensor, Device, Dims, int_arg};
use crate::error::{Result, shape_err};
use crate::ops::elementwise::cuda::elementwise_dims;
use crate::tensor::ShapeFmt;

/// Warps (planes) per block of the global-average-pool forward.
const GAP_WARPS: u32 = 8;

/// The int arguments shared by both max-pool kernels: planes, h, w, ho, wo, kernel, stride,
/// padding. Checks the per-plane sizes fit in int (offsets into the tensor are 64-bit).
fn maxpool_args(x_shape: &[usize], out: &[usize; 4], p: &Pool2dParams) -> Result<[i32; 11]> {
    let (h, w) = (x_shape[2], x_shape[3]);
    let [n, c, ho, wo] = *out;
    int_arg("pool", "plane size", h * w)?;
    int_arg("pool", "output plane size", ho * wo)?;
    let ((kh, kw), (sh, sw), (ph, pw)) = (p.kernel, p.stride, p.padding);
    let mut a = [0i32; 11];
    for (slot, (v, what)) in a.iter_mut().zip([
        (n * c, "planes"),
        (h, "height"),
        (w, "width"),
        (ho, "output height"),
        (wo, "output width"),
        (kh, "kernel height"),
        (kw, "kernel width"),
        (sh, "stride"),
        (sw, "stride"),
        (ph, "padding"),
        (pw, "padding"),
    ]) {
        *slot = int_arg("pool", what, v)?;
    }
    Ok(a)
}

pub fn maxpool2d(dev: &Arc<Device>, x: &CudaTensor, p: &Pool2dParams) -> Result<CudaTensor> {
    let out = p.output_shape(x.shape())?;
    let a = maxpool_args(x.shape(), &out, p)?;
    let y = CudaTensor::alloc(dev, &out)?;
    let mut args = vec![Arg::Buf(x.buf()), Arg::Buf(y.buf())];
    args.extend(a.iter().map(|&v| Arg::I32(v)));
    dev.launch("maxpool2d_forward", elementwise_dims(y.len()), &args)?;
    Ok(y)
}

pub fn maxpool2d_backward(
    dev: &Arc<Device>,
    dy: &CudaTensor,
    x: &CudaTensor,
    p: &Pool2dParams,
) -> Result<CudaTensor> {
    let out = p.output_shape(x.shape())?;
    dy.expect_shape("maxpool2d_backward", "output gradient", &out)?;
    let a = maxpool_args(x.shape(), &out, p)?;
    let dx = CudaTensor::alloc(dev, x.shape())?;
    let mut args = vec![Arg::Buf(dy.buf()), Arg::Buf(x.buf()), Arg::Buf(dx.buf())];
    args.extend(a.iter().map(|&v| Arg::I32(v)));
    dev.launch("maxpool2d_backward", elementwise_dims(dx.len()), &args)?;
    Ok(dx)
}

pub fn global_avg_pool(dev: &Arc<Device>, x: &CudaTensor) -> Result<CudaTensor> {
    let &[n, c, h, w] = x.shape() else {
        return Err(shape_err(
            "global_avg_pool",
            format!(
                "input must be 4-d [N, C, H, W], got {}",
                ShapeFmt(x.shape())
            ),
        ));
    };
    if h * w == 0 {
        return Err(shape_err(
            "global_avg_pool",
            format!("input {} has an empty plane", ShapeFmt(x.shape())),
        ));
    }
    let planes = int_arg("pool", "planes", n * c)?;
    let hw = int_arg("pool", "plane size", h * w)?;
    let y = CudaTensor::alloc(dev, &[n, c])?;
    let blocks = (n * c).div_ceil(GAP_WARPS as usize).clamp(1, 65_535) as u32;
    dev.launch(
        "global_avg_pool_forward",
        Dims::new([blocks, 1, 1], [32 * GAP_WARPS, 1, 1]),
        &[
            Arg::Buf(x.buf()),
            Arg::Buf(y.buf()),
            Arg::I32(planes),
            Arg::I32(hw),
        ],
    )?;
    Ok(y)
}

pub fn global_avg_pool_backward(
    dev: &Arc<Device>,
    dy: &CudaTensor,
    x_shape: &[usize],
) -> Result<CudaTensor> {
    const OP: &str = "global_avg_pool_backward";
    let &[n, c, h, w] = x_shape else {
        return Err(shape_err(
            OP,
            format!("input shape must be 4-d, got {}", ShapeFmt(x_shape)),
        ));
    };
    dy.expect_shape(OP, "output gradient", &[n, c])?;
    let planes = int_arg("pool", "planes", n * c)?;
    let hw = int_arg("pool", "plane size", h * w)?;
    let dx = CudaTensor::alloc(dev, x_shape)?;
    dev.launch(
        "global_avg_pool_backward",
        elementwise_dims(dx.len()),
        &[
            Arg::Buf(dy.buf()),
            Arg::Buf(dx.buf()),
            Arg::I32(planes),
            Arg::I32(hw),
        ],
    )?;
    Ok(dx)
}
