//! Convolution on the CUDA backend, every pass an implicit GEMM (no im2col / col2im buffer):
//! the forward with the bias / residual / ReLU epilogue fused (`conv2d.cu`); the data gradient
//! as that same forward kernel on dy with flipped weights (stride 1) or a gather through the
//! stride (`conv2d_backward.cu`); the weight gradient with its long reduction over (image,
//! pixel) split across blocks and summed in a fixed order. The geometry travels to every
//! kernel as one [`Window`] struct.

use std::sync::Arc;

use super::{Conv2dKernels, Conv2dParams, ConvGeom, Epilogue, geometry};
use crate::cuda::kernel_args::{Window, WindowSizes};
use crate::cuda::launch::{SMS, grid_stride};
use crate::cuda::{Arg, CudaBackend, CudaTensor, DevBuf, Device, Dims, Elem, Precision};
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
pub(crate) fn window(g: &ConvGeom) -> Result<Window> {
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
    let ktab = if g.is_pointwise() {
        None
    } else {
        Some(tap_table(dev, &g)?)
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
        splitk_reduce(dev, part, &y, splits, Some((e, g.o, g.ho * g.wo)))?;
    }
    Ok(y)
}

/// The forward's and the weight gradient's k table of a general convolution:
/// k = (c, kh, kw) -> (offset of the tap in an image, kh << 16 | kw), made once per geometry and
/// kept on the device, so the gathers do no integer division.
pub(super) fn tap_table(dev: &Arc<Device>, g: &ConvGeom) -> Result<DevBuf> {
    let key = format!("conv2d-ktab {} {} {} {} {}", g.c, g.h, g.w, g.kh, g.kw);
    dev.constant_i32(&key, || {
        let mut t = Vec::with_capacity(2 * g.c * g.kh * g.kw);
        for c in 0..g.c {
            for kh in 0..g.kh {
                for kw in 0..g.kw {
                    t.push(((c * g.h + kh) * g.w + kw) as i32);
                    t.push(((kh << 16) | kw) as i32);
                }
            }
        }
        t
    })
}

/// The data gradient's k table: k = (o, kh, kw) -> (offset of dy channel o, kh << 16 | kw).
pub(super) fn dgrad_table(dev: &Arc<Device>, g: &ConvGeom) -> Result<DevBuf> {
    let key = format!(
        "conv2d-dgrad-ktab {} {} {} {} {}",
        g.o, g.ho, g.wo, g.kh, g.kw
    );
    dev.constant_i32(&key, || {
        let mut t = Vec::with_capacity(2 * g.o * g.kh * g.kw);
        for o in 0..g.o {
            for kh in 0..g.kh {
                for kw in 0..g.kw {
                    t.push((o * g.ho * g.wo) as i32);
                    t.push(((kh << 16) | kw) as i32);
                }
            }
        }
        t
    })
}

/// Tile of the gradient kernels (conv2d_backward.cu): 128 x 128.
const GRAD_TILE: usize = 128;
/// Largest split-K slab of the gradient kernels, in floats (64 Mi = 256 MiB).
const SLAB_BUDGET: usize = 1 << 26;

/// How many ways the gradient kernels split a reduction of `k` terms over `blocks` output
/// tiles: as the forward's [`auto_splits`] (fill the SMs, at least MIN_K_PER_SPLIT terms each),
/// up to 64 ways (the weight gradient of layer1's 1x1 convolutions is one 64 x 64 tile over
/// batch x 3136 terms), and never a slab past [`SLAB_BUDGET`].
pub(super) fn grad_splits(blocks: usize, k: usize, total: usize) -> usize {
    if blocks >= SMS {
        return 1;
    }
    (SMS * BLOCKS_PER_SM)
        .div_ceil(blocks)
        .min(k / MIN_K_PER_SPLIT)
        .min(SLAB_BUDGET / total.max(1))
        .clamp(1, 64)
}

