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
//! Blocking for Zen 4/5 (48 KiB L1d, 1-2 MiB L2 per core): a B micro-panel is KC x NR x 4 B =
//! 32 KiB and stays in L1 while the MR-row A panels stream from L2.

use crate::ops::conv2d::ConvGeom;

pub const MR: usize = 8;
pub const NR: usize = 32;
pub const KC: usize = 256;
pub const MC: usize = 128;

/// The epilogue of one image's output, applied on the last K block.
#[derive(Clone, Copy)]
pub struct Epi<'a> {
    pub bias: Option<&'a [f32]>,
    /// The residual for this image, laid out like the output [O, HO*WO].
    pub residual: Option<&'a [f32]>,
    pub relu: bool,
}

/// Whether this CPU can run the AVX-512 path.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
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

    /// The panel of rows r0.. in the K block starting at k0.
    fn panel(&self, k0: usize, r0: usize) -> &[f32] {
        let mp = self.m.div_ceil(MR) * MR;
        let kc = KC.min(self.k - k0);
        let start = k0 * mp + (r0 / MR) * kc * MR;
        &self.data[start..start + kc * MR]
    }
}

/// Writes B[k, n0..n0+out.len()] of the implicit im2col matrix of image `x` into `out`.
/// Columns run along output rows; each output-row segment maps to one input row, so the copy is
/// contiguous (stride 1) or a strided gather, with zeros where the window hits padding.
fn conv_row(x: &[f32], g: &ConvGeom, k: usize, n0: usize, out: &mut [f32]) {
    let khw = g.kh * g.kw;
    let (c, r) = (k / khw, k % khw);
    let (ki, kj) = (r / g.kw, r % g.kw);
    let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
    let (mut i, mut j) = (n0 / g.wo, n0 % g.wo);
    let mut pos = 0;
    while pos < out.len() {
        let seg = (g.wo - j).min(out.len() - pos);
        let dst = &mut out[pos..pos + seg];
        let hi = (i * g.sh + ki) as isize - g.ph as isize;
        if hi < 0 || hi as usize >= g.h {
            dst.fill(0.0);
        } else {
            let row = &plane[hi as usize * g.w..(hi as usize + 1) * g.w];
            // Input column of segment element t is wi0 + t * sw; keep the t inside [0, W).
            let sw = g.sw as isize;
            let wi0 = (j * g.sw + kj) as isize - g.pw as isize;
            let t_lo = if wi0 < 0 {
                ((-wi0 + sw - 1) / sw) as usize
            } else {
                0
            }
            .min(seg);
            let t_hi = if wi0 >= g.w as isize {
                0
            } else {
                ((g.w as isize - 1 - wi0) / sw + 1) as usize
            }
            .clamp(t_lo, seg);
            dst[..t_lo].fill(0.0);
            dst[t_hi..].fill(0.0);
            let start = (wi0 + t_lo as isize * sw) as usize;
            if g.sw == 1 {
                dst[t_lo..t_hi].copy_from_slice(&row[start..start + (t_hi - t_lo)]);
            } else {
                for (d, v) in dst[t_lo..t_hi]
                    .iter_mut()
                    .zip(row[start..].iter().step_by(g.sw))
                {
                    *d = *v;
                }
            }
        }
        pos += seg;
        i += 1;
        j = 0;
    }
}

/// Packs B[k0..k0+kc, cols] into NR-wide micro-panels ([panel][kc][NR]), columns past the end
/// zero.
fn pack_b(
    x: &[f32],
    g: &ConvGeom,
    k0: usize,
    kc: usize,
    cols: std::ops::Range<usize>,
    dst: &mut [f32],
) {
    let pointwise = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0;
    let n = g.ho * g.wo;
    for (p, n0) in cols.clone().step_by(NR).enumerate() {
        let width = NR.min(cols.end - n0);
        let panel = &mut dst[p * kc * NR..(p + 1) * kc * NR];
        for kk in 0..kc {
            let out = &mut panel[kk * NR..(kk + 1) * NR];
            if pointwise {
                // Row k of B is channel k of the image.
                out[..width].copy_from_slice(&x[(k0 + kk) * n + n0..(k0 + kk) * n + n0 + width]);
            } else {
                conv_row(x, g, k0 + kk, n0, &mut out[..width]);
            }
            out[width..].fill(0.0);
        }
    }
}

