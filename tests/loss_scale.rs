//! Dynamic loss scaling for FP16 training (issue 12), on the CUDA emulator at --precision fp16:
//! - why it exists: a dense layer's weight gradient from dL/dy of size ~1e-8 (below FP16's
//!   smallest subnormal, 2^-24 ~ 6e-8) is lost when the tensor cores read dy as FP16, and
//!   comes back to FP16 accuracy when dy is scaled by 2^16 and the result divided by it;
//! - an overflowing scale skips the step: a head trained at FP16 whose every step overflows
//!   changes no parameter and halves the scale once per step, as GradScaler; from a scale that
//!   fits it trains (finite weights that moved);
//! - scaling by powers of two is exact in FP32, so a fine-tuning run on the CPU with
//!   `--loss-scale dynamic` (growing the scale every 3 steps) ends bit for bit where the same
//!   run without scaling ends; stopped after its first epoch and resumed, it ends there too,
//!   with the scaler's state (scale, growth tracker, skipped steps) restored from the checkpoint.
//!
//! Fine-tuning itself is not run on the emulator here: its tensor-core kernels are emulated
//! thread by thread, and a ResNet18 epoch at 32x32 took ~2 minutes there.

use skinengine::CpuBackend;
use skinengine::classes::ClassList;
use skinengine::cuda::{CudaBackend, Precision, Precisions};
use skinengine::data::synth::{SynthConfig, SynthLayout, write_synth};
use skinengine::io::safetensors as st;
use skinengine::model::arch::Arch;
use skinengine::ops::prelude::*;
use skinengine::rng::Rng;
use skinengine::tensor::Tensor;
use skinengine::train::checkpoint::Progress;
use skinengine::train::epochs::{EpochData, run_epochs};
use skinengine::train::finetune::{FineTune, FineTuneConfig};
use skinengine::train::head::Head;
use skinengine::train::loss_scale::LossScaler;
use skinengine::train::loss_scale::{LossScaleConfig, LossScaleMode};
use skinengine::train::norm::FeatureNorm;
use skinengine::train::{TrainConfig, train};
use std::collections::BTreeMap;
use std::path::Path;

fn fp16() -> CudaBackend {
    skinengine::testing::suite::emulator()
        .with_precisions(Precisions::all(Precision::Fp16))
        .unwrap()
}

fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den).sqrt()
}

#[test]
fn scaling_rescues_fp16_weight_gradients_that_underflow() {
    let mut rng = Rng::new(3);
    let mut t = |shape: &[usize], s: f64| {
        let n: usize = shape.iter().product();
        Tensor::new(shape, (0..n).map(|_| (rng.normal() * s) as f32).collect()).unwrap()
    };
    let (x, w, dy) = (t(&[16, 64], 1.0), t(&[24, 64], 0.1), t(&[16, 24], 1e-8));
    let cpu = CpuBackend;
    let want = cpu
        .dense_backward(&cpu.upload(&dy).unwrap(), &x, &w)
        .unwrap()
        .dw;
    let b = fp16();
    let (xd, wd) = (b.upload(&x).unwrap(), b.upload(&w).unwrap());
    let dw_of = |dy: &Tensor| {
        let g = b.dense_backward(&b.upload(dy).unwrap(), &xd, &wd).unwrap();
        b.download(&g.dw).unwrap()
    };
    let plain = dw_of(&dy);
    let scale = 65536.0f32;
    let scaled_dy = Tensor::new(dy.shape(), dy.data().iter().map(|v| v * scale).collect()).unwrap();
    let scaled: Vec<f32> = dw_of(&scaled_dy).data().iter().map(|v| v / scale).collect();
    let (e_plain, e_scaled) = (
        rel_l2(plain.data(), want.data()),
        rel_l2(&scaled, want.data()),
    );
    println!("dW rel L2 vs FP32: unscaled fp16 {e_plain:.3e}, scaled by 2^16 {e_scaled:.3e}");
    // Unscaled: dy's values are 0 or a few multiples of 2^-24 in FP16: most of dW is lost.
    assert!(
        e_plain > 0.3,
        "unscaled FP16 dW should be ruined by underflow: {e_plain}"
    );
    // Scaled: both operands rounded once to FP16 (u = 2^-11 each), sums in FP32: ~1e-3.
    assert!(e_scaled < 5e-3, "scaled FP16 dW: {e_scaled}");
}

