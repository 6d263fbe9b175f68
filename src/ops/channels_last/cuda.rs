//! The CUDA backend's channels-last inference (`channels_last.cu`), offered when its
//! convolutions run on tensor cores (`--precision tf32|bf16|fp16`, or `auto` on sm_80+).
//!
//! Activations are stored in the convolutions' format: FP32 at TF32 (rounded in registers as
//! the NCHW kernels round them), bf16 at BF16, IEEE half at FP16 ([`Elem::Bf16`] /
//! [`Elem::F16`] buffers). The edges convert: [`ChannelsLastKernels::cl_from_nchw`] takes the
//! FP32 NCHW images in, the global average pool and [`ChannelsLastKernels::cl_to_nchw`] give
//! FP32 out, so the rest of the backend never sees 16-bit storage (its kernels take `float*`
//! and the launch check refuses a 16-bit buffer there).
//!
//! The convolution is an implicit GEMM with pixels as rows and output channels as columns
//! (`conv2d_cl_tc_*`): a k-tile of a pixel row is 64 consecutive bytes of one NHWC input pixel,
//! so the activations stream into shared memory by `cp.async` like the packed weights, with no
//! gather through registers. That needs C to be a multiple of one 16-byte chunk (4 FP32 or 8
//! 16-bit values); other layers (the stem: C = 3) run the NCHW tensor-core kernel between two
//! layout changes. Small grids split K as the NCHW kernels do (FP32 slabs, then
//! `cl_splitk_reduce` adds them in order and applies the epilogue).

use super::{ChannelsLastKernels, ClEpilogue};
use crate::cuda::launch::grid_stride;
use crate::cuda::{Arg, CudaBackend, CudaTensor, Dims, Elem, Precision};
use crate::error::{Result, invalid};
use crate::ops::conv2d::cuda::auto_splits;
use crate::ops::conv2d::cuda_tc::{format, pack_rows, packed_row_words};
use crate::ops::conv2d::{ConvGeom, Epilogue};
use crate::ops::pool::PoolGeom;

/// Output channels per block (CTC_BN).
const TILE_N: usize = 64;

/// The storage of channels-last activations at convolution precision `p`: the kernels' format
/// code and the buffer element type.
fn storage(p: Precision) -> Result<(i32, Elem)> {
    Ok(match p {
        Precision::Tf32 => (0, Elem::F32),
        Precision::Bf16 => (1, Elem::Bf16),
        Precision::Fp16 => (2, Elem::F16),
        Precision::Fp32 => {
            return Err(invalid(
                "channels_last",
                "the CUDA backend runs channels-last only on tensor cores (tf32, bf16, fp16)",
            ));
        }
    })
}

/// The FP32 and 16-bit pointer arguments of a channels-last tensor (one is null).
fn split_arg(t: Option<&CudaTensor>) -> [Arg<'_>; 2] {
    match t {
        Some(t) if t.elem() == Elem::F32 => [Arg::Buf(t.buf()), Arg::Null(Elem::Bf16)],
        Some(t) => [Arg::Null(Elem::F32), Arg::Buf(t.buf())],
        None => [Arg::Null(Elem::F32), Arg::Null(Elem::Bf16)],
    }
}

impl CudaBackend {
    /// The storage format, after checking that `x` is stored that way (a tensor made at
    /// another precision is refused rather than misread).
    fn cl_storage(&self, x: &CudaTensor) -> Result<(i32, Elem)> {
        let (fmt, elem) = storage(self.precisions().conv)?;
        if x.elem() != elem {
            return Err(invalid(
                "channels_last",
                format!(
                    "tensor stored as {:?}, but the backend's convolutions run at {} (stored as \
                     {elem:?})",
                    x.elem(),
                    self.precisions().conv
                ),
            ));
        }
        Ok((fmt, elem))
    }

