//! The tensor-core convolutions on the emulator, at TF32, BF16 and FP16: for every case of
//! `tests::cases()`, the forward (plain and with the fused epilogue), the data gradient and the
//! weight gradient, each through the backend's own dispatch and with the reduction forced into
//! 3 splits, against the f64 convolution of the inputs rounded to the format, within the derived
//! bound of the tensor-core GEMM (src/cuda/tc_tests.rs):
//!   |err| <= (k + 2 ceil(k / kk) + kk + 9) 2^-23 S,  S = conv(|a~|, |b~|) + |bias| + |residual|
//! with kk = 8 (TF32 m16n8k8) or 16 (BF16/FP16 m16n8k16): products of rounded inputs are exact
//! in FP32; each mma aligns and truncates its kk terms; the split sums and the epilogue are in
//! the 9; ReLU is 1-Lipschitz. k is the GEMM's reduction length: C KH KW (forward), O KH KW
//! (data gradient) or N OH OW (weight gradient).
//!
//! The backend's path reads its activations (x, the residual, dy) stored as the backend stores
//! them (bf16 / f16 at those precisions, `CudaBackend::activation_storage`) and stores y and dx
//! so too: its bound adds that output's rounding, u (|want| + bound) + t with u = 2^-8 (bf16) or
//! 2^-11 (f16) and t = 2^-25 (half of f16's smallest subnormal). The forced-split path takes
//! FP32 inputs and writes FP32 (the arithmetic alone).

use half::{bf16, f16};

use super::tests::cases;
use super::{ConvGeom, Epilogue, cuda_tc, geometry, reference as conv};
use crate::cuda::{CudaBackend, CudaTensor, Elem, Precision, Precisions};
use crate::ops::prelude::*;
use crate::{Rng, Tensor};

/// The input format's rounding: cvt.rna.tf32.f32 (10 mantissa bits, ties away from zero, by
/// adding half an ulp of the kept bits to the magnitude and truncating), or round to nearest
/// even to bf16 / f16.
fn round(p: Precision, t: &Tensor) -> Tensor<f64> {
    let r = |x: f32| match p {
        Precision::Tf32 => f32::from_bits((x.to_bits() + 0x1000) & !0x1fff),
        Precision::Bf16 => bf16::from_f32(x).to_f32(),
        Precision::Fp16 => f16::from_f32(x).to_f32(),
        Precision::Fp32 => x,
    };
    let v = t.data().iter().map(|&x| r(x) as f64).collect();
    Tensor::new(t.shape(), v).unwrap()
}

fn abs(t: &Tensor<f64>) -> Tensor<f64> {
    Tensor::new(t.shape(), t.data().iter().map(|v| v.abs()).collect()).unwrap()
}

fn backend(p: Precision) -> CudaBackend {
    crate::testing::suite::emulator()
        .with_precisions(Precisions {
            conv: p,
            matmul: Precision::Fp32,
        })
        .unwrap()
}

/// The relative and absolute rounding of storing an FP32 value as `e`.
pub(crate) fn storage_rounding(e: Elem) -> (f64, f64) {
    match e {
        Elem::Bf16 => (2f64.powi(-8), 2f64.powi(-134)),
        Elem::F16 => (2f64.powi(-11), 2f64.powi(-25)),
        Elem::F32 | Elem::I32 => (0.0, 0.0),
    }
}

/// `t` as a tensor stored as `e` holds it (each value rounded to nearest even), in f64.
fn stored(e: Elem, t: &Tensor) -> Vec<f64> {
    let r = |x: f32| match e {
        Elem::Bf16 => bf16::from_f32(x).to_f32(),
        Elem::F16 => f16::from_f32(x).to_f32(),
        _ => x,
    };
    t.data().iter().map(|&x| r(x) as f64).collect()
}

/// Checks `got` (stored as `elem`) against `want` elementwise within B = ops 2^-23 (mag +
/// extra(i)) plus the storage's rounding u (|want| + B) + t.
#[allow(clippy::too_many_arguments)]
fn check(
    what: &str,
    got: &CudaTensor,
    want: &[f64],
    mag: &[f64],
    k: usize,
    p: Precision,
    extra: impl Fn(usize) -> f64,
) {
    let (u, t) = storage_rounding(got.elem());
    let got = got.download().unwrap();
    let kk = if p == Precision::Tf32 { 8 } else { 16 };
    let ops = (k + 2 * k.div_ceil(kk) + kk + 9) as f64;
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, &gv) in got.data().iter().enumerate() {
        let b = ops * 2f64.powi(-23) * (mag[i] + extra(i));
        let bound = b + u * (want[i].abs() + b) + t;
        let err = (gv as f64 - want[i]).abs();
        assert!(
            err <= bound,
            "{what} [{i}] = {gv}, rounded-input reference {}: err {err:e} > {bound:e}",
            want[i]
        );
    }
}

