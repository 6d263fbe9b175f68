//! Checks of the tensor-core layer: the emulated instructions of `tensor_core.cuh` one by one
//! (`tc_selftest.cu`, one warp each: mma fragment layouts, ldmatrix, cp.async groups, the
//! conversions bit for bit) and the tensor-core GEMM (`gemm_tc.cu` via [`gemm_with`]) against
//! f64 references with derived bounds. Each runs on the emulator in `cargo test`; the GPU
//! instance (ignored here) holds the hardware to the same answers.

use half::{bf16, f16};

use super::gemm::Mat;
use super::gemm_tc::{Precision, gemm_with};
use super::{Arg, CudaBackend, Dims};
use crate::Rng;

/// cvt.rna.tf32.f32 computed another way: in f64, |x| / ulp rounded half away from zero (ulp
/// of 10 mantissa bits in x's binade, subnormal spacing below 2^-126), overflow to inf.
fn tf32_ref(x: f32) -> u32 {
    if !x.is_finite() || x == 0.0 {
        return x.to_bits();
    }
    let ax = x.abs() as f64;
    let e = ax.log2().floor().max(-126.0) as i32;
    // log2 may land one off near a power of two; fix the binade exactly.
    let e = if 2f64.powi(e) > ax {
        e - 1
    } else if 2f64.powi(e + 1) <= ax {
        e + 1
    } else {
        e
    };
    let ulp = 2f64.powi(e.max(-126) - 10);
    let r = (ax / ulp + 0.5).floor() * ulp;
    let r = if r > f32::MAX as f64 {
        f32::INFINITY
    } else {
        r as f32
    };
    (if x < 0.0 { -r } else { r }).to_bits()
}

/// The edge cases: ties (even/odd neighbours, both signs), values rounding up into the next
/// binade, subnormals of f32 and of f16, the f16 overflow threshold, the largest floats, inf and
/// NaNs (quiet, signalling, negative).
fn edge_values() -> Vec<f32> {
    let bits: &[u32] = &[
        0x0000_0000,
        0x8000_0000,
        0x3f80_0000,
        0xbf80_0000, // +-0, +-1
        0x3f80_1000,
        0xbf80_1000,
        0x3f80_3000, // tf32/f16 ties (1 + 2^-11, 1 + 3 * 2^-11)
        0x3f80_8000,
        0x3f81_8000,
        0xbf81_8000, // bf16 ties (to even below / above)
        0x3f80_0fff,
        0x3f80_1001,
        0x3f80_7fff,
        0x3f80_8001, // just off the ties
        0x3fff_ffff,
        0xbfff_ffff,
        0x3fff_f000,
        0x3fff_8000, // round up into the next binade
        0x0000_0001,
        0x8000_0001,
        0x0001_2345,
        0x007f_ffff,
        0x0080_0000, // f32 subnormals, min normal
        0x3380_0000,
        0x3300_0000,
        0x3300_0001,
        0x33c0_0000,
        0x3400_0000, // f16 subnormal 2^-24, 2^-25 ..
        0x387f_c000,
        0x387f_e000,
        0x387f_f000,
        0x3880_0000, // 1023.5 * 2^-24 (ties to 0x400) ..
        0x477f_e000,
        0x477f_efff,
        0x477f_f000,
        0x4780_0000,
        0x501502f9, // 65504, 65520, 65536, 1e10
        0x7f7f_ffff,
        0xff7f_ffff,
        0x7f7f_efff,
        0x7f7f_7fff, // largest floats
        0x7f80_0000,
        0xff80_0000, // inf
        0x7fc0_0000,
        0x7f80_0001,
        0xffc0_0001,
        0x7fa0_1234, // NaNs
    ];
    bits.iter().map(|&b| f32::from_bits(b)).collect()
}

