//! 16-bit activation storage through a whole training step (issue 12), on the CUDA emulator.
//!
//! At `--precision bf16|fp16` the CUDA backend stores every activation and activation gradient
//! in that format (`CudaBackend::activation_storage`, src/cuda/act.cuh), as PyTorch's autocast
//! does; parameters, their gradients, BN statistics and the loss stay FP32. Op by op the kernels
//! are checked bit for bit in src/cuda/storage_tests.rs. Here, a ResNet18 training step
//! at each 16-bit precision, 16-bit against FP32 storage at the same arithmetic (random weights,
//! 32 x 32 images):
//! - the tape really holds 16-bit activations, and its forward peak is measured to halve (the
//!   network input, FP32, and the FP32 pooled features are the only 4-byte values);
//! - the loss and the parameter gradients (BN frozen: with batch statistics over 2 images a
//!   random ResNet18 is chaotic, TF32 alone moved its gradients by O(1)) stay near the CPU's
//!   FP32 step: each stored activation is rounded once more (2^-8 relative for bf16, 2^-11 for
//!   f16), which costs about what the 16-bit arithmetic itself costs (numbers below).

use std::collections::BTreeMap;

use skinengine::CpuBackend;
use skinengine::backend::Backend;
use skinengine::cuda::{CudaBackend, Elem, Precision, Precisions};
use skinengine::model::arch::Arch;
use skinengine::model::init::random_weights;
use skinengine::model::net::{BnMode, Net};
use skinengine::ops::prelude::*;
use skinengine::rng::Rng;
use skinengine::tensor::Tensor;

/// Held activations of a train-mode forward tape by storage, and its peak bytes.
fn tape_storage(
    be: &CudaBackend,
    sd: &BTreeMap<String, Tensor>,
    x: &Tensor,
) -> (BTreeMap<String, usize>, usize) {
    let net = Net::from_state_dict(be, Arch::ResNet18, sd, true).unwrap();
    let xd = be.upload(x).unwrap();
    let logits = net.graph.logits.unwrap();
    let tape = net.forward(be, &xd, BnMode::Train, 0, &[logits]).unwrap();
    let mut held = BTreeMap::new();
    for v in tape.values.iter().flatten() {
        *held.entry(format!("{:?}", v.elem())).or_insert(0) += 1;
    }
    (held, tape.peak_bytes)
}

type LossGrads = (f64, BTreeMap<String, Tensor>);

/// Loss and parameter gradients (downloaded) of one step with frozen BN statistics.
fn grads<B: Backend>(
    be: &B,
    sd: &BTreeMap<String, Tensor>,
    x: &Tensor,
    labels: &[usize],
) -> LossGrads {
    let net = Net::from_state_dict(be, Arch::ResNet18, sd, true).unwrap();
    let xd = be.upload(x).unwrap();
    let (loss, g) = net.loss_and_grads(be, &xd, labels, BnMode::Eval).unwrap();
    let g = g
        .into_iter()
        .map(|(k, v)| (k, be.download(&v).unwrap()))
        .collect();
    (loss, g)
}

fn rel_l2(got: &Tensor, want: &Tensor) -> f64 {
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (g, w) in got.data().iter().zip(want.data()) {
        num += (*g as f64 - *w as f64).powi(2);
        den += (*w as f64).powi(2);
    }
    (num / den.max(1e-300)).sqrt()
}

/// (loss relative error, median and worst parameter-gradient relative L2) against `want`.
fn errors(got: &LossGrads, want: &LossGrads) -> (f64, f64, f64) {
    assert_eq!(got.1.len(), want.1.len());
    let mut e: Vec<f64> = got.1.iter().map(|(k, g)| rel_l2(g, &want.1[k])).collect();
    e.sort_by(f64::total_cmp);
    (
        (got.0 - want.0).abs() / want.0.abs(),
        e[e.len() / 2],
        e[e.len() - 1],
    )
}

