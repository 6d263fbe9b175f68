//! Convolution on channels-last (NHWC) activations with our own AVX-512 kernel, for inference
//! chains that stay channels-last from the first layer to the last (`ops::channels_last`).
//!
//! Y[P, O] (P = N*HO*WO output pixels, O channels, row-major: NHWC) = A[P, K] x W[K, O], with
//! K = KH*KW*C ordered (tap, channel). A is never formed: row p of A is, for each tap, C
//! consecutive floats of the input pixel under it (one NHWC pixel), so the kernel reads the
//! input in place through per-pixel row pointers, an indirect convolution (XNNPACK's). Padding
//! taps point at a row of zeros. The weights are packed once (cached by content) into
//! 64-channel panels, K-major.
//!
//! Inputs with few channels (the stem: C = 3) would make each tap 3 floats long; there the
//! input is padded explicitly (one small copy) and a tap is a whole kernel row, KW*C
//! consecutive floats of the padded row.
//!
//! Loop nest per work item (a chunk of tiles x a group of panels): K blocks of ~KC outermost,
//! then tiles, then panels: a tile's MR input rows (KC floats each) stay in L1 while the
//! group's weight slices (KC x 64 each, at most 1 MiB together) stream from L2. Every output
//! element is summed by one kernel call per K block in a fixed order, so results do not depend
//! on the thread count or on how the work is split.

pub mod kernel;
pub mod layout;
pub mod winograd;
#[cfg(test)]
mod winograd_tests;

use kernel::{MR, NB, Piece, TileEpi};
use rayon::prelude::*;
use std::sync::Arc;

use super::weight_cache::WeightCache;
use crate::ops::conv2d::ConvGeom;
use crate::tensor::Tensor;

/// K rows per block.
const KC: usize = 256;
/// Tiles per work item at most (96 pixels: their KC-float rows, 96 KiB, stay in L2).
const CHUNK_TILES: usize = 16;
/// Panels per work item at most: their KC-row weight slices total 1 MiB.
const GROUP_PANELS: usize = 16;
/// Inputs with fewer channels take whole kernel rows as taps (explicit padding).
const ROW_TAPS_BELOW: usize = 16;

/// Whether this path runs: AVX-512F (capped by `SKINENGINE_CPU_LEVEL`) and not turned off by
/// `SKINENGINE_CHANNELS_LAST=0`.
pub fn available() -> bool {
    super::simd::avx512() && !crate::ops::channels_last::switched_off()
}

/// One channels-last convolution as the kernel walks it: the geometry of the input as read
/// (already padded, with `ph = pw = 0`, when the taps are whole kernel rows) and the taps.
#[derive(Clone, Debug)]
pub struct Conv {
    pub g: ConvGeom,
    /// Each tap's (row, column) offset in the window, in K order.
    pub taps: Vec<(usize, usize)>,
    /// Floats per tap: C, or KW*C when the taps are whole kernel rows.
    pub seg: usize,
}

impl Conv {
    /// The usual per-pixel taps: KH*KW taps of C floats, implicit padding.
    pub fn per_pixel(g: &ConvGeom) -> Self {
        let taps = (0..g.kh)
            .flat_map(|i| (0..g.kw).map(move |j| (i, j)))
            .collect();
        Conv {
            g: *g,
            taps,
            seg: g.c,
        }
    }

    /// KH taps of KW*C floats on an input padded by (ph, pw) on every side beforehand.
    pub fn row_taps(g: &ConvGeom) -> Self {
        Conv {
            g: ConvGeom {
                h: g.h + 2 * g.ph,
                w: g.w + 2 * g.pw,
                ph: 0,
                pw: 0,
                ..*g
            },
            taps: (0..g.kh).map(|i| (i, 0)).collect(),
            seg: g.kw * g.c,
        }
    }

    fn pixels(&self) -> usize {
        self.g.n * self.g.ho * self.g.wo
    }
}

/// Whether a convolution with `c` input channels takes whole kernel rows as taps.
pub fn wants_row_taps(g: &ConvGeom) -> bool {
    g.c < ROW_TAPS_BELOW && g.kw > 1
}

