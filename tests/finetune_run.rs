//! `train --fine-tune` end to end on small synthetic data sets (random-init ResNet18 at 64x64,
//! so each epoch takes about a second on two cores):
//! - a fine-tuning process killed with SIGKILL and resumed with --resume ends bit for bit where
//!   an uninterrupted run ends (weights, BN running statistics, metrics), with every option that
//!   draws randomness or carries state on (augmentation, dropout, AdamW moments, cosine
//!   schedule with warm-up, gradient accumulation, BN running statistics);
//! - the model file carries the whole network: `infer` needs nothing else and reproduces the
//!   validation probabilities training reported; damaged model files (a missing or mis-shaped
//!   tensor, another architecture, bad metadata, a NaN running variance) are refused naming the
//!   file and the problem;
//! - frozen stages stay exactly as loaded (weights and running statistics), `--freeze-bn` keeps
//!   every running statistic;
//! - N accumulated micro-batches give the update of one batch N times larger.

use skinengine::CpuBackend;
use skinengine::data::image::Decode;
use skinengine::data::synth::{SynthConfig, SynthLayout, write_synth};
use skinengine::io::safetensors as st;
use skinengine::model::arch::Arch;
use skinengine::model::init::random_weights;
use skinengine::pipeline::infer::{InferConfig, infer};
use skinengine::tensor::Tensor;
use skinengine::train::finetune::{FineTune, FineTuneConfig};
use skinengine::train::optim::OptimizerName;
use skinengine::train::{TrainConfig, train};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

type Tensors = BTreeMap<String, Tensor>;
type Metadata = HashMap<String, String>;

fn synth(dir: &Path, n: usize, seed: u64, layout: SynthLayout) {
    write_synth(
        dir,
        &SynthConfig {
            n,
            width: 80,
            height: 60,
            seed,
            layout,
            ..SynthConfig::default()
        },
    )
    .unwrap();
}

fn model_tensors(dir: &Path) -> BTreeMap<String, Tensor> {
    st::read(&dir.join("model.safetensors")).unwrap().tensors
}

/// The command line of the resume test: every stateful or random option on.
fn train_args(data: &Path, out: &Path) -> Vec<String> {
    let s = |v: &str| v.to_string();
    let mut a = vec![s("train"), s("--data")];
    a.push(data.display().to_string());
    a.push(s("--out"));
    a.push(out.display().to_string());
    for x in [
        "--fine-tune",
        "all",
        "--backbone",
        "resnet18",
        "--image-size",
        "64",
        "--head",
        "16",
        "--batchnorm",
        "--dropout",
        "0.2",
        "--optimizer",
        "adamw",
        "--weight-decay",
        "0.01",
        "--schedule",
        "cosine",
        "--warmup-epochs",
        "0.5",
        "--accumulate",
        "2",
        "--mirror",
        "--class-weights",
        "inverse",
        "--epochs",
        "4",
        "--batch-size",
        "6",
        "--lr",
        "3e-3",
        "--val-fraction",
        "0.25",
        "--seed",
        "7",
        "--device",
        "cpu",
        "--threads",
        "2",
        "--strict",
    ] {
        a.push(s(x));
    }
    a
}

