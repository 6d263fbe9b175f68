//! Winograd F(4x4, 3x3) on channels-last activations: the transforms of `cpu::winograd` with
//! the channels in the vectors, so every load and store is a contiguous run of 16 channels (the
//! NCHW version gathers and scatters pixels) and the 36 point GEMMs are the channels-last
//! kernel's own: M_pt [tiles, O] = V_pt [tiles, C] x U_pt [C, O], V_pt read in place.
//!
//! Tiles are 4x4 outputs of the whole batch in order (image, tile row, tile column). A task is
//! a block of tiles x a range of output panels: V = B^T d B of its tiles ([36][tiles][C]), the
//! 36 GEMMs into M ([36][tiles][its channels]), then Y = A^T M A with bias, residual and ReLU
//! before the store. The error bound is the NCHW version's (`cpu::winograd`, mod.rs): each
//! transform pass sums at most 4 (input) or 5 (output) terms, the K sum is C terms.

use rayon::prelude::*;
use std::sync::Arc;

use super::kernel::{self, MR, NB, Piece, TileEpi};
use super::{Epi, KC, SendPtr};
use crate::cpu::weight_cache::WeightCache;
use crate::cpu::winograd::weights::{ALPHA, POINTS, TILE, filter_tile};
use crate::ops::conv2d::ConvGeom;
use crate::tensor::Tensor;

/// U = G g G^T for every (o, c), per point packed as the kernel's weight panels:
/// [point][panel][C][NB], zero past O.
pub struct Transformed {
    data: Vec<f32>,
    c: usize,
    o: usize,
}

impl Transformed {
    /// From weights [O, C, 3, 3] (transforms in f64, rounded once).
    pub fn new(w: &[f32], o: usize, c: usize) -> Self {
        assert_eq!(w.len(), o * c * 9, "3x3 weights");
        let panels = o.div_ceil(NB);
        let per_panel = c * NB;
        let mut data = vec![0.0f32; POINTS * panels * per_panel];
        // One panel (NB output channels, every point) per task.
        let tiles: Vec<(usize, Vec<[f32; POINTS]>)> = (0..panels)
            .into_par_iter()
            .map(|p| {
                let us = (p * NB..(p * NB + NB).min(o))
                    .flat_map(|oi| (0..c).map(move |ci| (oi, ci)))
                    .map(|(oi, ci)| {
                        let g: Vec<f64> = w[(oi * c + ci) * 9..][..9]
                            .iter()
                            .map(|&v| v as f64)
                            .collect();
                        filter_tile(&g).map(|u| u as f32)
                    })
                    .collect();
                (p, us)
            })
            .collect();
        for (p, us) in tiles {
            for (i, u) in us.iter().enumerate() {
                let (oo, ci) = (i / c, i % c);
                for (pt, &v) in u.iter().enumerate() {
                    data[((pt * panels + p) * c + ci) * NB + oo] = v;
                }
            }
        }
        Transformed { data, c, o }
    }

    fn panel(&self, pt: usize, p: usize) -> &[f32] {
        let panels = self.o.div_ceil(NB);
        &self.data[(pt * panels + p) * self.c * NB..][..self.c * NB]
    }
}

/// Room for the transformed 3x3 weights of the deepest ResNet the folded model runs: ~130 MB
/// for ResNet50, ~470 MB for ResNet152 (36 of layer3's 9.4 MB). A network whose weights do
/// not fit is the worst case of a least-recently-used cache, every entry evicted before its
/// next use: with 192 MB, ResNet101 re-transformed every 3x3 layer on every pass and ran at
/// 0.75x the unfolded network. It is a bound, not an allocation: ResNet50 holds its ~130 MB.
static CACHE: WeightCache<Transformed> = WeightCache::new(512 << 20);

/// `w` [O, C, 3, 3] transformed, from the cache when this content was transformed before.
pub fn transformed(w: &Tensor) -> Arc<Transformed> {
    let s = w.shape();
    CACHE.get((w.version(), s[0], s[1]), || {
        let u = Transformed::new(w.data(), s[0], s[1]);
        let bytes = u.data.len() * 4;
        (u, bytes)
    })
}

/// A 3x3 stride-1 convolution (any padding that leaves an output).
pub fn supported(g: &ConvGeom) -> bool {
    g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1
}

