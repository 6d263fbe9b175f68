//! The frozen-feature paths on backbones other than ResNet50 (random-init weights, small
//! synthetic images): `embed` with ResNet18 weights (features and logits equal to a direct
//! eval-mode forward of the network), `embed --model` on a fine-tuned model file (features its
//! head reads, logits whose softmax is what `infer` gives), and `train --fine-tune head` on
//! ResNet18 features with `infer` from the model file (and its refusal of other weights).
//! VGG19 is not run here: 20 GFLOP per 224x224 image and 575 MB of random weights are too
//! much for a two-core CI; it shares the ResNet18 code path (a `Net` in evaluation mode).

use skinengine::CpuBackend;
use skinengine::backend::BackendBase;
use skinengine::data::files::collect_images;
use skinengine::data::image::{Decode, ResizeMode, preprocess};
use skinengine::data::synth::{SynthConfig, SynthLayout, write_synth};
use skinengine::io::safetensors as st;
use skinengine::model::arch::Arch;
use skinengine::model::init::random_weights;
use skinengine::model::net::{BnMode, Net};
use skinengine::pipeline::embed::{EmbedConfig, EmbedOptions, EmbedSource, embed, write_embedding};
use skinengine::pipeline::infer::{InferConfig, infer};
use skinengine::tensor::Tensor;
use skinengine::train::finetune::{FineTune, FineTuneConfig};
use skinengine::train::{TrainConfig, train};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

fn synth(dir: &Path, n: usize, seed: u64, layout: SynthLayout) {
    write_synth(
        dir,
        &SynthConfig {
            n,
            width: 64,
            height: 48,
            seed,
            layout,
            ..SynthConfig::default()
        },
    )
    .unwrap();
}

fn write_sd(path: &Path, sd: &BTreeMap<String, Tensor>) {
    let named: Vec<(&str, &Tensor)> = sd.iter().map(|(k, v)| (k.as_str(), v)).collect();
    st::write(path, &named, &HashMap::new()).unwrap();
}

fn opts(logits: bool, batch: usize) -> EmbedOptions {
    EmbedOptions {
        resize: ResizeMode::Squash,
        batch,
        logits,
        strict: true,
        // Compared with `preprocess`, which decodes at full size.
        decode: Decode::Full,
    }
}

/// Every value of `got` within `rel` of `want`'s largest magnitude.
fn assert_close(what: &str, got: &[f32], want: &[f32], rel: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= rel * scale,
            "{what}[{i}]: {a} vs {b} (scale {scale})"
        );
    }
}

/// Rows of softmax in f64.
fn softmax_rows(logits: &Tensor) -> Vec<Vec<f64>> {
    let k = logits.shape()[1];
    logits
        .data()
        .chunks(k)
        .map(|r| {
            let m = r.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
            let e: Vec<f64> = r.iter().map(|&v| (v as f64 - m).exp()).collect();
            let s: f64 = e.iter().sum();
            e.into_iter().map(|v| v / s).collect()
        })
        .collect()
}

