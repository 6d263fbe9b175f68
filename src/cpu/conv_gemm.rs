//! Convolution as a GEMM with our own AVX-512 micro-kernel (x86_64 with avx512f; other CPUs use
//! the `gemm` crate path in `ops/conv2d/cpu.rs`).
//!
//! Per image, Y[O, HO*WO] = W[O, C*KH*KW] x B[C*KH*KW, HO*WO], where B is the im2col matrix.
//! B is never materialised: it is packed straight from the image into NR-column micro-panels,
//! one KC-deep block at a time (implicit im2col). The weights are packed once per call into
//! MR-row micro-panels shared by all threads. The micro-kernel keeps an MR x NR tile of Y in
//! 16 zmm registers across the KC loop and applies the epilogue (bias, residual, ReLU) when it
//! stores the last K block, so Y is written once more at most per K block and never re-read
//! for the epilogue.
//!
//! Tiles are 8 x 32 or, for feature maps of at least 512 positions, 8 x 48 (fewer B loads per
//! FMA; measured ~2-3% faster end to end on Zen 5).
//!
//! Two loop orders, by map size (Zen 4/5 and Xeon: 48 KiB L1d, 1-2 MiB L2 per core): small maps
//! keep a B micro-panel (KC x NR x 4 B = 32 KiB) in L1 while the MR-row A panels stream from
//! L2 ([`small_map`]); large maps keep an A micro-panel in L1 while an L2-sized block of B
//! panels streams past it, so the output is written in long sequential runs ([`wide_map`]).

use crate::ops::conv2d::ConvGeom;

pub const MR: usize = 8;
pub const NR: usize = 32;
pub const KC: usize = 256;
/// A multiple of MR, so MC blocks start on packed-panel boundaries.
pub const MC: usize = MR * (128 / MR);

/// The epilogue of one image's output, applied on the last K block.
#[derive(Clone, Copy)]
pub struct Epi<'a> {
    pub bias: Option<&'a [f32]>,
    /// The residual for this image, laid out like the output [O, HO*WO].
    pub residual: Option<&'a [f32]>,
    pub relu: bool,
}

/// Whether the AVX-512 path runs: the CPU has it and `SKINENGINE_CPU_LEVEL` does not forbid it
/// ([`super::simd::level`]); otherwise convolutions go through the `gemm` crate.
pub fn available() -> bool {
    super::simd::avx512()
}

/// Weights W [M, K] packed as K blocks of KC, each a run of MR-row panels stored k-major
/// ([kc][MR]), rows past M zero.
pub struct PackedA {
    data: Vec<f32>,
    m: usize,
    k: usize,
}

impl PackedA {
    pub fn pack(w: &[f32], m: usize, k: usize) -> Self {
        let mp = m.div_ceil(MR) * MR;
        let mut data = vec![0.0f32; mp * k];
        let mut off = 0;
        for k0 in (0..k).step_by(KC) {
            let kc = KC.min(k - k0);
            for r0 in (0..m).step_by(MR) {
                for kk in 0..kc {
                    for r in 0..MR.min(m - r0) {
                        data[off + kk * MR + r] = w[(r0 + r) * k + k0 + kk];
                    }
                }
                off += kc * MR;
            }
        }
        PackedA { data, m, k }
    }

    /// Memory held by the packed matrix.
    pub fn bytes(&self) -> usize {
        self.data.len() * 4
    }

    /// The panel of rows r0.. in the K block starting at k0.
    fn panel(&self, k0: usize, r0: usize) -> &[f32] {
        let mp = self.m.div_ceil(MR) * MR;
        let kc = KC.min(self.k - k0);
        let start = k0 * mp + (r0 / MR) * kc * MR;
        &self.data[start..start + kc * MR]
    }
}

/// For each kernel tap (ki, kj) and output column, the offset of the input pixel that
/// B[(c, ki, kj), column] reads relative to channel plane c of the first image, or -1 where the
/// window is in the padding. A table for one image has HO*WO columns; a table for a group of
/// images ([`TapTable::grouped`]) has their columns side by side (image i's at i*HO*WO), its
/// offsets including the image's distance from the first (i*C*H*W), so one GEMM covers the
/// group. The same for every channel, so it is built once per convolution call.
pub struct TapTable {
    idx: Vec<i32>,
    /// Columns per tap (row length of `idx`).
    cols: usize,
}