fn convert(be: &CudaBackend) {
    let dev = be.device();
    let mut xs = edge_values();
    let mut rng = Rng::new(31);
    xs.extend((0..3000).map(|_| f32::from_bits(rng.next_u64() as u32)));
    let xb = dev.upload_f32(&xs).unwrap();
    let out = dev.upload_i32(&vec![0; 3 * xs.len()]).unwrap();
    dev.launch(
        "tc_selftest_convert",
        Dims::linear(xs.len(), 128),
        &[Arg::Buf(&xb), Arg::Buf(&out), Arg::Int(xs.len())],
    )
    .unwrap();
    let got = dev.download_i32(&out).unwrap();
    for (i, &x) in xs.iter().enumerate() {
        let (t, b, h) = (
            got[3 * i] as u32,
            got[3 * i + 1] as u32,
            got[3 * i + 2] as u32,
        );
        if x.is_nan() {
            // The GPU's cvt.rna.tf32 payload is not ours to fix: a NaN of the same sign.
            let t = f32::from_bits(t);
            assert!(
                t.is_nan() && t.is_sign_negative() == x.is_sign_negative(),
                "tf32 {x:?}"
            );
        } else {
            assert_eq!(t, tf32_ref(x), "tf32_round({x:e} = {:#010x})", x.to_bits());
        }
        // half's conversions (round to nearest even; NaN quiet with the top payload bits).
        let (wb, wh) = (
            bf16::from_f32(x).to_bits() as u32,
            f16::from_f32(x).to_bits() as u32,
        );
        assert_eq!(b, wb, "f32_to_bf16({x:e} = {:#010x})", x.to_bits());
        assert_eq!(h, wh, "f32_to_f16({x:e} = {:#010x})", x.to_bits());
    }
    // A few answers written out, so the references above are not the only witnesses.
    let at = |bits: u32| xs.iter().position(|x| x.to_bits() == bits).unwrap();
    let want: &[(u32, u32, u32, u32)] = &[
        // (input, tf32, bf16, f16)
        (0x3f80_1000, 0x3f80_2000, 0x3f80, 0x3c00), // tf32 tie away; f16 tie to even
        (0xbf80_1000, 0xbf80_2000, 0xbf80, 0xbc00),
        (0x3f81_8000, 0x3f81_8000, 0x3f82, 0x3c0c), // bf16 tie to even (up)
        (0x3fff_ffff, 0x4000_0000, 0x4000, 0x4000), // next binade
        (0x3300_0000, 0x3300_0000, 0x3300, 0x0000), // 2^-25: f16 tie to 0
        (0x33c0_0000, 0x33c0_0000, 0x33c0, 0x0002), // 3 * 2^-25: f16 tie to 2
        (0x387f_f000, 0x3880_0000, 0x3880, 0x0400), // 1023.5 * 2^-24 -> smallest normal f16
        (0x477f_f000, 0x4780_0000, 0x4780, 0x7c00), // 65520: a tf32 tie (away); inf in f16
        (0x7f7f_ffff, 0x7f80_0000, 0x7f80, 0x7c00), // the largest float rounds to inf
    ];
    for &(x, t, b, h) in want {
        let i = at(x);
        assert_eq!(
            (
                got[3 * i] as u32,
                got[3 * i + 1] as u32,
                got[3 * i + 2] as u32
            ),
            (t, b, h),
            "{x:#010x}"
        );
    }
}

fn widen(be: &CudaBackend) {
    let dev = be.device();
    let hs: Vec<i32> = (0..65536).collect();
    let hb = dev.upload_i32(&hs).unwrap();
    let out = dev.upload_f32(&vec![0.0; 2 * hs.len()]).unwrap();
    dev.launch(
        "tc_selftest_widen",
        Dims::linear(hs.len(), 256),
        &[Arg::Buf(&hb), Arg::Buf(&out), Arg::Int(hs.len())],
    )
    .unwrap();
    let got = dev.download_f32(&out).unwrap();
    for h in 0..65536usize {
        let wb = bf16::from_bits(h as u16).to_f32().to_bits();
        let wh = f16::from_bits(h as u16).to_f32().to_bits();
        assert_eq!(got[2 * h].to_bits(), wb, "bf16_to_f32({h:#06x})");
        assert_eq!(got[2 * h + 1].to_bits(), wh, "f16_to_f32({h:#06x})");
    }
}