/// Whether Winograd is used for `g` on this path (with `SKINENGINE_WINOGRAD=0` never): 3x3
/// stride 1, C and O >= 32, at least [`MIN_TILES`] tiles.
pub fn use_for(g: &ConvGeom) -> bool {
    static OFF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let off = *OFF.get_or_init(|| std::env::var("SKINENGINE_WINOGRAD").as_deref() == Ok("0"));
    let tiles = g.n * g.ho.div_ceil(TILE) * g.wo.div_ceil(TILE);
    supported(g) && !off && g.c >= 32 && g.o >= 32 && tiles >= MIN_TILES
}

/// Fewest tiles in the batch for Winograd: below, the transformed weights (4x the raw ones)
/// are streamed for too few tiles. Measured in-network on the Xeon (2 threads, 2026-12-07):
/// 14x14 maps at batch 1 (16 tiles) 0.70 ms per layer vs 0.87 direct; 7x7 maps at batch 8
/// (32 tiles) 5.8 vs 6.0 ms; 7x7 at batch 1 (4 tiles) stays direct (37.7 MB of transformed
/// layer4 weights for 4 tiles). Re-checked on the whole network at batch 1, 2 threads
/// (2026-12-07, alternating rounds): 16 gave 34.6-35.1 images/s, 17 (14x14 direct) 34.2-34.5.
const MIN_TILES: usize = 16;

/// y = epilogue(conv(x, w)) by Winograd, x NHWC [n, h, w, c] -> NHWC [n, ho, wo, o].
pub fn forward(x: &[f32], g: &ConvGeom, u: &Transformed, e: Epi) -> Vec<f32> {
    let tb = ((1 << 18) / (POINTS * g.c)).clamp(MR, 8 * MR) / MR * MR;
    forward_split(x, g, u, e, crate::cpu::threads(), tb)
}

/// [`forward`] with blocks of at most `tb` tiles, split for `threads` threads as the direct
/// kernel splits (`cpu::par::grid_split`: blocks x panel groups, even, two or more per thread
/// where the layer allows). Tests reach every split through `threads` and `tb`.
pub(crate) fn forward_split(
    x: &[f32],
    g: &ConvGeom,
    u: &Transformed,
    e: Epi,
    threads: usize,
    tb: usize,
) -> Vec<f32> {
    assert!(
        supported(g) && crate::cpu::simd::avx512(),
        "Winograd needs 3x3/1 and AVX-512F"
    );
    assert_eq!((u.c, u.o), (g.c, g.o), "transformed weights' shape");
    assert_eq!(x.len(), g.n * g.h * g.w * g.c, "input size");
    let (tr, tc) = (g.ho.div_ceil(TILE), g.wo.div_ceil(TILE));
    let count = g.n * tr * tc;
    let panels = g.o.div_ceil(NB);
    // Blocks are cut in whole MR-tile rows of the point products (the last may be ragged).
    let units = count.div_ceil(MR);
    let (blocks, groups) =
        crate::cpu::par::grid_split((units, panels), ((tb / MR).max(1), panels), threads);
    let len = g.n * g.ho * g.wo * g.o;
    let mut y: Vec<f32> = Vec::with_capacity(len);
    let yp = SendPtr(y.as_mut_ptr());
    (0..blocks * groups).into_par_iter().for_each(|task| {
        let out = yp; // the whole SendPtr moves into the closure
        let (b, grp) = (task / groups, task % groups);
        let rows = crate::cpu::par::part(units, blocks, b);
        let (t0, t1) = (rows.start * MR, (rows.end * MR).min(count));
        let pr = crate::cpu::par::part(panels, groups, grp);
        let (p0, p1) = (pr.start, pr.end);
        let nt = t1 - t0;
        let width = (p1 * NB).min(g.o) - p0 * NB;
        let ldm = (p1 - p0) * NB;
        crate::cpu::scratch::with_scratch(POINTS * nt * (g.c + ldm), |buf| {
            let (v, m) = buf.split_at_mut(POINTS * nt * g.c);
            // SAFETY: AVX-512F asserted; the task writes its own tiles' pixels and channels
            // p0*NB..p0*NB+width of `y`, which holds the whole output.
            unsafe {
                input_transform(x, g, (tr, tc), t0, nt, v);
                gemms(u, g.c, (p0, p1), nt, v, m, ldm);
                output_transform(m, ldm, g, (tr, tc), t0, nt, (p0 * NB, width), out.0, &e);
            }
        });
    });
    // SAFETY: the tasks cover every tile and panel and store every output of their tiles.
    unsafe { y.set_len(len) };
    y
}

