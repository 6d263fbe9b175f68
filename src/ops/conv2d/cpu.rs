//! Fast CPU convolution: per image, im2col (skipped for 1x1 stride-1 convolutions, whose input
//! already is the column matrix) then one GEMM, W [O, C*KH*KW] x cols [C*KH*KW, HO*WO], with the
//! inference epilogue (bias, residual add, ReLU) fused into the pass over the output while it is
//! still in cache. Images run in parallel, one GEMM per thread, when the batch can fill the
//! threads; otherwise the GEMM itself is split.

use super::{Conv2dKernels, ConvGeom};
use crate::cpu::gemm::{View, sgemm};
use crate::cpu::scratch::with_scratch;
use crate::cpu::simd::sum_f64;
use crate::cpu::{CpuBackend, threads};
use crate::error::Result;
use crate::tensor::Tensor;
use rayon::prelude::*;
use std::ops::Range;

/// The epilogue ([`super::Epilogue`]) as host slices: applied to each output element after the
/// convolution sum, in this order.
#[derive(Clone, Copy, Default)]
pub struct HostEpilogue<'a> {
    pub bias: Option<&'a [f32]>,
    pub residual: Option<&'a [f32]>,
    pub relu: bool,
}

/// Unfolds one image [C, H, W] into cols [C*KH*KW, HO*WO] (zeros where the window hits padding).
fn im2col(x: &[f32], g: &ConvGeom, cols: &mut [f32]) {
    let hw = g.ho * g.wo;
    for c in 0..g.c {
        let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = &mut cols[((c * g.kh + ki) * g.kw + kj) * hw..][..hw];
                for i in 0..g.ho {
                    let out = &mut row[i * g.wo..(i + 1) * g.wo];
                    let hi = (i * g.sh + ki) as isize - g.ph as isize;
                    if hi < 0 || hi as usize >= g.h {
                        out.fill(0.0);
                        continue;
                    }
                    let src = &plane[hi as usize * g.w..(hi as usize + 1) * g.w];
                    // Columns j whose input column j*sw + kj - pw lies inside [0, W).
                    let lo = g.pw.saturating_sub(kj).div_ceil(g.sw).min(g.wo);
                    let hi_j = if g.w + g.pw > kj {
                        ((g.w + g.pw - kj - 1) / g.sw + 1).min(g.wo)
                    } else {
                        0
                    }
                    .max(lo);
                    out[..lo].fill(0.0);
                    out[hi_j..].fill(0.0);
                    if g.sw == 1 {
                        let start = lo + kj - g.pw;
                        out[lo..hi_j].copy_from_slice(&src[start..start + (hi_j - lo)]);
                    } else {
                        for (j, o) in out.iter_mut().enumerate().take(hi_j).skip(lo) {
                            *o = src[j * g.sw + kj - g.pw];
                        }
                    }
                }
            }
        }
    }
}

/// Adds cols [C*KH*KW, HO*WO] back into one image dx [C, H, W] (the adjoint of im2col).
fn col2im(cols: &[f32], g: &ConvGeom, dx: &mut [f32]) {
    let hw = g.ho * g.wo;
    for c in 0..g.c {
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = &cols[((c * g.kh + ki) * g.kw + kj) * hw..][..hw];
                for i in 0..g.ho {
                    let hi = (i * g.sh + ki) as isize - g.ph as isize;
                    if hi < 0 || hi as usize >= g.h {
                        continue;
                    }
                    let dst = &mut dx[(c * g.h + hi as usize) * g.w..][..g.w];
                    for j in 0..g.wo {
                        let wi = (j * g.sw + kj) as isize - g.pw as isize;
                        if wi >= 0 && (wi as usize) < g.w {
                            dst[wi as usize] += row[i * g.wo + j];
                        }
                    }
                }
            }
        }
    }
}

fn apply_epilogue(y: &mut [f32], plane: usize, e: &HostEpilogue, residual: Option<&[f32]>) {
    for (o, row) in y.chunks_mut(plane).enumerate() {
        let b = e.bias.map_or(0.0, |b| b[o]);
        match residual {
            Some(r) => {
                for (v, &r) in row.iter_mut().zip(&r[o * plane..(o + 1) * plane]) {
                    *v += b + r;
                }
            }
            None if b != 0.0 => row.iter_mut().for_each(|v| *v += b),
            None => {}
        }
        if e.relu {
            row.iter_mut().for_each(|v| *v = v.max(0.0));
        }
    }
}

/// Work split: (parallel over images, threads per GEMM).
fn split(n: usize) -> (bool, usize) {
    let t = threads();
    if n >= t { (true, 1) } else { (false, t) }
}