/// Each mma on distinct integers (exact in every format, sums exact in f32), so the result is
/// exact and any wrong lane/register mapping of A, B, C or D changes it.
fn mma(be: &CudaBackend) {
    let dev = be.device();
    let mut rng = Rng::new(32);
    for (kind, kk) in [(0usize, 8usize), (1, 16), (2, 16)] {
        // A: 16 x kk distinct values in [-128, 128), B: kk x 8 in [-64, 64), C: 16 x 8.
        let mut a: Vec<f32> = (0..16 * kk).map(|i| i as f32 - 128.0).collect();
        let mut b: Vec<f32> = (0..kk * 8).map(|i| i as f32 - 64.0).collect();
        rng.shuffle(&mut a);
        rng.shuffle(&mut b);
        let c: Vec<f32> = (0..128)
            .map(|i| (i * 37 % 128) as f32 * 3.0 - 200.0)
            .collect();
        let (ab, bb, cb) = (
            dev.upload_f32(&a).unwrap(),
            dev.upload_f32(&b).unwrap(),
            dev.upload_f32(&c).unwrap(),
        );
        let db = dev.upload_f32(&[f32::NAN; 128]).unwrap();
        dev.launch(
            "tc_selftest_mma",
            Dims::new([1, 1, 1], [32, 1, 1]),
            &[
                Arg::Buf(&ab),
                Arg::Buf(&bb),
                Arg::Buf(&cb),
                Arg::Buf(&db),
                Arg::Int(kind),
            ],
        )
        .unwrap();
        let d = dev.download_f32(&db).unwrap();
        for i in 0..16 {
            for j in 0..8 {
                let want = c[i * 8 + j] as f64
                    + (0..kk)
                        .map(|k| a[i * kk + k] as f64 * b[k * 8 + j] as f64)
                        .sum::<f64>();
                assert_eq!(d[i * 8 + j] as f64, want, "mma kind {kind}: D[{i}][{j}]");
            }
        }
    }
}

fn ldmatrix(be: &CudaBackend) {
    let dev = be.device();
    let out = dev.upload_i32(&vec![0; 6 * 32 * 4]).unwrap();
    dev.launch(
        "tc_selftest_ldmatrix",
        Dims::new([1, 1, 1], [32, 1, 1]),
        &[Arg::Buf(&out)],
    )
    .unwrap();
    let got = dev.download_i32(&out).unwrap();
    let val = |q: usize, r: usize, c: usize| ((q * 8 + r) * 8 + c + 1) as u32;
    for v in 0..6 {
        let (nmat, trans) = (1 << (v % 3), v >= 3);
        for lane in 0..32 {
            for q in 0..4 {
                let (s, p) = (lane / 4, 2 * (lane % 4));
                let want = if q >= nmat {
                    u32::MAX // untouched
                } else if trans {
                    val(q, p, s) | val(q, p + 1, s) << 16
                } else {
                    val(q, s, p) | val(q, s, p + 1) << 16
                };
                assert_eq!(
                    got[(v * 32 + lane) * 4 + q] as u32,
                    want,
                    "ldmatrix x{nmat}{} lane {lane} reg {q}",
                    if trans { ".trans" } else { "" }
                );
            }
        }
    }
}

