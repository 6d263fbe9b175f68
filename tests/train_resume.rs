//! Training end to end on a small synthetic data set (random-init backbone): a run killed after
//! an epoch and resumed with --resume ends exactly where an uninterrupted run ends; the run
//! folder holds what it should; infer reproduces the validation predictions from the model file.

use skinengine::CpuBackend;
use skinengine::data::class_weights::ClassWeights;
use skinengine::data::image::{Decode, Preprocess, ResizeMode};
use skinengine::data::synth::{SynthConfig, write_synth};
use skinengine::data::views::ViewConfig;
use skinengine::ops::adam::AdamConfig;
use skinengine::ops::loss::Reduction;
use skinengine::pipeline::infer::{InferConfig, infer};
use skinengine::train::{Protocol, TrainConfig, train};
use std::path::Path;

fn config(data: &Path, out: &Path) -> TrainConfig {
    TrainConfig {
        data: data.into(),
        weights: None,
        out: out.into(),
        protocol: Protocol::Honest,
        split_file: None,
        val_data: None,
        test_data: None,
        val_fraction: 0.25,
        head: vec![16, 12],
        batchnorm: true,
        views: ViewConfig {
            mirror: true,
            ..ViewConfig::default()
        },
        class_weights: ClassWeights::Inverse,
        reduction: Reduction::Normalized,
        preprocess: Preprocess {
            resize: ResizeMode::Squash,
            color_constancy: false,
            decode: Decode::Scaled,
        },
        epochs: 5,
        batch_size: 8,
        adam: AdamConfig {
            lr: 3e-3,
            ..AdamConfig::default()
        },
        seed: 11,
        strict: true,
        resume: false,
        stop_after: None,
        cache_dir: None,
        fine: Default::default(),
        loss_scale: Default::default(),
    }
}

#[test]
fn killed_and_resumed_run_ends_like_an_uninterrupted_one() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    write_synth(
        &data,
        &SynthConfig {
            n: 36,
            width: 96,
            height: 72,
            seed: 5,
            ..SynthConfig::default()
        },
    )
    .unwrap();
    let b = CpuBackend;

    let full_dir = d.path().join("full");
    let full = train(&b, &config(&data, &full_dir)).unwrap();
    assert_eq!(full.history.len(), 5);

    let part_dir = d.path().join("part");
    let mut cfg = config(&data, &part_dir);
    cfg.stop_after = Some(2); // "killed" after two completed epochs
    let first = train(&b, &cfg).unwrap();
    assert_eq!(first.history.len(), 2);
    cfg.stop_after = None;
    cfg.resume = true;
    let resumed = train(&b, &cfg).unwrap();

    assert_eq!(resumed.history, full.history, "metrics differ after resume");
    assert_eq!(resumed.best_epoch, full.best_epoch);
    assert_eq!(resumed.val_probs, full.val_probs);
    let model = |dir: &Path| {
        skinengine::io::safetensors::read(&dir.join("model.safetensors"))
            .unwrap()
            .tensors
    };
    assert_eq!(model(&part_dir), model(&full_dir));
    for f in [
        "config.json",
        "split.csv",
        "metrics.json",
        "report.md",
        "val_pred.csv",
        "val_truth.csv",
        "checkpoint.safetensors",
    ] {
        assert!(full_dir.join(f).exists(), "{f} missing");
    }
    assert_eq!(
        std::fs::read(full_dir.join("split.csv")).unwrap(),
        std::fs::read(part_dir.join("split.csv")).unwrap()
    );

    // infer from the model file alone gives the validation probabilities training reported.
    let split = std::fs::read_to_string(full_dir.join("split.csv")).unwrap();
    let val: Vec<String> = split
        .lines()
        .skip(1)
        .filter(|l| l.split(',').nth(1) == Some("val"))
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect();
    let images: Vec<_> = val.iter().map(|id| walk_find(&data, id)).collect();
    let args = InferConfig {
        model: full_dir.join("model.safetensors"),
        weights: None,
        images,
        tta: skinengine::pipeline::tta::Tta::None,
        shard: None,
        batch: 4,
        strict: true,
        decode: Decode::default(),
    };
    let inf = infer(&b, &args).unwrap();
    for (id, p) in inf.ids.iter().zip(&inf.probs) {
        let k = full.val_ids.iter().position(|v| v == id).unwrap();
        for c in 0..7 {
            assert!(
                (p[c] - full.val_probs[k][c]).abs() < 1e-5,
                "{id}: {p:?} vs {:?}",
                full.val_probs[k]
            );
        }
    }
}

fn walk_find(dir: &Path, id: &str) -> std::path::PathBuf {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            let f = walk_find(&p, id);
            if f.exists() {
                return f;
            }
        } else if p.file_stem().is_some_and(|s| s == id) {
            return p;
        }
    }
    dir.join("missing")
}

#[test]
fn official_validation_and_test_sets() {
    use skinengine::data::synth::SynthLayout;
    let d = tempfile::tempdir().unwrap();
    let small = |seed, layout| SynthConfig {
        n: 14,
        width: 64,
        height: 48,
        seed,
        layout,
        ..SynthConfig::default()
    };
    let (data, val, test) = (
        d.path().join("data"),
        d.path().join("val"),
        d.path().join("test"),
    );
    write_synth(&data, &small(1, SynthLayout::Ham10000)).unwrap();
    write_synth(&val, &small(2, SynthLayout::Isic2018)).unwrap();
    write_synth(&test, &small(3, SynthLayout::Isic2018)).unwrap();
    let out = d.path().join("run");
    let mut cfg = config(&data, &out);
    cfg.epochs = 2;
    cfg.val_data = Some(val.clone());
    cfg.test_data = Some(test.clone());
    let r = train(&CpuBackend, &cfg).unwrap();
    // Validation is exactly the official set (no augmentation), test is scored once.
    let val_ids = skinengine::data::dataset::load(&val)
        .unwrap()
        .samples
        .into_iter()
        .map(|s| s.id)
        .collect::<Vec<_>>();
    assert_eq!(r.val_ids, val_ids);
    assert_eq!(r.test.as_ref().unwrap().ids.len(), 14);
    assert!(
        std::fs::read_to_string(out.join("report.md"))
            .unwrap()
            .contains("Official test set")
    );
    assert!(out.join("test_pred.csv").exists());
    let split = std::fs::read_to_string(out.join("split.csv")).unwrap();
    assert_eq!(split.lines().filter(|l| l.contains(",train,")).count(), 14);
    assert!(!split.contains(",val,"));
    // --val-data replaces the split; combining it with the seed protocol is refused.
    cfg.protocol = Protocol::Seed;
    let msg = train(&CpuBackend, &cfg).err().unwrap().to_string();
    assert!(msg.contains("--val-data"), "{msg}");
}

/// Only a batch whose samples all weigh 0 is skipped; any other error from the loss stops
/// training with its message (here: class weights the loss refuses).
#[test]
fn a_loss_error_stops_training_with_its_message() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    write_synth(
        &data,
        &SynthConfig {
            n: 14,
            width: 48,
            height: 36,
            seed: 2,
            ..SynthConfig::default()
        },
    )
    .unwrap();
    let mut cfg = config(&data, &d.path().join("run"));
    cfg.epochs = 1;
    cfg.views.mirror = false;
    cfg.class_weights = ClassWeights::Explicit(vec![f32::NAN; 7]);
    let msg = train(&CpuBackend, &cfg).err().unwrap().to_string();
    assert!(msg.contains("cross_entropy"), "{msg}");
    assert!(msg.contains("weights must be finite"), "{msg}");
    assert!(!d.path().join("run/model.safetensors").exists());
}
