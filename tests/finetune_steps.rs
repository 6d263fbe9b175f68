//! Five AdamW steps on one fixed batch through a whole ResNet18 in training mode (BN batch
//! statistics, running statistics updated; classifier lr 1e-3, backbone lr 1e-4, weight decay
//! 0.01 on weights of rank >= 2 only), against PyTorch in float64 (tests/fixtures/
//! steps_resnet18.safetensors, made by tools/make_steps_fixture.sh from the weights and images
//! `model::parity::grads` regenerates here): the loss of every step and 48 sampled values of
//! every final parameter and running statistic.
//!
//! Tolerances.
//! - Reference backend (f64 sums, forward within ~1e-7 of f64): losses within 1e-6 relative;
//!   parameters within 0.5 lr of their group (an Adam step moves an element by about lr times
//!   sign(m)/sqrt(v) <= ~1 lr: elements whose gradient is at f32 noise level may step the other
//!   way; measured on the samples: 0.002 lr); running statistics within 1e-4 of the largest |value| of
//!   their tensor's samples.
//! - Fast CPU backend: its f32 forward puts one ReLU input of this batch on the other side of
//!   0 (see tests/grads_parity.rs), and Adam turns the sign of every small gradient into a full
//!   lr step, so trajectories part a little after step 1 (measured: step-3 loss 7e-4 relative
//!   away). So: losses within 5e-3 relative, at least 95% of the sampled parameter values
//!   within 0.5 lr and all within 10 lr (two trajectories of 5 steps of <= 1 lr cannot be
//!   further apart), running statistics within 5e-2 of their scale. A wrong gradient, update
//!   rule, learning-rate group or decay rule moves most values by >= 1 lr.

use skinengine::model::arch::Arch;
use skinengine::model::net::{BnMode, Net};
use skinengine::model::parity::{FC_CLASSES, grads};
use skinengine::ops::adam::AdamConfig;
use skinengine::ops::loss::Reduction;
use skinengine::ops::prelude::*;
use skinengine::testing::fixture_file_f64;
use skinengine::train::finetune::{train_step, trained_params};
use skinengine::train::loss_scale::{LossScaleConfig, LossScaleMode, LossScaler};
use skinengine::train::optim::{OptimConfig, Optimizer, Schedule};
use skinengine::{CpuBackend, ReferenceBackend};
use std::path::PathBuf;

const LR: f64 = 1e-3;
const LR_BACKBONE: f64 = 1e-4;

struct Outcome {
    loss_err: f64,
    /// Sampled parameter errors in units of their group's lr.
    param_errs: Vec<f64>,
    /// Worst running-statistic error relative to its samples' largest |value|.
    running_err: f64,
}

fn run<B: Backend>(b: &B) -> Outcome {
    let arch = Arch::ResNet18;
    let mut net = Net::from_state_dict(b, arch, &grads::weights(arch), true).unwrap();
    let params = trained_params(b, &net, 0).unwrap();
    let adam = AdamConfig {
        lr: LR,
        weight_decay: 0.01,
        ..AdamConfig::default()
    };
    let cfg = OptimConfig::adam(adam, LR_BACKBONE);
    let mut opt = Optimizer::new(b, cfg, Schedule::constant(), &params).unwrap();
    // Off: these steps are compared with PyTorch's FP32 steps.
    let off = LossScaleConfig {
        mode: LossScaleMode::Off,
        ..Default::default()
    };
    let mut scaler = LossScaler::new(&off, b.precisions()).unwrap();
    let x = b.upload(&grads::images()).unwrap();
    let ones = vec![1.0; FC_CLASSES];
    let fx = fixture_file_f64(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/steps_resnet18.safetensors"),
    );
    let want_losses = &fx["loss"].1;
    let mut loss_err = 0.0f64;
    for want in want_losses {
        let l = train_step(
            b,
            &mut net,
            &mut opt,
            &mut scaler,
            &x,
            &grads::LABELS,
            &ones,
            Reduction::Normalized,
            BnMode::Train,
            0,
        )
        .unwrap();
        loss_err = loss_err.max((l - want).abs() / want.abs());
    }
    let got = net.state_dict(b).unwrap();
    let mut out = Outcome {
        loss_err,
        param_errs: Vec::new(),
        running_err: 0.0,
    };
    assert_eq!(
        got.len(),
        fx.len() - 1,
        "state dict size differs from PyTorch's"
    );
    for (name, t) in &got {
        let want = &fx[&format!("sample/{name}")].1;
        let idx = grads::sample_indices(t.len());
        let errs = idx
            .iter()
            .zip(want)
            .map(|(&i, &w)| (t.data()[i] as f64 - w).abs());
        if name.contains("running_") {
            let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            out.running_err = out.running_err.max(errs.fold(0.0, f64::max) / scale);
        } else {
            let lr = if name.starts_with("fc.") {
                LR
            } else {
                LR_BACKBONE
            };
            out.param_errs.extend(errs.map(|e| e / lr));
        }
    }
    let worst = out.param_errs.iter().cloned().fold(0.0, f64::max);
    let within =
        out.param_errs.iter().filter(|&&e| e <= 0.5).count() as f64 / out.param_errs.len() as f64;
    eprintln!(
        "{}: losses rel err {:.2e}; parameters: worst {worst:.3} lr, {:.2}% within 0.5 lr; running stats {:.2e}",
        b.name(),
        out.loss_err,
        100.0 * within,
        out.running_err
    );
    out
}

#[test]
fn five_adamw_steps_on_the_reference_backend_match_pytorch() {
    let o = run(&ReferenceBackend);
    assert!(o.loss_err <= 1e-6, "loss {:e}", o.loss_err);
    let worst = o.param_errs.iter().cloned().fold(0.0, f64::max);
    assert!(
        worst <= 0.5,
        "a parameter is {worst} lr away from PyTorch's"
    );
    assert!(
        o.running_err <= 1e-4,
        "running statistics {:e}",
        o.running_err
    );
}

#[test]
fn five_adamw_steps_on_the_cpu_backend_match_pytorch() {
    let o = run(&CpuBackend);
    assert!(o.loss_err <= 5e-3, "loss {:e}", o.loss_err);
    let worst = o.param_errs.iter().cloned().fold(0.0, f64::max);
    let within =
        o.param_errs.iter().filter(|&&e| e <= 0.5).count() as f64 / o.param_errs.len() as f64;
    assert!(
        worst <= 10.0,
        "a parameter is {worst} lr away from PyTorch's"
    );
    assert!(within >= 0.95, "only {within} of parameters within 0.5 lr");
    assert!(
        o.running_err <= 5e-2,
        "running statistics {:e}",
        o.running_err
    );
}