/// `emulated`: also check that a copy is not visible before its wait (the emulator's choice;
/// the GPU may land it any time).
fn cp_async(be: &CudaBackend, emulated: bool) {
    let dev = be.device();
    let src: Vec<f32> = (0..3 * 128).map(|i| i as f32 + 0.5).collect();
    let sb = dev.upload_f32(&src).unwrap();
    let out = dev.upload_f32(&[0.0; 512]).unwrap();
    dev.launch(
        "tc_selftest_cp_async",
        Dims::new([1, 1, 1], [32, 1, 1]),
        &[Arg::Buf(&sb), Arg::Buf(&out)],
    )
    .unwrap();
    let got = dev.download_f32(&out).unwrap();
    for i in 0..128 {
        if emulated {
            assert_eq!(got[i], -1.0, "copy visible before its wait_group [{i}]");
        }
        assert_eq!(got[128 + i], src[i], "group 0 after wait_group 2 [{i}]");
        assert_eq!(
            got[256 + i],
            src[128 + i],
            "group 1 after wait_group 1 [{i}]"
        );
        let (lane, j) = (i / 4, i % 4);
        let want = if j < lane % 5 { src[256 + i] } else { 0.0 };
        assert_eq!(
            got[384 + i],
            want,
            "partial group 2 after wait_group 0 [{i}]"
        );
    }
}

/// One value of `p`'s input format (the kernel's rounding, computed independently).
pub(super) fn round_to(p: Precision, x: f32) -> f32 {
    match p {
        Precision::Fp32 => x,
        Precision::Tf32 => f32::from_bits(tf32_ref(x)),
        Precision::Bf16 => bf16::from_f32(x).to_f32(),
        Precision::Fp16 => f16::from_f32(x).to_f32(),
    }
}

/// One GEMM case: A stored row-major (m x k) or transposed (k x m), B row-major (k x n) or
/// transposed (n x k), each at element offset `off` and with `pad` NaNs after every stored row
/// (so a read past a row's end poisons the result). Offsets 3 and 5 with no padding align
/// nothing by luck (both operands packed); offsets 4 and 8 with rows padded to 4-float
/// multiples let a TF32 operand with unit k stride be read in place.
struct Case {
    p: Precision,
    mnk: (usize, usize, usize),
    a_t: bool,
    b_t: bool,
    alpha: f32,
    beta: f32,
    bias: bool,
    off: (usize, usize),
    pad: usize,
}