impl TapTable {
    pub fn new(g: &ConvGeom) -> Self {
        Self::grouped(g, 1)
    }

    /// The table for `images` consecutive images of an NCHW batch.
    pub fn grouped(g: &ConvGeom, images: usize) -> Self {
        let (n, image) = (g.ho * g.wo, g.c * g.h * g.w);
        assert!(
            images * image <= i32::MAX as usize,
            "grouped tap offsets overflow i32"
        );
        let mut idx = Vec::with_capacity(g.kh * g.kw * n * images);
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                for im in 0..images {
                    for i in 0..g.ho {
                        let hi = (i * g.sh + ki) as isize - g.ph as isize;
                        for j in 0..g.wo {
                            let wi = (j * g.sw + kj) as isize - g.pw as isize;
                            let inside =
                                hi >= 0 && (hi as usize) < g.h && wi >= 0 && (wi as usize) < g.w;
                            idx.push(if inside {
                                (im * image + hi as usize * g.w + wi as usize) as i32
                            } else {
                                -1
                            });
                        }
                    }
                }
            }
        }
        TapTable {
            idx,
            cols: n * images,
        }
    }

    /// Columns per tap: HO*WO times the number of images.
    pub fn cols(&self) -> usize {
        self.cols
    }
}

/// Packs B[k0..k0+kc, cols] of the implicit im2col matrix into NR-wide micro-panels
/// ([panel][kc][NR]) with masked AVX-512 gathers through the tap table; padding and columns past
/// the end become zeros.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
fn pack_b(
    nr: usize,
    x: &[f32],
    g: &ConvGeom,
    taps: &TapTable,
    k0: usize,
    kc: usize,
    cols: std::ops::Range<usize>,
    dst: &mut [f32],
) {
    use std::arch::x86_64::*;
    let (khw, plane, n) = (g.kh * g.kw, g.h * g.w, taps.cols);
    let images = n / (g.ho * g.wo);
    assert!(x.len() >= images * g.c * plane && taps.idx.len() == khw * n && cols.end <= n);
    assert!(dst.len() >= cols.len().div_ceil(nr) * kc * nr && k0 + kc <= g.c * khw);
    let zero_i = _mm512_setzero_si512();
    for (p, n0) in cols.clone().step_by(nr).enumerate() {
        let width = nr.min(cols.end - n0);
        for kk in 0..kc {
            let (c, tap) = ((k0 + kk) / khw, (k0 + kk) % khw);
            let out = &mut dst[(p * kc + kk) * nr..(p * kc + kk + 1) * nr];
            for h in 0..nr / 16 {
                let m = super::simd::lane_mask(width, h);
                // SAFETY: the asserts bound the table reads (masked to the panel's columns) and
                // the plane; gathered offsets are valid pixel offsets (>= 0 lanes only) within
                // plane c; `out` holds nr floats.
                unsafe {
                    let it = taps.idx.as_ptr().add(tap * n + n0 + 16 * h);
                    let vi = _mm512_maskz_loadu_epi32(m, it);
                    let live = m & _mm512_cmpge_epi32_mask(vi, zero_i);
                    let base = x.as_ptr().add(c * plane);
                    let v = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), live, vi, base);
                    _mm512_storeu_ps(out.as_mut_ptr().add(16 * h), v);
                }
            }
        }
    }
}

/// Packs rows k0..k0+kc, columns `cols` of a row-major [K, n] matrix into NR-wide micro-panels
/// ([panel][kc][NR]), zero past the last column.
fn pack_b_rows(
    nr: usize,
    x: &[f32],
    n: usize,
    k0: usize,
    kc: usize,
    cols: std::ops::Range<usize>,
    dst: &mut [f32],
) {
    for (p, n0) in cols.clone().step_by(nr).enumerate() {
        let width = nr.min(cols.end - n0);
        for kk in 0..kc {
            let out = &mut dst[(p * kc + kk) * nr..(p * kc + kk + 1) * nr];
            let src = &x[(k0 + kk) * n + n0..][..width];
            out[..width].copy_from_slice(src);
            out[width..].fill(0.0);
        }
    }
}