/// (image, first output row, first output column) of tile `t`.
fn tile_origin(t: usize, (tr, tc): (usize, usize)) -> (usize, usize, usize) {
    (t / (tr * tc), (t / tc % tr) * TILE, t % tc * TILE)
}

/// One dimension of B^T d (6 -> 6), rows of B^T at most 4 terms.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn bt(d: [std::arch::x86_64::__m512; ALPHA]) -> [std::arch::x86_64::__m512; ALPHA] {
    use std::arch::x86_64::*;
    let s = _mm512_set1_ps;
    let (add, sub, fma) = (_mm512_add_ps, _mm512_sub_ps, _mm512_fmadd_ps);
    // SAFETY: register arithmetic only (AVX-512F is the callers' requirement).
    unsafe {
        let t4 = fma(s(-4.0), d[2], d[4]); // d4 - 4 d2
        let t5 = fma(s(-4.0), d[1], d[3]); // d3 - 4 d1
        let t6 = fma(s(-5.0), d[2], d[4]); // d4 - 5 d2 (then + 4 d0)
        let t7 = sub(d[4], d[2]); // d4 - d2
        let t8 = sub(d[3], d[1]); // d3 - d1
        [
            fma(s(4.0), d[0], t6),
            add(t4, t5),
            sub(t4, t5),
            fma(s(2.0), t8, t7),
            fma(s(-2.0), t8, t7),
            fma(s(4.0), d[1], fma(s(-5.0), d[3], d[5])),
        ]
    }
}

/// One dimension of A^T m (6 -> 4), rows of A^T at most 5 terms.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn at(m: [std::arch::x86_64::__m512; ALPHA]) -> [std::arch::x86_64::__m512; TILE] {
    use std::arch::x86_64::*;
    let s = _mm512_set1_ps;
    let (add, sub, fma) = (_mm512_add_ps, _mm512_sub_ps, _mm512_fmadd_ps);
    // SAFETY: register arithmetic only.
    unsafe {
        let (a, b) = (add(m[1], m[2]), sub(m[1], m[2]));
        let (c, d) = (add(m[3], m[4]), sub(m[3], m[4]));
        [
            add(add(m[0], a), c),
            fma(s(2.0), d, b),
            fma(s(4.0), c, a),
            add(fma(s(8.0), d, b), m[5]),
        ]
    }
}

/// V[pt][t][c] = (B^T d B)[pt] of tiles t0..t0+nt, every channel.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn input_transform(
    x: &[f32],
    g: &ConvGeom,
    grid: (usize, usize),
    t0: usize,
    nt: usize,
    v: &mut [f32],
) {
    use std::arch::x86_64::*;
    for t in 0..nt {
        let (n, oy, ox) = tile_origin(t0 + t, grid);
        for c0 in (0..g.c).step_by(16) {
            let k = crate::cpu::simd::lane_mask(g.c - c0, 0);
            // SAFETY: loads are masked to the channels and skipped outside the input; stores
            // land in V's [36][nt][C] (masked to the channels).
            unsafe {
                // Rows of the 6x6 input tile, each transformed along the row first.
                let mut rows = [[_mm512_setzero_ps(); ALPHA]; ALPHA];
                for (a, row) in rows.iter_mut().enumerate() {
                    let hi = (oy + a) as isize - g.ph as isize;
                    let mut d = [_mm512_setzero_ps(); ALPHA];
                    if hi >= 0 && (hi as usize) < g.h {
                        for (b, db) in d.iter_mut().enumerate() {
                            let wi = (ox + b) as isize - g.pw as isize;
                            if wi >= 0 && (wi as usize) < g.w {
                                let pix = (n * g.h + hi as usize) * g.w + wi as usize;
                                *db = _mm512_maskz_loadu_ps(k, x.as_ptr().add(pix * g.c + c0));
                            }
                        }
                    }
                    *row = bt(d);
                }
                // j is the tile's column, an index into both passes.
                #[allow(clippy::needless_range_loop)]
                for j in 0..ALPHA {
                    let col = bt(std::array::from_fn(|a| rows[a][j]));
                    for (i, &val) in col.iter().enumerate() {
                        let pt = i * ALPHA + j;
                        _mm512_mask_storeu_ps(v.as_mut_ptr().add((pt * nt + t) * g.c + c0), k, val);
                    }
                }
            }
        }
    }
}

