//! Dense layers on the CUDA backend, and the strided GEMM launcher they share with the
//! convolution backward passes (`kernels/gemm.cu`).

use std::sync::Arc;

use super::{DenseGrads, dims};
use crate::cuda::{Arg, CudaTensor, DevBuf, Device, Dims, Elem};
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

/// C (row-major, `ldc`, at `c_off`) = alpha A B + beta C + bias, A m x k, B k x n.
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
        Some(dev.alloc(splits * m * n, crate::cuda::Elem::F32)?)
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
            Arg::I32(kchunk.max(16) as i32),
            Arg::I32(m as i32),
            Arg::I32(n as i32),
            Arg::I32(k as i32),
            Arg::I32(a.stride.0 as i32),
            Arg::I32(a.stride.1 as i32),
            Arg::I32(b.stride.0 as i32),
            Arg::I32(b.stride.1 as i32),
            Arg::I32(n as i32),
            Arg::F32(alpha),
            Arg::F32(beta),
        ],
    )?;
    if let Some(part) = &partial {
        dev.launch(
            "gemm_splitk_reduce",
            crate::ops::elementwise::cuda::elementwise_dims(m * n),
            &[
                Arg::Buf(part),
                Arg::At(c, c_off),
                Arg::opt(bias),
                Arg::I32(m as i32),
                Arg::I32(n as i32),
                Arg::I32(n as i32),
                Arg::I32(splits as i32),
                Arg::F32(beta),
            ],
        )?;
    }
    Ok(())
}

/// K splits for a GEMM grid of `blocks` tiles: only grids of fewer blocks than the GPU has SMs
/// (the conv kernels' rule), each split keeping at least 256 terms.
fn gemm_splits(blocks: usize, k: usize) -> usize {
    use crate::ops::conv2d::cuda::SMS;
    if blocks >= SMS {
        return 1;
    }
    (2 * SMS).div_ceil(blocks).min(k / 256).clamp(1, 32)
}

/// y = x W^T + b: x [N, I], W [O, I] (PyTorch's layout).
pub fn forward(
    dev: &Arc<Device>,
    x: &CudaTensor,
    w: &CudaTensor,
    b: Option<&CudaTensor>,
) -> Result<CudaTensor> {
    let (n, i, o) = dims(x.shape(), w.shape(), b.map(|b| b.shape()))?;
    let y = CudaTensor::alloc(dev, &[n, o])?;
    gemm(
        dev,
        Mat::rows(x.buf(), i),
        Mat::cols(w.buf(), i),
        y.buf(),
        0,
        b.map(|b| b.buf()),
        (n, o, i),
        1.0,
        0.0,
    )?;
    Ok(y)
}

/// dx = dy W, dW = dy^T x, db = column sums of dy.
pub fn backward(
    dev: &Arc<Device>,
    dy: &CudaTensor,
    x: &CudaTensor,
    w: &CudaTensor,
) -> Result<DenseGrads<CudaTensor>> {
    let (n, i, o) = dims(x.shape(), w.shape(), None)?;
    dy.expect_shape("dense_backward", "output gradient", &[n, o])?;
    let dx = CudaTensor::alloc(dev, &[n, i])?;
    gemm(
        dev,
        Mat::rows(dy.buf(), o),
        Mat::rows(w.buf(), i),
        dx.buf(),
        0,
        None,
        (n, i, o),
        1.0,
        0.0,
    )?;
    let dw = CudaTensor::alloc(dev, &[o, i])?;
    gemm(
        dev,
        Mat::cols(dy.buf(), o),
        Mat::rows(x.buf(), i),
        dw.buf(),
        0,
        None,
        (o, i, n),
        1.0,
        0.0,
    )?;
    let db = CudaTensor::alloc(dev, &[o])?;
    dev.launch(
        "sum_rows",
        Dims::linear(o, 128),
        &[
            Arg::Buf(dy.buf()),
            Arg::Buf(db.buf()),
            Arg::I32(n as i32),
            Arg::I32(o as i32),
        ],
    )?;
    Ok(DenseGrads { dx, dw, db })
}
