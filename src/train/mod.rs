//! Training the classifier head on frozen ResNet50 features, end to end:
//! data -> split -> views -> backbone features (cached) -> head -> weighted CE + Adam -> metrics
//! per epoch -> best model, checkpoint, metrics.json, report.md.
//!
//! Determinism and resume: every random choice derives from the seed (split, views, head init,
//! and each epoch's batch order from (seed, epoch)), and the checkpoint written atomically after
//! each epoch holds every tensor that changes (head, BN running stats, Adam moments and step),
//! so `--resume` ends exactly where an uninterrupted run ends.

pub mod features;
pub mod head;
pub mod plots;
pub mod report;

use crate::backend::Backend;
use crate::classes;
use crate::data::class_weights::ClassWeights;
use crate::data::dataset::{Dataset, load};
use crate::data::image::{Preprocess, ResizeMode};
use crate::data::split::{SplitKind, read_split, split, write_split};
use crate::data::views::{View, ViewConfig, make_views, seed_protocol_split};
use crate::error::{Result, file_err, invalid};
use crate::io::atomic::write_atomic;
use crate::io::safetensors as st;
use crate::metrics::evaluate_probs;
use crate::model::init::random_state_dict;
use crate::model::resnet50::{FEATURES, ResNet50, load_state_dict};
use crate::ops::adam::AdamConfig;
use crate::ops::loss::Reduction;
use crate::rng::Rng;
use crate::tensor::Tensor;
use head::{AdamState, Head};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Protocol {
    /// Split before augmentation, grouped by lesion, stratified by class (default).
    #[default]
    Honest,
    /// The seed's protocol: random split of the augmented views (leaks; for comparison only).
    Seed,
}

/// Everything a training run depends on (written to config.json and the model file).
#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub data: PathBuf,
    pub weights: Option<PathBuf>,
    pub out: PathBuf,
    pub protocol: Protocol,
    pub split_file: Option<PathBuf>,
    /// An official validation set (same layouts): validates on it instead of splitting `data`.
    pub val_data: Option<PathBuf>,
    /// An official test set: scored once with the best model at the end.
    pub test_data: Option<PathBuf>,
    pub val_fraction: f64,
    pub head: Vec<usize>,
    pub batchnorm: bool,
    pub views: ViewConfig,
    pub class_weights: ClassWeights,
    pub reduction: Reduction,
    pub preprocess: Preprocess,
    pub epochs: usize,
    pub batch_size: usize,
    pub adam: AdamConfig,
    pub seed: u64,
    pub strict: bool,
    pub resume: bool,
    /// Stop after this many epochs of this invocation (tests use it to simulate a kill).
    pub stop_after: Option<usize>,
    /// Feature cache folder (default RUN/cache); runs sharing one reuse each other's features.
    pub cache_dir: Option<PathBuf>,
}

impl TrainConfig {
    pub fn to_json(&self) -> Value {
        json!({
            "data": self.data.display().to_string(),
            "weights": self.weights.as_ref().map(|p| p.display().to_string()),
            "protocol": format!("{:?}", self.protocol).to_lowercase(),
            "val_fraction": self.val_fraction,
            "val_data": self.val_data.as_ref().map(|p| p.display().to_string()),
            "test_data": self.test_data.as_ref().map(|p| p.display().to_string()),
            "head": self.head,
            "batchnorm": self.batchnorm,
            "mirror": self.views.mirror,
            "oversample": self.views.oversample,
            "class_weights": format!("{:?}", self.class_weights).to_lowercase(),
            "loss_reduction": format!("{:?}", self.reduction).to_lowercase(),
            "resize": self.preprocess.resize.name(),
            "color_constancy": self.preprocess.color_constancy,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.adam.lr,
            "weight_decay": self.adam.weight_decay,
            "seed": self.seed,
        })
    }
}

/// Per-epoch record (metrics.json holds one per completed epoch).
#[derive(Clone, Debug, PartialEq)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    pub train_bmca: f64,
    pub train_mean_precision: f64,
    pub val_bmca: f64,
    pub val_mean_precision: f64,
}