/// Y[rows, cols] for one image. `y` points at the image's output [M, N] row-major; `rows`
/// must start at a multiple of MR.
///
/// # Safety
/// The CPU must support AVX-512F; `y` must be valid for writes of M*N floats, and no other
/// thread may touch columns `cols` of it during the call.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn conv_image(
    x: &[f32],
    g: &ConvGeom,
    a: &PackedA,
    taps: Option<&TapTable>,
    y: *mut f32,
    epi: Epi,
    cols: std::ops::Range<usize>,
    rows: std::ops::Range<usize>,
) {
    // Wide tiles (3 vectors) load fewer B values per FMA; narrow ones waste less on the ragged
    // last panel of small feature maps (7x7 = 49 columns).
    // SAFETY: forwarded from the caller.
    unsafe {
        if cols.len() >= WIDE_FROM {
            wide_map::<3>(x, g, a, taps, y, epi, cols, rows)
        } else {
            small_map::<2>(x, g, a, taps, y, g.ho * g.wo, epi, cols, rows)
        }
    }
}

/// Y[rows, cols] of a group of images as one GEMM: `taps` is a [`TapTable::grouped`] table
/// (pointwise convolutions too), `x` starts at the group's first image, and `y` is the group's
/// output as one matrix [O, taps.cols()] (image i in columns i*HO*WO..), without epilogue.
/// For small maps (7x7 is 49 columns, 14x14 196): one image's columns leave the last 32-wide
/// tile a third or a half empty, a group's fill it.
///
/// # Safety
/// As [`conv_image`], with `y` valid for O * taps.cols() floats.
#[cfg(target_arch = "x86_64")]
pub unsafe fn conv_group(
    x: &[f32],
    g: &ConvGeom,
    a: &PackedA,
    taps: &TapTable,
    y: *mut f32,
    rows: std::ops::Range<usize>,
) {
    let none = Epi {
        bias: None,
        residual: None,
        relu: false,
    };
    let cols = 0..taps.cols();
    // SAFETY: forwarded from the caller; the table covers every column.
    unsafe { small_map::<2>(x, g, a, Some(taps), y, taps.cols(), none, cols, rows) }
}

/// Calls with at least this many output columns take [`wide_map`]'s loop order and 48-wide
/// tiles, smaller ones [`small_map`]'s and 32-wide tiles.
pub const WIDE_FROM: usize = 512;

/// Large feature maps (56x56, 28x28 and the stem's 112x112 per image): the output, several MB
/// per image, is what costs. Columns go in blocks whose packed B fits in L2; within a block,
/// one MR-row A micro-panel stays in L1 while the block's B panels stream past it, so the
/// tiles of a row panel are adjacent in Y and its stores run as MR sequential streams (the
/// other order, B panel fixed and rows varying, writes 48-float pieces of up to 128 rows at
/// once, more streams than the prefetchers follow: measured 1.2-1.7x slower on the 56x56
/// layers of ResNet50, single thread, Xeon with AVX-512). K blocks run inside a column block so
/// its slice of Y is still in L2 when the next K block adds to it. Pointwise convolutions pack
/// B too (a copy), rather than reading 48-float pieces of C rows in place.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn wide_map<const NV: usize>(
    x: &[f32],
    g: &ConvGeom,
    a: &PackedA,
    taps: Option<&TapTable>,
    y: *mut f32,
    epi: Epi,
    cols: std::ops::Range<usize>,
    rows: std::ops::Range<usize>,
) {
    let (m, k, n) = (g.o, g.c * g.kh * g.kw, g.ho * g.wo);
    let nr = 16 * NV;
    // Columns per block: a KC-deep block of packed B for them is at most B_BLOCK_BYTES.
    let block_panels = (B_BLOCK_BYTES / (KC * nr * 4)).max(1);
    let block_cols = block_panels * nr;
    let scratch = KC * block_panels.min(cols.len().div_ceil(nr)) * nr;
    crate::cpu::scratch::with_scratch(scratch, |bbuf| {
        for c0 in cols.clone().step_by(block_cols) {
            let bcols = c0..(c0 + block_cols).min(cols.end);
            for k0 in (0..k).step_by(KC) {
                let kc = KC.min(k - k0);
                match taps {
                    // SAFETY: the caller guarantees AVX-512F.
                    Some(t) => unsafe { pack_b(nr, x, g, t, k0, kc, bcols.clone(), bbuf) },
                    None => pack_b_rows(nr, x, n, k0, kc, bcols.clone(), bbuf),
                }
                let (first, last) = (k0 == 0, k0 + kc == k);
                // One MR-row A micro-panel (kc x MR x 4 B <= 8 KiB) stays in L1 while the
                // block's B panels stream from L2; the tiles of one row panel are adjacent in
                // Y, so its stores run as MR sequential streams.
                for r0 in rows.clone().step_by(MR) {
                    let rows = MR.min(m - r0);
                    let ap = a.panel(k0, r0);
                    for (p, n0) in bcols.clone().step_by(nr).enumerate() {
                        let width = nr.min(bcols.end - n0);
                        let bp = bbuf[p * kc * nr..(p + 1) * kc * nr].as_ptr();
                        // SAFETY: tile rows r0..r0+rows, columns n0..n0+width lie inside Y and
                        // inside this call's column range; the caller guarantees AVX-512F.
                        unsafe {
                            kernel::<NV, false, true>(
                                kc,
                                ap.as_ptr(),
                                bp,
                                nr,
                                y.add(r0 * n + n0),
                                n,
                                rows,
                                width,
                                !first,
                                last.then_some(TileEpi {
                                    bias: epi.bias.map(|b| &b[r0..r0 + rows]),
                                    residual: epi.residual.map(|r| r[r0 * n + n0..].as_ptr()),
                                    relu: epi.relu,
                                }),
                            );
                        }
                    }
                }
            }
        }
    });
}