/// M[pt][t][0..ldm] = V[pt] x U[pt] for panels p0..p1, by the channels-last kernel.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gemms(
    u: &Transformed,
    c: usize,
    (p0, p1): (usize, usize),
    nt: usize,
    v: &[f32],
    m: &mut [f32],
    ldm: usize,
) {
    for pt in 0..POINTS {
        let vp = &v[pt * nt * c..][..nt * c];
        let mp = m[pt * nt * ldm..][..nt * ldm].as_mut_ptr();
        for k0 in (0..c).step_by(KC) {
            let kc = KC.min(c - k0);
            for r0 in (0..nt).step_by(MR) {
                let rows = MR.min(nt - r0);
                let piece = Piece {
                    rows: std::array::from_fn(|r| vp[(r0 + r.min(rows - 1)) * c + k0..].as_ptr()),
                    len: kc,
                };
                for p in p0..p1 {
                    let b = u.panel(pt, p)[k0 * NB..].as_ptr();
                    // SAFETY: rows hold kc floats from k0; the panel holds K rows k0..k0+kc;
                    // M's tile (rows x NB at stride ldm) is inside this point's block.
                    unsafe {
                        kernel::tile(
                            &[piece],
                            b,
                            mp.add(r0 * ldm + (p - p0) * NB),
                            ldm,
                            rows,
                            NB,
                            k0 > 0,
                            None::<&TileEpi>,
                        );
                    }
                }
            }
        }
    }
}

/// Y = A^T M A + bias + residual, ReLU, into the NHWC output for channels ch0..ch0+width.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn output_transform(
    m: &[f32],
    ldm: usize,
    g: &ConvGeom,
    grid: (usize, usize),
    t0: usize,
    nt: usize,
    (ch0, width): (usize, usize),
    y: *mut f32,
    e: &Epi,
) {
    use std::arch::x86_64::*;
    for t in 0..nt {
        let (n, oy, ox) = tile_origin(t0 + t, grid);
        for c0 in (0..width).step_by(16) {
            let k = crate::cpu::simd::lane_mask(width - c0, 0);
            // SAFETY: M reads inside this tile's rows; output pixels outside the map are
            // skipped, channel lanes masked to the task's channels.
            unsafe {
                let mut rows = [[_mm512_setzero_ps(); ALPHA]; TILE];
                // j is M's column, an index into both passes.
                #[allow(clippy::needless_range_loop)]
                for j in 0..ALPHA {
                    let col: [__m512; ALPHA] = std::array::from_fn(|i| {
                        _mm512_loadu_ps(m.as_ptr().add(((i * ALPHA + j) * nt + t) * ldm + c0))
                    });
                    let r = at(col);
                    for i in 0..TILE {
                        rows[i][j] = r[i];
                    }
                }
                let bias = e
                    .bias
                    .map(|b| _mm512_maskz_loadu_ps(k, b.as_ptr().add(ch0 + c0)));
                for (i, row) in rows.iter().enumerate() {
                    if oy + i >= g.ho {
                        break;
                    }
                    let out = at(*row);
                    for (j, &val) in out.iter().enumerate() {
                        if ox + j >= g.wo {
                            break;
                        }
                        let at_px = ((n * g.ho + oy + i) * g.wo + ox + j) * g.o + ch0 + c0;
                        let mut val = val;
                        if let Some(b) = bias {
                            val = _mm512_add_ps(val, b);
                        }
                        if let Some(r) = e.residual {
                            val =
                                _mm512_add_ps(val, _mm512_maskz_loadu_ps(k, r.as_ptr().add(at_px)));
                        }
                        if e.relu {
                            val = _mm512_max_ps(val, _mm512_setzero_ps());
                        }
                        _mm512_mask_storeu_ps(y.add(at_px), k, val);
                    }
                }
            }
        }
    }
}