impl EpochMetrics {
    fn to_json(&self) -> Value {
        json!({"epoch": self.epoch, "train_loss": self.train_loss, "val_loss": self.val_loss,
               "train_bmca": self.train_bmca, "train_mean_precision": self.train_mean_precision,
               "val_bmca": self.val_bmca, "val_mean_precision": self.val_mean_precision})
    }
    fn from_json(v: &Value) -> Option<Self> {
        let f = |k: &str| v.get(k).and_then(|x| x.as_f64());
        Some(EpochMetrics {
            epoch: v.get("epoch")?.as_u64()? as usize,
            train_loss: f("train_loss")?,
            val_loss: f("val_loss")?,
            train_bmca: f("train_bmca")?,
            train_mean_precision: f("train_mean_precision")?,
            val_bmca: f("val_bmca")?,
            val_mean_precision: f("val_mean_precision")?,
        })
    }
}

/// Predictions of the best model on a labelled set.
pub struct Scored {
    pub ids: Vec<String>,
    pub labels: Vec<usize>,
    pub probs: Vec<[f32; classes::COUNT]>,
}

/// The outcome of `train`.
pub struct TrainResult {
    pub history: Vec<EpochMetrics>,
    pub best_epoch: usize,
    pub model_path: PathBuf,
    pub val_ids: Vec<String>,
    pub val_labels: Vec<usize>,
    /// Softmax outputs of the best model on the validation views.
    pub val_probs: Vec<[f32; classes::COUNT]>,
    /// The best model on the official test set, when one was given.
    pub test: Option<Scored>,
    pub skipped: Vec<String>,
}

/// Per-feature standardisation fitted on the training features and stored with the model.
/// Backbone features vary little between images relative to their size (a random-init
/// backbone's by ~1%), so the head trains far better on standardised inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureNorm {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl FeatureNorm {
    pub fn fit(x: &Tensor) -> Self {
        let (n, d) = (x.shape()[0], x.shape()[1]);
        let mut mean = vec![0f64; d];
        let mut sq = vec![0f64; d];
        for row in x.data().chunks(d) {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += *v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n.max(1) as f64);
        for row in x.data().chunks(d) {
            for ((q, v), m) in sq.iter_mut().zip(row).zip(&mean) {
                *q += (*v as f64 - m).powi(2);
            }
        }
        // A floor keeps constant features finite (they become 0).
        let std = sq
            .iter()
            .map(|s| ((s / n.max(1) as f64).sqrt().max(1e-6)) as f32)
            .collect();
        FeatureNorm {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            std,
        }
    }

    pub fn apply(&self, mut x: Tensor) -> Tensor {
        let d = self.mean.len();
        for row in x.data_mut().chunks_mut(d) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = (*v - m) / s;
            }
        }
        x
    }
}

fn rows_of(t: &Tensor, idx: &[usize]) -> Tensor {
    let w = t.shape()[1];
    let mut d = Vec::with_capacity(idx.len() * w);
    for &i in idx {
        d.extend_from_slice(&t.data()[i * w..(i + 1) * w]);
    }
    Tensor::new(&[idx.len(), w], d).expect("row gather")
}

/// Inference over all rows of `x` in chunks: (mean loss, softmax probabilities).
fn predict<B: Backend>(
    b: &B,
    h: &Head<B>,
    x: &Tensor,
    labels: &[usize],
    w: &[f32; classes::COUNT],
    red: Reduction,
) -> Result<(f64, Vec<[f32; classes::COUNT]>)> {
    let (mut loss, mut probs) = (0.0, Vec::new());
    let n = x.shape()[0];
    for start in (0..n).step_by(1024) {
        let idx: Vec<usize> = (start..(start + 1024).min(n)).collect();
        let (logits, _) = h.forward(b, &b.upload(&rows_of(x, &idx))?, false)?;
        let lab: Vec<usize> = idx.iter().map(|&i| labels[i]).collect();
        // A chunk whose labels all weigh 0 contributes no loss.
        if let Ok((l, _)) = b.weighted_cross_entropy(&logits, &lab, w, red) {
            loss += l * idx.len() as f64;
        }
        let p = b.download(&b.softmax(&logits)?)?;
        probs.extend(p.data().chunks(7).map(|r| std::array::from_fn(|k| r[k])));
    }
    Ok((loss / n.max(1) as f64, probs))
}

const CHECKPOINT: &str = "checkpoint.safetensors";
const MODEL: &str = "model.safetensors";

