//! The tensor-core (TF32) forward convolution on the emulator: every case of `tests::cases()`,
//! plain and with the fused epilogue, unsplit and split over K, against the f64 convolution of
//! the inputs rounded to TF32, with the derived bound of the tensor-core GEMM (src/cuda/tc_tests.rs):
//! |err| <= (k + 2 ceil(k / 8) + 8 + 9) 2^-23 S, S = conv(|x~|, |w~|) + |bias| + |residual|
//! (each mma of 8 products aligns and truncates; the split sums and the epilogue are in the 9;
//! ReLU is 1-Lipschitz).

use super::cuda_tc::forward_tf32;
use super::tests::cases;
use super::{Epilogue, geometry, reference as conv};
use crate::cuda::{Precision, Precisions};
use crate::ops::prelude::*;
use crate::{Rng, Tensor};

/// cvt.rna.tf32.f32 for finite values: round to 10 mantissa bits, ties away from zero (adding
/// half an ulp of the kept bits to the magnitude and truncating does exactly that).
fn tf32(t: &Tensor) -> Tensor<f64> {
    let v = t
        .data()
        .iter()
        .map(|&x| f32::from_bits((x.to_bits() + 0x1000) & !0x1fff) as f64)
        .collect();
    Tensor::new(t.shape(), v).unwrap()
}

fn abs(t: &Tensor<f64>) -> Tensor<f64> {
    Tensor::new(t.shape(), t.data().iter().map(|v| v.abs()).collect()).unwrap()
}

#[test]
fn tf32_forward_matches_rounded_reference() {
    let be = crate::testing::suite::emulator()
        .with_precisions(Precisions {
            conv: Precision::Tf32,
            matmul: Precision::Fp32,
        })
        .unwrap();
    let mut rng = Rng::new(43);
    for (xs, ws, p) in cases() {
        let g = geometry(&xs, &ws, &p).unwrap();
        let x = Tensor::randn(&xs, 1.0, &mut rng);
        let w = Tensor::randn(&ws, 1.0, &mut rng);
        let b = Tensor::randn(&[ws[0]], 1.0, &mut rng);
        let res = Tensor::randn(&g.y_shape(), 1.0, &mut rng);
        let up = |t: &Tensor| be.upload(t).unwrap();
        let (xd, wd, bd, rd) = (up(&x), up(&w), up(&b), up(&res));
        let k = g.c * g.kh * g.kw;
        let ops = (k + 2 * k.div_ceil(8) + 8 + 9) as f64;
        let (xr, wr) = (tf32(&x), tf32(&w));
        let plain = conv::forward(&xr, &wr, None, &g).unwrap();
        let mag = conv::forward(&abs(&xr), &abs(&wr), None, &g).unwrap();
        for fused in [false, true] {
            // The backend's own dispatch (no split at these sizes), then K split 3 ways.
            let direct = forward_tf32(
                be.device(),
                &xd,
                &wd,
                &g,
                Epilogue {
                    bias: fused.then_some(&bd),
                    residual: fused.then_some(&rd),
                    relu: fused,
                },
                Some(3),
            )
            .unwrap();
            let backend = if fused {
                be.conv2d_fused(&xd, &wd, Some(&bd), Some(&rd), true, &p)
            } else {
                be.conv2d(&xd, &wd, None, &p)
            }
            .unwrap();
            for (what, y) in [("backend", backend), ("splits 3", direct)] {
                let got = be.download(&y).unwrap();
                for (i, &gv) in got.data().iter().enumerate() {
                    let o = (i / (g.ho * g.wo)) % g.o;
                    let (mut want, mut s) = (plain.data()[i], mag.data()[i]);
                    if fused {
                        want += b.data()[o] as f64 + res.data()[i] as f64;
                        s += (b.data()[o] as f64).abs() + (res.data()[i] as f64).abs();
                        want = want.max(0.0);
                    }
                    let bound = ops * 2f64.powi(-23) * s;
                    let err = (gv as f64 - want).abs();
                    assert!(
                        err <= bound,
                        "conv tf32 x{xs:?} w{ws:?} {p:?} fused {fused} {what} [{i}] = {gv}, \
                         rounded-input reference {want}: err {err:e} > {bound:e}"
                    );
                }
            }
        }
    }
}