/// Weights [O, C, KH, KW] as 64-channel panels [panel][k][NB], k = (ki*KW + kj)*C + c, zero
/// past O.
pub struct Packed {
    data: Vec<f32>,
    k: usize,
    o: usize,
}

impl Packed {
    pub fn pack(w: &[f32], o: usize, c: usize, kh: usize, kw: usize) -> Self {
        let k = c * kh * kw;
        let panels = o.div_ceil(NB);
        let mut data = vec![0.0f32; panels * k * NB];
        data.par_chunks_mut(k * NB)
            .enumerate()
            .for_each(|(p, panel)| {
                for oo in 0..NB.min(o - p * NB) {
                    let src = &w[(p * NB + oo) * k..][..k];
                    for ci in 0..c {
                        for t in 0..kh * kw {
                            panel[(t * c + ci) * NB + oo] = src[ci * kh * kw + t];
                        }
                    }
                }
            });
        Packed { data, k, o }
    }

    fn panel(&self, p: usize) -> &[f32] {
        &self.data[p * self.k * NB..][..self.k * NB]
    }
}

static CACHE: WeightCache<Packed> = WeightCache::new(256 << 20);

/// `w` [O, C, KH, KW] packed, from the cache when this content was packed before.
pub fn packed(w: &Tensor) -> Arc<Packed> {
    let s = w.shape();
    let (o, c, kh, kw) = (s[0], s[1], s[2], s[3]);
    CACHE.get((w.version(), o, c * kh * kw), || {
        let p = Packed::pack(w.data(), o, c, kh, kw);
        let bytes = p.data.len() * 4;
        (p, bytes)
    })
}

/// The epilogue of a whole convolution (NHWC residual of the output's shape).
#[derive(Clone, Copy)]
pub struct Epi<'a> {
    pub bias: Option<&'a [f32]>,
    pub residual: Option<&'a [f32]>,
    pub relu: bool,
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: work items write disjoint tiles of the output (see `conv`).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// The K blocks: runs of (tap, first channel, length) adding up to KC (the last may be
/// shorter), taps in order, each tap's floats in order.
fn k_blocks(taps: usize, seg: usize) -> Vec<Vec<(usize, usize, usize)>> {
    let (mut blocks, mut cur, mut total) = (Vec::new(), Vec::new(), 0);
    for t in 0..taps {
        let mut c0 = 0;
        while c0 < seg {
            let take = (seg - c0).min(KC - total);
            cur.push((t, c0, take));
            c0 += take;
            total += take;
            if total == KC {
                blocks.push(std::mem::take(&mut cur));
                total = 0;
            }
        }
    }
    if !cur.is_empty() {
        blocks.push(cur);
    }
    blocks
}