/// Bounds (first order in the unit roundoffs; S = |alpha| sum_k |a~ b~| + |beta c| + |bias|):
/// - against the f64 product of the rounded inputs a~, b~: products of tf32/bf16/f16 values are
///   exact in f32 and only the sums and the epilogue round. FP32 (gemm_strided): k - 1
///   additions (split-K included) plus alpha, beta C and bias, each off by <= 2^-24 relative:
///   |err| <= (k + 3) 2^-23 S. Tensor cores (the model of Fasi et al. 2021): each mma of kk
///   products (8 tf32, 16 bf16/f16) aligns them and the accumulator to the largest and truncates,
///   costing <= (kk + 1) 2^-23 times the magnitudes it adds, the accumulator (<= S) counted
///   again at each of the ceil(k / kk) mmas: <= (kk + 1) (1 + ceil(k / kk)) 2^-23 S, plus the
///   split-K sums and the epilogue (<= 8 2^-23 S): |err| <= (k + 2 ceil(k / kk) + kk + 9) 2^-23 S.
///   The emulator adds in order in f32, well inside either.
/// - against the f64 product of the unrounded inputs: each input is off by <= u |x| (u the
///   format's unit roundoff; inputs kept in f16's normal range), each product by <= (2u + u^2),
///   so add (2u + u^2) |alpha| sum_k |a b| to the bound above.
fn gemm_case(be: &CudaBackend, case: &Case, seed: u64) {
    let dev = be.device();
    let (m, n, k) = case.mnk;
    let mut rng = Rng::new(seed);
    // Uniform in +-[1e-3, 1]: inside f16's normal range, where u bounds the relative error.
    let mut draw = |len: usize| -> Vec<f32> {
        (0..len)
            .map(|_| {
                let v = rng.uniform(1e-3, 1.0) as f32;
                if rng.next_u64() & 1 == 1 { -v } else { v }
            })
            .collect()
    };
    let (a, b) = (draw(m * k), draw(k * n)); // logical row-major A (m x k), B (k x n)
    let c0 = draw(m * n);
    let bias = draw(n);
    let (oa, ob) = case.off;
    // Stored row strides (the padding after each stored row is NaN).
    let lda = if case.a_t { m } else { k } + case.pad;
    let ldb = if case.b_t { k } else { n } + case.pad;
    let mut a_store = vec![f32::NAN; oa + lda * if case.a_t { k } else { m }];
    let mut b_store = vec![f32::NAN; ob + ldb * if case.b_t { n } else { k }];
    for i in 0..m {
        for j in 0..k {
            let at = if case.a_t { j * lda + i } else { i * lda + j };
            a_store[oa + at] = a[i * k + j];
        }
    }
    for i in 0..k {
        for j in 0..n {
            let at = if case.b_t { j * ldb + i } else { i * ldb + j };
            b_store[ob + at] = b[i * n + j];
        }
    }
    let (ab, bb) = (
        dev.upload_f32(&a_store).unwrap(),
        dev.upload_f32(&b_store).unwrap(),
    );
    let cb = dev.upload_f32(&c0).unwrap();
    let biasb = dev.upload_f32(&bias).unwrap();
    let a_mat = Mat {
        buf: &ab,
        offset: oa,
        stride: if case.a_t { (1, lda) } else { (lda, 1) },
    };
    let b_mat = Mat {
        buf: &bb,
        offset: ob,
        stride: if case.b_t { (1, ldb) } else { (ldb, 1) },
    };
    gemm_with(
        case.p,
        dev,
        a_mat,
        b_mat,
        &cb,
        0,
        case.bias.then_some(&biasb),
        (m, n, k),
        case.alpha,
        case.beta,
    )
    .unwrap();
    let got = dev.download_f32(&cb).unwrap();
    let u = case.p.unit_roundoff();
    let (alpha, beta) = (case.alpha as f64, case.beta as f64);
    let kk = if case.p == Precision::Tf32 { 8 } else { 16 };
    let ops = match case.p {
        Precision::Fp32 => (k + 3) as f64,
        _ => (k + 2 * k.div_ceil(kk) + kk + 9) as f64,
    };
    let mut worst = 0f64;
    for i in 0..m {
        for j in 0..n {
            let (mut exact, mut rounded, mut s_exact, mut s_rounded) = (0f64, 0f64, 0f64, 0f64);
            for q in 0..k {
                let (x, y) = (a[i * k + q], b[q * n + j]);
                let (xr, yr) = (round_to(case.p, x) as f64, round_to(case.p, y) as f64);
                exact += x as f64 * y as f64;
                rounded += xr * yr;
                s_exact += (x as f64 * y as f64).abs();
                s_rounded += (xr * yr).abs();
            }
            let rest = beta * c0[i * n + j] as f64 + if case.bias { bias[j] as f64 } else { 0.0 };
            let rest_abs = (beta * c0[i * n + j] as f64).abs()
                + if case.bias {
                    (bias[j] as f64).abs()
                } else {
                    0.0
                };
            let s = alpha.abs() * s_rounded + rest_abs;
            let tight = ops * 2f64.powi(-23) * s;
            let loose = tight + (2.0 * u + u * u) * alpha.abs() * s_exact;
            let g = got[i * n + j] as f64;
            let e_tight = (g - (alpha * rounded + rest)).abs();
            let e_loose = (g - (alpha * exact + rest)).abs();
            assert!(
                e_tight <= tight && e_loose <= loose,
                "{} {:?} C[{i}][{j}] = {g}: vs rounded-input product {} (err {e_tight:e} > bound \
                 {tight:e}?), vs exact {} (err {e_loose:e} > bound {loose:e}?)",
                case.p,
                case.mnk,
                alpha * rounded + rest,
                alpha * exact + rest
            );
            worst = worst.max(e_tight / tight);
        }
    }
    assert!(worst.is_finite());
}