    /// The channels-last convolution with K split as chosen (`Some(n)`, tests) or as the NCHW
    /// kernels choose it (`None`: [`auto_splits`], measured on an H200 for grids under one
    /// block per SM, e.g. layer4's 3x3 convolutions at batch 32).
    pub(crate) fn cl_conv2d_split(
        &self,
        x: &CudaTensor,
        w: &CudaTensor,
        g: &ConvGeom,
        e: ClEpilogue<'_, CudaTensor>,
        splits: Option<usize>,
    ) -> Result<CudaTensor> {
        let (fmt, elem) = self.cl_storage(x)?;
        if let Some(r) = e.residual {
            self.cl_storage(r)?;
        }
        if !g.c.is_multiple_of(16 / elem.size()) {
            return self.cl_conv2d_via_nchw(x, w, g, e);
        }
        let dev = self.device();
        let win = crate::ops::conv2d::cuda::window(g)?;
        let y = CudaTensor::alloc_as(dev, &[g.n, g.ho, g.wo, g.o], elem)?;
        let pixels = g.n * g.ho * g.wo;
        if pixels == 0 || g.o == 0 {
            return Ok(y);
        }
        // The K order (tap, channel), packed K-major in the format like the NCHW kernels',
        // once per weight tensor and format: inference weights do not change, and the cache
        // lets go when they are freed or written in place (`Device::derived`).
        let k = g.c * g.kh * g.kw;
        let (_, per_tile) = format(self.precisions().conv)?;
        let key = format!(
            "channels-last conv weights {fmt} {} {} {} {}",
            g.o, g.c, g.kh, g.kw
        );
        let wp = dev.derived(w.buf(), &key, || {
            let perm = CudaTensor::alloc(dev, &[g.o, g.kh, g.kw, g.c])?;
            dev.launch(
                "cl_weight_permute",
                grid_stride(perm.len()),
                &[
                    Arg::Buf(w.buf()),
                    Arg::Buf(perm.buf()),
                    Arg::Int(g.o),
                    Arg::Int(g.c),
                    Arg::Int(g.kh * g.kw),
                ],
            )?;
            Ok(pack_rows(dev, perm.buf(), (g.o, k), fmt, per_tile)?.0)
        })?;
        let ldw = packed_row_words(k, per_tile);
        let bm = if pixels > 64 { 128 } else { 64 };
        let (tiles_m, tiles_n) = (pixels.div_ceil(bm), g.o.div_ceil(TILE_N));
        let ktiles = k.div_ceil(per_tile).max(1);
        let want = splits
            .unwrap_or_else(|| auto_splits(tiles_m * tiles_n, k))
            .max(1);
        // Whole k-tiles per split; recount so no split is empty.
        let kps = ktiles.div_ceil(want);
        let splits = ktiles.div_ceil(kps);
        let grid = [
            u32::try_from(tiles_m).map_err(|_| {
                invalid(
                    "conv2d",
                    format!("{pixels} output pixels are too many for one launch"),
                )
            })?,
            tiles_n as u32,
            splits as u32,
        ];
        let partial = if splits > 1 {
            Some(dev.alloc(splits * y.len(), Elem::F32)?)
        } else {
            None
        };
        let fused = partial.is_none();
        let [x32, x16] = split_arg(Some(x));
        let [r32, r16] = split_arg(e.residual.filter(|_| fused));
        let [y32, y16] = split_arg(Some(&y));
        dev.launch(
            &format!("conv2d_cl_tc_{bm}"),
            Dims::new(grid, [2 * bm as u32, 1, 1]),
            &[
                x32,
                x16,
                Arg::Buf(&wp),
                Arg::opt(e.bias.filter(|_| fused).map(|b| b.buf())),
                r32,
                r16,
                y32,
                y16,
                partial.as_ref().map_or(Arg::Null(Elem::F32), Arg::Buf),
                Arg::Int(kps),
                Arg::Int(ldw),
                Arg::by_value(&win),
                Arg::flag(e.relu && fused),
                Arg::Int(fmt as usize),
            ],
        )?;
        if let Some(part) = &partial {
            let [r32, r16] = split_arg(e.residual);
            let [y32, y16] = split_arg(Some(&y));
            dev.launch(
                "cl_splitk_reduce",
                grid_stride(y.len()),
                &[
                    Arg::Buf(part),
                    Arg::opt(e.bias.map(|b| b.buf())),
                    r32,
                    r16,
                    y32,
                    y16,
                    Arg::I64(y.len() as i64),
                    Arg::Int(splits),
                    Arg::Int(g.o),
                    Arg::flag(e.relu),
                    Arg::Int(fmt as usize),
                ],
            )?;
        }
        Ok(y)
    }