/// y = epilogue(conv(x, w)).
/// The fused forward for a checked geometry (bias [O] and residual of y's shape).
pub fn forward_fused(x: &Tensor, w: &Tensor, g: &ConvGeom, e: HostEpilogue) -> Result<Tensor> {
    let g = *g;
    if crate::cpu::conv_gemm::available() {
        return Ok(forward_avx512(x, w, &g, e));
    }
    let (xin, yout) = (g.c * g.h * g.w, g.o * g.ho * g.wo);
    let (hw, ckk) = (g.ho * g.wo, g.c * g.kh * g.kw);
    let mut y = vec![0.0f32; g.n * yout];
    let (par_images, gemm_threads) = split(g.n);
    let one = |(ni, yi): (usize, &mut [f32])| {
        let xi = &x.data()[ni * xin..(ni + 1) * xin];
        let wv = View::rm(w.data(), g.o, ckk);
        if g.is_pointwise() {
            sgemm(yi, wv, View::rm(xi, ckk, hw), false, gemm_threads);
        } else {
            with_scratch(ckk * hw, |cols| {
                im2col(xi, &g, cols);
                sgemm(yi, wv, View::rm(cols, ckk, hw), false, gemm_threads);
            });
        }
        let res = e.residual.map(|r| &r[ni * yout..(ni + 1) * yout]);
        apply_epilogue(yi, hw, &e, res);
    };
    if par_images {
        y.par_chunks_mut(yout).enumerate().for_each(one);
    } else {
        y.chunks_mut(yout).enumerate().for_each(one);
    }
    Tensor::new(&g.y_shape(), y)
}

/// A pointer that may cross threads: each thread writes a disjoint set of columns.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: used only to hand disjoint column ranges of one output to scoped rayon tasks.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// The AVX-512 path: images in parallel, or, for fewer images than threads, each image's output
/// columns split across threads (in multiples of the micro-kernel width).
fn forward_avx512(x: &Tensor, w: &Tensor, g: &ConvGeom, e: HostEpilogue) -> Tensor {
    use crate::cpu::conv_gemm::{Epi, MR, NR, TapTable, conv_image};
    let (xin, yout, hw) = (g.c * g.h * g.w, g.o * g.ho * g.wo, g.ho * g.wo);
    // Packed once per weight tensor and reused by every later call (the backbone is frozen).
    let packed = crate::cpu::weight_cache::packed(w, g.o, g.c * g.kh * g.kw);
    let a = &*packed;
    let taps = (!g.is_pointwise()).then(|| TapTable::new(g));
    let taps = taps.as_ref();
    // The kernel's first K block stores every element of Y, so Y starts uninitialised (no
    // memset of tens of MB per layer); its length is set once all images are written.
    let total = g.n * yout;
    let mut y: Vec<f32> = Vec::with_capacity(total);
    let base = SendPtr(y.as_mut_ptr());
    let epi = |ni: usize| Epi {
        bias: e.bias,
        residual: e.residual.map(|r| &r[ni * yout..(ni + 1) * yout]),
        relu: e.relu,
    };
    let (par_images, _) = split(g.n);
    if par_images {
        (0..g.n).into_par_iter().for_each(|ni| {
            let xi = &x.data()[ni * xin..(ni + 1) * xin];
            let yi = base;
            // SAFETY: AVX-512F was detected; image ni's output [ni*yout, (ni+1)*yout) lies in
            // the allocation and is written by this task only.
            unsafe { conv_image(xi, g, a, taps, yi.0.add(ni * yout), epi(ni), 0..hw, 0..g.o) }
        });
    } else {
        // Fewer images than threads: split each image's output. Large maps split by columns
        // (each thread packs only its own columns); small maps (layer3/4) have too few columns
        // for that, so threads take disjoint row (output channel) ranges instead.
        let t = threads();
        // (Measured at batch 1: rows win on 14x14 maps, columns on 7x7 ones, where both threads
        // would otherwise gather the same deep B.)
        let tasks: Vec<(Range<usize>, Range<usize>)> = if hw >= 4 * NR * t || hw < 2 * NR {
            let step = hw.div_ceil(t).div_ceil(NR) * NR;
            (0..hw)
                .step_by(step)
                .map(|c0| (c0..(c0 + step).min(hw), 0..g.o))
                .collect()
        } else {
            let step = g.o.div_ceil(t).div_ceil(MR) * MR;
            (0..g.o)
                .step_by(step)
                .map(|r0| (0..hw, r0..(r0 + step).min(g.o)))
                .collect()
        };
        for ni in 0..g.n {
            let xi = &x.data()[ni * xin..(ni + 1) * xin];
            tasks.par_iter().for_each(|(cols, rows)| {
                let yi = base;
                // SAFETY: AVX-512F was detected; the (rows, cols) blocks of image ni are
                // disjoint across tasks.
                unsafe {
                    conv_image(
                        xi,
                        g,
                        a,
                        taps,
                        yi.0.add(ni * yout),
                        epi(ni),
                        cols.clone(),
                        rows.clone(),
                    )
                }
            });
        }
    }
    // SAFETY: every element of every image was stored by the kernel's first K block.
    unsafe { y.set_len(total) };
    Tensor::new(&g.y_shape(), y).expect("output shape matches")
}

