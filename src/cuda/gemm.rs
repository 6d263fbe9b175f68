//! The strided SGEMM launcher (`src/cuda/gemm.cu`) shared by dense layers and the convolution
//! backward passes, and the column sums their bias gradients need.

use std::sync::Arc;

use super::device::{Arg, DevBuf, Device, Dims, Elem};
use super::launch::{SMS, grid_stride};
use crate::error::Result;

/// One operand of [`gemm`]: a buffer, an element offset into it and the (row, column) strides
/// of the logical matrix.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    pub buf: &'a DevBuf,
    pub offset: usize,
    pub stride: (usize, usize),
}

impl<'a> Mat<'a> {
    /// A row-major matrix with `cols` columns.
    pub fn rows(buf: &'a DevBuf, cols: usize) -> Mat<'a> {
        Mat {
            buf,
            offset: 0,
            stride: (cols, 1),
        }
    }
    /// The transpose of a row-major matrix with `cols` columns.
    pub fn cols(buf: &'a DevBuf, cols: usize) -> Mat<'a> {
        Mat {
            buf,
            offset: 0,
            stride: (1, cols),
        }
    }
    pub fn at(self, offset: usize) -> Mat<'a> {
        Mat { offset, ..self }
    }
}

/// C (row-major, `ldc` = n, at `c_off`) = alpha A B + beta C + bias, A m x k, B k x n.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    dev: &Arc<Device>,
    a: Mat,
    b: Mat,
    c: &DevBuf,
    c_off: usize,
    bias: Option<&DevBuf>,
    (m, n, k): (usize, usize, usize),
    alpha: f32,
    beta: f32,
) -> Result<()> {
    if m == 0 || n == 0 {
        return Ok(());
    }
    let (tiles_n, tiles_m) = (n.div_ceil(64), m.div_ceil(64));
    let splits = gemm_splits(tiles_n * tiles_m, k);
    let kchunk = k.div_ceil(16).div_ceil(splits) * 16;
    let splits = k.div_ceil(kchunk.max(16)).max(1);
    let partial = if splits > 1 {
        Some(dev.alloc(splits * m * n, Elem::F32)?)
    } else {
        None
    };
    let dims = Dims::new([tiles_n as u32, tiles_m as u32, splits as u32], [256, 1, 1]);
    dev.launch(
        "gemm_strided",
        dims,
        &[
            Arg::At(a.buf, a.offset),
            Arg::At(b.buf, b.offset),
            Arg::At(c, c_off),
            Arg::opt(bias),
            partial.as_ref().map_or(Arg::Null(Elem::F32), Arg::Buf),
            Arg::Int(kchunk.max(16)),
            Arg::Int(m),
            Arg::Int(n),
            Arg::Int(k),
            Arg::Int(a.stride.0),
            Arg::Int(a.stride.1),
            Arg::Int(b.stride.0),
            Arg::Int(b.stride.1),
            Arg::Int(n),
            Arg::F32(alpha),
            Arg::F32(beta),
        ],
    )?;
    if let Some(part) = &partial {
        splitk_reduce(dev, part, c, c_off, bias, (m, n), splits, beta)?;
    }
    Ok(())
}

/// C (row-major, ldc = n, at `c_off`) = the sum of the `splits` partial m x n products in
/// `part` + beta C + bias: the second launch of a split-K GEMM (FP32 and tensor-core alike).
#[allow(clippy::too_many_arguments)]
pub(super) fn splitk_reduce(
    dev: &Device,
    part: &DevBuf,
    c: &DevBuf,
    c_off: usize,
    bias: Option<&DevBuf>,
    (m, n): (usize, usize),
    splits: usize,
    beta: f32,
) -> Result<()> {
    dev.launch(
        "gemm_splitk_reduce",
        grid_stride(m * n),
        &[
            Arg::Buf(part),
            Arg::At(c, c_off),
            Arg::opt(bias),
            Arg::Int(m),
            Arg::Int(n),
            Arg::Int(n),
            Arg::Int(splits),
            Arg::F32(beta),
        ],
    )
}

/// K splits for a GEMM grid of `blocks` tiles: only grids of fewer blocks than the GPU has SMs
/// (the conv kernels' rule), each split keeping at least 256 terms.
pub(super) fn gemm_splits(blocks: usize, k: usize) -> usize {
    if blocks >= SMS {
        return 1;
    }
    (2 * SMS).div_ceil(blocks).min(k / 256).clamp(1, 32)
}

/// out[j] = sum over the `rows` rows of the row-major `rows x cols` matrix x (a bias gradient).
pub fn column_sums(
    dev: &Arc<Device>,
    x: &DevBuf,
    out: &DevBuf,
    rows: usize,
    cols: usize,
) -> Result<()> {
    dev.launch(
        "sum_rows",
        Dims::linear(cols, 128),
        &[Arg::Buf(x), Arg::Buf(out), Arg::Int(rows), Arg::Int(cols)],
    )
}