fn setup(p: Precision, e: Elem) -> (CudaBackend, BTreeMap<String, Tensor>, Tensor) {
    let sd = random_weights(Arch::ResNet18, 21, Some(7));
    let mut rng = Rng::new(4);
    let x = Tensor::from_fn(&[2, 3, 32, 32], |_| rng.normal() as f32);
    let be = skinengine::testing::suite::emulator()
        .with_precisions(Precisions::all(p))
        .unwrap();
    assert_eq!(be.activation_storage(), e);
    (be, sd, x)
}

fn tape_at(p: Precision, e: Elem) {
    let (be, sd, x) = setup(p, e);
    let fp32 = be.clone().with_activation_storage(Elem::F32).unwrap();
    let (h16, peak16) = tape_storage(&be, &sd, &x);
    let (h32, peak32) = tape_storage(&fp32, &sd, &x);
    let name = format!("{e:?}");
    println!("{p}: train-mode tape holds {h16:?} (FP32 storage: {h32:?})");
    assert!(
        h16.get(&name).copied().unwrap_or(0) > 0,
        "{p}: no 16-bit activation held"
    );
    assert!(
        !h32.contains_key(&name),
        "{p}: FP32 storage holds 16-bit values"
    );
    let ratio = peak16 as f64 / peak32 as f64;
    println!("{p}: forward peak {peak16} vs {peak32} bytes ({ratio:.3})");
    assert!((0.5..0.56).contains(&ratio), "{p}: peak ratio {ratio}");
}

/// `(median, worst)` bounds on the gradients' relative L2 against the CPU's FP32 step, for
/// 16-bit storage and for FP32 storage at the same arithmetic.
fn gradients_at(p: Precision, e: Elem, bounds: [(f64, f64); 2]) {
    let (be, sd, x) = setup(p, e);
    let fp32 = be.clone().with_activation_storage(Elem::F32).unwrap();
    // One image (frozen BN needs no batch).
    let x1 = Tensor::new(&[1, 3, 32, 32], x.data()[..3 * 32 * 32].to_vec()).unwrap();
    let want = grads(&CpuBackend, &sd, &x1, &[1]);
    for ((how, b), (median_bound, worst_bound)) in
        [("16-bit storage", &be), ("FP32 storage", &fp32)]
            .into_iter()
            .zip(bounds)
    {
        let got = grads(b, &sd, &x1, &[1]);
        let (dl, median, worst) = errors(&got, &want);
        println!(
            "{p} {how}: loss rel err {dl:.1e}; gradient rel L2 median {median:.2e}, worst {worst:.2e}"
        );
        assert!(dl < 1e-3, "{p} {how}: loss rel err {dl}");
        assert!(median < median_bound, "{p} {how}: median {median}");
        assert!(worst < worst_bound, "{p} {how}: worst {worst}");
    }
}

#[test]
fn bf16_storage_halves_the_training_tape() {
    tape_at(Precision::Bf16, Elem::Bf16);
}

#[test]
fn fp16_storage_halves_the_training_tape() {
    tape_at(Precision::Fp16, Elem::F16);
}

// Measured (emulator, this seed, vs the CPU's FP32 step): bf16 storage median 4.8e-2, worst
// 0.19 (FP32 storage at BF16 arithmetic: 3.8e-2, 0.12); f16 storage 9.9e-4, 1.7e-2 (FP32
// storage: 7.1e-4, 2.6e-2). Bounds ~2x. Ignored in CI: ~3 minutes on 2 cores (the time did not
// change from 32x32 to 16x16 images: it goes to the weight-sized emulated work, packing and
// weight gradients of ResNet18's 11M parameters).
#[test]
#[ignore = "~3 minutes on the emulator: cargo test --test activation_storage -- --ignored"]
fn bf16_storage_gradients_stay_near_fp32() {
    gradients_at(Precision::Bf16, Elem::Bf16, [(0.1, 0.4), (0.08, 0.3)]);
}

#[test]
#[ignore = "~3 minutes on the emulator: cargo test --test activation_storage -- --ignored"]
fn fp16_storage_gradients_stay_near_fp32() {
    gradients_at(Precision::Fp16, Elem::F16, [(2e-3, 4e-2), (1.5e-3, 5e-2)]);
}
