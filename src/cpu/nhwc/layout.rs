//! Channels-last companions of the convolution: layout changes at the chain's edges (with the
//! explicit padding row taps need) and the two poolings of a ResNet, each giving exactly the
//! values of its NCHW counterpart (`ops::pool::cpu`), only stored channels-last.

use rayon::prelude::*;

use crate::cpu::par::par_new;
use crate::ops::pool::PoolGeom;

/// NCHW [n, c, h, w] -> NHWC [n, h + 2ph, w + 2pw, c], zeros in the border.
pub fn nchw_to_nhwc(x: &[f32], [n, c, h, w]: [usize; 4], (ph, pw): (usize, usize)) -> Vec<f32> {
    let (hp, wp) = (h + 2 * ph, w + 2 * pw);
    assert_eq!(x.len(), n * c * h * w, "input size");
    par_new(n * hp * wp * c, wp * c, |row, out| {
        let (ni, hi) = (row / hp, row % hp);
        let inside = hi >= ph && hi < ph + h;
        for (j, px) in out.chunks_mut(c).enumerate() {
            let inside = inside && j >= pw && j < pw + w;
            for (ci, o) in px.iter_mut().enumerate() {
                o.write(if inside {
                    x[((ni * c + ci) * h + hi - ph) * w + j - pw]
                } else {
                    0.0
                });
            }
        }
    })
}

/// NHWC [n, h, w, c] -> NHWC [n, h + 2ph, w + 2pw, c], zeros in the border.
pub fn pad_nhwc(x: &[f32], [n, h, w, c]: [usize; 4], (ph, pw): (usize, usize)) -> Vec<f32> {
    let (hp, wp) = (h + 2 * ph, w + 2 * pw);
    assert_eq!(x.len(), n * h * w * c, "input size");
    par_new(n * hp * wp * c, wp * c, |row, out| {
        let (ni, hi) = (row / hp, row % hp);
        let (left, right) = out.split_at_mut(pw * c);
        let (mid, right) = right.split_at_mut(w * c);
        left.iter_mut().chain(right.iter_mut()).for_each(|o| {
            o.write(0.0);
        });
        if hi >= ph && hi < ph + h {
            let src = &x[(ni * h + hi - ph) * w * c..][..w * c];
            mid.iter_mut().zip(src).for_each(|(o, &v)| {
                o.write(v);
            });
        } else {
            mid.iter_mut().for_each(|o| {
                o.write(0.0);
            });
        }
    })
}

/// NHWC [n, h, w, c] -> NCHW [n, c, h, w].
pub fn nhwc_to_nchw(x: &[f32], [n, c, h, w]: [usize; 4]) -> Vec<f32> {
    assert_eq!(x.len(), n * c * h * w, "input size");
    par_new(n * c * h * w, h * w, |plane, out| {
        let (ni, ci) = (plane / c, plane % c);
        let xi = &x[ni * h * w * c..][..h * w * c];
        for (p, o) in out.iter_mut().enumerate() {
            o.write(xi[p * c + ci]);
        }
    })
}

/// Max pooling of an NHWC input (geometry in NCHW terms, `g.input` = [n, c, h, w]) into NHWC.
/// The NCHW kernel's rule per channel: cells row by row, left to right, the first kept unless a
/// later one is strictly greater (a NaN wins only as the first cell; of -0 / +0 the first).
pub fn maxpool(x: &[f32], g: &PoolGeom) -> Vec<f32> {
    let [n, c, h, w] = g.input;
    let [_, _, ho, wo] = g.out;
    let ((kh, kw), (sh, sw), (ph, pw)) = (g.p.kernel, g.p.stride, g.p.padding);
    assert_eq!(x.len(), n * h * w * c, "input size");
    let mut y = vec![0.0f32; n * ho * wo * c];
    y.par_chunks_mut(wo * c).enumerate().for_each(|(row, yr)| {
        let (ni, i) = (row / ho, row % ho);
        let xi = &x[ni * h * w * c..][..h * w * c];
        let r0 = (i * sh).saturating_sub(ph);
        let r1 = (i * sh + kh - ph).min(h);
        for (j, m) in yr.chunks_mut(c).enumerate() {
            let c0 = (j * sw).saturating_sub(pw);
            let c1 = (j * sw + kw - pw).min(w);
            #[cfg(target_arch = "x86_64")]
            if crate::cpu::simd::avx512() {
                // SAFETY: AVX-512F was just detected; the window's cells are pixels of `xi`.
                unsafe { window_max_avx512(xi, (w, c), (r0, r1), (c0, c1), m) };
                continue;
            }
            m.copy_from_slice(&xi[(r0 * w + c0) * c..][..c]);
            for r in r0..r1 {
                for col in c0..c1 {
                    if r == r0 && col == c0 {
                        continue;
                    }
                    max_into(m, &xi[(r * w + col) * c..][..c]);
                }
            }
        }
    });
    y
}

/// m[i] = v[i] where v[i] > m[i] (so a NaN in m stays, one in v never enters).
fn max_into(m: &mut [f32], v: &[f32]) {
    for (mv, &v) in m.iter_mut().zip(v) {
        *mv = if v > *mv { v } else { *mv };
    }
}

