//! Convolution forward on tensor cores (`conv2d_tc.cu`): the FP32 kernels' implicit GEMM, fused
//! epilogue and split K with TF32 `mma.sync`; the CUDA backend picks it when its convolution
//! precision is TF32 (`--precision tf32`, or `auto` on sm_80+ as PyTorch's cuDNN default).

use std::sync::Arc;

use super::cuda::{auto_splits, tap_table, window};
use super::{ConvGeom, Epilogue};
use crate::cuda::launch::grid_stride;
use crate::cuda::{Arg, CudaTensor, Device, Dims, Elem};
use crate::error::{Result, shape_err};

/// Block tile of conv2d_tc.cu (TC_BM = TC_BN) and its k step (TC_BK).
const TILE: usize = 64;
const BK: usize = 8;

/// The TF32 forward convolution of a checked geometry, K split as chosen (`Some(n)`) or
/// automatically (`None`, the FP32 kernels' rule).
pub fn forward_tf32(
    dev: &Arc<Device>,
    x: &CudaTensor,
    w: &CudaTensor,
    g: &ConvGeom,
    e: Epilogue<'_, CudaTensor>,
    splits: Option<usize>,
) -> Result<CudaTensor> {
    let (bias, residual, relu) = (e.bias, e.residual, e.relu);
    let win = window(g)?;
    let g = *g;
    let y = CudaTensor::alloc(dev, &g.y_shape())?;
    let cols = g.n * g.ho * g.wo;
    if cols == 0 {
        return Ok(y);
    }
    if g.kh >= 1 << 15 || g.kw >= 1 << 16 {
        return Err(shape_err(
            "conv2d",
            format!("kernel {}x{} too large for the CUDA kernel", g.kh, g.kw),
        ));
    }
    let k = g.c * g.kh * g.kw;
    let (tiles_n, tiles_m) = (cols.div_ceil(TILE), g.o.div_ceil(TILE));
    let want = splits
        .unwrap_or_else(|| auto_splits(tiles_n * tiles_m, k))
        .max(1);
    // Whole k-steps per split; recount so no split is empty.
    let kchunk = k.div_ceil(BK).div_ceil(want) * BK;
    let splits = k.div_ceil(kchunk).max(1);
    let total = y.len();
    let partial = if splits > 1 {
        Some(dev.alloc(splits * total, Elem::F32)?)
    } else {
        None
    };
    let ktab = if g.is_pointwise() {
        None
    } else {
        Some(tap_table(dev, &g)?)
    };
    let (bias_arg, res_arg) = if splits > 1 {
        (Arg::Null(Elem::F32), Arg::Null(Elem::F32))
    } else {
        (
            Arg::opt(bias.map(|b| b.buf())),
            Arg::opt(residual.map(|r| r.buf())),
        )
    };
    dev.launch(
        "conv2d_forward_tc_tf32",
        Dims::new([tiles_n as u32, tiles_m as u32, splits as u32], [128, 1, 1]),
        &[
            Arg::Buf(x.buf()),
            Arg::Buf(w.buf()),
            ktab.as_ref().map_or(Arg::Null(Elem::I32), Arg::Buf),
            bias_arg,
            res_arg,
            Arg::Buf(y.buf()),
            partial.as_ref().map_or(Arg::Null(Elem::F32), Arg::Buf),
            Arg::Int(kchunk),
            Arg::by_value(&win),
            Arg::flag(relu),
        ],
    )?;
    if let Some(part) = &partial {
        dev.launch(
            "conv2d_splitk_reduce",
            grid_stride(total),
            &[
                Arg::Buf(part),
                Arg::opt(bias.map(|b| b.buf())),
                Arg::opt(residual.map(|r| r.buf())),
                Arg::Buf(y.buf()),
                Arg::I64(total as i64),
                Arg::Int(splits),
                Arg::Int(g.o),
                Arg::Int(g.ho * g.wo),
                Arg::flag(relu),
            ],
        )?;
    }
    Ok(y)
}
