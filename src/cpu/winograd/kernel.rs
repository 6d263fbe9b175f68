//! The AVX-512 pieces of the Winograd convolution, 16 tiles per vector (lane = tile): the input
//! transform V = B^T d B by masked gathers (zeros for padding and for lanes past the last
//! tile), the 36 GEMMs M = U V with an 8 x 32 register tile, and the output transform
//! Y = A^T M A with the epilogue (bias, residual, ReLU) and masked scatters (the ragged right
//! and bottom tiles of maps not divisible by 4 store only their valid outputs).

use super::weights::{ALPHA, AT, BT, MR, POINTS, TILE, Transformed};
use crate::ops::conv2d::ConvGeom;

/// The epilogue, for the whole batch: y = relu?(conv + bias[o] + residual[n, o, i, j]).
#[derive(Clone, Copy, Default)]
pub struct Epilogue<'a> {
    pub bias: Option<&'a [f32]>,
    /// Laid out like the output [N, O, HO, WO].
    pub residual: Option<&'a [f32]>,
    pub relu: bool,
}

/// Lanes per vector: tiles transformed together.
pub const LANES: usize = 16;

/// Where each tile of the whole batch reads and writes, in tile order (image, tile row, tile
/// column), padded to a multiple of 16 with lanes that read and write nothing.
pub struct Tiles {
    /// Input row / column of the tile's top-left input pixel (may be negative: padding).
    iy: Vec<i32>,
    ix: Vec<i32>,
    /// Offset of that pixel in x (channel 0), and of the tile's first output in y (channel 0).
    in_base: Vec<i32>,
    out_base: Vec<i32>,
    /// Output row / column of the tile's top-left output.
    oy: Vec<i32>,
    ox: Vec<i32>,
    pub count: usize,
}

impl Tiles {
    pub fn new(g: &ConvGeom) -> Self {
        let (th, tw) = (g.ho.div_ceil(TILE), g.wo.div_ceil(TILE));
        let count = g.n * th * tw;
        let padded = count.div_ceil(LANES) * LANES;
        assert!(
            g.n * g.c.max(g.o) * (g.h * g.w).max(g.ho * g.wo) < i32::MAX as usize,
            "offsets fit the gathers' i32 indices"
        );
        let mut t = Tiles {
            iy: Vec::with_capacity(padded),
            ix: Vec::with_capacity(padded),
            in_base: Vec::with_capacity(padded),
            out_base: Vec::with_capacity(padded),
            oy: Vec::with_capacity(padded),
            ox: Vec::with_capacity(padded),
            count,
        };
        for n in 0..g.n {
            for ty in 0..th {
                for tx in 0..tw {
                    let (oy, ox) = ((ty * TILE) as i32, (tx * TILE) as i32);
                    let (iy, ix) = (oy - g.ph as i32, ox - g.pw as i32);
                    t.iy.push(iy);
                    t.ix.push(ix);
                    t.in_base
                        .push((n * g.c * g.h * g.w) as i32 + iy * g.w as i32 + ix);
                    t.out_base
                        .push((n * g.o * g.ho * g.wo) as i32 + oy * g.wo as i32 + ox);
                    t.oy.push(oy);
                    t.ox.push(ox);
                }
            }
        }
        // Padding lanes: far outside every map, so every mask is off.
        const FAR: i32 = -(1 << 20);
        for v in [&mut t.iy, &mut t.ix, &mut t.oy, &mut t.ox] {
            v.resize(padded, FAR);
        }
        t.in_base.resize(padded, 0);
        t.out_base.resize(padded, 0);
        t
    }
}