/// One output pixel of max pooling: over the window's cells (rows r0..r1, columns c0..c1 of
/// an image [h][w][c] in `xi`) in the portable loop's order and with its rule (the first
/// cell, then each later one where strictly greater), 64 channels at a time held in
/// registers instead of stored and reloaded once per cell.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn window_max_avx512(
    xi: &[f32],
    (w, c): (usize, usize),
    (r0, r1): (usize, usize),
    (c0, c1): (usize, usize),
    m: &mut [f32],
) {
    use std::arch::x86_64::*;
    const NV: usize = 4;
    let first = (r0 * w + c0) * c;
    assert!(m.len() == c && (r0 < r1 && c0 < c1) && ((r1 - 1) * w + c1) * c <= xi.len());
    let mut ch = 0;
    while ch < c {
        let masks: [__mmask16; NV] =
            std::array::from_fn(|v| crate::cpu::simd::lane_mask(c - ch, v));
        // SAFETY: the loads are masked to channels ch..c of cells inside `xi` (asserted above),
        // the store to the same channels of `m`; a vector wholly past the channels has an
        // empty mask and its address (wrapping_add: never formed out of bounds with `add`)
        // is not touched.
        unsafe {
            let mut acc: [__m512; NV] = std::array::from_fn(|v| {
                _mm512_maskz_loadu_ps(masks[v], xi.as_ptr().wrapping_add(first + ch + 16 * v))
            });
            for r in r0..r1 {
                for col in c0..c1 {
                    if r == r0 && col == c0 {
                        continue;
                    }
                    let px = xi.as_ptr().add((r * w + col) * c + ch);
                    for (v, a) in acc.iter_mut().enumerate() {
                        let x = _mm512_maskz_loadu_ps(masks[v], px.wrapping_add(16 * v));
                        let gt = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, *a);
                        *a = _mm512_mask_mov_ps(*a, gt, x);
                    }
                }
            }
            for (v, a) in acc.iter().enumerate() {
                _mm512_mask_storeu_ps(m.as_mut_ptr().wrapping_add(ch + 16 * v), masks[v], *a);
            }
        }
        ch += 16 * NV;
    }
}

/// Global average pooling of an NHWC input [n, h, w, c] -> [n, c]: each channel summed over
/// the pixels in order, then times 1/(h*w), as the NCHW kernel does (the same bits).
pub fn global_avg_pool(x: &[f32], [n, c, h, w]: [usize; 4]) -> Vec<f32> {
    assert_eq!(x.len(), n * h * w * c, "input size");
    let inv = 1.0 / (h * w) as f32;
    // -0.0 as the start: the neutral element f32's `Sum` (the NCHW kernel) starts from.
    let mut y = vec![-0.0f32; n * c];
    y.par_chunks_mut(c).enumerate().for_each(|(ni, yn)| {
        channel_sums(&x[ni * h * w * c..][..h * w * c], yn);
        yn.iter_mut().for_each(|s| *s *= inv);
    });
    y
}

/// s[ch] += the pixels' values of channel ch, pixel by pixel in order (`x` holds whole pixels
/// of s.len() channels).
fn channel_sums(x: &[f32], s: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::simd::avx512() {
        // SAFETY: AVX-512F was just detected.
        unsafe { channel_sums_avx512(x, s) };
        return;
    }
    for px in x.chunks(s.len()) {
        for (s, &v) in s.iter_mut().zip(px) {
            *s += v;
        }
    }
}

/// [`channel_sums`] with AVX-512: per lane the same additions in the same order as the
/// portable loop, so the same bits, with the sums held in registers instead of stored and
/// reloaded once per pixel (the portable loop is not vectorised: 1.5% of a ResNet50 forward
/// at batch 8).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn channel_sums_avx512(x: &[f32], s: &mut [f32]) {
    use std::arch::x86_64::*;
    let c = s.len();
    let pixels = x.len() / c.max(1);
    // Four vectors (64 channels) at a time: four independent chains of additions.
    const NV: usize = 4;
    let mut c0 = 0;
    while c0 < c {
        let masks: [__mmask16; NV] =
            std::array::from_fn(|v| crate::cpu::simd::lane_mask(c - c0, v));
        // SAFETY: every load and store is masked to the channels c0..c, inside each pixel of
        // `x` (pixels * c values) and inside `s`; addresses of vectors past the channels are
        // formed with wrapping_add and not touched (empty masks).
        unsafe {
            let mut acc: [__m512; NV] = std::array::from_fn(|v| {
                _mm512_maskz_loadu_ps(masks[v], s.as_ptr().wrapping_add(c0 + 16 * v))
            });
            for p in 0..pixels {
                let px = x.as_ptr().add(p * c + c0);
                for (v, a) in acc.iter_mut().enumerate() {
                    *a =
                        _mm512_add_ps(*a, _mm512_maskz_loadu_ps(masks[v], px.wrapping_add(16 * v)));
                }
            }
            for (v, a) in acc.iter().enumerate() {
                _mm512_mask_storeu_ps(s.as_mut_ptr().wrapping_add(c0 + 16 * v), masks[v], *a);
            }
        }
        c0 += 16 * NV;
    }
}
