//! 16-bit activation storage (`act.cuh`, [`CudaBackend::activation_storage`]) on the emulator,
//! op by op, at bf16 and at f16.
//!
//! Loads widen exactly and every kernel computes in FP32 exactly as on FP32 storage, rounding
//! once when it stores. So the check needs no tolerance: an op on 16-bit tensors must give, bit
//! for bit, the same op on FP32 tensors holding the same (widened) values, its output rounded to
//! nearest even to the 16-bit format — and FP32 outputs (statistics, parameter gradients, the
//! pooled features) must be equal. A kernel that read a 16-bit buffer as floats, stored in the
//! wrong format or rounded twice fails here. The FP32 side runs on the same backend with
//! [`CudaBackend::with_activation_storage`] FP32 where the output format is the backend's
//! (convolutions, the average pool's gradient).

use half::{bf16, f16};

use super::{CudaBackend, CudaTensor, Elem, Precision, Precisions};
use crate::ops::batchnorm::BnParams;
use crate::ops::conv2d::{Conv2dParams, Epilogue, cuda_tc, geometry};
use crate::ops::elementwise::Activation;
use crate::ops::pool::Pool2dParams;
use crate::ops::prelude::*;
use crate::{Rng, Tensor};

/// The backend storing activations in `e`'s format, and its FP32-storage twin.
fn backends(e: Elem) -> (CudaBackend, CudaBackend) {
    let p = match e {
        Elem::Bf16 => Precision::Bf16,
        _ => Precision::Fp16,
    };
    let be = crate::testing::suite::emulator()
        .with_precisions(Precisions::all(p))
        .unwrap();
    assert_eq!(be.activation_storage(), e);
    let fp32 = be.clone().with_activation_storage(Elem::F32).unwrap();
    (be, fp32)
}

/// `t` stored as `e`, and an FP32 tensor holding exactly the values that storage holds.
fn pair(be: &CudaBackend, t: &Tensor, e: Elem) -> (CudaTensor, CudaTensor) {
    let h = CudaTensor::upload_as(be.device(), t, e).unwrap();
    let w = be.upload(&h.download().unwrap()).unwrap();
    (h, w)
}

fn rounded_bits(e: Elem, v: f32) -> u32 {
    match e {
        Elem::Bf16 => bf16::from_f32(v).to_f32().to_bits(),
        Elem::F16 => f16::from_f32(v).to_f32().to_bits(),
        _ => v.to_bits(),
    }
}

/// `got` is stored as `e` and holds `want` (FP32) rounded to it, bit for bit.
fn assert_rounded(what: &str, got: &CudaTensor, want: &CudaTensor, e: Elem) {
    assert_eq!(got.elem(), e, "{what}: storage");
    assert_eq!(want.elem(), Elem::F32, "{what}: FP32 side");
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let (g, w) = (got.download().unwrap(), want.download().unwrap());
    for (i, (a, b)) in g.data().iter().zip(w.data()).enumerate() {
        assert_eq!(
            a.to_bits(),
            rounded_bits(e, *b),
            "{what} [{i}]: {a} stored, FP32 result {b}"
        );
    }
}

/// Same format, same bits.
fn assert_same(what: &str, got: &CudaTensor, want: &CudaTensor) {
    assert_rounded(what, got, want, Elem::F32);
}

const FORMATS: [Elem; 2] = [Elem::Bf16, Elem::F16];

#[test]
fn elementwise_ops_round_once() {
    let mut rng = Rng::new(5);
    for e in FORMATS {
        let (be, _) = backends(e);
        // 1000 values: past one 256-thread block, not a multiple of it.
        let (x, xw) = pair(&be, &Tensor::randn(&[4, 10, 5, 5], 2.0, &mut rng), e);
        let (dy, dyw) = pair(&be, &Tensor::randn(&[4, 10, 5, 5], 1.0, &mut rng), e);
        for act in Activation::ALL {
            let y = be.activation(*act, &x).unwrap();
            assert_rounded(
                &format!("{act:?} {e:?}"),
                &y,
                &be.activation(*act, &xw).unwrap(),
                e,
            );
            let dx = be.activation_grad(*act, &dy, &x).unwrap();
            let want = be.activation_grad(*act, &dyw, &xw).unwrap();
            assert_rounded(&format!("{act:?} grad {e:?}"), &dx, &want, e);
        }
        // Same 16-bit format: the sum is stored so; mixed with FP32: the sum is FP32.
        assert_rounded(
            &format!("add {e:?}"),
            &be.add(&x, &dy).unwrap(),
            &be.add(&xw, &dyw).unwrap(),
            e,
        );
        assert_same(
            &format!("add {e:?} + f32"),
            &be.add(&x, &dyw).unwrap(),
            &be.add(&xw, &dyw).unwrap(),
        );
    }
}