fn save_checkpoint<B: Backend>(
    b: &B,
    out: &Path,
    head: &Head<B>,
    adam: &AdamState<B::Tensor>,
    epoch: usize,
    best: (usize, f64),
) -> Result<()> {
    let mut named = head.named(b)?;
    for (i, (m, v)) in adam.m.iter().zip(&adam.v).enumerate() {
        named.insert(format!("adam.m.{i}"), b.download(m)?);
        named.insert(format!("adam.v.{i}"), b.download(v)?);
    }
    let meta = HashMap::from([
        ("epoch".to_string(), epoch.to_string()),
        ("adam_step".to_string(), adam.step.to_string()),
        ("best_epoch".to_string(), best.0.to_string()),
        ("best_bmca".to_string(), format!("{:e}", best.1)),
    ]);
    let list: Vec<(&str, &Tensor)> = named.iter().map(|(k, v)| (k.as_str(), v)).collect();
    st::write(&out.join(CHECKPOINT), &list, &meta)
}

/// Loads a checkpoint into `head` and `adam`; returns (completed epochs, best epoch, best bmca).
fn load_checkpoint<B: Backend>(
    b: &B,
    out: &Path,
    head: &mut Head<B>,
    adam: &mut AdamState<B::Tensor>,
) -> Result<(usize, usize, f64)> {
    let p = out.join(CHECKPOINT);
    let f = st::read(&p)?;
    head.load_named(b, &f.tensors, &p)?;
    for i in 0..adam.m.len() {
        let get = |k: String| {
            f.tensors
                .get(&k)
                .ok_or_else(|| file_err(&p, format!("missing {k}")))
        };
        adam.m[i] = b.upload(get(format!("adam.m.{i}"))?)?;
        adam.v[i] = b.upload(get(format!("adam.v.{i}"))?)?;
    }
    let num = |k: &str| {
        f.metadata
            .get(k)
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| file_err(&p, format!("missing metadata {k}")))
    };
    adam.step = num("adam_step")? as u64;
    Ok((
        num("epoch")? as usize,
        num("best_epoch")? as usize,
        num("best_bmca")?,
    ))
}

/// Writes the model file: head tensors + metadata that `infer` needs.
fn save_model<B: Backend>(
    b: &B,
    path: &Path,
    head: &Head<B>,
    norm: &FeatureNorm,
    cfg: &TrainConfig,
    backbone: &(String, String),
) -> Result<()> {
    let mut named = head.named(b)?;
    named.insert(
        "input.mean".into(),
        Tensor::new(&[FEATURES], norm.mean.clone())?,
    );
    named.insert(
        "input.std".into(),
        Tensor::new(&[FEATURES], norm.std.clone())?,
    );
    let meta = HashMap::from([
        ("format".to_string(), "skinengine-head-v1".to_string()),
        ("classes".to_string(), classes::CODES.join(",")),
        (
            "head".to_string(),
            serde_json::to_string(&head.dims[1..]).expect("ints"),
        ),
        ("batchnorm".to_string(), cfg.batchnorm.to_string()),
        (
            "resize".to_string(),
            cfg.preprocess.resize.name().to_string(),
        ),
        (
            "color_constancy".to_string(),
            cfg.preprocess.color_constancy.to_string(),
        ),
        ("backbone".to_string(), backbone.0.clone()),
        ("backbone_hash".to_string(), backbone.1.clone()),
        ("config".to_string(), cfg.to_json().to_string()),
    ]);
    let list: Vec<(&str, &Tensor)> = named.iter().map(|(k, v)| (k.as_str(), v)).collect();
    st::write(path, &list, &meta)
}

/// The backbone state dict and its identity (file name or "random-init", hash).
pub fn backbone(weights: Option<&Path>) -> Result<(BTreeMap<String, Tensor>, (String, String))> {
    match weights {
        Some(p) => {
            let sd = load_state_dict(p)?;
            let name = std::fs::canonicalize(p)
                .unwrap_or_else(|_| p.to_path_buf())
                .display()
                .to_string();
            Ok((sd, (name, features::file_hash(p)?)))
        }
        None => Ok((
            random_state_dict(0, None),
            ("random-init".into(), "random-init-seed0".into()),
        )),
    }
}

