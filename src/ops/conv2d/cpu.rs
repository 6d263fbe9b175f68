//! Fast CPU convolution: per image, im2col (skipped for 1x1 stride-1 convolutions, whose input
//! already is the column matrix) then one GEMM, W [O, C*KH*KW] x cols [C*KH*KW, HO*WO], with the
//! inference epilogue (bias, residual add, ReLU) fused into the pass over the output while it is
//! still in cache. Images run in parallel, one GEMM per thread, when the batch can fill the
//! threads; otherwise the GEMM itself is split.

use super::{Conv2dKernels, Conv2dParams, ConvGeom, geometry};
use crate::cpu::conv_gemm::PackedA;
use crate::cpu::gemm::{View, sgemm};
use crate::cpu::scratch::{with_outer_scratch, with_scratch};
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

/// Output columns j of tap column kj whose input column j*sw + kj - pw lies inside [0, W).
fn valid_cols(g: &ConvGeom, kj: usize) -> (usize, usize) {
    let lo = g.pw.saturating_sub(kj).div_ceil(g.sw).min(g.wo);
    let hi = if g.w + g.pw > kj {
        ((g.w + g.pw - kj - 1) / g.sw + 1).min(g.wo)
    } else {
        0
    };
    (lo, hi.max(lo))
}

