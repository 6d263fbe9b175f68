//! Convolution on the CUDA backend: forward as an implicit GEMM with the bias / residual / ReLU
//! epilogue fused (`kernels/conv2d.cu`); backward through explicit im2col / col2im per image and
//! the strided GEMM (`kernels/gemm.cu`) — training only ever runs the head, so the backward
//! passes are here for completeness and correctness, not speed.

use std::sync::Arc;

use super::{Conv2dParams, ConvGeom, check_bias, check_dy, geometry};
use crate::cuda::{Arg, CudaTensor, Device, Dims};
use crate::error::{Result, shape_err};
use crate::ops::dense::cuda::{Mat, gemm};
use crate::ops::elementwise::cuda::elementwise_dims;
use crate::tensor::ShapeFmt;

/// The forward kernel for a geometry: pointwise variants read x without index arithmetic;
/// 64-row tiles for layers with at most 64 output channels, where 128-row tiles idle half.
pub fn forward_kernel(g: &ConvGeom) -> (&'static str, usize) {
    match (g.is_pointwise(), g.o <= 64) {
        (true, true) => ("conv2d_forward_pw_64", 64),
        (true, false) => ("conv2d_forward_pw_128", 128),
        (false, true) => ("conv2d_forward_64", 64),
        (false, false) => ("conv2d_forward_128", 128),
    }
}

/// Columns of the implicit GEMM per block (BN in the kernel).
const TILE_N: usize = 128;

fn check_i32(g: &ConvGeom) -> Result<()> {
    // Kernels index with 32-bit ints inside one tensor (offsets are 64-bit).
    let biggest = [
        g.n * g.c * g.h * g.w,
        g.n * g.o * g.ho * g.wo,
        g.o * g.c * g.kh * g.kw,
    ]
    .into_iter()
    .max()
    .unwrap();
    if biggest > i32::MAX as usize {
        return Err(shape_err(
            "conv2d",
            format!("tensor of {biggest} elements is too large for one launch; split the batch"),
        ));
    }
    Ok(())
}

pub fn forward(
    dev: &Arc<Device>,
    x: &CudaTensor,
    w: &CudaTensor,
    bias: Option<&CudaTensor>,
    residual: Option<&CudaTensor>,
    relu: bool,
    p: &Conv2dParams,
) -> Result<CudaTensor> {
    let g = geometry(x.shape(), w.shape(), p)?;
    if let Some(b) = bias {
        check_bias(b.shape(), g.o)?;
    }
    if let Some(r) = residual {
        r.expect_shape("conv2d", "residual", &g.y_shape())?;
    }
    check_i32(&g)?;
    let y = CudaTensor::alloc(dev, &g.y_shape())?;
    let (kernel, tile_m) = forward_kernel(&g);
    let cols = g.n * g.ho * g.wo;
    if cols == 0 {
        return Ok(y);
    }
    let dims = Dims::new(
        [cols.div_ceil(TILE_N) as u32, g.o.div_ceil(tile_m) as u32, 1],
        [256, 1, 1],
    );
    let i = |v: usize| Arg::I32(v as i32);
    dev.launch(
        kernel,
        dims,
        &[
            Arg::Buf(x.buf()),
            Arg::Buf(w.buf()),
            Arg::opt(bias.map(|b| b.buf())),
            Arg::opt(residual.map(|r| r.buf())),
            Arg::Buf(y.buf()),
            i(g.n),
            i(g.c),
            i(g.h),
            i(g.w),
            i(g.o),
            i(g.kh),
            i(g.kw),
            i(g.ho),
            i(g.wo),
            i(g.sh),
            i(g.sw),
            i(g.ph),
            i(g.pw),
            i(relu as usize),
        ],
    )?;
    Ok(y)
}

/// The geometry arguments shared by im2col and col2im.
fn window_args(g: &ConvGeom) -> [Arg<'static>; 11] {
    let i = |v: usize| Arg::I32(v as i32);
    [
        i(g.c),
        i(g.h),
        i(g.w),
        i(g.kh),
        i(g.kw),
        i(g.ho),
        i(g.wo),
        i(g.sh),
        i(g.sw),
        i(g.ph),
        i(g.pw),
    ]
}