/// Views and labels of both sides, per protocol (and writes split.csv).
fn make_sides(
    cfg: &TrainConfig,
    ds: &Dataset,
    val_ds: Option<&Dataset>,
) -> Result<(Vec<View>, Vec<View>)> {
    if let Some(vd) = val_ds {
        if cfg.protocol == Protocol::Seed || cfg.split_file.is_some() {
            return Err(invalid(
                "train",
                "--val-data replaces the split: it cannot be combined with --protocol seed or --split-file",
            ));
        }
        // All of `data` trains; the official validation set validates (no augmentation).
        let all: Vec<usize> = (0..ds.samples.len()).collect();
        write_split(
            &cfg.out.join("split.csv"),
            ds,
            &crate::data::split::Split {
                train: all.clone(),
                val: vec![],
            },
        )?;
        let vall: Vec<usize> = (0..vd.samples.len()).collect();
        return Ok((
            make_views(ds, &all, &cfg.views, cfg.seed),
            make_views(vd, &vall, &ViewConfig::default(), cfg.seed),
        ));
    }
    match cfg.protocol {
        Protocol::Honest => {
            let sp = match &cfg.split_file {
                Some(f) => read_split(f, ds)?,
                None => split(ds, SplitKind::Lesion, cfg.val_fraction, cfg.seed)?,
            };
            write_split(&cfg.out.join("split.csv"), ds, &sp)?;
            let train = make_views(ds, &sp.train, &cfg.views, cfg.seed);
            let val = make_views(ds, &sp.val, &ViewConfig::default(), cfg.seed);
            Ok((train, val))
        }
        Protocol::Seed => {
            let all: Vec<usize> = (0..ds.samples.len()).collect();
            let (train, val) = seed_protocol_split(
                make_views(ds, &all, &cfg.views, cfg.seed),
                cfg.val_fraction,
                cfg.seed,
            );
            let mut csv = String::from("view,split,label,lesion_id\n");
            for (side, vs) in [("train", &train), ("val", &val)] {
                for v in vs {
                    let s = &ds.samples[v.sample];
                    csv += &format!(
                        "{},{side},{},{}\n",
                        v.name,
                        classes::CODES[s.label.unwrap_or(0)],
                        s.lesion
                    );
                }
            }
            write_atomic(&cfg.out.join("split.csv"), csv.as_bytes())?;
            Ok((train, val))
        }
    }
}

/// Loads a labelled data set; with `strict`, any problem is an error listing all of them,
/// otherwise bad rows are skipped with a warning.
fn load_labelled(path: &Path, strict: bool) -> Result<Dataset> {
    let ds = load(path)?;
    if ds.samples.iter().any(|s| s.label.is_none()) {
        return Err(file_err(
            path,
            "training needs labels (HAM10000 metadata or ISIC ground truth)",
        ));
    }
    if !ds.problems.is_empty() {
        if strict {
            return Err(file_err(
                path,
                format!(
                    "{} problems in the data set (--strict):\n  - {}",
                    ds.problems.len(),
                    ds.problems.join("\n  - ")
                ),
            ));
        }
        eprintln!(
            "warning: {}: {} data set problems; affected rows are skipped (see `skinengine inspect`)",
            path.display(),
            ds.problems.len()
        );
    }
    Ok(ds)
}

/// Standardised features, labels and view names of one side (train, val or test).
struct Side {
    x: Tensor,
    labels: Vec<usize>,
    names: Vec<String>,
    skipped: Vec<String>,
}