fn synth(dir: &Path) {
    write_synth(
        dir,
        &SynthConfig {
            n: 30,
            width: 80,
            height: 60,
            seed: 3,
            layout: SynthLayout::Ham10000,
            ..SynthConfig::default()
        },
    )
    .unwrap();
}

fn fine_tune_config(data: &Path, out: &Path, mode: LossScaleMode) -> TrainConfig {
    let mut c = TrainConfig::new(data.into(), out.into());
    c.fine = FineTuneConfig {
        depth: FineTune::All,
        backbone: Some(Arch::ResNet18),
        image_size: 64,
        accumulate: 2,
        ..FineTuneConfig::default()
    };
    c.head = vec![16];
    c.batchnorm = true;
    c.epochs = 3;
    c.batch_size = 4;
    c.val_fraction = 0.25;
    c.seed = 7;
    c.strict = true;
    c.loss_scale = LossScaleConfig {
        mode,
        init: 65536.0,
        growth_interval: 3,
    };
    c
}

fn checkpoint(run: &Path) -> st::TensorFile {
    st::read(&run.join("checkpoint.safetensors")).unwrap()
}

#[test]
fn dynamic_scaling_in_fp32_is_exact_and_resumes_with_its_state() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    synth(&data);
    let b = CpuBackend;
    let off = d.path().join("off");
    train(&b, &fine_tune_config(&data, &off, LossScaleMode::Off)).unwrap();
    let dynamic = d.path().join("dynamic");
    train(
        &b,
        &fine_tune_config(&data, &dynamic, LossScaleMode::Dynamic),
    )
    .unwrap();
    let (co, cd) = (checkpoint(&off), checkpoint(&dynamic));
    assert!(
        co.tensors == cd.tensors,
        "scaling by powers of two changed the run"
    );
    assert!(!co.metadata.contains_key("loss_scale"));
    // 22 training views, batches of 4 in pairs: 3 steps an epoch, 9 in all: the scale grew
    // three times (every 3 clean steps) and the tracker is back at 0.
    let steps: u32 = cd.metadata["step"].parse().unwrap();
    let scale: f32 = cd.metadata["loss_scale"].parse().unwrap();
    println!("{steps} steps, loss scale {scale}");
    assert_eq!(scale, 65536.0 * 2f32.powi((steps / 3) as i32));
    assert_eq!(cd.metadata["loss_scale_growth"], (steps % 3).to_string());
    assert_eq!(cd.metadata["loss_scale_skipped"], "0");
    for f in ["metrics.json", "val_pred.csv"] {
        assert!(
            std::fs::read(off.join(f)).unwrap() == std::fs::read(dynamic.join(f)).unwrap(),
            "{f}"
        );
    }

    // Stopped after epoch 1 (mid-interval: 3 steps) and resumed: the same end.
    let part = d.path().join("part");
    let mut c = fine_tune_config(&data, &part, LossScaleMode::Dynamic);
    c.stop_after = Some(1);
    train(&b, &c).unwrap();
    let mid = checkpoint(&part);
    assert_eq!(mid.metadata["epoch"], "1");
    c.stop_after = None;
    c.resume = true;
    train(&b, &c).unwrap();
    let cp = checkpoint(&part);
    assert!(
        cp.tensors == cd.tensors,
        "checkpoint tensors differ after resume"
    );
    assert_eq!(cp.metadata, cd.metadata);
}

