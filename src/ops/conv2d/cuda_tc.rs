//! Convolutions on tensor cores (`conv2d_tc.cu`, `conv2d_tc_grad.cu`): the FP32 kernels'
//! implicit GEMMs (forward with its fused epilogue, data gradient, weight gradient) and split K,
//! with `mma.sync` in TF32, BF16 or FP16 and FP32 sums. The CUDA backend runs them when its
//! convolution precision says so (`--precision tf32|bf16|fp16`, or `auto` = TF32 on sm_80+ as
//! PyTorch's cuDNN default); FP32 keeps the kernels of [`super::cuda`].
//!
//! The weights (FP32 master copies) are packed into K-major rows of the format (`gemm_tc_pack`;
//! for the forward once per weight tensor, kept until the weights change, for the data
//! gradient per call) so the kernel streams them with `cp.async`. Activations and their
//! gradients are read in whatever format they are stored (FP32 or 16-bit, `act.cuh`) and
//! converted to the arithmetic's format as the kernels gather them; the forward and the data
//! gradient write their output in the format the caller names (the backend's
//! [`activation_storage`](crate::cuda::CudaBackend::activation_storage)), the weight gradient
//! FP32.

use std::sync::Arc;

use super::cuda::{
    auto_splits, dgrad_table, grad_splits, splitk_reduce as reduce, tap_table, weight_transpose,
    window,
};
use super::{Conv2dParams, ConvGeom, Epilogue, geometry};
use crate::cuda::gemm_tc::pack;
use crate::cuda::kernel_args::Window;
use crate::cuda::{Arg, CudaTensor, DevBuf, Device, Dims, Elem, Precision};
use crate::error::{Result, invalid, shape_err};

/// Output columns per block (CTC_BN); rows are 64 or 128 (the kernels' `_64` / `_128`).
const TILE_N: usize = 64;
/// 32-bit words of one k-tile row (CTC_ROW_BYTES / 4).
const TILE_WORDS: usize = 16;

/// The kernels' format code and the values a k-tile holds; an error for FP32 (not a
/// tensor-core format: the callers dispatch FP32 to the CUDA-core kernels).
pub(crate) fn format(p: Precision) -> Result<(i32, usize)> {
    match p {
        Precision::Tf32 => Ok((0, TILE_WORDS)),
        Precision::Bf16 => Ok((1, 2 * TILE_WORDS)),
        Precision::Fp16 => Ok((2, 2 * TILE_WORDS)),
        Precision::Fp32 => Err(invalid("conv2d", "fp32 has no tensor-core kernel")),
    }
}

/// A launch plan for one implicit GEMM of `m` rows, `nc` columns and `k` reduction terms:
/// kernel tile rows, grid, k-tiles per split and splits.
struct Plan {
    bm: usize,
    grid: [u32; 3],
    kps: usize,
    splits: usize,
}

fn plan(
    (m, nc, k): (usize, usize, usize),
    per_tile: usize,
    splits: Option<usize>,
    auto: impl Fn(usize) -> usize,
) -> Plan {
    // 128-row tiles halve the gathers per output for layers wide enough to fill them.
    let bm = if m > 64 { 128 } else { 64 };
    let (tiles_n, tiles_m) = (nc.div_ceil(TILE_N), m.div_ceil(bm));
    let ktiles = k.div_ceil(per_tile).max(1);
    let want = splits.unwrap_or_else(|| auto(tiles_n * tiles_m)).max(1);
    // Whole k-tiles per split; recount so no split is empty.
    let kps = ktiles.div_ceil(want);
    let splits = ktiles.div_ceil(kps);
    Plan {
        bm,
        grid: [tiles_n as u32, tiles_m as u32, splits as u32],
        kps,
        splits,
    }
}

impl Plan {
    fn dims(&self) -> Dims {
        Dims::new(self.grid, [2 * self.bm as u32, 1, 1])
    }
    fn kernel(&self, op: &str) -> String {
        format!("conv2d_tc_{op}_{}", self.bm)
    }
    fn partial(&self, dev: &Arc<Device>, total: usize) -> Result<Option<DevBuf>> {
        if self.splits > 1 {
            Ok(Some(dev.alloc(self.splits * total, Elem::F32)?))
        } else {
            Ok(None)
        }
    }
}