/// R linear combinations of 6 vectors with constant coefficients `m` (rows): out[i] =
/// sum_k m[i][k] x[k]. Inlined with `m` a constant, so zero terms vanish and +-1 terms become
/// adds and subtracts.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn combine<const R: usize>(
    m: &[[f32; ALPHA]; R],
    x: &[std::arch::x86_64::__m512; ALPHA],
) -> [std::arch::x86_64::__m512; R] {
    use std::arch::x86_64::*;
    {
        std::array::from_fn(|i| {
            let mut acc: Option<__m512> = None;
            for k in 0..ALPHA {
                let c = m[i][k];
                if c == 0.0 {
                    continue;
                }
                acc = Some(match (acc, c) {
                    (None, 1.0) => x[k],
                    (None, _) => _mm512_mul_ps(_mm512_set1_ps(c), x[k]),
                    (Some(a), 1.0) => _mm512_add_ps(a, x[k]),
                    (Some(a), -1.0) => _mm512_sub_ps(a, x[k]),
                    (Some(a), _) => _mm512_fmadd_ps(_mm512_set1_ps(c), x[k], a),
                });
            }
            acc.unwrap_or(_mm512_setzero_ps())
        })
    }
}

/// V[pt][c][0..tb] for tiles t0..t0 + tb (tb a multiple of 16): v holds POINTS * C * tb floats.
///
/// # Safety
/// AVX-512F; `x` is the whole input [N, C, H, W] of `g`, `tiles` built for `g`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub unsafe fn input_transform(
    x: &[f32],
    g: &ConvGeom,
    tiles: &Tiles,
    t0: usize,
    tb: usize,
    v: &mut [f32],
) {
    use std::arch::x86_64::*;
    assert!(tb.is_multiple_of(LANES) && t0 + tb <= tiles.iy.len() && v.len() >= POINTS * g.c * tb);
    assert!(x.len() >= g.n * g.c * g.h * g.w);
    let plane = (g.h * g.w) as i32;
    let (h, w) = (_mm512_set1_epi32(g.h as i32), _mm512_set1_epi32(g.w as i32));
    let zero = _mm512_setzero_si512();
    for l0 in (0..tb).step_by(LANES) {
        // SAFETY: the asserts bound the table loads (16 entries from t0 + l0) and the stores;
        // each gather lane is masked to a pixel inside the map, whose offset lies in x.
        unsafe {
            let ld = |a: &Vec<i32>| _mm512_loadu_si512(a.as_ptr().add(t0 + l0) as *const _);
            let (iy, ix, base) = (ld(&tiles.iy), ld(&tiles.ix), ld(&tiles.in_base));
            let inside = |p: __m512i, lim: __m512i| {
                _mm512_cmpge_epi32_mask(p, zero) & _mm512_cmplt_epi32_mask(p, lim)
            };
            let rows: [u16; ALPHA] = std::array::from_fn(|r| {
                inside(_mm512_add_epi32(iy, _mm512_set1_epi32(r as i32)), h)
            });
            let cols: [u16; ALPHA] = std::array::from_fn(|q| {
                inside(_mm512_add_epi32(ix, _mm512_set1_epi32(q as i32)), w)
            });
            let offs: [[__m512i; ALPHA]; ALPHA] = std::array::from_fn(|r| {
                std::array::from_fn(|q| {
                    _mm512_add_epi32(base, _mm512_set1_epi32(r as i32 * g.w as i32 + q as i32))
                })
            });
            for c in 0..g.c {
                let src = x.as_ptr().offset(c as isize * plane as isize);
                // Row transform of each input row: r[p][nu] = sum_q BT[nu][q] d[p][q].
                let r: [[__m512; ALPHA]; ALPHA] = std::array::from_fn(|p| {
                    let d: [__m512; ALPHA] = std::array::from_fn(|q| {
                        _mm512_mask_i32gather_ps::<4>(
                            _mm512_setzero_ps(),
                            rows[p] & cols[q],
                            offs[p][q],
                            src,
                        )
                    });
                    combine(&BT, &d)
                });
                #[allow(clippy::needless_range_loop)] // nu indexes the second axis of r
                for nu in 0..ALPHA {
                    let col: [__m512; ALPHA] = std::array::from_fn(|p| r[p][nu]);
                    for (xi, val) in combine(&BT, &col).into_iter().enumerate() {
                        let dst = v.as_mut_ptr().add(((xi * ALPHA + nu) * g.c + c) * tb + l0);
                        _mm512_storeu_ps(dst, val);
                    }
                }
            }
        }
    }
}