pub fn train<B: Backend>(b: &B, cfg: &TrainConfig) -> Result<TrainResult> {
    if cfg.epochs == 0 || cfg.batch_size == 0 {
        return Err(invalid("train", "--epochs and --batch-size must be >= 1"));
    }
    std::fs::create_dir_all(&cfg.out)
        .map_err(|e| file_err(&cfg.out, format!("cannot create: {e}")))?;
    let ds = load_labelled(&cfg.data, cfg.strict)?;
    write_atomic(
        &cfg.out.join("config.json"),
        serde_json::to_string_pretty(&cfg.to_json())
            .expect("json")
            .as_bytes(),
    )?;
    let val_ds = match &cfg.val_data {
        Some(p) => Some(load_labelled(p, cfg.strict)?),
        None => None,
    };
    let (train_views, val_views) = make_sides(cfg, &ds, val_ds.as_ref())?;

    let (sd, backbone_id) = backbone(cfg.weights.as_deref())?;
    if cfg.weights.is_none() {
        eprintln!(
            "note: no --weights given: using a deterministic random-init ResNet50 backbone (features are not ImageNet features)"
        );
    }
    let model = ResNet50::from_state_dict(b, &sd)?;
    let cache_dir = cfg
        .cache_dir
        .clone()
        .unwrap_or_else(|| cfg.out.join("cache"));
    let cache = features::cache_path(&cache_dir, &backbone_id.1, &cfg.preprocess);
    let side = |ds: &Dataset, views: &[View]| -> Result<Side> {
        let vf = features::view_features(
            b,
            &model,
            ds,
            views,
            &cfg.preprocess,
            Some(&cache),
            16,
            cfg.strict,
        )?;
        if !vf.skipped.is_empty() {
            eprintln!(
                "skipped {} unreadable images:\n  {}",
                vf.skipped.len(),
                vf.skipped.join("\n  ")
            );
        }
        let labels = vf
            .kept
            .iter()
            .map(|&v| ds.samples[views[v].sample].label.unwrap_or(0))
            .collect();
        let names = vf.kept.iter().map(|&v| views[v].name.clone()).collect();
        Ok(Side {
            x: vf.features,
            labels,
            names,
            skipped: vf.skipped,
        })
    };
    let tr = side(&ds, &train_views)?;
    let va = match &val_ds {
        Some(vd) => side(vd, &val_views)?,
        None => side(&ds, &val_views)?,
    };
    if tr.labels.is_empty() || va.labels.is_empty() {
        return Err(file_err(
            &cfg.data,
            "after skipping unreadable images, the training or validation set is empty",
        ));
    }
    let norm = FeatureNorm::fit(&tr.x);
    let x_train = norm.apply(tr.x);
    let x_val = norm.apply(va.x);
    let (y_train, y_val) = (tr.labels, va.labels);
    let mut skipped = tr.skipped;
    skipped.extend(va.skipped);
    let weights = cfg.class_weights.compute(&y_train)?;

    let mut head = Head::new(b, FEATURES, &cfg.head, cfg.batchnorm, cfg.seed)?;
    let mut adam = head.adam_init(b)?;
    let mut history: Vec<EpochMetrics> = Vec::new();
    let (mut start, mut best) = (0usize, (0usize, f64::NEG_INFINITY));
    if cfg.resume && cfg.out.join(CHECKPOINT).exists() {
        let (done, be, bb) = load_checkpoint(b, &cfg.out, &mut head, &mut adam)?;
        start = done;
        best = (be, bb);
        let text = std::fs::read_to_string(cfg.out.join("metrics.json")).unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        history = v
            .as_array()
            .map(|a| a.iter().filter_map(EpochMetrics::from_json).collect())
            .unwrap_or_default();
        history.truncate(done);
        eprintln!("resuming after epoch {done} (best so far: epoch {be}, val bmca {bb:.4})");
    }
    let n = y_train.len();
    let mut ran = 0;
    for epoch in start..cfg.epochs {
        if cfg.stop_after.is_some_and(|s| ran >= s) {
            break;
        }
        let mut order: Vec<usize> = (0..n).collect();
        Rng::new(cfg.seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .shuffle(&mut order);
        let mut batches: Vec<Vec<usize>> =
            order.chunks(cfg.batch_size).map(|c| c.to_vec()).collect();
        // Batch norm needs two samples: fold a trailing single sample into the previous batch.
        if batches.len() > 1 && batches.last().is_some_and(|l| l.len() == 1) {
            let last = batches.pop().unwrap();
            batches.last_mut().unwrap().extend(last);
        }
        let mut loss_sum = 0.0;
        for idx in &batches {
            let xb = b.upload(&rows_of(&x_train, idx))?;
            let yb: Vec<usize> = idx.iter().map(|&i| y_train[i]).collect();
            let (logits, tape) = head.forward(b, &xb, true)?;
            let (loss, dlogits) =
                match b.weighted_cross_entropy(&logits, &yb, &weights, cfg.reduction) {
                    Ok(v) => v,
                    // Every sample of this batch weighs 0 (e.g. an absent class under inverse weights).
                    Err(_) => continue,
                };
            if !loss.is_finite() {
                return Err(invalid(
                    "train",
                    format!(
                        "loss became {loss} in epoch {}; lower --lr or check the data",
                        epoch + 1
                    ),
                ));
            }
            loss_sum += loss * idx.len() as f64;
            let grads = head.backward(b, &dlogits, tape.expect("training forward keeps a tape"))?;
            head.adam_step(b, &grads, &mut adam, &cfg.adam)?;
        }
        let (_, p_train) = predict(b, &head, &x_train, &y_train, &weights, cfg.reduction)?;
        let (val_loss, p_val) = predict(b, &head, &x_val, &y_val, &weights, cfg.reduction)?;
        let (rt, rv) = (
            evaluate_probs(&y_train, &p_train)?,
            evaluate_probs(&y_val, &p_val)?,
        );
        let (tb, tm, vb, vm) = (rt.bmca, rt.mean_precision, rv.bmca, rv.mean_precision);
        let m = EpochMetrics {
            epoch: epoch + 1,
            train_loss: loss_sum / n as f64,
            val_loss,
            train_bmca: tb,
            train_mean_precision: tm,
            val_bmca: vb,
            val_mean_precision: vm,
        };
        eprintln!(
            "epoch {:>3}/{}: train loss {:.4} bmca {:.4} mean_prec {:.4} | val loss {:.4} bmca {:.4} mean_prec {:.4}",
            m.epoch, cfg.epochs, m.train_loss, tb, tm, val_loss, vb, vm
        );
        if vb > best.1 {
            best = (epoch + 1, vb);
            save_model(b, &cfg.out.join(MODEL), &head, &norm, cfg, &backbone_id)?;
        }
        history.push(m);
        save_checkpoint(b, &cfg.out, &head, &adam, epoch + 1, best)?;
        let hist: Vec<Value> = history.iter().map(|h| h.to_json()).collect();
        write_atomic(
            &cfg.out.join("metrics.json"),
            serde_json::to_string_pretty(&hist)
                .expect("json")
                .as_bytes(),
        )?;
        ran += 1;
    }
    // Validation predictions of the best model.
    let mut best_head = Head::new(b, FEATURES, &cfg.head, cfg.batchnorm, cfg.seed)?;
    let mp = cfg.out.join(MODEL);
    best_head.load_named(b, &st::read(&mp)?.tensors, &mp)?;
    let (_, val_probs) = predict(b, &best_head, &x_val, &y_val, &weights, cfg.reduction)?;
    // The official test set, if given: scored once with the best model.
    let test = match &cfg.test_data {
        Some(p) => {
            let td = load_labelled(p, cfg.strict)?;
            let all: Vec<usize> = (0..td.samples.len()).collect();
            let tv = make_views(&td, &all, &ViewConfig::default(), cfg.seed);
            let t = side(&td, &tv)?;
            let xt = norm.apply(t.x);
            let (_, probs) = predict(b, &best_head, &xt, &t.labels, &weights, cfg.reduction)?;
            skipped.extend(t.skipped);
            Some(Scored {
                ids: t.names,
                labels: t.labels,
                probs,
            })
        }
        None => None,
    };
    let result = TrainResult {
        history,
        best_epoch: best.0,
        model_path: mp,
        val_ids: va.names,
        val_labels: y_val,
        val_probs,
        test,
        skipped,
    };
    report::write(cfg, &result)?;
    Ok(result)
}

/// A model file written by `train`, ready for inference.
pub struct LoadedModel<B: Backend> {
    pub head: Head<B>,
    pub norm: FeatureNorm,
    pub preprocess: Preprocess,
    /// (backbone file or "random-init", its hash)
    pub backbone: (String, String),
}

/// Loads a model file written by `train`.
pub fn load_model<B: Backend>(b: &B, path: &Path) -> Result<LoadedModel<B>> {
    let f = st::read(path)?;
    let m = |k: &str| {
        f.metadata.get(k).cloned().ok_or_else(|| {
            file_err(
                path,
                format!("not a skinengine model: metadata '{k}' missing"),
            )
        })
    };
    if m("format")? != "skinengine-head-v1" {
        return Err(file_err(path, "not a skinengine model file (format)"));
    }
    let dims: Vec<usize> = serde_json::from_str(&m("head")?)
        .map_err(|e| file_err(path, format!("bad head metadata: {e}")))?;
    let mut head = Head::new(b, FEATURES, &dims, m("batchnorm")? == "true", 0)?;
    head.load_named(b, &f.tensors, path)?;
    let vec_of = |k: &str| -> Result<Vec<f32>> {
        let t = f
            .tensors
            .get(k)
            .ok_or_else(|| file_err(path, format!("missing tensor {k}")))?;
        t.expect_shape("load_model", k, &[FEATURES])?;
        Ok(t.data().to_vec())
    };
    let norm = FeatureNorm {
        mean: vec_of("input.mean")?,
        std: vec_of("input.std")?,
    };
    let resize = match m("resize")?.as_str() {
        "crop" => ResizeMode::Crop,
        _ => ResizeMode::Squash,
    };
    Ok(LoadedModel {
        head,
        norm,
        preprocess: Preprocess {
            resize,
            color_constancy: m("color_constancy")? == "true",
        },
        backbone: (m("backbone")?, m("backbone_hash")?),
    })
}
