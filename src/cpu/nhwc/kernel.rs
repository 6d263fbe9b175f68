//! The channels-last micro-kernel: an MR-pixel x 64-channel tile of Y[P, O] in 24 zmm registers.
//!
//! Each K step broadcasts one input value of each of the MR pixels (rows of the NHWC input,
//! reached through per-row pointers: no packing, padding taps point at a zero row) and loads
//! one 64-wide row of the packed weights, 4 vectors: 10 loads for 24 FMAs. Output channels are
//! the vector dimension, so a tile stores whole 64-byte lines of the NHWC output and a 7x7 map
//! (49 pixels) wastes no lanes, which is where the NCHW kernel (pixels in the vectors) lost.

/// Output pixels per tile.
pub const MR: usize = 6;
/// Output channels per weight panel (4 zmm vectors).
pub const NB: usize = 64;
const NV: usize = NB / 16;

/// How far ahead (in K rows of the weight panel) the kernel prefetches the panel, which
/// streams from L2 (the direct kernel's measured choice, `cpu::conv_gemm`).
const PREFETCH_ROWS: usize = 8;

/// One piece of a tile's K block: the MR rows' input pointers (already at the piece's first
/// channel) and how many consecutive floats each row contributes.
#[derive(Clone, Copy)]
pub struct Piece {
    pub rows: [*const f32; MR],
    pub len: usize,
}

/// The epilogue applied when the last K block is stored.
pub struct TileEpi {
    /// Bias at the panel's first channel.
    pub bias: Option<*const f32>,
    /// Residual at the tile's first pixel and the panel's first channel (row stride = ldy).
    pub residual: Option<*const f32>,
    pub relu: bool,
}

/// Y[0..rows, 0..width] (+)= sum over the pieces of A_piece x B, then the epilogue if given.
/// `b` is the weight panel at the block's first K row ([k][NB], rows consecutive, as many as
/// the pieces' lengths add up to); `y` the tile's first pixel at the panel's first channel,
/// row stride `ldy`. With `accumulate`, Y's current values are added (earlier K blocks).
///
/// # Safety
/// AVX-512F; every row pointer valid for `len` floats of its piece; `b` valid for the block's
/// K rows of NB floats (plus nothing: prefetches never fault); `y` (and the residual) valid
/// for `rows` rows of `width` floats at stride `ldy`; bias valid for `width` floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn tile(
    pieces: &[Piece],
    b: *const f32,
    y: *mut f32,
    ldy: usize,
    rows: usize,
    width: usize,
    accumulate: bool,
    epi: Option<&TileEpi>,
) {
    // A ragged last tile computes only its own rows: a 7x7 map at batch 1 is 8 tiles of 6
    // pixels and one of 1, which the 6-row tile would compute 6 times over (9% of the layer).
    // Each row's sums are the same whatever R is, so results do not change.
    // SAFETY: the caller's contract, passed on; R = rows <= MR.
    unsafe {
        match rows {
            MR => tile_r::<MR>(pieces, b, y, ldy, width, accumulate, epi),
            5 => tile_r::<5>(pieces, b, y, ldy, width, accumulate, epi),
            4 => tile_r::<4>(pieces, b, y, ldy, width, accumulate, epi),
            3 => tile_r::<3>(pieces, b, y, ldy, width, accumulate, epi),
            2 => tile_r::<2>(pieces, b, y, ldy, width, accumulate, epi),
            1 => tile_r::<1>(pieces, b, y, ldy, width, accumulate, epi),
            _ => panic!("a tile has 1 to {MR} rows, not {rows}"),
        }
    }
}

/// [`tile`] with exactly R rows (the first R of each piece's row pointers).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile_r<const R: usize>(
    pieces: &[Piece],
    b: *const f32,
    y: *mut f32,
    ldy: usize,
    width: usize,
    accumulate: bool,
    epi: Option<&TileEpi>,
) {
    use std::arch::x86_64::*;
    let masks: [__mmask16; NV] = std::array::from_fn(|v| crate::cpu::simd::lane_mask(width, v));
    let mut acc = [[_mm512_setzero_ps(); NV]; R];
    // SAFETY (whole body): the caller's contract above; loads and stores of Y are masked to
    // `width` channels and limited to the R rows. Addresses of the vectors past `width` (empty
    // masks, never touched) are formed with wrapping_add: past the last pixel of Y they would
    // leave the allocation, which `add` must not.
    unsafe {
        if accumulate {
            for (r, accr) in acc.iter_mut().enumerate() {
                for (v, a) in accr.iter_mut().enumerate() {
                    *a = _mm512_maskz_loadu_ps(masks[v], y.wrapping_add(r * ldy + 16 * v));
                }
            }
        }
        let mut bp = b;
        for piece in pieces {
            let p = piece.rows;
            for c in 0..piece.len {
                for v in 0..NV {
                    let ahead = bp.wrapping_add(PREFETCH_ROWS * NB + 16 * v);
                    _mm_prefetch::<_MM_HINT_T0>(ahead as *const i8);
                }
                let bv: [__m512; NV] = std::array::from_fn(|v| _mm512_loadu_ps(bp.add(16 * v)));
                for (r, accr) in acc.iter_mut().enumerate() {
                    let a = _mm512_set1_ps(*p[r].add(c));
                    for v in 0..NV {
                        accr[v] = _mm512_fmadd_ps(a, bv[v], accr[v]);
                    }
                }
                bp = bp.add(NB);
            }
        }
        // The epilogue in small passes over the tile, each one small enough for LLVM to unroll
        // whole. One loop doing everything per element sits at the unroll limit: with one more
        // branch in it (a streaming-store variant, tried 2026-12-08) it stayed rolled, indexed
        // `acc` at run time, and that moved the accumulators to the stack inside the K loop
        // too: the layers ran 2.5x slower.
        if let Some(e) = epi {
            if let Some(bias) = e.bias {
                let bv: [__m512; NV] = std::array::from_fn(|v| {
                    _mm512_maskz_loadu_ps(masks[v], bias.wrapping_add(16 * v))
                });
                for accr in acc.iter_mut() {
                    for (a, &b) in accr.iter_mut().zip(&bv) {
                        *a = _mm512_add_ps(*a, b);
                    }
                }
            }
            if let Some(res) = e.residual {
                for (r, accr) in acc.iter_mut().enumerate() {
                    for (v, a) in accr.iter_mut().enumerate() {
                        let rv =
                            _mm512_maskz_loadu_ps(masks[v], res.wrapping_add(r * ldy + 16 * v));
                        *a = _mm512_add_ps(*a, rv);
                    }
                }
            }
            if e.relu {
                for accr in acc.iter_mut() {
                    for a in accr.iter_mut() {
                        *a = _mm512_max_ps(*a, _mm512_setzero_ps());
                    }
                }
            }
        }
        for (r, accr) in acc.iter().enumerate() {
            for (v, &a) in accr.iter().enumerate() {
                _mm512_mask_storeu_ps(y.wrapping_add(r * ldy + 16 * v), masks[v], a);
            }
        }
    }
}