fn run_cli(args: &[String]) {
    let out = Command::new(env!("CARGO_BIN_EXE_skinengine"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn completed_epochs(run: &Path) -> usize {
    std::fs::read_to_string(run.join("metrics.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.as_array().map(Vec::len))
        .unwrap_or(0)
}

#[test]
fn a_killed_fine_tuning_process_resumes_bit_for_bit_and_its_model_file_stands_alone() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    synth(&data, 30, 3, SynthLayout::Ham10000);

    let full = d.path().join("full");
    run_cli(&train_args(&data, &full));
    assert_eq!(completed_epochs(&full), 4);

    // The same run, killed (SIGKILL) once its first epoch is on disk, then resumed.
    let part = d.path().join("part");
    let mut child = Command::new(env!("CARGO_BIN_EXE_skinengine"))
        .args(train_args(&data, &part))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while completed_epochs(&part) < 1 {
        assert!(t0.elapsed() < Duration::from_secs(300), "no epoch finished");
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let done = completed_epochs(&part);
    assert!(done < 4, "the kill came after the run ended");
    let mut resume = train_args(&data, &part);
    resume.push("--resume".into());
    run_cli(&resume);

    assert!(
        model_tensors(&part) == model_tensors(&full),
        "the model differs after kill -9 and resume"
    );
    // Safetensors headers list metadata in hash order: compare contents, not bytes.
    let (cp, cf) = (
        st::read(&part.join("checkpoint.safetensors")).unwrap(),
        st::read(&full.join("checkpoint.safetensors")).unwrap(),
    );
    assert!(cp.tensors == cf.tensors, "checkpoint tensors differ");
    assert_eq!(cp.metadata, cf.metadata);
    for f in ["metrics.json", "val_pred.csv"] {
        assert!(
            std::fs::read(part.join(f)).unwrap() == std::fs::read(full.join(f)).unwrap(),
            "{f} differs after kill -9 and resume"
        );
    }

    // The model file: format, architecture, the backbone it started from; infer needs only it.
    let mf = st::read(&full.join("model.safetensors")).unwrap();
    assert_eq!(mf.metadata["format"], "skinengine-net-v1");
    assert_eq!(mf.metadata["arch"], "resnet18");
    assert_eq!(mf.metadata["origin"], "random-init");
    assert!(mf.tensors.contains_key("layer4.1.bn2.running_var"));
    assert!(mf.tensors.contains_key("head.hidden.0.bn.running_mean"));
    let val_csv = std::fs::read_to_string(full.join("val_pred.csv")).unwrap();
    let mut want = BTreeMap::new();
    for l in val_csv.lines().skip(1) {
        let mut f = l.split(',');
        let id = f.next().unwrap().to_string();
        let p: Vec<f64> = f.map(|v| v.parse().unwrap()).collect();
        want.insert(id, p);
    }
    // Validation views are unaugmented images: infer on those files gives the same rows.
    let split = std::fs::read_to_string(full.join("split.csv")).unwrap();
    let images: Vec<_> = split
        .lines()
        .filter(|l| l.split(',').nth(1) == Some("val"))
        .map(|l| {
            let id = l.split(',').next().unwrap();
            data.join("HAM10000_images_part_1")
                .join(format!("{id}.jpg"))
        })
        .filter(|p| p.exists())
        .collect();
    assert!(!images.is_empty());
    let inf = infer(
        &CpuBackend,
        &InferConfig {
            model: full.join("model.safetensors"),
            weights: None,
            images,
            tta: skinengine::pipeline::tta::Tta::None,
            shard: None,
            batch: 3,
            strict: true,
            decode: Decode::default(),
        },
    )
    .unwrap();
    // Damaged model files are refused with an error naming the file and the problem.
    let damaged = |edit: &dyn Fn(&mut Tensors, &mut Metadata)| {
        let (mut t, mut m) = (mf.tensors.clone(), mf.metadata.clone());
        edit(&mut t, &mut m);
        let p = d.path().join("damaged.safetensors");
        let list: Vec<(&str, &Tensor)> = t.iter().map(|(k, v)| (k.as_str(), v)).collect();
        st::write(&p, &list, &m).unwrap();
        let e = skinengine::train::load_model(&CpuBackend, &p)
            .err()
            .expect("a damaged model file loads")
            .to_string();
        assert!(e.contains("damaged.safetensors"), "{e}");
        e
    };
    let e = damaged(&|t, _| {
        t.remove("layer1.0.conv1.weight");
    });
    assert!(e.contains("missing layer1.0.conv1.weight"), "{e}");
    let e = damaged(&|t, _| {
        t.insert("head.out.weight".into(), Tensor::zeros(&[7, 3]));
    });
    assert!(e.contains("head.out.weight has shape [7, 3]"), "{e}");
    let e = damaged(&|_, m| {
        m.insert("arch".into(), "resnet34".into());
    });
    assert!(
        e.contains("ResNet34") && e.contains("--backbone resnet18"),
        "{e}"
    );
    let e = damaged(&|_, m| {
        m.insert("image_size".into(), "big".into());
    });
    assert!(e.contains("image_size"), "{e}");
    let e = damaged(&|t, _| {
        let mut w = t["layer2.0.bn1.running_var"].clone();
        w.data_mut()[0] = f32::NAN;
        t.insert("layer2.0.bn1.running_var".into(), w);
    });
    assert!(e.contains("non-finite"), "{e}");

    for (id, p) in inf.ids.iter().zip(&inf.probs) {
        let w = &want[id];
        for c in 0..7 {
            // val_pred.csv holds f32 values printed as shortest round-trip decimals.
            assert!(
                (p[c] as f64 - w[c]).abs() <= 1e-6,
                "{id}: infer {p:?} vs training {w:?}"
            );
        }
    }
}

fn lib_config(data: &Path, out: &Path) -> TrainConfig {
    let mut cfg = TrainConfig::new(data.into(), out.into());
    cfg.head = vec![8];
    cfg.epochs = 1;
    cfg.batch_size = 8;
    cfg.seed = 3;
    cfg.strict = true;
    cfg.val_fraction = 0.25;
    cfg.fine = FineTuneConfig {
        depth: FineTune::Layer4,
        backbone: Some(Arch::ResNet18),
        image_size: 64,
        ..FineTuneConfig::default()
    };
    cfg
}

#[test]
fn frozen_stages_and_frozen_batch_norm_stay_exactly_as_loaded() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    synth(&data, 20, 4, SynthLayout::Ham10000);
    let origin = random_weights(Arch::ResNet18, 0, None);

    // layer4 trains (BN in training mode there): everything below is bit-identical to the
    // weights it started from, running statistics included; layer4 and the head moved.
    let out = d.path().join("layer4");
    train(&CpuBackend, &lib_config(&data, &out)).unwrap();
    let m = model_tensors(&out);
    let (mut moved, mut layer4) = (0, 0);
    for (k, t) in &origin {
        if k.starts_with("layer4.") {
            layer4 += 1;
            moved += usize::from(m[k] != *t);
        } else {
            assert_eq!(m[k], *t, "{k} is frozen but changed");
        }
    }
    // Every layer4 tensor moves: conv weights, BN gamma/beta and running statistics.
    assert_eq!(
        moved, layer4,
        "only {moved} of {layer4} layer4 tensors changed"
    );

    // --freeze-bn: no running statistic changes anywhere, while the weights of layer4 do.
    let out = d.path().join("freeze_bn");
    let mut cfg = lib_config(&data, &out);
    cfg.fine.freeze_bn = true;
    train(&CpuBackend, &cfg).unwrap();
    let m = model_tensors(&out);
    for (k, t) in &origin {
        if k.contains("running_") {
            assert_eq!(m[k], *t, "{k} changed under --freeze-bn");
        }
    }
    assert_ne!(m["layer4.1.conv2.weight"], origin["layer4.1.conv2.weight"]);
}

#[test]
fn accumulated_micro_batches_update_like_one_larger_batch() {
    // SGD without momentum, BN frozen, no augmentation or dropout, unit class weights: the
    // update is -lr * mean gradient over the 16 images of an optimiser step, whether they run
    // as one batch of 16 or two accumulated micro-batches of 8 (dL/dlogits scaled by 1/2). Only
    // the order of float sums differs: updates agree to ~1e-6 of their size (bound 1e-3).
    let d = tempfile::tempdir().unwrap();
    let (data, val) = (d.path().join("data"), d.path().join("val"));
    synth(&data, 32, 5, SynthLayout::Ham10000);
    synth(&val, 6, 6, SynthLayout::Isic2018);
    let origin = random_weights(Arch::ResNet18, 0, None);
    let run = |name: &str, batch: usize, acc: usize| {
        let out = d.path().join(name);
        let mut cfg = lib_config(&data, &out);
        cfg.val_data = Some(val.clone());
        cfg.batch_size = batch;
        cfg.adam.lr = 0.05;
        cfg.fine.optimizer = OptimizerName::Sgd;
        cfg.fine.momentum = 0.0;
        cfg.fine.lr_backbone = Some(0.05);
        cfg.fine.freeze_bn = true;
        cfg.fine.augment = None;
        cfg.fine.accumulate = acc;
        train(&CpuBackend, &cfg).unwrap();
        model_tensors(&out)
    };
    let (one, two) = (run("b16", 16, 1), run("b8x2", 8, 2));
    let mut checked = 0;
    for (k, t0) in origin.iter().filter(|(k, _)| k.starts_with("layer4.")) {
        let (a, b) = (&one[k], &two[k]);
        let step: f64 = a
            .data()
            .iter()
            .zip(t0.data())
            .map(|(x, y)| (x - y).abs() as f64)
            .fold(0.0, f64::max);
        let diff: f64 = a
            .data()
            .iter()
            .zip(b.data())
            .map(|(x, y)| (x - y).abs() as f64)
            .fold(0.0, f64::max);
        if step > 0.0 {
            assert!(
                diff <= 1e-3 * step,
                "{k}: runs differ by {diff}, step {step}"
            );
            checked += 1;
        }
    }
    // ResNet18's layer4: 5 conv weights and 5 BNs' gamma and beta (running statistics frozen).
    assert_eq!(checked, 15, "only {checked} tensors moved");
}
