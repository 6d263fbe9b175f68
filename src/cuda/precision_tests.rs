//! `--precision`: how each choice resolves per device (PyTorch's defaults for `auto`, refusals
//! on the CPU backends and below sm_80), and dense layers at each tensor-core precision on the
//! emulator against the f64 product of their rounded inputs, with gemm_tc's derived bound.

use super::tc_tests::round_to;
use super::{CudaBackend, Precision, Precisions};
use crate::backend::select::{DeviceChoice, PrecisionChoice, ResolvedBackend};
use crate::ops::prelude::*;
use crate::{Rng, Tensor};

#[test]
fn auto_is_pytorch_default() {
    // sm_80+: cuDNN convolutions allow TF32, matmuls do not (PyTorch >= 1.12).
    let p = PrecisionChoice::Auto.for_cuda(90);
    assert_eq!((p.conv, p.matmul), (Precision::Tf32, Precision::Fp32));
    assert_eq!(PrecisionChoice::Auto.for_cuda(80), p);
    // Below Ampere there are no TF32 tensor cores: FP32 throughout.
    assert_eq!(
        PrecisionChoice::Auto.for_cuda(75),
        Precisions::all(Precision::Fp32)
    );
    for (c, q) in [
        (PrecisionChoice::Fp32, Precision::Fp32),
        (PrecisionChoice::Tf32, Precision::Tf32),
        (PrecisionChoice::Bf16, Precision::Bf16),
        (PrecisionChoice::Fp16, Precision::Fp16),
    ] {
        assert_eq!(c.for_cuda(86), Precisions::all(q));
    }
}

#[test]
fn cpu_backends_refuse_tensor_core_formats() {
    for d in [DeviceChoice::Cpu, DeviceChoice::Reference] {
        for p in [PrecisionChoice::Auto, PrecisionChoice::Fp32] {
            assert!(d.resolve_at(p).is_ok(), "{d:?} {p:?}");
        }
        for (p, name) in [
            (PrecisionChoice::Tf32, "tf32"),
            (PrecisionChoice::Bf16, "bf16"),
            (PrecisionChoice::Fp16, "fp16"),
        ] {
            let Err(e) = d.resolve_at(p) else {
                panic!("{d:?} accepted --precision {name}")
            };
            let e = e.to_string();
            assert!(
                e.contains(&format!("--precision {name}")) && e.contains("fp32"),
                "{e}"
            );
        }
    }
}

#[cfg(skinengine_emu)]
#[test]
fn emulator_resolves_and_old_gpus_refuse() {
    let Ok(ResolvedBackend::Cuda(b)) = DeviceChoice::CudaEmulator.resolve_at(PrecisionChoice::Auto)
    else {
        panic!("cuda-emulator did not resolve to the CUDA backend")
    };
    assert_eq!(b.precisions(), PrecisionChoice::Auto.for_cuda(80));
    let old = CudaBackend::emulator_as(1, 75);
    assert!(
        old.clone()
            .with_precisions(Precisions::all(Precision::Fp32))
            .is_ok()
    );
    let Err(e) = old.with_precisions(PrecisionChoice::Bf16.for_cuda(75)) else {
        panic!("sm_75 accepted bf16")
    };
    let e = e.to_string();
    assert!(
        e.contains("bf16") && e.contains("7.5") && e.contains("8.0"),
        "{e}"
    );
}

/// `y[r][c] = sum_t a[r][t] b[c][t] (+ bias[c])` in f64 over the inputs rounded to `p`, and
/// the bound of gemm_tc (tc_tests.rs): (k + 2 ceil(k / kk) + kk + 9) 2^-23 S, S the sum of the
/// magnitudes; `a` [rows, k] and `b` [cols, k] given by element accessors.
#[allow(clippy::type_complexity)]
fn check(
    what: &str,
    p: Precision,
    got: &Tensor,
    (rows, cols, k): (usize, usize, usize),
    a: &dyn Fn(usize, usize) -> f32,
    b: &dyn Fn(usize, usize) -> f32,
    bias: Option<&[f32]>,
) {
    let kk = if p == Precision::Tf32 { 8 } else { 16 };
    let ops = (k + 2 * k.div_ceil(kk) + kk + 9) as f64;
    for r in 0..rows {
        for c in 0..cols {
            let (mut y, mut s) = (0f64, 0f64);
            for t in 0..k {
                let v = round_to(p, a(r, t)) as f64 * round_to(p, b(c, t)) as f64;
                y += v;
                s += v.abs();
            }
            if let Some(bias) = bias {
                y += bias[c] as f64;
                s += (bias[c] as f64).abs();
            }
            let g = got.data()[r * cols + c] as f64;
            let bound = ops * 2f64.powi(-23) * s;
            assert!(
                (g - y).abs() <= bound,
                "{what} {p} [{r}][{c}] = {g}, rounded-input product {y}: err {:e} > {bound:e}",
                (g - y).abs()
            );
        }
    }
}

/// Dense forward, dx and dW at each tensor-core precision (the bias gradient is a column sum,
/// FP32 at every precision). Head-like shapes small enough for the emulator, K edges not
/// multiples of the k-tile, and rows of 33 floats (not 16-byte aligned: packed).
#[cfg(skinengine_emu)]
#[test]
fn dense_at_each_precision() {
    let mut rng = Rng::new(12);
    for p in [Precision::Tf32, Precision::Bf16, Precision::Fp16] {
        let be = crate::testing::suite::emulator()
            .with_precisions(Precisions {
                conv: Precision::Fp32,
                matmul: p,
            })
            .unwrap();
        for (n, i, o) in [(5, 120, 84), (13, 33, 17)] {
            let x = Tensor::randn(&[n, i], 1.0, &mut rng);
            let w = Tensor::randn(&[o, i], 1.0, &mut rng);
            let bias = Tensor::randn(&[o], 1.0, &mut rng);
            let dy = Tensor::randn(&[n, o], 1.0, &mut rng);
            let up = |t: &Tensor| be.upload(t).unwrap();
            let (xd, wd, bd, dyd) = (up(&x), up(&w), up(&bias), up(&dy));
            let tag = format!("dense {n}x{i}->{o}");
            let (xv, wv, dyv) = (x.data(), w.data(), dy.data());
            let y = be
                .download(&be.dense(&xd, &wd, Some(&bd)).unwrap())
                .unwrap();
            check(
                &format!("{tag} y"),
                p,
                &y,
                (n, o, i),
                &|r, t| xv[r * i + t],
                &|c, t| wv[c * i + t],
                Some(bias.data()),
            );
            let g = be.dense_backward(&dyd, &xd, &wd).unwrap();
            let dx = be.download(&g.dx).unwrap();
            check(
                &format!("{tag} dx"),
                p,
                &dx,
                (n, i, o),
                &|r, t| dyv[r * o + t],
                &|c, t| wv[t * i + c],
                None,
            );
            let dw = be.download(&g.dw).unwrap();
            check(
                &format!("{tag} dw"),
                p,
                &dw,
                (o, i, n),
                &|r, t| dyv[t * o + r],
                &|c, t| xv[t * i + c],
                None,
            );
        }
    }
}