/// Rows of `k` values from `w` (row stride `k`) packed K-major in the format, zero-padded to
/// whole k-tiles; returns the buffer and its row length in words.
pub(crate) fn pack_rows(
    dev: &Arc<Device>,
    w: &DevBuf,
    (rows, k): (usize, usize),
    fmt: i32,
    per_tile: usize,
) -> Result<(DevBuf, usize)> {
    let kp = k.div_ceil(per_tile).max(1) * per_tile;
    let buf = pack(dev, w, 0, (rows, k, kp), (k, 1), fmt)?;
    Ok((buf, packed_row_words(k, per_tile)))
}

/// 32-bit words per packed row of `k` values (whole k-tiles of `per_tile` values).
pub(crate) fn packed_row_words(k: usize, per_tile: usize) -> usize {
    k.div_ceil(per_tile).max(1) * TILE_WORDS
}

fn check_kernel_size(g: &ConvGeom) -> Result<()> {
    if g.kh >= 1 << 15 || g.kw >= 1 << 16 {
        return Err(shape_err(
            "conv2d",
            format!("kernel {}x{} too large for the CUDA kernel", g.kh, g.kw),
        ));
    }
    Ok(())
}

/// The forward convolution of a checked geometry at `precision` (TF32 / BF16 / FP16), K split
/// as chosen (`Some(n)`) or automatically (`None`, the FP32 kernels' rule), y stored as `out`.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    precision: Precision,
    dev: &Arc<Device>,
    x: &CudaTensor,
    w: &CudaTensor,
    g: &ConvGeom,
    e: Epilogue<'_, CudaTensor>,
    splits: Option<usize>,
    out: Elem,
) -> Result<CudaTensor> {
    let (fmt, per_tile) = format(precision)?;
    let win = window(g)?;
    check_kernel_size(g)?;
    let y = CudaTensor::alloc_as(dev, &g.y_shape(), out)?;
    let cols = g.n * g.ho * g.wo;
    if cols == 0 {
        return Ok(y);
    }
    let k = g.c * g.kh * g.kw;
    let pl = plan((g.o, cols, k), per_tile, splits, |b| auto_splits(b, k));
    // Packed once per weight tensor and format (`Device::derived`: released when the weights
    // are freed or updated in place, as every optimiser step does through `buf_mut`).
    let key = format!("conv weights {fmt} {} {k}", g.o);
    let wp = dev.derived(w.buf(), &key, || {
        Ok(pack_rows(dev, w.buf(), (g.o, k), fmt, per_tile)?.0)
    })?;
    let ldw = packed_row_words(k, per_tile);
    let partial = pl.partial(dev, y.len())?;
    let ktab = if g.is_pointwise() {
        None
    } else {
        Some(tap_table(dev, g)?)
    };
    let fused = partial.is_none();
    let [xb, xf] = x.act();
    let [rb, rf] = CudaTensor::opt_act(e.residual.filter(|_| fused));
    let [yb, yf] = y.act();
    dev.launch(
        &pl.kernel("fwd"),
        pl.dims(),
        &[
            xb,
            xf,
            Arg::Buf(&wp),
            ktab.as_ref().map_or(Arg::Null(Elem::I32), Arg::Buf),
            Arg::opt(e.bias.filter(|_| fused).map(|b| b.buf())),
            rb,
            rf,
            yb,
            yf,
            partial.as_ref().map_or(Arg::Null(Elem::F32), Arg::Buf),
            Arg::Int(pl.kps),
            Arg::Int(ldw),
            Arg::by_value(&win),
            Arg::flag(e.relu),
            Arg::Int(fmt as usize),
        ],
    )?;
    if let Some(part) = &partial {
        reduce(dev, part, &y, pl.splits, Some((e, g.o, g.ho * g.wo)))?;
    }
    Ok(y)
}