pub fn backward_data(dy: &Tensor, w: &Tensor, g: &ConvGeom) -> Result<Tensor> {
    let g = *g;
    let (xin, yout) = (g.c * g.h * g.w, g.o * g.ho * g.wo);
    let (hw, ckk) = (g.ho * g.wo, g.c * g.kh * g.kw);
    let mut dx = vec![0.0f32; g.n * xin];
    let (par_images, gemm_threads) = split(g.n);
    let one = |(ni, dxi): (usize, &mut [f32])| {
        let dyi = View::rm(&dy.data()[ni * yout..(ni + 1) * yout], g.o, hw);
        let wt = View::rm_t(w.data(), ckk, g.o);
        if g.is_pointwise() {
            sgemm(dxi, wt, dyi, false, gemm_threads);
        } else {
            with_scratch(ckk * hw, |cols| {
                sgemm(cols, wt, dyi, false, gemm_threads);
                col2im(cols, &g, dxi);
            });
        }
    };
    if par_images {
        dx.par_chunks_mut(xin).enumerate().for_each(one);
    } else {
        dx.chunks_mut(xin).enumerate().for_each(one);
    }
    Tensor::new(&g.x_shape(), dx)
}

/// dW = sum over images of dy [O, HW] x cols^T [HW, CKK]; images accumulate sequentially into
/// one buffer (the GEMM is split over threads), which keeps the sum order fixed: deterministic.
pub fn backward_weight(dy: &Tensor, x: &Tensor, g: &ConvGeom) -> Result<Tensor> {
    let g = *g;
    let (xin, yout) = (g.c * g.h * g.w, g.o * g.ho * g.wo);
    let (hw, ckk) = (g.ho * g.wo, g.c * g.kh * g.kw);
    let mut dw = vec![0.0f32; g.o * ckk];
    let mut cols = vec![0.0f32; if g.is_pointwise() { 0 } else { ckk * hw }];
    for ni in 0..g.n {
        let xi = &x.data()[ni * xin..(ni + 1) * xin];
        let dyi = View::rm(&dy.data()[ni * yout..(ni + 1) * yout], g.o, hw);
        let colv = if g.is_pointwise() {
            View::rm_t(xi, hw, ckk)
        } else {
            im2col(xi, &g, &mut cols);
            View::rm_t(&cols, hw, ckk)
        };
        sgemm(&mut dw, dyi, colv, ni > 0, threads());
    }
    Tensor::new(&g.w_shape(), dw)
}

/// db[o] = sum of dy[:, o, :, :], in f64 as the reference: each plane summed in parallel in
/// memory order ([`sum_f64`], AVX-512 where the CPU has it), then each channel's planes in image
/// order (deterministic).
pub fn backward_bias(dy: &Tensor, [n, o, ho, wo]: [usize; 4]) -> Result<Tensor> {
    let plane = ho * wo;
    let partial: Vec<f64> = if plane == 0 {
        vec![0.0; n * o]
    } else {
        dy.data().par_chunks(plane).map(sum_f64).collect()
    };
    let db = (0..o)
        .map(|oi| (0..n).map(|ni| partial[ni * o + oi]).sum::<f64>() as f32)
        .collect();
    Tensor::new(&[o], db)
}

impl Conv2dKernels for CpuBackend {
    fn forward(
        &self,
        x: &Tensor,
        w: &Tensor,
        g: &ConvGeom,
        e: super::Epilogue<'_, Tensor>,
    ) -> Result<Tensor> {
        let e = HostEpilogue {
            bias: e.bias.map(|b| b.data()),
            residual: e.residual.map(|r| r.data()),
            relu: e.relu,
        };
        forward_fused(x, w, g, e)
    }
    fn backward_data(&self, dy: &Tensor, w: &Tensor, g: &ConvGeom) -> Result<Tensor> {
        backward_data(dy, w, g)
    }
    fn backward_weight(&self, dy: &Tensor, x: &Tensor, g: &ConvGeom) -> Result<Tensor> {
        backward_weight(dy, x, g)
    }
    fn backward_bias(&self, dy: &Tensor, dims: [usize; 4]) -> Result<Tensor> {
        backward_bias(dy, dims)
    }
}
