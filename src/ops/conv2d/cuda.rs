//! Convolution on the CUDA backend: forward as an implicit GEMM with the bias / residual / ReLU
//! epilogue fused (`kernels/conv2d.cu`); backward through explicit im2col / col2im per image and
//! the strided GEMM (`kernels/gemm.cu`) — training only ever runs the head, so the backward
//! passes are here for completeness and correctness, not speed.

use std::sync::Arc;

use super::{Conv2dParams, ConvGeom, check_bias, check_dy, geometry};
use crate::cuda::{Arg, CudaTensor, Device, Dims, Elem, int_arg};
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
    int_arg("conv2d", "elements in one tensor", biggest).map(drop)
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
    forward_split(dev, x, w, bias, residual, relu, p, None)
}

/// SMs of the GPUs we tune for (H100 / H200: 132), and blocks per SM the conv kernels fit (2).
/// Fixed rather than read from the device, so the emulator makes exactly the launches a GPU
/// gets.
pub const SMS: usize = 132;
const BLOCKS_PER_SM: usize = 2;
/// Each K split covers at least this many reduction terms, so the extra pass over the partial
/// sums (written and read once per split) stays small next to the arithmetic.
const MIN_K_PER_SPLIT: usize = 384;

/// How many ways to split K for a grid of `blocks` output tiles and `k` reduction terms.
/// Measured on an H200 (batch 32): splitting helps only grids of less than one block per SM
/// (layer3/4 3x3 convolutions: 0.51 -> 0.40 ms, 0.99 -> 0.47 ms) and costs up to 30% on grids
/// of 1-2 blocks per SM with K <= 1024, where the partial sums' traffic outweighs the gain.
pub fn auto_splits(blocks: usize, k: usize) -> usize {
    if blocks >= SMS {
        return 1;
    }
    (SMS * BLOCKS_PER_SM)
        .div_ceil(blocks)
        .min(k / MIN_K_PER_SPLIT)
        .clamp(1, 16)
}

/// [`forward`] with the K split chosen (`Some(n)`) instead of automatic; tests use it to cover
/// both the split and the unsplit paths on the same shapes.
#[allow(clippy::too_many_arguments)]
pub fn forward_split(
    dev: &Arc<Device>,
    x: &CudaTensor,
    w: &CudaTensor,
    bias: Option<&CudaTensor>,
    residual: Option<&CudaTensor>,
    relu: bool,
    p: &Conv2dParams,
    splits: Option<usize>,
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
    let k = g.c * g.kh * g.kw;
    let (tiles_n, tiles_m) = (cols.div_ceil(TILE_N), g.o.div_ceil(tile_m));
    let want = splits
        .unwrap_or_else(|| auto_splits(tiles_n * tiles_m, k))
        .max(1);
    // Whole BK tiles per split; recount so no split is empty.
    let kchunk = k.div_ceil(8).div_ceil(want) * 8;
    let splits = k.div_ceil(kchunk);
    let total = y.len();
    let partial = if splits > 1 {
        Some(dev.alloc(splits * total, crate::cuda::Elem::F32)?)
    } else {
        None
    };
    // The k -> (tap offset, kh << 16 | kw) table of a general convolution, made once per
    // geometry and kept on the device.
    let ktab = if g.is_pointwise() {
        None
    } else {
        let key = format!("conv2d-ktab {} {} {} {} {}", g.c, g.h, g.w, g.kh, g.kw);
        Some(dev.constant_i32(&key, || {
            let mut t = Vec::with_capacity(2 * k);
            for c in 0..g.c {
                for kh in 0..g.kh {
                    for kw in 0..g.kw {
                        t.push(((c * g.h + kh) * g.w + kw) as i32);
                        t.push(((kh << 16) | kw) as i32);
                    }
                }
            }
            t
        })?)
    };
    if g.kh >= 1 << 15 || g.kw >= 1 << 16 {
        return Err(shape_err(
            "conv2d",
            format!("kernel {}x{} too large for the CUDA kernel", g.kh, g.kw),
        ));
    }
    let dims = Dims::new([tiles_n as u32, tiles_m as u32, splits as u32], [256, 1, 1]);
    let i = |v: usize| Arg::I32(v as i32);
    let (bias_arg, res_arg) = if splits > 1 {
        (Arg::Null(Elem::F32), Arg::Null(Elem::F32))
    } else {
        (
            Arg::opt(bias.map(|b| b.buf())),
            Arg::opt(residual.map(|r| r.buf())),
        )
    };
    dev.launch(
        kernel,
        dims,
        &[
            Arg::Buf(x.buf()),
            Arg::Buf(w.buf()),
            ktab.as_ref().map_or(Arg::Null(Elem::I32), Arg::Buf),
            bias_arg,
            res_arg,
            Arg::Buf(y.buf()),
            partial.as_ref().map_or(Arg::Null(Elem::F32), Arg::Buf),
            i(kchunk),
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
    if let Some(part) = &partial {
        dev.launch(
            "conv2d_splitk_reduce",
            elementwise_dims(total),
            &[
                Arg::Buf(part),
                Arg::opt(bias.map(|b| b.buf())),
                Arg::opt(residual.map(|r| r.buf())),
                Arg::Buf(y.buf()),
                Arg::I64(total as i64),
                i(splits),
                i(g.o),
                i(g.ho * g.wo),
                i(relu as usize),
            ],
        )?;
    }
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