/// dx of a checked geometry at `precision`, stored as `out`. Stride 1 with padding below the
/// kernel size: the tensor-core forward of dy with the flipped, transposed weights (as the FP32
/// path does); otherwise conv2d_tc_dgrad, gathering dy through the stride.
pub fn backward_data(
    precision: Precision,
    dev: &Arc<Device>,
    dy: &CudaTensor,
    w: &CudaTensor,
    g: &ConvGeom,
    splits: Option<usize>,
    out: Elem,
) -> Result<CudaTensor> {
    let (fmt, per_tile) = format(precision)?;
    if g.sh == 1 && g.sw == 1 && g.ph < g.kh && g.pw < g.kw {
        let wf = weight_transpose(dev, w, g, true)?;
        let p = Conv2dParams {
            stride: (1, 1),
            padding: (g.kh - 1 - g.ph, g.kw - 1 - g.pw),
        };
        let gd = geometry(&g.y_shape(), &[g.c, g.o, g.kh, g.kw], &p)?;
        let none = Epilogue {
            bias: None,
            residual: None,
            relu: false,
        };
        return forward(precision, dev, dy, &wf, &gd, none, splits, out);
    }
    let win = window(g)?;
    check_kernel_size(g)?;
    let dx = CudaTensor::alloc_as(dev, &g.x_shape(), out)?;
    let (m, nc, k) = (g.c, g.n * g.h * g.w, g.o * g.kh * g.kw);
    if nc == 0 {
        return Ok(dx);
    }
    let pl = plan((m, nc, k), per_tile, splits, |b| grad_splits(b, k, m * nc));
    let wt = weight_transpose(dev, w, g, false)?;
    let (wtp, ldw) = pack_rows(dev, wt.buf(), (m, k), fmt, per_tile)?;
    let ktab = dgrad_table(dev, g)?;
    let partial = pl.partial(dev, dx.len())?;
    let ([db, df], [ob, of]) = (dy.act(), dx.act());
    dev.launch(
        &pl.kernel("dgrad"),
        pl.dims(),
        &[
            Arg::Buf(&wtp),
            db,
            df,
            Arg::Buf(&ktab),
            ob,
            of,
            partial.as_ref().map_or(Arg::Null(Elem::F32), Arg::Buf),
            Arg::Int(pl.kps),
            Arg::Int(ldw),
            Arg::by_value(&win),
            Arg::Int(fmt as usize),
        ],
    )?;
    if let Some(part) = &partial {
        reduce(dev, part, &dx, pl.splits, None)?;
    }
    Ok(dx)
}

/// dW of a checked geometry at `precision`: conv2d_tc_wgrad, the reduction over (image,
/// output pixel) split as asked or automatically.
pub fn backward_weight(
    precision: Precision,
    dev: &Arc<Device>,
    dy: &CudaTensor,
    x: &CudaTensor,
    g: &ConvGeom,
    splits: Option<usize>,
) -> Result<CudaTensor> {
    let (fmt, per_tile) = format(precision)?;
    let win: Window = window(g)?;
    check_kernel_size(g)?;
    let dw = CudaTensor::alloc(dev, &g.w_shape())?;
    let (m, nc, k) = (g.o, g.c * g.kh * g.kw, g.n * g.ho * g.wo);
    let pl = plan((m, nc, k), per_tile, splits, |b| grad_splits(b, k, m * nc));
    let ktab = tap_table(dev, g)?;
    let partial = pl.partial(dev, dw.len())?;
    let ([db, df], [xb, xf]) = (dy.act(), x.act());
    dev.launch(
        &pl.kernel("wgrad"),
        pl.dims(),
        &[
            db,
            df,
            xb,
            xf,
            Arg::Buf(&ktab),
            Arg::Buf(dw.buf()),
            partial.as_ref().map_or(Arg::Null(Elem::F32), Arg::Buf),
            Arg::Int(pl.kps),
            Arg::by_value(&win),
            Arg::Int(fmt as usize),
        ],
    )?;
    if let Some(part) = &partial {
        reduce(dev, part, &dw, pl.splits, None)?;
    }
    Ok(dw)
}