#[test]
fn pooling_keeps_the_storage_and_pools_to_fp32() {
    let mut rng = Rng::new(6);
    let p = Pool2dParams {
        kernel: (3, 3),
        stride: (2, 2),
        padding: (1, 1),
    };
    for e in FORMATS {
        let (be, fp32) = backends(e);
        let (x, xw) = pair(&be, &Tensor::randn(&[2, 3, 9, 8], 1.0, &mut rng), e);
        let y = be.maxpool2d(&x, &p).unwrap();
        assert_rounded(
            &format!("maxpool {e:?}"),
            &y,
            &be.maxpool2d(&xw, &p).unwrap(),
            e,
        );
        let (dy, dyw) = pair(&be, &Tensor::randn(be.shape(&y), 1.0, &mut rng), e);
        assert_rounded(
            &format!("maxpool grad {e:?}"),
            &be.maxpool2d_backward(&dy, &x, &p).unwrap(),
            &be.maxpool2d_backward(&dyw, &xw, &p).unwrap(),
            e,
        );
        // The pooled features are FP32: equal to the pool of the widened values.
        assert_same(
            &format!("avgpool {e:?}"),
            &be.global_avg_pool(&x).unwrap(),
            &be.global_avg_pool(&xw).unwrap(),
        );
        let g = be.upload(&Tensor::randn(&[2, 3], 1.0, &mut rng)).unwrap();
        let shape = [2, 3, 9, 8];
        assert_rounded(
            &format!("avgpool grad {e:?}"),
            &be.global_avg_pool_backward(&g, &shape).unwrap(),
            &fp32.global_avg_pool_backward(&g, &shape).unwrap(),
            e,
        );
    }
}

#[test]
fn batch_norm_reads_and_writes_the_storage() {
    let mut rng = Rng::new(7);
    for e in FORMATS {
        let (be, _) = backends(e);
        let shape = [3, 5, 6, 7];
        let (x, xw) = pair(&be, &Tensor::randn(&shape, 3.0, &mut rng), e);
        let up = |t: Tensor| be.upload(&t).unwrap();
        let bn = BnParams {
            gamma: up(Tensor::randn(&[5], 1.0, &mut rng)),
            beta: up(Tensor::randn(&[5], 1.0, &mut rng)),
            running_mean: up(Tensor::randn(&[5], 1.0, &mut rng)),
            running_var: up(Tensor::from_fn(&[5], |i| 0.5 + i as f32)),
            eps: 1e-5,
        };
        let (y, st) = be.batchnorm_train(&x, &bn).unwrap();
        let (yw, stw) = be.batchnorm_train(&xw, &bn).unwrap();
        assert_rounded(&format!("bn train {e:?}"), &y, &yw, e);
        assert_same("bn mean", &st.mean, &stw.mean);
        assert_same("bn var", &st.var, &stw.var);
        let (dy, dyw) = pair(&be, &Tensor::randn(&shape, 1.0, &mut rng), e);
        let r = be.relu(&y).unwrap();
        let rw = be.upload(&r.download().unwrap()).unwrap();
        let cases = [
            (
                "train",
                be.batchnorm_train_backward(&dy, &x, &bn, &st).unwrap(),
                be.batchnorm_train_backward(&dyw, &xw, &bn, &stw).unwrap(),
            ),
            (
                "train + relu",
                be.batchnorm_relu_train_backward(&dy, &r, &x, &bn, &st)
                    .unwrap(),
                be.batchnorm_relu_train_backward(&dyw, &rw, &xw, &bn, &stw)
                    .unwrap(),
            ),
            (
                "frozen + relu",
                be.batchnorm_relu_inference_backward(&dy, &r, &x, &bn)
                    .unwrap(),
                be.batchnorm_relu_inference_backward(&dyw, &rw, &xw, &bn)
                    .unwrap(),
            ),
        ];
        for (how, got, want) in cases {
            assert_rounded(&format!("bn {how} dx {e:?}"), &got.0, &want.0, e);
            assert_same(&format!("bn {how} dgamma {e:?}"), &got.1, &want.1);
            assert_same(&format!("bn {how} dbeta {e:?}"), &got.2, &want.2);
        }
        assert_rounded(
            &format!("bn inference {e:?}"),
            &be.batchnorm_inference(&x, &bn).unwrap(),
            &be.batchnorm_inference(&xw, &bn).unwrap(),
            e,
        );
    }
}

