//! The backend interface end to end: a small BN + ReLU + dense head trained with weighted
//! cross-entropy and Adam through `Backend` only, as training code will use it. Written generic so
//! every backend runs the same check.

use skinengine::ops::adam::AdamConfig;
use skinengine::ops::batchnorm::BnParams;
use skinengine::ops::loss::Reduction;
use skinengine::ops::prelude::*;
use skinengine::{CpuBackend, ReferenceBackend, Rng, Tensor};

/// Three Gaussian blobs in 6-d, classes 0..3. Returns (x [n, 6], labels).
fn blobs(n: usize, rng: &mut Rng) -> (Tensor, Vec<usize>) {
    let centres = Tensor::<f32>::randn(&[3, 6], 2.0, rng);
    let labels: Vec<usize> = (0..n).map(|_| rng.below(3)).collect();
    let x = Tensor::from_fn(&[n, 6], |i| {
        let (r, f) = (i / 6, i % 6);
        centres.data()[labels[r] * 6 + f] + rng.normal() as f32 * 0.5
    });
    (x, labels)
}

/// Trains dense(6->8) -> BN1d -> ReLU -> dense(8->3); returns the loss of every step.
fn train_head<B: Backend>(b: &B) -> Vec<f64> {
    let mut rng = Rng::new(5);
    let (x, labels) = blobs(48, &mut rng);
    let x = b.upload(&x).unwrap();
    let up = |t: Tensor| b.upload(&t).unwrap();
    let mut w1 = up(Tensor::kaiming_normal(&[8, 6], &mut rng));
    let mut b1 = up(Tensor::zeros(&[8]));
    let mut w2 = up(Tensor::kaiming_normal(&[3, 8], &mut rng));
    let mut b2 = up(Tensor::zeros(&[3]));
    let mut bn = BnParams {
        gamma: up(Tensor::full(&[8], 1.0)),
        beta: up(Tensor::zeros(&[8])),
        running_mean: up(Tensor::zeros(&[8])),
        running_var: up(Tensor::full(&[8], 1.0)),
        eps: 1e-5,
    };
    let zeros = |s: &[usize]| up(Tensor::zeros(s));
    let mut moments: Vec<(B::Tensor, B::Tensor)> = [&[8, 6][..], &[8], &[3, 8], &[3], &[8], &[8]]
        .iter()
        .map(|s| (zeros(s), zeros(s)))
        .collect();
    let cfg = AdamConfig {
        lr: 0.05,
        ..AdamConfig::default()
    };
    let weights = [1.0f32, 2.0, 0.5];
    let mut losses = Vec::new();
    for step in 1..=40u64 {
        let h = b.dense(&x, &w1, Some(&b1)).unwrap();
        let (hn, stats) = b.batchnorm_train(&h, &bn).unwrap();
        let a = b.relu(&hn).unwrap();
        let z = b.dense(&a, &w2, Some(&b2)).unwrap();
        let (loss, dz) = b
            .weighted_cross_entropy(&z, &labels, &weights, Reduction::Normalized)
            .unwrap();
        losses.push(loss);
        let g2 = b.dense_backward(&dz, &a, &w2).unwrap();
        let dhn = b.relu_backward(&g2.dx, &hn).unwrap();
        let (dh, dgamma, dbeta) = b.batchnorm_train_backward(&dhn, &h, &bn, &stats).unwrap();
        let g1 = b.dense_backward(&dh, &x, &w1).unwrap();
        b.batchnorm_update_running(&mut bn, &stats, 0.1).unwrap();
        let params: [(&mut B::Tensor, &B::Tensor); 6] = [
            (&mut w1, &g1.dw),
            (&mut b1, &g1.db),
            (&mut w2, &g2.dw),
            (&mut b2, &g2.db),
            (&mut bn.gamma, &dgamma),
            (&mut bn.beta, &dbeta),
        ];
        for ((p, g), (m, v)) in params.into_iter().zip(moments.iter_mut()) {
            b.adam_step(p, g, m, v, &cfg, step).unwrap();
        }
    }
    // Inference path: running statistics moved away from their initial values.
    let rm = b.download(&bn.running_mean).unwrap();
    assert!(
        rm.data().iter().any(|v| v.abs() > 1e-3),
        "running mean never updated"
    );
    let h = b.dense(&x, &w1, Some(&b1)).unwrap();
    let a = b.relu(&b.batchnorm_inference(&h, &bn).unwrap()).unwrap();
    let p = b
        .download(&b.softmax(&b.dense(&a, &w2, Some(&b2)).unwrap()).unwrap())
        .unwrap();
    let correct = (0..48)
        .filter(|&r| {
            let row = &p.data()[r * 3..r * 3 + 3];
            let best = (0..3).max_by(|&i, &j| row[i].total_cmp(&row[j])).unwrap();
            best == labels[r]
        })
        .count();
    assert!(
        correct >= 44,
        "inference accuracy {correct}/48 after training"
    );
    losses
}

#[test]
fn reference_backend_trains_a_head() {
    let losses = train_head(&ReferenceBackend);
    let (first, last) = (losses[0], *losses.last().unwrap());
    assert!(first > 0.5, "initial loss {first} suspiciously low");
    assert!(last < 0.2 * first, "loss went from {first} to {last}");
}

#[test]
fn cpu_backend_trains_a_head() {
    let cpu = train_head(&CpuBackend);
    let reference = train_head(&ReferenceBackend);
    // Same data, same init, f32 vs f64-accumulated ops: the loss curves agree closely
    // (40 Adam steps amplify rounding differences a little; 1e-3 relative is ample).
    for (step, (c, r)) in cpu.iter().zip(&reference).enumerate() {
        assert!(
            (c - r).abs() <= 1e-3 * r.abs(),
            "step {step}: cpu loss {c} vs reference {r}"
        );
    }
}

#[cfg(target_os = "linux")]
#[test]
fn cuda_backend_in_emulator_trains_a_head() {
    // Every kernel of the head (dense, BN, ReLU, CE, Adam) through the CUDA backend's launches,
    // run by the CPU emulator; same tolerance as the CPU backend above.
    let be = skinengine::CudaBackend::emulator(0);
    let cuda = train_head(&be);
    let reference = train_head(&ReferenceBackend);
    for (step, (c, r)) in cuda.iter().zip(&reference).enumerate() {
        assert!(
            (c - r).abs() <= 1e-3 * r.abs(),
            "step {step}: cuda loss {c} vs reference {r}"
        );
    }
}