#[test]
fn embed_resnet18_weights_equals_the_networks_eval_forward() {
    let d = tempfile::tempdir().unwrap();
    let imgs = d.path().join("imgs");
    synth(&imgs, 3, 1, SynthLayout::Isic2018);
    let images = collect_images(std::slice::from_ref(&imgs)).unwrap();
    assert_eq!(images.len(), 3);
    let b = CpuBackend;
    let sd = random_weights(Arch::ResNet18, 3, Some(10));
    let wpath = d.path().join("resnet18.safetensors");
    write_sd(&wpath, &sd);

    // The architecture is recognised from the tensors; batches of 2 over 3 images.
    let cfg = EmbedConfig {
        source: EmbedSource::Weights {
            path: wpath.clone(),
            arch: None,
        },
        images: vec![imgs.clone()],
        options: opts(true, 2),
    };
    let e = embed(&b, &cfg).unwrap();
    assert_eq!(e.arch, Arch::ResNet18);
    assert_eq!(e.features.shape(), &[3, 512]);
    assert_eq!(e.logits.as_ref().unwrap().shape(), &[3, 10]);

    // The same network run directly: eval-mode BN, one batch of all three images.
    let net = Net::from_state_dict(&b, Arch::ResNet18, &sd, true).unwrap();
    let mut x = Vec::new();
    for (_, p) in &images {
        x.extend_from_slice(preprocess(p, ResizeMode::Squash).unwrap().data());
    }
    let x = b
        .upload(&Tensor::new(&[3, 3, 224, 224], x).unwrap())
        .unwrap();
    let g = &net.graph;
    let (fs, ls) = (g.features, g.logits.unwrap());
    let tape = net
        .forward(&b, &x, BnMode::Eval, g.nodes.len(), &[fs, ls])
        .unwrap();
    let want_f = b.download(tape.value(fs).unwrap()).unwrap();
    let want_l = b.download(tape.value(ls).unwrap()).unwrap();
    for i in 0..3 {
        assert_close(
            "features",
            &e.features.data()[i * 512..(i + 1) * 512],
            &want_f.data()[i * 512..(i + 1) * 512],
            1e-5,
        );
        assert_close(
            "logits",
            &e.logits.as_ref().unwrap().data()[i * 10..(i + 1) * 10],
            &want_l.data()[i * 10..(i + 1) * 10],
            1e-5,
        );
    }

    // The file records the architecture; its features are [N, 512].
    let out = d.path().join("feats.safetensors");
    write_embedding(&out, &e, &cfg).unwrap();
    let f = st::read(&out).unwrap();
    assert_eq!(f.metadata["arch"], "resnet18");
    assert_eq!(f.metadata["weights"], "resnet18.safetensors");
    assert_eq!(f.tensors["features"].shape(), &[3, 512]);
    assert!(!f.metadata.contains_key("classes"));

    // --backbone naming another architecture: refused, saying what the file holds.
    let mut wrong = cfg.clone();
    wrong.source = EmbedSource::Weights {
        path: wpath.clone(),
        arch: Some(Arch::ResNet34),
    };
    let msg = embed(&b, &wrong).err().unwrap().to_string();
    assert!(
        msg.contains("not a usable ResNet34") && msg.contains("--backbone resnet18"),
        "{msg}"
    );
    // --logits without a classifier in the file.
    let mut no_fc = sd.clone();
    no_fc.remove("fc.weight");
    no_fc.remove("fc.bias");
    write_sd(&wpath, &no_fc);
    let msg = embed(&b, &cfg).err().unwrap().to_string();
    assert!(msg.contains("no fc.weight / fc.bias"), "{msg}");
}

fn val_pred(run: &Path) -> BTreeMap<String, Vec<f64>> {
    let csv = std::fs::read_to_string(run.join("val_pred.csv")).unwrap();
    csv.lines()
        .skip(1)
        .map(|l| {
            let mut f = l.split(',');
            let id = f.next().unwrap().to_string();
            (id, f.map(|v| v.parse().unwrap()).collect())
        })
        .collect()
}

/// The images of the validation rows of a run's split.csv.
fn val_images(run: &Path, data: &Path) -> Vec<PathBuf> {
    let split = std::fs::read_to_string(run.join("split.csv")).unwrap();
    let ids: Vec<&str> = split
        .lines()
        .filter(|l| l.split(',').nth(1) == Some("val"))
        .map(|l| l.split(',').next().unwrap())
        .collect();
    let all = collect_images(&[data.to_path_buf()]).unwrap();
    let v: Vec<PathBuf> = all
        .into_iter()
        .filter(|(id, _)| ids.contains(&id.as_str()))
        .map(|(_, p)| p)
        .collect();
    assert_eq!(v.len(), ids.len());
    v
}