fn forward_at(p: Precision) {
    let be = backend(p);
    let st = be.activation_storage();
    assert_eq!(st == Elem::F32, p == Precision::Tf32, "storage at {p}");
    let mut rng = Rng::new(43);
    for (xs, ws, cp) in cases() {
        let g = geometry(&xs, &ws, &cp).unwrap();
        let x = Tensor::randn(&xs, 1.0, &mut rng);
        let w = Tensor::randn(&ws, 1.0, &mut rng);
        let b = Tensor::randn(&[ws[0]], 1.0, &mut rng);
        let res = Tensor::randn(&g.y_shape(), 1.0, &mut rng);
        let dev = be.device();
        let up = |t: &Tensor, e: Elem| CudaTensor::upload_as(dev, t, e).unwrap();
        let (wd, bd) = (up(&w, Elem::F32), up(&b, Elem::F32));
        // Rounding x to the storage and then to the format is rounding it to the format (the
        // same format, or TF32's FP32 storage): one reference serves both paths.
        let (xr, wr) = (round(p, &x), round(p, &w));
        let plain = conv::forward(&xr, &wr, None, &g).unwrap();
        let mag = conv::forward(&abs(&xr), &abs(&wr), None, &g).unwrap();
        for fused in [false, true] {
            // (how, input storage, y for those inputs)
            let runs = [("backend", st), ("splits 3", Elem::F32)].map(|(how, e)| {
                let (xd, rd) = (up(&x, e), up(&res, e));
                let y = if how == "backend" {
                    if fused {
                        be.conv2d_fused(&xd, &wd, Some(&bd), Some(&rd), true, &cp)
                    } else {
                        be.conv2d(&xd, &wd, None, &cp)
                    }
                } else {
                    let e = Epilogue {
                        bias: fused.then_some(&bd),
                        residual: fused.then_some(&rd),
                        relu: fused,
                    };
                    cuda_tc::forward(p, dev, &xd, &wd, &g, e, Some(3), Elem::F32)
                };
                (how, e, y.unwrap())
            });
            let o_of = |i: usize| (i / (g.ho * g.wo)) % g.o;
            for (how, e, y) in runs {
                assert_eq!(y.elem(), if how == "backend" { st } else { Elem::F32 });
                let res_e = stored(e, &res);
                let want: Vec<f64> = (0..plain.len())
                    .map(|i| {
                        let v = plain.data()[i];
                        if fused {
                            (v + b.data()[o_of(i)] as f64 + res_e[i]).max(0.0)
                        } else {
                            v
                        }
                    })
                    .collect();
                let extra = |i: usize| {
                    if fused {
                        (b.data()[o_of(i)] as f64).abs() + res_e[i].abs()
                    } else {
                        0.0
                    }
                };
                check(
                    &format!("conv {p} x{xs:?} w{ws:?} {cp:?} fused {fused} {how}"),
                    &y,
                    &want,
                    mag.data(),
                    g.c * g.kh * g.kw,
                    p,
                    extra,
                );
            }
        }
    }
}

/// dx and dW through the backend (automatic split) and with 3 forced splits.
fn gradients_at(p: Precision) {
    let be = backend(p);
    let mut rng = Rng::new(47);
    for (xs, ws, cp) in cases() {
        let g: ConvGeom = geometry(&xs, &ws, &cp).unwrap();
        let x = Tensor::randn(&xs, 1.0, &mut rng);
        let w = Tensor::randn(&ws, 1.0, &mut rng);
        let dy = Tensor::randn(&g.y_shape(), 1.0, &mut rng);
        let dev = be.device();
        let st = be.activation_storage();
        let up = |t: &Tensor, e: Elem| CudaTensor::upload_as(dev, t, e).unwrap();
        let wd = up(&w, Elem::F32);
        // The backend's path reads x and dy as it stores them; the split path FP32.
        let (xs16, dys16) = (up(&x, st), up(&dy, st));
        let (xd, dyd) = (up(&x, Elem::F32), up(&dy, Elem::F32));
        let (xr, wr, dyr) = (round(p, &x), round(p, &w), round(p, &dy));
        let want_dx = conv::backward_data(&dyr, &wr, &g).unwrap();
        let mag_dx = conv::backward_data(&abs(&dyr), &abs(&wr), &g).unwrap();
        let want_dw = conv::backward_weight(&dyr, &xr, &g).unwrap();
        let mag_dw = conv::backward_weight(&abs(&dyr), &abs(&xr), &g).unwrap();
        let dx: [(&str, CudaTensor); 2] = [
            (
                "backend",
                be.conv2d_backward_data(&dys16, &wd, &xs, &cp).unwrap(),
            ),
            (
                "splits 3",
                cuda_tc::backward_data(p, dev, &dyd, &wd, &g, Some(3), Elem::F32).unwrap(),
            ),
        ];
        assert_eq!(dx[0].1.elem(), st);
        for (how, t) in dx {
            check(
                &format!("conv dx {p} x{xs:?} w{ws:?} {cp:?} {how}"),
                &t,
                want_dx.data(),
                mag_dx.data(),
                g.o * g.kh * g.kw,
                p,
                |_| 0.0,
            );
        }
        let dw: [(&str, CudaTensor); 2] = [
            (
                "backend",
                be.conv2d_backward_weight(&dys16, &xs16, &ws, &cp).unwrap(),
            ),
            (
                "splits 3",
                cuda_tc::backward_weight(p, dev, &dyd, &xd, &g, Some(3)).unwrap(),
            ),
        ];
        for (how, t) in dw {
            check(
                &format!("conv dW {p} x{xs:?} w{ws:?} {cp:?} {how}"),
                &t,
                want_dw.data(),
                mag_dw.data(),
                g.n * g.ho * g.wo,
                p,
                |_| 0.0,
            );
        }
    }
}

#[test]
fn tf32_forward_matches_rounded_reference() {
    forward_at(Precision::Tf32);
}

#[test]
fn bf16_forward_matches_rounded_reference() {
    forward_at(Precision::Bf16);
}

#[test]
fn fp16_forward_matches_rounded_reference() {
    forward_at(Precision::Fp16);
}

#[test]
fn tf32_gradients_match_rounded_reference() {
    gradients_at(Precision::Tf32);
}

#[test]
fn bf16_gradients_match_rounded_reference() {
    gradients_at(Precision::Bf16);
}

#[test]
fn fp16_gradients_match_rounded_reference() {
    gradients_at(Precision::Fp16);
}