/// The convolution of the NHWC input `x` (laid out as `cv` reads it) into a new NHWC output
/// [N, HO, WO, O].
///
/// # Panics
/// If the CPU lacks AVX-512F ([`available`] is the caller's check) or the sizes disagree.
pub fn conv(x: &[f32], cv: &Conv, w: &Packed, e: Epi) -> Vec<f32> {
    assert!(
        super::simd::avx512(),
        "channels-last convolution needs AVX-512F"
    );
    let (p_total, o) = (cv.pixels(), cv.g.o);
    assert_eq!(x.len(), cv.g.n * cv.g.h * cv.g.w * cv.g.c, "input size");
    assert_eq!(w.k, cv.taps.len() * cv.seg, "weights' K");
    assert_eq!(w.o, o, "weights' output channels");
    assert!(e.bias.is_none_or(|b| b.len() == o), "bias size");
    assert!(
        e.residual.is_none_or(|r| r.len() == p_total * o),
        "residual size"
    );
    let len = p_total * o;
    let mut y: Vec<f32> = Vec::with_capacity(len);
    if len == 0 {
        return y;
    }
    let tiles = p_total.div_ceil(MR);
    let panels = o.div_ceil(NB);
    // Chunks of tiles x groups of panels, enough and even for the threads (small maps split
    // the panels instead); sizes within one of each other (a last chunk of one tile would do
    // a whole chunk's weight traffic).
    let (chunks, groups) = super::par::grid_split(
        (tiles, panels),
        (CHUNK_TILES, GROUP_PANELS),
        super::threads(),
    );
    let blocks = k_blocks(cv.taps.len(), cv.seg);
    let zero = vec![0.0f32; cv.seg];
    let yp = SendPtr(y.as_mut_ptr());
    (0..chunks * groups).into_par_iter().for_each(|item| {
        let out = yp; // the whole SendPtr, not its raw field, moves into the closure
        let (chunk, group) = (item / groups, item % groups);
        let tile_range = super::par::part(tiles, chunks, chunk);
        let panel_range = super::par::part(panels, groups, group);
        let mut pieces: Vec<Piece> = Vec::with_capacity(cv.taps.len() + 2);
        for (bi, block) in blocks.iter().enumerate() {
            let (first, last) = (bi == 0, bi + 1 == blocks.len());
            let k0 = block[0].0 * cv.seg + block[0].1;
            for t in tile_range.clone() {
                let p0 = t * MR;
                let rows = MR.min(p_total - p0);
                // Each row's image and window origin (rows past the end repeat the last):
                // one division for the tile's first pixel, then steps along the row.
                let mut origin = [(0usize, 0isize, 0isize); MR];
                let (mut ni, rem) = (p0 / (cv.g.ho * cv.g.wo), p0 % (cv.g.ho * cv.g.wo));
                let (mut i, mut j) = (rem / cv.g.wo, rem % cv.g.wo);
                for (r, o) in origin.iter_mut().enumerate() {
                    if r > 0 && p0 + r < p_total {
                        j += 1;
                        if j == cv.g.wo {
                            (j, i) = (0, i + 1);
                            if i == cv.g.ho {
                                (i, ni) = (0, ni + 1);
                            }
                        }
                    }
                    *o = (
                        ni,
                        (i * cv.g.sh) as isize - cv.g.ph as isize,
                        (j * cv.g.sw) as isize - cv.g.pw as isize,
                    );
                }
                pieces.clear();
                for &(tap, c0, len) in block {
                    let (di, dj) = cv.taps[tap];
                    let rows_ptr: [*const f32; MR] = std::array::from_fn(|r| {
                        let (ni, hb, wb) = origin[r];
                        let (hi, wi) = (hb + di as isize, wb + dj as isize);
                        if hi >= 0 && (hi as usize) < cv.g.h && wi >= 0 && (wi as usize) < cv.g.w {
                            let pix = (ni * cv.g.h + hi as usize) * cv.g.w + wi as usize;
                            x[pix * cv.g.c + c0..][..len].as_ptr()
                        } else {
                            zero[c0..][..len].as_ptr()
                        }
                    });
                    pieces.push(Piece {
                        rows: rows_ptr,
                        len,
                    });
                }
                for pn in panel_range.clone() {
                    let ch0 = pn * NB;
                    let width = NB.min(o - ch0);
                    let b = w.panel(pn)[k0 * NB..].as_ptr();
                    let epi = last.then(|| TileEpi {
                        bias: e.bias.map(|b| b[ch0..].as_ptr()),
                        residual: e.residual.map(|r| r[p0 * o + ch0..].as_ptr()),
                        relu: e.relu,
                    });
                    // SAFETY: AVX-512F asserted above; row pointers were sliced to `len`
                    // floats; the panel holds this block's rows; the tile (rows x width at
                    // stride o) lies inside Y and the residual, and only this work item writes
                    // it (items own disjoint tiles x panels).
                    unsafe {
                        kernel::tile(
                            &pieces,
                            b,
                            out.0.add(p0 * o + ch0),
                            o,
                            rows,
                            width,
                            !first,
                            epi.as_ref(),
                        );
                    }
                }
            }
        }
    });
    // SAFETY: the work items cover every tile and panel, and each kernel call of the first K
    // block stores every (row < rows, channel < width) element of its tile: all len values.
    unsafe { y.set_len(len) };
    y
}