    /// `kernel`(x as stored, FP32 output of `shape`, three ints, format): the kernels that
    /// leave channels-last storage (layout change out, global average pool).
    fn cl_widen(
        &self,
        kernel: &str,
        x: &CudaTensor,
        shape: &[usize],
        ints: [usize; 3],
    ) -> Result<CudaTensor> {
        let (fmt, _) = self.cl_storage(x)?;
        let y = CudaTensor::alloc(self.device(), shape)?;
        if y.is_empty() {
            return Ok(y);
        }
        let [x32, x16] = split_arg(Some(x));
        self.device()
            .launch(
                kernel,
                grid_stride(y.len()),
                &[
                    x32,
                    x16,
                    Arg::Buf(y.buf()),
                    Arg::Int(ints[0]),
                    Arg::Int(ints[1]),
                    Arg::Int(ints[2]),
                    Arg::Int(fmt as usize),
                ],
            )
            .map(|()| y)
    }

    /// The convolution through the NCHW tensor-core kernel, for channel counts the
    /// channels-last kernel cannot stream (C not a multiple of a 16-byte chunk).
    fn cl_conv2d_via_nchw(
        &self,
        x: &CudaTensor,
        w: &CudaTensor,
        g: &ConvGeom,
        e: ClEpilogue<'_, CudaTensor>,
    ) -> Result<CudaTensor> {
        let xn = self.cl_to_nchw(x, [g.n, g.c, g.h, g.w])?;
        let res = match e.residual {
            Some(r) => Some(self.cl_to_nchw(r, [g.n, g.o, g.ho, g.wo])?),
            None => None,
        };
        let epi = Epilogue {
            bias: e.bias,
            residual: res.as_ref(),
            relu: e.relu,
        };
        let y = crate::ops::conv2d::cuda_tc::forward(
            self.precisions().conv,
            self.device(),
            &xn,
            w,
            g,
            epi,
            None,
            Elem::F32,
        )?;
        self.cl_from_nchw(&y, [g.n, g.o, g.ho, g.wo])
    }
}

impl ChannelsLastKernels for CudaBackend {
    /// On tensor cores, unless `SKINENGINE_CHANNELS_LAST=0` (to compare the two layouts).
    fn channels_last(&self) -> bool {
        self.precisions().conv != Precision::Fp32 && !super::switched_off()
    }
    fn cl_from_nchw(&self, x: &CudaTensor, [n, c, h, w]: [usize; 4]) -> Result<CudaTensor> {
        let (fmt, elem) = storage(self.precisions().conv)?;
        let y = CudaTensor::alloc_as(self.device(), &[n, h, w, c], elem)?;
        if y.is_empty() {
            return Ok(y);
        }
        let [y32, y16] = split_arg(Some(&y));
        self.device().launch(
            "cl_from_nchw",
            grid_stride(y.len()),
            &[
                Arg::Buf(x.buf()),
                y32,
                y16,
                Arg::Int(n),
                Arg::Int(c),
                Arg::Int(h * w),
                Arg::Int(fmt as usize),
            ],
        )?;
        Ok(y)
    }
    fn cl_to_nchw(&self, x: &CudaTensor, d: [usize; 4]) -> Result<CudaTensor> {
        self.cl_widen("cl_to_nchw", x, &d, [d[0], d[1], d[2] * d[3]])
    }
    fn cl_conv2d(
        &self,
        x: &CudaTensor,
        w: &CudaTensor,
        g: &ConvGeom,
        e: ClEpilogue<'_, CudaTensor>,
    ) -> Result<CudaTensor> {
        self.cl_conv2d_split(x, w, g, e, None)
    }
    fn cl_maxpool(&self, x: &CudaTensor, g: &PoolGeom) -> Result<CudaTensor> {
        let (fmt, elem) = self.cl_storage(x)?;
        let win = crate::ops::pool::cuda::window(g)?;
        let [n, c, ho, wo] = g.out;
        let y = CudaTensor::alloc_as(self.device(), &[n, ho, wo, c], elem)?;
        if y.is_empty() {
            return Ok(y);
        }
        let [x32, x16] = split_arg(Some(x));
        let [y32, y16] = split_arg(Some(&y));
        self.device().launch(
            "cl_maxpool",
            grid_stride(y.len()),
            &[
                x32,
                x16,
                y32,
                y16,
                Arg::by_value(&win),
                Arg::Int(fmt as usize),
            ],
        )?;
        Ok(y)
    }
    fn cl_global_avg_pool(&self, x: &CudaTensor, d: [usize; 4]) -> Result<CudaTensor> {
        self.cl_widen(
            "cl_global_avg_pool",
            x,
            &[d[0], d[1]],
            [d[0], d[2] * d[3], d[1]],
        )
    }
}