/// Features of 7 separable classes (one centre each plus noise), 512 wide, standardised.
fn features(n: usize, rng: &mut Rng) -> (Tensor, Vec<usize>) {
    let centres: Vec<Vec<f32>> = (0..7)
        .map(|_| (0..512).map(|_| rng.normal() as f32).collect())
        .collect();
    let labels: Vec<usize> = (0..n).map(|i| i % 7).collect();
    let x = labels
        .iter()
        .flat_map(|&y| {
            centres[y]
                .iter()
                .map(|c| c + 2.0 * rng.normal() as f32)
                .collect::<Vec<_>>()
        })
        .collect();
    (Tensor::new(&[n, 512], x).unwrap(), labels)
}

/// Trains the default head (512-120-84-7) on the emulator at FP16 from loss scale `init`:
/// (checkpoint metadata, head parameters after training, head parameters before).
fn head_run(
    out: &Path,
    init: f32,
) -> (
    std::collections::HashMap<String, String>,
    BTreeMap<String, Tensor>,
    BTreeMap<String, Tensor>,
) {
    let b = fp16();
    let mut rng = Rng::new(11);
    let (xt, yt) = features(56, &mut rng);
    let (xv, yv) = features(21, &mut rng);
    let norm = FeatureNorm::fit(&xt);
    let (xt, xv) = (norm.apply(xt), norm.apply(xv));
    let mut cfg = TrainConfig::new(out.into(), out.into());
    cfg.epochs = 2;
    cfg.batch_size = 16;
    cfg.loss_scale.init = init;
    let classes = ClassList::isic2018();
    let weights = vec![1.0f32; 7];
    let id = ("random-init".to_string(), "test".to_string());
    let data = EpochData {
        x_train: &xt,
        y_train: &yt,
        x_val: &xv,
        y_val: &yv,
        weights: &weights,
        classes: &classes,
        norm: &norm,
        arch: Arch::ResNet18,
        backbone: &id,
    };
    std::fs::create_dir_all(out).unwrap();
    let mut head = Head::with_classes(&b, 512, &cfg.head, false, 5, 7).unwrap();
    let before = head.named(&b).unwrap();
    let mut adam = head.adam_init(&b).unwrap();
    let mut scaler = LossScaler::new(&cfg.loss_scale, b.precisions()).unwrap();
    assert!(scaler.enabled(), "auto scaling is on at FP16");
    let mut progress = Progress::fresh();
    run_epochs(
        &b,
        &cfg,
        &data,
        &mut head,
        &mut adam,
        &mut scaler,
        &mut progress,
    )
    .unwrap();
    (checkpoint(out).metadata, head.named(&b).unwrap(), before)
}

#[test]
fn fp16_head_training_skips_overflowing_steps_and_trains_from_a_scale_that_fits() {
    let d = tempfile::tempdir().unwrap();
    // 56 samples in batches of 16: 4 steps an epoch (16, 16, 16, 8), 8 in all. From 2^100
    // dL/dlogits is far past FP16's 65504 at every step: all eight are skipped, the scale
    // halves eight times, and no parameter moves.
    let (meta, after, before) = head_run(&d.path().join("dead"), 2f32.powi(100));
    assert_eq!(meta["adam_step"], "0");
    assert_eq!(meta["loss_scale_skipped"], "8");
    assert_eq!(meta["loss_scale"].parse::<f32>().unwrap(), 2f32.powi(92));
    assert!(after == before, "a skipped step changed a parameter");
    // From 2^16 (GradScaler's default) the head trains.
    let (meta, after, before) = head_run(&d.path().join("live"), 65536.0);
    println!(
        "from 2^16: {} steps taken, {} skipped, scale {}",
        meta["adam_step"], meta["loss_scale_skipped"], meta["loss_scale"]
    );
    assert_eq!(
        meta["adam_step"].parse::<u32>().unwrap()
            + meta["loss_scale_skipped"].parse::<u32>().unwrap(),
        8
    );
    assert!(meta["adam_step"] != "0", "no step ran");
    assert!(
        after
            .values()
            .all(|t| t.data().iter().all(|v| v.is_finite()))
    );
    assert!(after != before, "no parameter moved");
}