/// Bytes of packed B one column block holds (half of a 1-2 MiB L2, leaving room for the
/// block's slice of Y).
const B_BLOCK_BYTES: usize = 512 << 10;

/// Small feature maps (14x14, 7x7 per image: a few panels of columns, deep K, weights of MBs):
/// each B micro-panel stays in L1 while MC rows of packed weights stream from L2 past it.
/// Measured 3-10% faster than [`wide_map`]'s order on these layers.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn small_map<const NV: usize>(
    x: &[f32],
    g: &ConvGeom,
    a: &PackedA,
    taps: Option<&TapTable>,
    y: *mut f32,
    n: usize,
    epi: Epi,
    cols: std::ops::Range<usize>,
    rows: std::ops::Range<usize>,
) {
    let (m, k) = (g.o, g.c * g.kh * g.kw);
    let nr = 16 * NV;
    let panels = (cols.end - cols.start).div_ceil(nr);
    let pointwise = taps.is_none();
    let scratch = if pointwise { 0 } else { KC * panels * nr };
    crate::cpu::scratch::with_scratch(scratch, |bbuf| {
        for k0 in (0..k).step_by(KC) {
            let kc = KC.min(k - k0);
            // A pointwise convolution's B is the image itself ([C, HW] row-major): the kernel
            // reads it in place (row stride HW), saving a full copy per K block.
            if let Some(t) = taps {
                // SAFETY: the caller guarantees AVX-512F.
                unsafe { pack_b(nr, x, g, t, k0, kc, cols.clone(), bbuf) };
            }
            let (first, last) = (k0 == 0, k0 + kc == k);
            // MC rows of packed weights (MC x KC x 4 B = 128 KiB) stay in L2 while every B
            // micro-panel of the block passes through L1.
            for m0 in rows.clone().step_by(MC) {
                for (p, n0) in cols.clone().step_by(nr).enumerate() {
                    let width = nr.min(cols.end - n0);
                    let (bp, ldb) = if pointwise {
                        (x[k0 * n + n0..].as_ptr(), n)
                    } else {
                        (bbuf[p * kc * nr..(p + 1) * kc * nr].as_ptr(), nr)
                    };
                    for r0 in (m0..rows.end.min(m0 + MC)).step_by(MR) {
                        let rows = MR.min(m - r0);
                        let ap = a.panel(k0, r0);
                        // SAFETY: tile rows r0..r0+rows, columns n0..n0+width lie inside Y and
                        // inside this call's column range; the caller guarantees AVX-512F.
                        // A's panel comes from L2 (prefetched); B is in L1 when packed,
                        // read in place from the image (prefetched) when pointwise.
                        let f = if pointwise {
                            kernel::<NV, true, true>
                        } else {
                            kernel::<NV, true, false>
                        };
                        unsafe {
                            f(
                                kc,
                                ap.as_ptr(),
                                bp,
                                ldb,
                                y.add(r0 * n + n0),
                                n,
                                rows,
                                width,
                                !first,
                                last.then_some(TileEpi {
                                    bias: epi.bias.map(|b| &b[r0..r0 + rows]),
                                    residual: epi.residual.map(|r| r[r0 * n + n0..].as_ptr()),
                                    relu: epi.relu,
                                }),
                            );
                        }
                    }
                }
            }
        }
    });
}