/// K rows the GEMM tile prefetches ahead (as the direct kernel, `cpu::conv_gemm`).
const PREFETCH_ROWS: usize = 8;

/// C[0..8][0..16 NV] = A (k x 8, k-major) x B (k rows of 16 NV at stride ldb).
///
/// # Safety
/// AVX-512F; a holds 8k floats, B k rows of 16 NV floats at stride ldb, C 8 rows at ldc.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gemm_tile<const NV: usize>(
    k: usize,
    a: *const f32,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    // SAFETY: within the bounds the caller guarantees.
    unsafe {
        for kk in 0..k {
            let bk = b.add(kk * ldb);
            // Prefetch both operands PREFETCH_ROWS rows ahead (never faults past the end): U's
            // panel streams from L3 (36 x O x C floats, 9.4 MB at C = O = 256), V's rows are
            // tb apart.
            for v in 0..NV {
                let ahead = bk.wrapping_add(PREFETCH_ROWS * ldb + 16 * v);
                _mm_prefetch::<_MM_HINT_T0>(ahead as *const i8);
            }
            _mm_prefetch::<_MM_HINT_T0>(a.wrapping_add((kk + PREFETCH_ROWS) * MR) as *const i8);
            let bv: [__m512; NV] = std::array::from_fn(|v| _mm512_loadu_ps(bk.add(16 * v)));
            let ak = a.add(kk * MR);
            for (r, accr) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*ak.add(r));
                for v in 0..NV {
                    accr[v] = _mm512_fmadd_ps(av, bv[v], accr[v]);
                }
            }
        }
        for (r, accr) in acc.iter().enumerate() {
            for (v, &val) in accr.iter().enumerate() {
                _mm512_storeu_ps(c.add(r * ldc + 16 * v), val);
            }
        }
    }
}

/// M[pt][o - o0][0..tb] = U[pt][o] . V[pt][.][0..tb] for output channels o0..o1 (o0 a multiple
/// of MR; rows up to the next multiple of MR are computed from U's zero rows).
///
/// # Safety
/// AVX-512F; v as written by [`input_transform`], m holds POINTS * round_up(o1 - o0, MR) * tb.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub unsafe fn gemms(
    u: &Transformed,
    c: usize,
    o0: usize,
    o1: usize,
    tb: usize,
    v: &[f32],
    m: &mut [f32],
) {
    let rows = (o1 - o0).div_ceil(MR) * MR;
    assert!(o0.is_multiple_of(MR) && tb.is_multiple_of(LANES));
    assert!(v.len() >= POINTS * c * tb && m.len() >= POINTS * rows * tb);
    for pt in 0..POINTS {
        let vp = v[pt * c * tb..].as_ptr();
        let mp = m[pt * rows * tb..].as_mut_ptr();
        for r0 in (0..rows).step_by(MR) {
            let a = u.panel(pt, (o0 + r0) / MR);
            assert!(a.len() == c * MR);
            let mut col = 0;
            // SAFETY: columns col..col + 16 NV < tb of rows r0..r0 + 8 < rows; V rows of tb.
            unsafe {
                while col + 32 <= tb {
                    gemm_tile::<2>(c, a.as_ptr(), vp.add(col), tb, mp.add(r0 * tb + col), tb);
                    col += 32;
                }
                if col < tb {
                    gemm_tile::<1>(c, a.as_ptr(), vp.add(col), tb, mp.add(r0 * tb + col), tb);
                }
            }
        }
    }
}