/// The fixed-order sum of a split's slabs (conv2d_splitk_reduce) into `out` (in `out`'s
/// format), with the forward's epilogue when `epi` gives (bias, residual, relu, O, pixels).
pub(super) fn splitk_reduce(
    dev: &Arc<Device>,
    part: &DevBuf,
    out: &CudaTensor,
    splits: usize,
    epi: Option<(Epilogue<'_, CudaTensor>, usize, usize)>,
) -> Result<()> {
    let total = out.len();
    let (bias, res, relu, o, p) = match &epi {
        Some((e, o, p)) => (e.bias, e.residual, e.relu, *o, *p),
        None => (None, None, false, 1, 1),
    };
    let ([rb, rf], [yb, yf]) = (CudaTensor::opt_act(res), out.act());
    dev.launch(
        "conv2d_splitk_reduce",
        grid_stride(total),
        &[
            Arg::Buf(part),
            Arg::opt(bias.map(|b| b.buf())),
            rb,
            rf,
            yb,
            yf,
            Arg::I64(total as i64),
            Arg::Int(splits),
            Arg::Int(o),
            Arg::Int(p),
            Arg::flag(relu),
        ],
    )
}

/// One implicit-GEMM gradient kernel over `(m, nc, k)` (rows, columns, reduction) into `out`,
/// with its reduction split `splits` ways (tests) or automatically, the splits' raw sums added
/// in a fixed order by conv2d_splitk_reduce.
#[allow(clippy::too_many_arguments)]
fn grad_gemm(
    dev: &Arc<Device>,
    kernel: &str,
    a: &DevBuf,
    b: &DevBuf,
    ktab: &DevBuf,
    out: &CudaTensor,
    (m, nc, k): (usize, usize, usize),
    win: &Window,
    splits: Option<usize>,
) -> Result<()> {
    let total = m * nc;
    if total == 0 {
        return Ok(());
    }
    let (tiles_n, tiles_m) = (nc.div_ceil(GRAD_TILE), m.div_ceil(GRAD_TILE));
    let want = splits
        .unwrap_or_else(|| grad_splits(tiles_n * tiles_m, k, total))
        .max(1);
    // Whole BK tiles per split; recount so no split is empty (k = 0: one split writing zeros).
    let kchunk = k.div_ceil(8).div_ceil(want).max(1) * 8;
    let splits = k.div_ceil(kchunk).max(1);
    let partial = if splits > 1 {
        Some(dev.alloc(splits * total, Elem::F32)?)
    } else {
        None
    };
    dev.launch(
        kernel,
        Dims::new([tiles_n as u32, tiles_m as u32, splits as u32], [256, 1, 1]),
        &[
            Arg::Buf(a),
            Arg::Buf(b),
            Arg::Buf(ktab),
            Arg::Buf(out.buf()),
            partial.as_ref().map_or(Arg::Null(Elem::F32), Arg::Buf),
            Arg::Int(kchunk),
            Arg::by_value(win),
        ],
    )?;
    if let Some(part) = &partial {
        splitk_reduce(dev, part, out, splits, None)?;
    }
    Ok(())
}

/// The weights as [C, O, KH, KW], the taps reversed when `flip`.
pub(super) fn weight_transpose(
    dev: &Arc<Device>,
    w: &CudaTensor,
    g: &ConvGeom,
    flip: bool,
) -> Result<CudaTensor> {
    let wt = CudaTensor::alloc(dev, &[g.c, g.o, g.kh, g.kw])?;
    dev.launch(
        "conv2d_weight_transpose",
        grid_stride(w.len()),
        &[
            Arg::Buf(w.buf()),
            Arg::Buf(wt.buf()),
            Arg::Int(g.o),
            Arg::Int(g.c),
            Arg::Int(g.kh * g.kw),
            Arg::flag(flip),
        ],
    )?;
    Ok(wt)
}

/// dx of a checked geometry, its reduction split as asked (tests) or automatically.
///
/// Stride 1 with padding below the kernel size (every stride-1 layer of the ResNets and VGG):
/// dx is the forward convolution of dy with the flipped, transposed weights and padding
/// (KH-1-PH, KW-1-PW), so it runs the forward kernels with all their fast paths (pointwise
/// float4 reads, split K). Otherwise (strided layers): conv2d_dgrad, an implicit GEMM gathering
/// dy through the stride (taps that miss a dy pixel read zero).
pub fn backward_data_split(
    dev: &Arc<Device>,
    dy: &CudaTensor,
    w: &CudaTensor,
    g: &ConvGeom,
    splits: Option<usize>,
) -> Result<CudaTensor> {
    if g.sh == 1 && g.sw == 1 && g.ph < g.kh && g.pw < g.kw {
        let wf = weight_transpose(dev, w, g, true)?;
        let p = Conv2dParams {
            stride: (1, 1),
            padding: (g.kh - 1 - g.ph, g.kw - 1 - g.pw),
        };
        let gd = geometry(&g.y_shape(), &[g.c, g.o, g.kh, g.kw], &p)?;
        debug_assert_eq!(gd.y_shape(), g.x_shape());
        let none = Epilogue {
            bias: None,
            residual: None,
            relu: false,
        };
        return forward_split(dev, dy, &wf, &gd, none, splits);
    }
    let win = window(g)?;
    let dx = CudaTensor::alloc(dev, &g.x_shape())?;
    let wt = weight_transpose(dev, w, g, false)?;
    let ktab = dgrad_table(dev, g)?;
    let dims = (g.c, g.n * g.h * g.w, g.o * g.kh * g.kw);
    grad_gemm(
        dev,
        "conv2d_dgrad",
        wt.buf(),
        dy.buf(),
        &ktab,
        &dx,
        dims,
        &win,
        splits,
    )?;
    Ok(dx)
}

/// dW of a checked geometry: conv2d_wgrad, the reduction over (image, output pixel) split as
/// asked (tests) or automatically.
pub fn backward_weight_split(
    dev: &Arc<Device>,
    dy: &CudaTensor,
    x: &CudaTensor,
    g: &ConvGeom,
    splits: Option<usize>,
) -> Result<CudaTensor> {
    let win = window(g)?;
    let dw = CudaTensor::alloc(dev, &g.w_shape())?;
    let ktab = tap_table(dev, g)?;
    let dims = (g.o, g.c * g.kh * g.kw, g.n * g.ho * g.wo);
    grad_gemm(
        dev,
        "conv2d_wgrad",
        dy.buf(),
        x.buf(),
        &ktab,
        &dw,
        dims,
        &win,
        splits,
    )?;
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
        // TF32 / BF16 / FP16 on tensor cores (cuda_tc.rs); FP32 on CUDA cores.
        match self.precisions().conv {
            Precision::Fp32 => forward_split(self.device(), x, w, g, e, None),
            p => {
                let out = self.activation_storage();
                super::cuda_tc::forward(p, self.device(), x, w, g, e, None, out)
            }
        }
    }
    fn backward_data(&self, dy: &CudaTensor, w: &CudaTensor, g: &ConvGeom) -> Result<CudaTensor> {
        match self.precisions().conv {
            Precision::Fp32 => backward_data_split(self.device(), dy, w, g, None),
            p => {
                let out = self.activation_storage();
                super::cuda_tc::backward_data(p, self.device(), dy, w, g, None, out)
            }
        }
    }
    fn backward_weight(&self, dy: &CudaTensor, x: &CudaTensor, g: &ConvGeom) -> Result<CudaTensor> {
        match self.precisions().conv {
            Precision::Fp32 => backward_weight_split(self.device(), dy, x, g, None),
            p => super::cuda_tc::backward_weight(p, self.device(), dy, x, g, None),
        }
    }
    fn backward_bias(&self, dy: &CudaTensor, [n, o, ho, wo]: [usize; 4]) -> Result<CudaTensor> {
        let db = CudaTensor::alloc(self.device(), &[o])?;
        let [db_in, df] = dy.act();
        self.device().launch(
            "conv2d_bias_grad",
            Dims::new([o as u32, 1, 1], [256, 1, 1]),
            &[
                db_in,
                df,
                Arg::Buf(db.buf()),
                Arg::Int(n),
                Arg::Int(o),
                Arg::Int(ho * wo),
            ],
        )?;
        Ok(db)
    }
}