/// Row (ki, kj) of one input plane [H, W]'s columns: out[i*WO + j] = plane[i*sh + ki - ph,
/// j*sw + kj - pw], zero where that hits padding.
fn im2col_row(plane: &[f32], g: &ConvGeom, ki: usize, kj: usize, out: &mut [f32]) {
    let (lo, hi_j) = valid_cols(g, kj);
    for (i, out) in out[..g.ho * g.wo].chunks_mut(g.wo).enumerate() {
        let hi = (i * g.sh + ki) as isize - g.ph as isize;
        if hi < 0 || hi as usize >= g.h {
            out.fill(0.0);
            continue;
        }
        let src = &plane[hi as usize * g.w..(hi as usize + 1) * g.w];
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

/// Unfolds one image [C, H, W] into cols [C*KH*KW, HO*WO] (zeros where the window hits padding).
fn im2col(x: &[f32], g: &ConvGeom, cols: &mut [f32]) {
    let (hw, kk) = (g.ho * g.wo, g.kh * g.kw);
    for (r, row) in cols[..g.c * kk * hw].chunks_mut(hw).enumerate() {
        let plane = &x[(r / kk) * g.h * g.w..][..g.h * g.w];
        im2col_row(plane, g, (r % kk) / g.kw, r % g.kw, row);
    }
}

/// Adds row (ki, kj) of one plane's columns back into the plane [H, W] (the adjoint of
/// [`im2col_row`]): contiguous slice adds for stride 1.
fn col2im_row(row: &[f32], g: &ConvGeom, ki: usize, kj: usize, plane: &mut [f32]) {
    let (lo, hi_j) = valid_cols(g, kj);
    for (i, src) in row[..g.ho * g.wo].chunks(g.wo).enumerate() {
        let hi = (i * g.sh + ki) as isize - g.ph as isize;
        if hi < 0 || hi as usize >= g.h {
            continue;
        }
        let dst = &mut plane[hi as usize * g.w..(hi as usize + 1) * g.w];
        if g.sw == 1 {
            let start = lo + kj - g.pw;
            let d = &mut dst[start..start + (hi_j - lo)];
            d.iter_mut().zip(&src[lo..hi_j]).for_each(|(d, s)| *d += s);
        } else {
            for j in lo..hi_j {
                dst[j * g.sw + kj - g.pw] += src[j];
            }
        }
    }
}

/// One input plane of dx from its channel's KH*KW rows of columns, the row of (ki, kj) at
/// `rows[(ki*KW + kj) * stride..]` (the adjoint of im2col for that plane).
fn col2im_plane(rows: &[f32], stride: usize, g: &ConvGeom, plane: &mut [f32]) {
    plane.fill(0.0);
    for ki in 0..g.kh {
        for kj in 0..g.kw {
            col2im_row(&rows[(ki * g.kw + kj) * stride..], g, ki, kj, plane);
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
        use crate::cpu::winograd;
        if winograd::use_for(&g) {
            let e = winograd::Epilogue {
                bias: e.bias,
                residual: e.residual,
                relu: e.relu,
            };
            return Ok(winograd::forward(x, w, &g, e));
        }
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
pub(super) struct SendPtr(pub(super) *mut f32);
// SAFETY: used only to hand disjoint column ranges of one output to scoped rayon tasks.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// The AVX-512 path: images in parallel, or, for fewer images than threads, each image's output
/// columns split across threads (in multiples of the micro-kernel width).
fn forward_avx512(x: &Tensor, w: &Tensor, g: &ConvGeom, e: HostEpilogue) -> Tensor {
    // Packed once per weight tensor and reused by every later call (the backbone is frozen).
    let packed = crate::cpu::weight_cache::packed(w, g.o, g.c * g.kh * g.kw);
    forward_packed(x, &packed, g, e)
}

/// [`forward_avx512`] with the weights already packed.
fn forward_packed(x: &Tensor, a: &PackedA, g: &ConvGeom, e: HostEpilogue) -> Tensor {
    use crate::cpu::conv_gemm::{Epi, MR, NR, TapTable, conv_image};
    let (xin, yout, hw) = (g.c * g.h * g.w, g.o * g.ho * g.wo, g.ho * g.wo);
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
    let group = super::cpu_groups::group_images(g);
    if group > 1 {
        super::cpu_groups::forward_groups(x, a, g, e, group, base);
    } else if par_images {
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

/// Floats of one image group's column matrix [C*KH*KW, G*HO*WO] in the backward passes: 8 MiB,
/// so it is still in the L3 cache (32 MiB here) when the GEMM reads what im2col wrote.
const COLS_BUDGET: usize = 2 << 20;

/// Pointwise layers with at least this many output positions per image take their GEMM operands
/// straight from the tensors, one image at a time, rather than copying images into a group.
const DIRECT_HW: usize = 512;

/// Images per group GEMM in the backward passes: as many as keep the group's columns within
/// [`COLS_BUDGET`] (at least 1, at most N). A shape-only choice, so results do not depend on the
/// thread count.
fn group_size(g: &ConvGeom, budget: usize) -> usize {
    let per_image = g.c * g.kh * g.kw * g.ho * g.wo;
    (budget / per_image.max(1)).clamp(1, g.n.max(1))
}

/// dy of images n0..n0 + gn as one matrix [O, gn*HO*WO] (image j in columns j*HW..).
fn gather_dy(dy: &[f32], g: &ConvGeom, n0: usize, gn: usize, out: &mut [f32]) {
    let hw = g.ho * g.wo;
    let k = gn * hw;
    out[..g.o * k]
        .par_chunks_mut(k)
        .enumerate()
        .for_each(|(o, row)| {
            for (j, seg) in row.chunks_mut(hw).enumerate() {
                seg.copy_from_slice(&dy[((n0 + j) * g.o + o) * hw..][..hw]);
            }
        });
}

/// dx = W^T dy, folded back onto the input (col2im). Large maps: images in parallel, one
/// single-threaded GEMM each, cols [CKK, HW] = W^T dy_i then col2im in the same thread
/// (pointwise layers write dx_i directly). Small maps ([`group_size`] >= 2): groups of images
/// as one multithreaded GEMM, cols [CKK, G*HW] = W^T [dy_i ...], then every dx plane of the
/// group in parallel, so W^T is packed once per group instead of once per image (layer4's is
/// 9 MB for a 49-position image).
pub fn backward_data(dy: &Tensor, w: &Tensor, g: &ConvGeom) -> Result<Tensor> {
    if crate::cpu::conv_gemm::available() && g.sh == 1 && g.sw == 1 && g.ph < g.kh && g.pw < g.kw {
        return backward_data_as_forward(dy, w, g);
    }
    backward_data_in(dy, w, g, COLS_BUDGET)
}

/// The data gradient of a stride-1 convolution (padding below the kernel size: every stride-1
/// layer of the ResNets and VGG) is the forward convolution of dy with the weights transposed
/// to [C, O, KH, KW] and flipped, padding (KH-1-PH, KW-1-PW): the AVX-512 implicit GEMM of the
/// forward instead of a GEMM through the `gemm` crate and col2im. The flipped weights change
/// every step, so they are packed for this call only (the packing cache keeps frozen weights).
fn backward_data_as_forward(dy: &Tensor, w: &Tensor, g: &ConvGeom) -> Result<Tensor> {
    let (o, c, kk) = (g.o, g.c, g.kh * g.kw);
    let mut wf = vec![0.0f32; w.len()];
    wf.par_chunks_mut(o * kk).enumerate().for_each(|(ci, row)| {
        for oi in 0..o {
            let src = &w.data()[(oi * c + ci) * kk..][..kk];
            for (t, &v) in src.iter().enumerate() {
                row[oi * kk + kk - 1 - t] = v;
            }
        }
    });
    let p = Conv2dParams {
        stride: (1, 1),
        padding: (g.kh - 1 - g.ph, g.kw - 1 - g.pw),
    };
    let gd = geometry(&g.y_shape(), &[c, o, g.kh, g.kw], &p)?;
    debug_assert_eq!(gd.y_shape(), g.x_shape());
    let packed = PackedA::pack(&wf, c, o * kk);
    Ok(forward_packed(dy, &packed, &gd, HostEpilogue::default()))
}

/// [`backward_data`] with groups of at most `budget` column values (tests reach every path on
/// small shapes with small budgets).
fn backward_data_in(dy: &Tensor, w: &Tensor, g: &ConvGeom, budget: usize) -> Result<Tensor> {
    let g = *g;
    let (xin, yout, plane) = (g.c * g.h * g.w, g.o * g.ho * g.wo, g.h * g.w);
    let (hw, kk) = (g.ho * g.wo, g.kh * g.kw);
    let ckk = g.c * kk;
    let mut dx = vec![0.0f32; g.n * xin];
    if dx.is_empty() || hw == 0 || plane == 0 {
        return Tensor::new(&g.x_shape(), dx);
    }
    let wt = View::rm_t(w.data(), ckk, g.o);
    let gs = group_size(&g, budget);
    if gs < 2 || (g.is_pointwise() && hw >= DIRECT_HW) {
        let (par_images, gemm_threads) = split(g.n);
        let one = |(ni, dxi): (usize, &mut [f32])| {
            let dyi = View::rm(&dy.data()[ni * yout..(ni + 1) * yout], g.o, hw);
            if g.is_pointwise() {
                sgemm(dxi, wt, dyi, false, gemm_threads);
            } else {
                with_scratch(ckk * hw, |cols| {
                    sgemm(cols, wt, dyi, false, gemm_threads);
                    for (c, p) in dxi.chunks_mut(plane).enumerate() {
                        col2im_plane(&cols[c * kk * hw..], hw, &g, p);
                    }
                });
            }
        };
        if par_images {
            dx.par_chunks_mut(xin).enumerate().for_each(one);
        } else {
            dx.chunks_mut(xin).enumerate().for_each(one);
        }
        return Tensor::new(&g.x_shape(), dx);
    }
    with_outer_scratch((ckk + g.o) * gs * hw, |buf| {
        let (cols, dyg) = buf.split_at_mut(ckk * gs * hw);
        for n0 in (0..g.n).step_by(gs) {
            let gn = gs.min(g.n - n0);
            let k = gn * hw;
            gather_dy(dy.data(), &g, n0, gn, dyg);
            sgemm(cols, wt, View::rm(dyg, g.o, k), false, threads());
            let cols = &*cols;
            dx[n0 * xin..(n0 + gn) * xin]
                .par_chunks_mut(plane)
                .enumerate()
                .for_each(|(q, p)| {
                    let (j, c) = (q / g.c, q % g.c);
                    if g.is_pointwise() {
                        p.copy_from_slice(&cols[c * k + j * hw..][..hw]);
                    } else {
                        col2im_plane(&cols[c * kk * k + j * hw..], k, &g, p);
                    }
                });
        }
    });
    Tensor::new(&g.x_shape(), dx)
}

/// dW = sum over images of dy_i [O, HW] x cols_i^T [HW, CKK], images in groups of
/// [`group_size`]: the group's columns [CKK, G*HW] are unfolded in parallel (by rows), its dy
/// gathered into [O, G*HW], and one multithreaded GEMM with K = G*HW accumulates into dW.
/// Pointwise layers with large maps use x_i and dy_i in place, one image per GEMM. Groups and
/// images go in order and the GEMM splits only dW's rows and columns across threads, so the
/// sum order is fixed by the shapes: deterministic, whatever the thread count.
pub fn backward_weight(dy: &Tensor, x: &Tensor, g: &ConvGeom) -> Result<Tensor> {
    backward_weight_in(dy, x, g, COLS_BUDGET)
}

/// [`backward_weight`] with groups of at most `budget` column values.
fn backward_weight_in(dy: &Tensor, x: &Tensor, g: &ConvGeom, budget: usize) -> Result<Tensor> {
    let g = *g;
    let (xin, yout, plane) = (g.c * g.h * g.w, g.o * g.ho * g.wo, g.h * g.w);
    let (hw, kk) = (g.ho * g.wo, g.kh * g.kw);
    let ckk = g.c * kk;
    let mut dw = vec![0.0f32; g.o * ckk];
    if dw.is_empty() || g.n == 0 || hw == 0 {
        return Tensor::new(&g.w_shape(), dw);
    }
    let direct = g.is_pointwise() && hw >= DIRECT_HW;
    let gs = if direct { 1 } else { group_size(&g, budget) };
    let cols_len = if direct { 0 } else { ckk * gs * hw };
    let dyg_len = if gs > 1 { g.o * gs * hw } else { 0 };
    with_outer_scratch(cols_len + dyg_len, |buf| {
        let (cols, dyg) = buf.split_at_mut(cols_len);
        for n0 in (0..g.n).step_by(gs) {
            let gn = gs.min(g.n - n0);
            let k = gn * hw;
            let a = if gn == 1 {
                View::rm(&dy.data()[n0 * yout..(n0 + 1) * yout], g.o, hw)
            } else {
                gather_dy(dy.data(), &g, n0, gn, dyg);
                View::rm(dyg, g.o, k)
            };
            let b = if direct {
                View::rm_t(&x.data()[n0 * xin..(n0 + 1) * xin], hw, ckk)
            } else {
                cols[..ckk * k]
                    .par_chunks_mut(k)
                    .enumerate()
                    .for_each(|(r, row)| {
                        let (c, ki, kj) = (r / kk, (r % kk) / g.kw, r % g.kw);
                        for (j, seg) in row.chunks_mut(hw).enumerate() {
                            let p = &x.data()[(n0 + j) * xin + c * plane..][..plane];
                            im2col_row(p, &g, ki, kj, seg);
                        }
                    });
                View::rm_t(&cols[..ckk * k], k, ckk)
            };
            sgemm(&mut dw, a, b, n0 > 0, threads());
        }
    });
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

#[cfg(test)]
mod tests {
    use super::{backward_data_in, backward_weight_in};
    use crate::ops::conv2d::{Conv2dParams, geometry, reference as conv};
    use crate::testing::{abs, within_bound};
    use crate::{Rng, Tensor};

    /// Every grouping of the backward passes against the reference, within the suite's bounds
    /// (dx: a sum over O, then up to KH*KW taps; dW: a sum over N*HO*WO products): budgets of
    /// one image per group, groups of 2 and 3 of 5 images (a short last group) and all at once,
    /// on a 3x3, a strided 1x1 and pointwise maps on both sides of the direct-operand size.
    #[test]
    fn backward_groupings_match_reference() {
        let mut rng = Rng::new(17);
        let cases = [
            ([5, 6, 9, 8], [7, 6, 3, 3], Conv2dParams::square(1, 1)),
            ([5, 8, 9, 9], [4, 8, 1, 1], Conv2dParams::square(2, 0)),
            ([5, 4, 7, 7], [6, 4, 1, 1], Conv2dParams::square(1, 0)),
            ([5, 3, 24, 24], [5, 3, 1, 1], Conv2dParams::square(1, 0)),
        ];
        for (xs, ws, p) in cases {
            let g = geometry(&xs, &ws, &p).unwrap();
            let x = Tensor::randn(&xs, 1.0, &mut rng);
            let w = Tensor::randn(&ws, 1.0, &mut rng);
            let dy = Tensor::randn(&g.y_shape(), 1.0, &mut rng);
            let want_dx = conv::backward_data(&dy, &w, &g).unwrap();
            let abs_dx = conv::backward_data(&abs(&dy), &abs(&w), &g).unwrap();
            let want_dw = conv::backward_weight(&dy, &x, &g).unwrap();
            let abs_dw = conv::backward_weight(&abs(&dy), &abs(&x), &g).unwrap();
            let per_image = g.c * g.kh * g.kw * g.ho * g.wo;
            for images in [1, 2, 3, 5] {
                let budget = images * per_image;
                let tag = format!("x{xs:?} w{ws:?} {p:?}, {images} per group");
                let dx = backward_data_in(&dy, &w, &g, budget).unwrap();
                within_bound(
                    &format!("dx {tag}"),
                    &dx,
                    &want_dx,
                    &abs_dx,
                    g.o + g.kh * g.kw,
                );
                let dw = backward_weight_in(&dy, &x, &g, budget).unwrap();
                within_bound(
                    &format!("dw {tag}"),
                    &dw,
                    &want_dw,
                    &abs_dw,
                    g.n * g.ho * g.wo,
                );
            }
        }
    }
}