/// dx = col2im(W^T dy), one image at a time (the column buffer is reused).
pub fn backward_data(
    dev: &Arc<Device>,
    dy: &CudaTensor,
    w: &CudaTensor,
    x_shape: &[usize],
    p: &Conv2dParams,
) -> Result<CudaTensor> {
    let g = geometry(x_shape, w.shape(), p)?;
    check_dy("conv2d_backward_data", dy.shape(), &g)?;
    check_i32(&g)?;
    let (k, pix) = (g.c * g.kh * g.kw, g.ho * g.wo);
    let dcol = CudaTensor::alloc(dev, &[k, pix])?;
    let dx = CudaTensor::alloc(dev, x_shape)?;
    let image = g.c * g.h * g.w;
    for n in 0..g.n {
        // dcol[k, p] = sum_o W[o, k] dy_n[o, p]
        gemm(
            dev,
            Mat::cols(w.buf(), k),
            Mat::rows(dy.buf(), pix).at(n * g.o * pix),
            dcol.buf(),
            0,
            None,
            (k, pix, g.o),
            1.0,
            0.0,
        )?;
        let mut args = vec![Arg::Buf(dcol.buf()), Arg::At(dx.buf(), n * image)];
        args.extend(window_args(&g));
        dev.launch("conv2d_col2im", elementwise_dims(image), &args)?;
    }
    Ok(dx)
}

/// dW = sum over images of dy_n im2col(x_n)^T.
pub fn backward_weight(
    dev: &Arc<Device>,
    dy: &CudaTensor,
    x: &CudaTensor,
    w_shape: &[usize],
    p: &Conv2dParams,
) -> Result<CudaTensor> {
    let g = geometry(x.shape(), w_shape, p)?;
    check_dy("conv2d_backward_weight", dy.shape(), &g)?;
    check_i32(&g)?;
    let (k, pix) = (g.c * g.kh * g.kw, g.ho * g.wo);
    let col = CudaTensor::alloc(dev, &[k, pix])?;
    let dw = CudaTensor::alloc(dev, w_shape)?;
    let image = g.c * g.h * g.w;
    for n in 0..g.n {
        let mut args = vec![Arg::At(x.buf(), n * image), Arg::Buf(col.buf())];
        args.extend(window_args(&g));
        dev.launch("conv2d_im2col", elementwise_dims(k * pix), &args)?;
        // dW[o, k] (+)= sum_p dy_n[o, p] col[k, p]
        gemm(
            dev,
            Mat::rows(dy.buf(), pix).at(n * g.o * pix),
            Mat::cols(col.buf(), pix),
            dw.buf(),
            0,
            None,
            (g.o, k, pix),
            1.0,
            if n == 0 { 0.0 } else { 1.0 },
        )?;
    }
    if g.n == 0 {
        // An empty batch contributes nothing: a GEMM over K = 0 writes zeros.
        gemm(
            dev,
            Mat::rows(dy.buf(), pix),
            Mat::cols(col.buf(), pix),
            dw.buf(),
            0,
            None,
            (g.o, k, 0),
            1.0,
            0.0,
        )?;
    }
    Ok(dw)
}

pub fn backward_bias(dev: &Arc<Device>, dy: &CudaTensor) -> Result<CudaTensor> {
    let [n, o, ho, wo] = match *dy.shape() {
        [n, o, ho, wo] => [n, o, ho, wo],
        _ => {
            return Err(shape_err(
                "conv2d_backward_bias",
                format!(
                    "output gradient must be 4-d [N, C, H, W], got {}",
                    ShapeFmt(dy.shape())
                ),
            ));
        }
    };
    let db = CudaTensor::alloc(dev, &[o])?;
    dev.launch(
        "conv2d_bias_grad",
        Dims::new([o as u32, 1, 1], [256, 1, 1]),
        &[
            Arg::Buf(dy.buf()),
            Arg::Buf(db.buf()),
            Arg::I32(n as i32),
            Arg::I32(o as i32),
            Arg::I32((ho * wo) as i32),
        ],
    )?;
    Ok(db)
}