#[test]
fn head_on_resnet18_features_trains_infers_and_refuses_other_weights() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    synth(&data, 16, 7, SynthLayout::Ham10000);
    let run = d.path().join("run");
    let mut cfg = TrainConfig::new(data.clone(), run.clone());
    cfg.head = vec![16];
    cfg.batchnorm = true;
    cfg.epochs = 3;
    cfg.batch_size = 4;
    cfg.val_fraction = 0.25;
    cfg.seed = 5;
    cfg.strict = true;
    cfg.fine.backbone = Some(Arch::ResNet18);
    let b = CpuBackend;
    let r = train(&b, &cfg).unwrap();
    assert_eq!(r.history.len(), 3);

    // The model file: a head on 512 ResNet18 features, the random-init backbone recorded.
    let mf = st::read(&run.join("model.safetensors")).unwrap();
    assert_eq!(mf.metadata["format"], "skinengine-head-v1");
    assert_eq!(mf.metadata["arch"], "resnet18");
    assert_eq!(mf.metadata["backbone"], "random-init");
    assert_eq!(mf.metadata["backbone_hash"], "random-init-resnet18-seed0");
    assert_eq!(mf.tensors["input.mean"].shape(), &[512]);
    // The cache names the architecture and records it (full JPEG decoding, the default, adds
    // nothing to the name).
    let cache = run
        .join("cache")
        .join("features_resnet18_random-init-resnet18-seed0_squash_cc0.safetensors");
    let cf = st::read(&cache).unwrap();
    assert_eq!(cf.metadata["arch"], "resnet18");
    assert_eq!(cf.tensors["features"].shape()[1], 512);

    // infer from the model file alone (the random-init ResNet18 rebuilt, run as a Net) gives
    // the validation probabilities training wrote.
    let want = val_pred(&run);
    let images = val_images(&run, &data);
    let icfg = InferConfig {
        model: run.join("model.safetensors"),
        weights: None,
        images: images.clone(),
        tta: skinengine::pipeline::tta::Tta::None,
        shard: None,
        batch: 16,
        strict: true,
        decode: Decode::Full,
    };
    let inf = infer(&b, &icfg).unwrap();
    assert_eq!(inf.ids.len(), want.len());
    let mut worst = 0f64;
    for (id, p) in inf.ids.iter().zip(&inf.probs) {
        for c in 0..7 {
            worst = worst.max((p[c] as f64 - want[id][c]).abs());
        }
    }
    assert!(worst <= 1e-5, "infer differs from val_pred.csv by {worst}");

    // ResNet50 weights for this ResNet18 head: refused by architecture, before any work.
    let w50 = d.path().join("resnet50.safetensors");
    write_sd(&w50, &random_weights(Arch::ResNet50, 1, None));
    let msg = infer(
        &b,
        &InferConfig {
            weights: Some(w50.clone()),
            ..icfg.clone()
        },
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        msg.contains("these are ResNet50 weights")
            && msg.contains("head on ResNet18 features")
            && msg.contains("random-init-resnet18-seed0"),
        "{msg}"
    );
    // ResNet18 weights, but not the ones it was trained on: refused by hash.
    let w18 = d.path().join("other18.safetensors");
    write_sd(&w18, &random_weights(Arch::ResNet18, 9, None));
    let msg = infer(
        &b,
        &InferConfig {
            weights: Some(w18),
            ..icfg.clone()
        },
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        msg.contains("not the ones the model was trained on"),
        "{msg}"
    );

    // A head-only model has no backbone for `embed --model`.
    let msg = embed(
        &b,
        &EmbedConfig {
            source: EmbedSource::Model(run.join("model.safetensors")),
            images,
            options: opts(false, 4),
        },
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        msg.contains("no backbone of its own") && msg.contains("--weights"),
        "{msg}"
    );
}

