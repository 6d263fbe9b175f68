//! Convolution on the CUDA backend: forward as an implicit GEMM with the bias / residual / ReLU
//! epilogue fused (`conv2d.cu`); backward through explicit im2col / col2im over chunks of images
//! (columns of many images side by side, so one GEMM of `src/cuda/gemm.cu` covers a chunk:
//! per-image GEMMs were tiny for layer3/4 maps and serialised 32 launches per layer). Not yet an
//! implicit GEMM: the column buffer (at most 256 MiB) is written and read once. The geometry
//! travels to every kernel as one [`Window`] struct.

use std::sync::Arc;

use super::{Conv2dKernels, ConvGeom, Epilogue};
use crate::cuda::gemm::{Mat, gemm};
use crate::cuda::kernel_args::{Window, WindowSizes};
use crate::cuda::launch::{SMS, grid_stride};
use crate::cuda::{Arg, CudaBackend, CudaTensor, Device, Dims, Elem};
use crate::error::{Result, shape_err};

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

/// The kernels' view of a checked geometry; sizes past a kernel `int` are refused here.
fn window(g: &ConvGeom) -> Result<Window> {
    Window::new(
        "conv2d",
        WindowSizes {
            input: g.x_shape(),
            out: [g.o, g.ho, g.wo],
            kernel: (g.kh, g.kw),
            stride: (g.sh, g.sw),
            padding: (g.ph, g.pw),
        },
    )
}

/// Blocks per SM the conv kernels fit (2).
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

