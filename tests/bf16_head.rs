//! Training the head in BF16 (issue 12: "training the head on the demo data in BF16 reaches
//! the FP32 bmca within noise"), on the CUDA emulator.
//!
//! The demo's data and training configuration (`skinengine demo`: synthetic HAM10000 layout,
//! random-init ResNet50 features, BN head 2048-120-84-7, mirror views, inverse class weights,
//! batch 32). The features are computed once, in FP32, by the CPU backend into a shared cache;
//! the head then trains on the emulator with its dense layers (forward, dx, dW) at FP32 and at
//! BF16 (`Precisions { conv: Fp32, matmul: Bf16 }`: the convolutions' precision keys the feature
//! cache, so both runs read the same FP32 features and only the head's arithmetic differs).
//! The split is fixed by a split file, and the seed varies the head's initialisation and batch
//! order: the spread of the FP32 runs over seeds is the noise the BF16 runs are compared with.
//!
//! - `bf16_head_tracks_fp32_on_demo_features` (CI): 60 images, 8 epochs, one seed: BF16 ends
//!   within 0.15 bmca of FP32 (chance is 1/7 = 0.14 apart from a useful head) and its weights
//!   are not FP32's (the tensor cores really ran in BF16).
//! - `bf16_head_matches_fp32_within_seed_noise` (ignored, minutes; README quotes it): the demo's
//!   300 images and 20 epochs over 3 seeds, both precisions; prints the table.

use skinengine::CpuBackend;
use skinengine::backend::Backend;
use skinengine::cuda::{CudaBackend, Precision, Precisions};
use skinengine::data::synth::{SynthConfig, SynthLayout, write_synth};
use skinengine::demo::{DemoConfig, train_config};
use skinengine::io::safetensors as st;
use skinengine::train::{TrainConfig, train};
use std::path::Path;

fn emulator(matmul: Precision) -> CudaBackend {
    skinengine::testing::suite::emulator()
        .with_precisions(Precisions {
            conv: Precision::Fp32,
            matmul,
        })
        .unwrap()
}

/// The demo's training config on `data` into `out`, with a shared feature cache and split.
fn config(root: &Path, out: &str, epochs: usize, seed: u64) -> TrainConfig {
    let demo = DemoConfig {
        out: root.into(),
        n: 0,
        weights: None,
        epochs,
        seed,
        fine: Default::default(),
    };
    let mut c = train_config(&demo, root.join("data"), root.join(out));
    c.cache_dir = Some(root.join("cache"));
    c.split_file = Some(root.join("split.csv"));
    c
}

fn best_bmca<B: Backend>(b: &B, c: &TrainConfig) -> f64 {
    let r = train(b, c).unwrap();
    r.history
        .iter()
        .find(|h| h.epoch == r.best_epoch)
        .unwrap()
        .val_bmca
}

/// Synthetic data of `n` images, the CPU's FP32 features of every view in the cache, and the
/// split of seed 0 as the split file for every later run.
fn prepare(root: &Path, n: usize, epochs: usize) {
    write_synth(
        &root.join("data"),
        &SynthConfig {
            n,
            layout: SynthLayout::Ham10000,
            seed: 0,
            width: 600,
            height: 450,
            ..SynthConfig::default()
        },
    )
    .unwrap();
    let mut c = config(root, "cpu", epochs, 0);
    c.split_file = None;
    train(&CpuBackend, &c).unwrap();
    std::fs::copy(root.join("cpu/split.csv"), root.join("split.csv")).unwrap();
}

#[test]
fn bf16_head_tracks_fp32_on_demo_features() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    prepare(root, 60, 8);
    let fp32 = best_bmca(&emulator(Precision::Fp32), &config(root, "fp32", 8, 0));
    let bf16 = best_bmca(&emulator(Precision::Bf16), &config(root, "bf16", 8, 0));
    println!("val bmca: fp32 {fp32:.4}, bf16 {bf16:.4}");
    assert!((fp32 - bf16).abs() <= 0.15, "fp32 {fp32} vs bf16 {bf16}");
    let model = |r: &str| {
        st::read(&root.join(r).join("model.safetensors"))
            .unwrap()
            .tensors
    };
    assert!(
        model("fp32") != model("bf16"),
        "BF16 training gave FP32's weights"
    );
}

#[test]
#[ignore = "minutes on the emulator: the README's BF16 head-training measurement"]
fn bf16_head_matches_fp32_within_seed_noise() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    prepare(root, 300, 20);
    let mut rows = Vec::new();
    for seed in 0..3 {
        let fp32 = best_bmca(&emulator(Precision::Fp32), &config(root, "fp32", 20, seed));
        let bf16 = best_bmca(&emulator(Precision::Bf16), &config(root, "bf16", 20, seed));
        println!("seed {seed}: val bmca fp32 {fp32:.4}, bf16 {bf16:.4}");
        rows.push((fp32, bf16));
        for r in ["fp32", "bf16"] {
            std::fs::remove_dir_all(root.join(r)).unwrap();
        }
    }
    let mean = |f: fn(&(f64, f64)) -> f64| rows.iter().map(f).sum::<f64>() / rows.len() as f64;
    let (m32, m16) = (mean(|r| r.0), mean(|r| r.1));
    let spread32 = rows.iter().map(|r| r.0).fold(f64::MIN, f64::max)
        - rows.iter().map(|r| r.0).fold(f64::MAX, f64::min);
    println!("mean val bmca: fp32 {m32:.4}, bf16 {m16:.4}; fp32 spread over seeds {spread32:.4}");
    assert!(
        (m32 - m16).abs() <= spread32.max(0.02),
        "BF16 mean {m16} is further from FP32's {m32} than FP32's own seed spread {spread32}"
    );
}