#[test]
fn convolutions_read_and_write_the_storage() {
    let mut rng = Rng::new(8);
    // Pointwise; 3x3 stride 1 (dgrad through the forward kernel); 3x3 stride 2 (conv2d_tc_dgrad).
    let cases: [([usize; 4], [usize; 4], usize, usize); 3] = [
        ([2, 16, 6, 5], [24, 16, 1, 1], 1, 0),
        ([2, 8, 7, 6], [12, 8, 3, 3], 1, 1),
        ([2, 8, 9, 8], [12, 8, 3, 3], 2, 1),
    ];
    for e in FORMATS {
        let (be, fp32) = backends(e);
        let p = be.precisions().conv;
        for (xs, ws, s, pad) in cases {
            let cp = Conv2dParams {
                stride: (s, s),
                padding: (pad, pad),
            };
            let g = geometry(&xs, &ws, &cp).unwrap();
            let tag = format!("{e:?} x{xs:?} w{ws:?} s{s}");
            let (x, xw) = pair(&be, &Tensor::randn(&xs, 1.0, &mut rng), e);
            let w = be.upload(&Tensor::randn(&ws, 0.5, &mut rng)).unwrap();
            let bias = be.upload(&Tensor::randn(&[ws[0]], 1.0, &mut rng)).unwrap();
            let (res, resw) = pair(&be, &Tensor::randn(&g.y_shape(), 1.0, &mut rng), e);
            let (dy, dyw) = pair(&be, &Tensor::randn(&g.y_shape(), 1.0, &mut rng), e);
            assert_rounded(
                &format!("conv {tag}"),
                &be.conv2d_fused(&x, &w, Some(&bias), Some(&res), true, &cp)
                    .unwrap(),
                &fp32
                    .conv2d_fused(&xw, &w, Some(&bias), Some(&resw), true, &cp)
                    .unwrap(),
                e,
            );
            // Split K: the reduction kernel applies the epilogue and stores.
            let split = |x: &CudaTensor, r: &CudaTensor, out: Elem| {
                let epi = Epilogue {
                    bias: Some(&bias),
                    residual: Some(r),
                    relu: true,
                };
                cuda_tc::forward(p, be.device(), x, &w, &g, epi, Some(3), out).unwrap()
            };
            assert_rounded(
                &format!("conv split {tag}"),
                &split(&x, &res, e),
                &split(&xw, &resw, Elem::F32),
                e,
            );
            assert_rounded(
                &format!("conv dx {tag}"),
                &be.conv2d_backward_data(&dy, &w, &xs, &cp).unwrap(),
                &fp32.conv2d_backward_data(&dyw, &w, &xs, &cp).unwrap(),
                e,
            );
            assert_same(
                &format!("conv dW {tag}"),
                &be.conv2d_backward_weight(&dy, &x, &ws, &cp).unwrap(),
                &fp32.conv2d_backward_weight(&dyw, &xw, &ws, &cp).unwrap(),
            );
            assert_same(
                &format!("conv db {tag}"),
                &be.conv2d_backward_bias(&dy).unwrap(),
                &fp32.conv2d_backward_bias(&dyw).unwrap(),
            );
        }
    }
}

/// VGG's flattened activations reach the dense layers 16-bit: widened exactly, FP32 out.
#[test]
fn dense_layers_widen_16_bit_inputs() {
    let mut rng = Rng::new(9);
    for e in FORMATS {
        let (be, _) = backends(e);
        let (x, xw) = pair(&be, &Tensor::randn(&[3, 40], 1.0, &mut rng), e);
        let w = be.upload(&Tensor::randn(&[7, 40], 0.3, &mut rng)).unwrap();
        let b = be.upload(&Tensor::randn(&[7], 1.0, &mut rng)).unwrap();
        let y = be.dense(&x, &w, Some(&b)).unwrap();
        assert_same(
            &format!("dense {e:?}"),
            &y,
            &be.dense(&xw, &w, Some(&b)).unwrap(),
        );
        let dy = be.upload(&Tensor::randn(&[3, 7], 1.0, &mut rng)).unwrap();
        let (g, gw) = (
            be.dense_backward(&dy, &x, &w).unwrap(),
            be.dense_backward(&dy, &xw, &w).unwrap(),
        );
        assert_same(&format!("dense dx {e:?}"), &g.dx, &gw.dx);
        assert_same(&format!("dense dW {e:?}"), &g.dw, &gw.dw);
    }
}

#[test]
fn storage_follows_the_convolution_precision() {
    let be = crate::testing::suite::emulator();
    assert_eq!(be.activation_storage(), Elem::F32);
    for (p, e) in [
        (Precision::Fp32, Elem::F32),
        (Precision::Tf32, Elem::F32),
        (Precision::Bf16, Elem::Bf16),
        (Precision::Fp16, Elem::F16),
    ] {
        let b = be.clone().with_precisions(Precisions::all(p)).unwrap();
        assert_eq!(b.activation_storage(), e, "{p}");
        // Dense layers alone at 16 bits leave the activations FP32.
        let m = be
            .clone()
            .with_precisions(Precisions {
                conv: Precision::Fp32,
                matmul: p,
            })
            .unwrap();
        assert_eq!(m.activation_storage(), Elem::F32, "matmul {p}");
        // FP32 storage is always allowed; another 16-bit format than the arithmetic's is not.
        assert!(b.clone().with_activation_storage(Elem::F32).is_ok());
        let other = if e == Elem::Bf16 {
            Elem::F16
        } else {
            Elem::Bf16
        };
        assert!(
            b.with_activation_storage(other).is_err(),
            "{p} as {other:?}"
        );
    }
}