/// The forward convolution of a checked geometry with the K split chosen (`Some(n)`) or
/// automatic (`None`); tests choose it to cover both the split and the unsplit paths on the same
/// shapes.
pub fn forward_split(
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

/// Column-buffer budget of the backward passes, in floats: images are taken in chunks whose
/// columns (K x images x P) fit, so one GEMM covers many images (64 Mi floats = 256 MiB). In
/// unit tests 3000 floats, so the emulator runs every form of the chunk loop: whole batches,
/// one image per chunk (the 3x3 cases on 9x9 maps), and chunks of 2 + a remainder of 1 (the
/// [3, 16, 9, 9] pointwise case).
#[cfg(not(test))]
const COL_BUDGET: usize = 1 << 26;
#[cfg(test)]
const COL_BUDGET: usize = 3000;

/// Images per chunk: as many as fit the budget (at least one), at most `n`.
fn chunk_images(g: &ConvGeom) -> usize {
    let per_image = (g.c * g.kh * g.kw).max(g.o) * g.ho * g.wo;
    (COL_BUDGET / per_image.max(1)).clamp(1, g.n.max(1))
}

/// dy of images `n0 .. n0 + gi` as rows [O, gi * P] in `dyt`.
fn dy_rows(
    dev: &Arc<Device>,
    dy: &CudaTensor,
    dyt: &CudaTensor,
    g: &ConvGeom,
    n0: usize,
    gi: usize,
) -> Result<()> {
    let pix = g.ho * g.wo;
    dev.launch(
        "conv2d_dy_to_rows",
        grid_stride(g.o * gi * pix),
        &[
            Arg::Buf(dy.buf()),
            Arg::Buf(dyt.buf()),
            Arg::Int(n0),
            Arg::Int(gi),
            Arg::Int(g.o),
            Arg::Int(pix),
        ],
    )
}

/// dx = col2im(W^T dy), a chunk of images per GEMM: dcol [K, G*P] = W^T [K, O] dyt [O, G*P].
fn backward_data(
    dev: &Arc<Device>,
    dy: &CudaTensor,
    w: &CudaTensor,
    g: &ConvGeom,
) -> Result<CudaTensor> {
    let win = window(g)?;
    let g = *g;
    let (k, pix) = (g.c * g.kh * g.kw, g.ho * g.wo);
    let dx = CudaTensor::alloc(dev, &g.x_shape())?;
    let chunk = chunk_images(&g);
    let dcol = CudaTensor::alloc(dev, &[k, chunk * pix])?;
    let dyt = CudaTensor::alloc(dev, &[g.o, chunk * pix])?;
    let image = g.c * g.h * g.w;
    let mut n0 = 0;
    while n0 < g.n {
        let gi = chunk.min(g.n - n0);
        let cols = gi * pix;
        dy_rows(dev, dy, &dyt, &g, n0, gi)?;
        gemm(
            dev,
            Mat::cols(w.buf(), k),
            Mat::rows(dyt.buf(), cols),
            dcol.buf(),
            0,
            None,
            (k, cols, g.o),
            1.0,
            0.0,
        )?;
        dev.launch(
            "conv2d_col2im_batch",
            grid_stride(gi * image),
            &[
                Arg::Buf(dcol.buf()),
                Arg::Buf(dx.buf()),
                Arg::by_value(&win),
                Arg::Int(n0),
                Arg::Int(gi),
            ],
        )?;
        n0 += gi;
    }
    Ok(dx)
}

/// dW = dy im2col(x)^T summed over images, a chunk of images per GEMM:
/// dW [O, K] (+)= dyt [O, G*P] col [K, G*P]^T.
fn backward_weight(
    dev: &Arc<Device>,
    dy: &CudaTensor,
    x: &CudaTensor,
    g: &ConvGeom,
) -> Result<CudaTensor> {
    let win = window(g)?;
    let g = *g;
    let (k, pix) = (g.c * g.kh * g.kw, g.ho * g.wo);
    let dw = CudaTensor::alloc(dev, &g.w_shape())?;
    let chunk = chunk_images(&g);
    let col = CudaTensor::alloc(dev, &[k, chunk * pix])?;
    let dyt = CudaTensor::alloc(dev, &[g.o, chunk * pix])?;
    let mut n0 = 0;
    while n0 < g.n {
        let gi = chunk.min(g.n - n0);
        let cols = gi * pix;
        dev.launch(
            "conv2d_im2col_batch",
            grid_stride(k * cols),
            &[
                Arg::Buf(x.buf()),
                Arg::Buf(col.buf()),
                Arg::by_value(&win),
                Arg::Int(n0),
                Arg::Int(gi),
            ],
        )?;
        dy_rows(dev, dy, &dyt, &g, n0, gi)?;
        gemm(
            dev,
            Mat::rows(dyt.buf(), cols),
            Mat::cols(col.buf(), cols),
            dw.buf(),
            0,
            None,
            (g.o, k, cols),
            1.0,
            if n0 == 0 { 0.0 } else { 1.0 },
        )?;
        n0 += gi;
    }
    if g.n == 0 {
        // An empty batch contributes nothing: a GEMM over K = 0 writes zeros.
        gemm(
            dev,
            Mat::rows(dyt.buf(), pix),
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

impl Conv2dKernels for CudaBackend {
    fn forward(
        &self,
        x: &CudaTensor,
        w: &CudaTensor,
        g: &ConvGeom,
        e: Epilogue<'_, CudaTensor>,
    ) -> Result<CudaTensor> {
        forward_split(self.device(), x, w, g, e, None)
    }
    fn backward_data(&self, dy: &CudaTensor, w: &CudaTensor, g: &ConvGeom) -> Result<CudaTensor> {
        backward_data(self.device(), dy, w, g)
    }
    fn backward_weight(&self, dy: &CudaTensor, x: &CudaTensor, g: &ConvGeom) -> Result<CudaTensor> {
        backward_weight(self.device(), dy, x, g)
    }
    fn backward_bias(&self, dy: &CudaTensor, [n, o, ho, wo]: [usize; 4]) -> Result<CudaTensor> {
        let db = CudaTensor::alloc(self.device(), &[o])?;
        self.device().launch(
            "conv2d_bias_grad",
            Dims::new([o as u32, 1, 1], [256, 1, 1]),
            &[
                Arg::Buf(dy.buf()),
                Arg::Buf(db.buf()),
                Arg::Int(n),
                Arg::Int(o),
                Arg::Int(ho * wo),
            ],
        )?;
        Ok(db)
    }
}
