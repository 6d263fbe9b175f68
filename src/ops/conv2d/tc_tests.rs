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

use half::{bf16, f16};

use super::tests::cases;
use super::{ConvGeom, Epilogue, cuda_tc, geometry, reference as conv};
use crate::cuda::{CudaBackend, CudaTensor, Precision, Precisions};
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

/// Checks `got` against `want` elementwise within ops 2^-23 (mag + extra(i)).
fn check(
    what: &str,
    got: &Tensor,
    want: &[f64],
    mag: &[f64],
    k: usize,
    p: Precision,
    extra: impl Fn(usize) -> f64,
) {
    let kk = if p == Precision::Tf32 { 8 } else { 16 };
    let ops = (k + 2 * k.div_ceil(kk) + kk + 9) as f64;
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, &gv) in got.data().iter().enumerate() {
        let bound = ops * 2f64.powi(-23) * (mag[i] + extra(i));
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
    let mut rng = Rng::new(43);
    for (xs, ws, cp) in cases() {
        let g = geometry(&xs, &ws, &cp).unwrap();
        let x = Tensor::randn(&xs, 1.0, &mut rng);
        let w = Tensor::randn(&ws, 1.0, &mut rng);
        let b = Tensor::randn(&[ws[0]], 1.0, &mut rng);
        let res = Tensor::randn(&g.y_shape(), 1.0, &mut rng);
        let up = |t: &Tensor| be.upload(t).unwrap();
        let (xd, wd, bd, rd) = (up(&x), up(&w), up(&b), up(&res));
        let (xr, wr) = (round(p, &x), round(p, &w));
        let plain = conv::forward(&xr, &wr, None, &g).unwrap();
        let mag = conv::forward(&abs(&xr), &abs(&wr), None, &g).unwrap();
        for fused in [false, true] {
            let e = Epilogue {
                bias: fused.then_some(&bd),
                residual: fused.then_some(&rd),
                relu: fused,
            };
            let split = cuda_tc::forward(p, be.device(), &xd, &wd, &g, e, Some(3)).unwrap();
            let direct = if fused {
                be.conv2d_fused(&xd, &wd, Some(&bd), Some(&rd), true, &cp)
            } else {
                be.conv2d(&xd, &wd, None, &cp)
            }
            .unwrap();
            let o_of = |i: usize| (i / (g.ho * g.wo)) % g.o;
            let want: Vec<f64> = (0..plain.len())
                .map(|i| {
                    let v = plain.data()[i];
                    if fused {
                        (v + b.data()[o_of(i)] as f64 + res.data()[i] as f64).max(0.0)
                    } else {
                        v
                    }
                })
                .collect();
            let extra = |i: usize| {
                if fused {
                    (b.data()[o_of(i)] as f64).abs() + (res.data()[i] as f64).abs()
                } else {
                    0.0
                }
            };
            for (how, y) in [("backend", direct), ("splits 3", split)] {
                check(
                    &format!("conv {p} x{xs:?} w{ws:?} {cp:?} fused {fused} {how}"),
                    &be.download(&y).unwrap(),
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
        let up = |t: &Tensor| be.upload(t).unwrap();
        let (xd, wd, dyd) = (up(&x), up(&w), up(&dy));
        let (xr, wr, dyr) = (round(p, &x), round(p, &w), round(p, &dy));
        let want_dx = conv::backward_data(&dyr, &wr, &g).unwrap();
        let mag_dx = conv::backward_data(&abs(&dyr), &abs(&wr), &g).unwrap();
        let want_dw = conv::backward_weight(&dyr, &xr, &g).unwrap();
        let mag_dw = conv::backward_weight(&abs(&dyr), &abs(&xr), &g).unwrap();
        let dev = be.device();
        let dx: [(&str, CudaTensor); 2] = [
            (
                "backend",
                be.conv2d_backward_data(&dyd, &wd, &xs, &cp).unwrap(),
            ),
            (
                "splits 3",
                cuda_tc::backward_data(p, dev, &dyd, &wd, &g, Some(3)).unwrap(),
            ),
        ];
        for (how, t) in dx {
            check(
                &format!("conv dx {p} x{xs:?} w{ws:?} {cp:?} {how}"),
                &be.download(&t).unwrap(),
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
                be.conv2d_backward_weight(&dyd, &xd, &ws, &cp).unwrap(),
            ),
            (
                "splits 3",
                cuda_tc::backward_weight(p, dev, &dyd, &xd, &g, Some(3)).unwrap(),
            ),
        ];
        for (how, t) in dw {
            check(
                &format!("conv dW {p} x{xs:?} w{ws:?} {cp:?} {how}"),
                &be.download(&t).unwrap(),
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