/// y for output channels o0..o1 of tiles t0..t0 + tb from M: A^T M A, then the epilogue,
/// stored to the valid outputs of each tile.
///
/// # Safety
/// AVX-512F; m as written by [`gemms`] for the same o0, o1, tb; y valid for the whole output
/// [N, O, HO, WO], these (tile, channel) outputs written by no other thread meanwhile.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn output_transform(
    m: &[f32],
    g: &ConvGeom,
    tiles: &Tiles,
    t0: usize,
    tb: usize,
    (o0, o1): (usize, usize),
    y: *mut f32,
    e: &Epilogue,
) {
    use std::arch::x86_64::*;
    let rows = (o1 - o0).div_ceil(MR) * MR;
    assert!(tb.is_multiple_of(LANES) && t0 + tb <= tiles.oy.len() && m.len() >= POINTS * rows * tb);
    let yplane = (g.ho * g.wo) as i32;
    if let Some(r) = e.residual {
        assert!(r.len() >= g.n * g.o * g.ho * g.wo);
    }
    if let Some(b) = e.bias {
        assert!(b.len() >= o1);
    }
    let (ho, wo) = (
        _mm512_set1_epi32(g.ho as i32),
        _mm512_set1_epi32(g.wo as i32),
    );
    for l0 in (0..tb).step_by(LANES) {
        // SAFETY: table loads and M loads are within the asserted lengths; every residual
        // gather and output scatter lane is masked to an output inside the map.
        unsafe {
            let ld = |a: &Vec<i32>| _mm512_loadu_si512(a.as_ptr().add(t0 + l0) as *const _);
            let (oy, ox, base) = (ld(&tiles.oy), ld(&tiles.ox), ld(&tiles.out_base));
            let zero = _mm512_setzero_si512();
            let inside = |p: __m512i, lim: __m512i| {
                _mm512_cmpge_epi32_mask(p, zero) & _mm512_cmplt_epi32_mask(p, lim)
            };
            let rows_ok: [u16; TILE] = std::array::from_fn(|i| {
                inside(_mm512_add_epi32(oy, _mm512_set1_epi32(i as i32)), ho)
            });
            let cols_ok: [u16; TILE] = std::array::from_fn(|j| {
                inside(_mm512_add_epi32(ox, _mm512_set1_epi32(j as i32)), wo)
            });
            for o in o0..o1 {
                let mrow = m.as_ptr().add((o - o0) * tb + l0);
                // s[xi][j] = sum_nu AT[j][nu] M[xi][nu].
                let s: [[__m512; TILE]; ALPHA] = std::array::from_fn(|xi| {
                    let mx: [__m512; ALPHA] = std::array::from_fn(|nu| {
                        _mm512_loadu_ps(mrow.add((xi * ALPHA + nu) * rows * tb))
                    });
                    combine(&AT, &mx)
                });
                let obase = _mm512_add_epi32(base, _mm512_set1_epi32(o as i32 * yplane));
                let bias = e.bias.map(|b| _mm512_set1_ps(b[o]));
                for j in 0..TILE {
                    let col: [__m512; ALPHA] = std::array::from_fn(|xi| s[xi][j]);
                    for (i, mut val) in combine(&AT, &col).into_iter().enumerate() {
                        let mask = rows_ok[i] & cols_ok[j];
                        let off = _mm512_add_epi32(
                            obase,
                            _mm512_set1_epi32(i as i32 * g.wo as i32 + j as i32),
                        );
                        if let Some(b) = bias {
                            val = _mm512_add_ps(val, b);
                        }
                        if let Some(r) = e.residual {
                            let rv = _mm512_mask_i32gather_ps::<4>(
                                _mm512_setzero_ps(),
                                mask,
                                off,
                                r.as_ptr(),
                            );
                            val = _mm512_add_ps(val, rv);
                        }
                        if e.relu {
                            val = _mm512_max_ps(val, _mm512_setzero_ps());
                        }
                        _mm512_mask_i32scatter_ps::<4>(y, mask, off, val);
                    }
                }
            }
        }
    }
}