fn gemm_cases(be: &CudaBackend) {
    use Precision::*;
    let case = |p, mnk, a_t, b_t, alpha, beta, bias| Case {
        p,
        mnk,
        a_t,
        b_t,
        alpha,
        beta,
        bias,
        off: (3, 5),
        pad: 0,
    };
    // Rows padded to a multiple of 4 floats at aligned offsets: TF32 reads these in place.
    let aligned = |c: Case, pad| Case {
        off: (4, 8),
        pad,
        ..c
    };
    let cases = [
        // Edge tiles in m, n and k (70 = 64 + 6, 45 < 64, 37 not a k-tile multiple).
        case(Tf32, (70, 45, 37), false, false, 1.0, 0.0, false),
        case(Bf16, (70, 45, 37), true, true, -0.5, 0.75, true),
        case(Fp16, (70, 45, 37), false, true, 1.0, 1.0, true),
        // k = 1: one zero-padded k-tile.
        case(Tf32, (33, 17, 1), true, false, 2.0, 0.0, true),
        case(Fp16, (5, 3, 1), false, false, 1.0, 0.5, false),
        // Large-ish k: many k-tiles through the 3-stage pipeline, split over K (one block).
        case(Tf32, (20, 24, 700), false, true, 1.0, 0.0, false),
        case(Bf16, (20, 24, 700), true, false, 1.0, 0.0, true),
        case(Fp16, (66, 9, 300), false, false, 1.0, 0.0, false),
        // TF32 in place: both operands (k = 37: the last 16-byte chunk of a row is partial), A
        // only (B row-major has no unit k stride), and both with split-K.
        aligned(case(Tf32, (70, 45, 37), false, true, 1.0, 0.0, false), 3),
        aligned(case(Tf32, (70, 45, 37), false, false, 0.5, 1.0, true), 3),
        aligned(case(Tf32, (20, 24, 700), false, true, 1.0, 0.0, false), 4),
        // BF16/FP16 from aligned rows still pack (the format changes).
        aligned(case(Bf16, (17, 70, 40), false, true, 1.0, 0.0, false), 0),
        // FP32 goes to the existing SGEMM (same bound, u = 2^-24 and nothing rounded).
        case(Fp32, (30, 20, 50), false, false, 1.0, 0.5, true),
    ];
    for (i, c) in cases.iter().enumerate() {
        gemm_case(be, c, 40 + i as u64);
    }
}

#[test]
fn precision_names_round_trip() {
    for p in Precision::ALL {
        assert_eq!(p.name().parse::<Precision>().unwrap(), p);
    }
    assert_eq!(Precision::default(), Precision::Fp32);
    let e = "fp8".parse::<Precision>().unwrap_err().to_string();
    assert!(e.contains("fp8") && e.contains("bf16"), "{e}");
}

#[cfg(skinengine_emu)]
mod emulator {
    fn be() -> super::CudaBackend {
        crate::testing::suite::emulator()
    }
    #[test]
    fn convert() {
        super::convert(&be());
    }
    #[test]
    fn widen() {
        super::widen(&be());
    }
    #[test]
    fn mma() {
        super::mma(&be());
    }
    #[test]
    fn ldmatrix() {
        super::ldmatrix(&be());
    }
    #[test]
    fn cp_async() {
        super::cp_async(&be(), true);
    }
    #[test]
    fn gemm() {
        super::gemm_cases(&be());
    }
}

mod gpu {
    #[test]
    #[ignore = "needs a GPU: run by tools/gpu_check.sh"]
    fn tensor_core_kernels() {
        let be = crate::testing::suite::gpu();
        super::convert(&be);
        super::widen(&be);
        super::mma(&be);
        super::ldmatrix(&be);
        super::cp_async(&be, false);
        super::gemm_cases(&be);
    }
}