/// How far ahead (in K rows) the micro-kernel prefetches its operands. A streaming-B probe on
/// the Xeon (8x32 and 8x48 tiles, a 512 KiB block of B panels in L2, one A panel): 156-169 ->
/// 182-186 GFLOP/s with 4 or 8 rows (8 marginally better for 48-wide tiles); with B in L1 the
/// kernel ran at 186-193 either way.
const PREFETCH_ROWS: usize = 8;

struct TileEpi<'a> {
    bias: Option<&'a [f32]>,
    /// Residual at the tile's top-left element, row stride = ldc.
    residual: Option<*const f32>,
    relu: bool,
}

/// C[0..rows, 0..width] (+)= A_panel (MR x kc, k-major) x B (kc rows of `width` <= NR columns,
/// row stride `ldb`), then the epilogue. B loads are masked to `width`, so B may be the last
/// columns of a matrix.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel<const NV: usize, const PREFETCH_A: bool, const PREFETCH_B: bool>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    width: usize,
    accumulate: bool,
    epi: Option<TileEpi>,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    let masks: [__mmask16; NV] = std::array::from_fn(|v| super::simd::lane_mask(width, v));
    // SAFETY (whole body): a holds kc*MR floats; B rows hold `width` valid floats at stride ldb
    // and every load is masked to them; C accesses are masked to `width` columns and limited to
    // `rows` rows, all inside the caller's tile.
    unsafe {
        for kk in 0..kc {
            let bk = b.add(kk * ldb);
            // Software prefetch PREFETCH_ROWS rows ahead of the operand that streams from L2:
            // B in wide_map's order (and read in place for pointwise small maps), A's panel in
            // small_map's; the hardware prefetchers alone left the kernel waiting on them.
            // Prefetches never fault, so rows past the panel's end are harmless.
            if PREFETCH_B {
                for v in 0..NV {
                    let ahead = bk.wrapping_add(PREFETCH_ROWS * ldb + 16 * v);
                    _mm_prefetch::<_MM_HINT_T0>(ahead as *const i8);
                }
            }
            if PREFETCH_A {
                let ahead = a.wrapping_add((kk + PREFETCH_ROWS) * MR);
                _mm_prefetch::<_MM_HINT_T0>(ahead as *const i8);
            }
            let bv: [__m512; NV] =
                std::array::from_fn(|v| _mm512_maskz_loadu_ps(masks[v], bk.add(16 * v)));
            let ak = a.add(kk * MR);
            for (r, accr) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*ak.add(r));
                for v in 0..NV {
                    accr[v] = _mm512_fmadd_ps(av, bv[v], accr[v]);
                }
            }
        }
        for (r, accr) in acc.iter().enumerate().take(rows) {
            let crow = c.add(r * ldc);
            for h in 0..NV {
                let mut v = accr[h];
                let p = crow.add(16 * h);
                if accumulate {
                    v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(masks[h], p));
                }
                if let Some(e) = &epi {
                    if let Some(bias) = e.bias {
                        v = _mm512_add_ps(v, _mm512_set1_ps(bias[r]));
                    }
                    if let Some(res) = e.residual {
                        v = _mm512_add_ps(
                            v,
                            _mm512_maskz_loadu_ps(masks[h], res.add(r * ldc + 16 * h)),
                        );
                    }
                    if e.relu {
                        v = _mm512_max_ps(v, _mm512_setzero_ps());
                    }
                }
                _mm512_mask_storeu_ps(p, masks[h], v);
            }
        }
    }
}