/// Y[:, cols] for one image. `y` points at the image's output [M, N] row-major.
///
/// # Safety
/// The CPU must support AVX-512F; `y` must be valid for writes of M*N floats, and no other
/// thread may touch columns `cols` of it during the call.
#[cfg(target_arch = "x86_64")]
pub unsafe fn conv_image(
    x: &[f32],
    g: &ConvGeom,
    a: &PackedA,
    y: *mut f32,
    epi: Epi,
    cols: std::ops::Range<usize>,
) {
    let (m, k, n) = (g.o, g.c * g.kh * g.kw, g.ho * g.wo);
    let panels = (cols.end - cols.start).div_ceil(NR);
    crate::cpu::scratch::with_scratch(KC * panels * NR, |bbuf| {
        for k0 in (0..k).step_by(KC) {
            let kc = KC.min(k - k0);
            pack_b(x, g, k0, kc, cols.clone(), bbuf);
            let (first, last) = (k0 == 0, k0 + kc == k);
            // MC rows of packed weights (MC x KC x 4 B = 128 KiB) stay in L2 while every B
            // micro-panel of the block passes through L1.
            for m0 in (0..m).step_by(MC) {
                for (p, n0) in cols.clone().step_by(NR).enumerate() {
                    let width = NR.min(cols.end - n0);
                    let bp = &bbuf[p * kc * NR..(p + 1) * kc * NR];
                    for r0 in (m0..m.min(m0 + MC)).step_by(MR) {
                        let rows = MR.min(m - r0);
                        let ap = a.panel(k0, r0);
                        // SAFETY: tile rows r0..r0+rows, columns n0..n0+width lie inside Y and
                        // inside this call's column range; the caller guarantees AVX-512F.
                        unsafe {
                            kernel_8x32(
                                kc,
                                ap.as_ptr(),
                                bp.as_ptr(),
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

struct TileEpi<'a> {
    bias: Option<&'a [f32]>,
    /// Residual at the tile's top-left element, row stride = ldc.
    residual: Option<*const f32>,
    relu: bool,
}

/// C[0..rows, 0..width] (+)= A_panel (MR x kc, k-major) x B_panel (kc x NR), then the epilogue.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel_8x32(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    width: usize,
    accumulate: bool,
    epi: Option<TileEpi>,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    // SAFETY (whole body): a holds kc*MR floats, b kc*NR floats; C accesses are masked to
    // `width` columns and limited to `rows` rows, all inside the caller's tile.
    unsafe {
        for kk in 0..kc {
            let b0 = _mm512_loadu_ps(b.add(kk * NR));
            let b1 = _mm512_loadu_ps(b.add(kk * NR + 16));
            let ak = a.add(kk * MR);
            for (r, accr) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*ak.add(r));
                accr[0] = _mm512_fmadd_ps(av, b0, accr[0]);
                accr[1] = _mm512_fmadd_ps(av, b1, accr[1]);
            }
        }
        let m0: __mmask16 = if width >= 16 {
            0xFFFF
        } else {
            (1u32 << width) as u16 - 1
        };
        let m1: __mmask16 = if width >= 32 {
            0xFFFF
        } else if width > 16 {
            (1u32 << (width - 16)) as u16 - 1
        } else {
            0
        };
        let masks = [m0, m1];
        for (r, accr) in acc.iter().enumerate().take(rows) {
            let crow = c.add(r * ldc);
            for h in 0..2 {
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