#[test]
fn embed_model_gives_the_features_and_logits_infer_classifies() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    synth(&data, 16, 4, SynthLayout::Ham10000);
    let run = d.path().join("run");
    let mut cfg = TrainConfig::new(data.clone(), run.clone());
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
    let b = CpuBackend;
    train(&b, &cfg).unwrap();
    let model = run.join("model.safetensors");
    let images = collect_images(std::slice::from_ref(&data)).unwrap();
    let paths: Vec<PathBuf> = images.iter().map(|(_, p)| p.clone()).collect();

    let ecfg = EmbedConfig {
        source: EmbedSource::Model(model.clone()),
        images: paths.clone(),
        options: opts(true, 5),
    };
    let e = embed(&b, &ecfg).unwrap();
    let n = images.len();
    assert_eq!(e.arch, Arch::ResNet18);
    assert_eq!(e.size, 64);
    assert_eq!(e.features.shape(), &[n, 512]);
    let logits = e.logits.as_ref().unwrap();
    assert_eq!(logits.shape(), &[n, 7]);

    // softmax(logits) is what infer gives for the same files.
    let inf = infer(
        &b,
        &InferConfig {
            model: model.clone(),
            weights: None,
            images: paths.clone(),
            tta: skinengine::pipeline::tta::Tta::None,
            shard: None,
            batch: 5,
            strict: true,
            decode: Decode::Full,
        },
    )
    .unwrap();
    assert_eq!(inf.ids, e.ids);
    for (i, (p, s)) in inf.probs.iter().zip(softmax_rows(logits)).enumerate() {
        for c in 0..7 {
            assert!(
                (p[c] as f64 - s[c]).abs() <= 1e-6,
                "{}: infer {p:?} vs softmax {s:?}",
                e.ids[i]
            );
        }
    }

    // The features are what the head reads: its layers on them give the logits.
    let t = st::read(&model).unwrap().tensors;
    let dense = |x: &[f64], w: &Tensor, bias: &Tensor| -> Vec<f64> {
        let k = w.shape()[1];
        w.data()
            .chunks(k)
            .zip(bias.data())
            .map(|(row, &bb)| {
                row.iter().zip(x).map(|(a, b)| *a as f64 * b).sum::<f64>() + bb as f64
            })
            .collect()
    };
    for i in 0..n {
        let f: Vec<f64> = e.features.data()[i * 512..(i + 1) * 512]
            .iter()
            .map(|&v| v as f64)
            .collect();
        let h: Vec<f64> = dense(&f, &t["head.hidden.0.weight"], &t["head.hidden.0.bias"])
            .into_iter()
            .map(|v| v.max(0.0))
            .collect();
        let z: Vec<f32> = dense(&h, &t["head.out.weight"], &t["head.out.bias"])
            .into_iter()
            .map(|v| v as f32)
            .collect();
        assert_close(
            "head(features)",
            &z,
            &logits.data()[i * 7..(i + 1) * 7],
            1e-5,
        );
    }

    // The command line gives the same file: features, logits, and metadata.
    let out = d.path().join("emb.safetensors");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_skinengine"));
    cmd.args(["embed", "--model"])
        .arg(&model)
        .arg("--images")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .args([
            "--logits",
            "--batch",
            "5",
            "--device",
            "cpu",
            "--threads",
            "2",
        ]);
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let f = st::read(&out).unwrap();
    assert_eq!(f.metadata["arch"], "resnet18");
    assert_eq!(f.metadata["model"], "model.safetensors");
    assert_eq!(f.metadata["image_size"], "64");
    assert_eq!(f.metadata["classes"], "MEL,NV,BCC,AKIEC,BKL,DF,VASC");
    assert_close(
        "cli features",
        f.tensors["features"].data(),
        e.features.data(),
        1e-6,
    );
    assert_close(
        "cli logits",
        f.tensors["logits"].data(),
        logits.data(),
        1e-6,
    );
}

/// `synth --weights-out` writes the random-init backbone a run without --weights uses, which
/// `embed --weights` then reads like any weights file; `--backbone` alone is refused.
#[test]
fn synth_writes_the_random_init_weights_embed_reads() {
    let d = tempfile::tempdir().unwrap();
    let (data, w) = (d.path().join("data"), d.path().join("w.safetensors"));
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_skinengine"))
            .args(args)
            .output()
            .unwrap()
    };
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let (data_s, w_s) = (s(&data), s(&w));
    let o = run(&[
        "synth",
        "--out",
        &data_s,
        "--n",
        "3",
        "--size",
        "64x48",
        "--threads",
        "2",
        "--weights-out",
        &w_s,
        "--backbone",
        "resnet18",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let file = st::read(&w).unwrap();
    let want = random_weights(Arch::ResNet18, 0, None);
    assert_eq!(file.tensors.len(), want.len());
    for (name, t) in &want {
        assert_eq!(file.tensors.get(name), Some(t), "{name}");
    }
    let out = s(&d.path().join("emb.safetensors"));
    let o = run(&[
        "embed",
        "--weights",
        &w_s,
        "--images",
        &data_s,
        "--out",
        &out,
        "--device",
        "cpu",
        "--threads",
        "2",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let emb = st::read(Path::new(&out)).unwrap();
    assert_eq!(emb.tensors["features"].shape(), &[3, 512]);
    assert_eq!(
        emb.metadata.get("arch").map(String::as_str),
        Some("resnet18")
    );
    // --backbone says which weights to write; without --weights-out it is a mistake.
    let o = run(&[
        "synth",
        "--out",
        &s(&d.path().join("x")),
        "--n",
        "1",
        "--backbone",
        "resnet18",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--weights-out"));
}
