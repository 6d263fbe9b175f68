//! Training the classifier head on frozen backbone features (any [`crate::model::arch::Arch`];
//! `--fine-tune` deeper than the head runs [`finetune`] instead), end to end:
//! data -> split -> views -> backbone features (cached) -> head -> weighted CE + Adam -> metrics
//! per epoch -> best model, checkpoint, metrics.json, report.md.
//!
//! Determinism and resume: every random choice derives from the seed (split, views, head init,
//! and each epoch's batch order from (seed, epoch)), and the checkpoint written atomically after
//! each epoch holds every tensor that changes (head, BN running stats, Adam moments and step),
//! so `--resume` ends exactly where an uninterrupted run ends.
//!
//! Files: [`config`] (TrainConfig, Protocol), [`sides`] (split protocols, labelled data),
//! [`features`] (the backbone feature pass and its cache), [`norm`] (feature standardisation),
//! [`epochs`] (the epoch loop and the skip-or-stop rule for a batch's loss), [`scoring`]
//! (loss and probabilities of a head on a set), [`checkpoint`] (save, load, resume),
//! [`model_file`] (the model file infer reads), [`head`], [`report`], [`plots`]. This file
//! runs them in order.

pub mod checkpoint;
pub mod config;
pub mod epochs;
pub mod features;
pub mod finetune;
pub mod head;
pub mod loss_scale;
pub mod model_file;
pub mod norm;
pub mod optim;
pub mod plots;
pub mod report;
pub mod scoring;
pub mod sides;
pub mod step;

pub use config::{Protocol, TrainConfig};
pub use model_file::{HeadModel, LoadedModel, NetModel, backbone, load_model};
pub use norm::FeatureNorm;
pub use scoring::Scored;
pub use step::EpochMetrics;

use std::path::PathBuf;

use crate::backend::Backend;
use crate::classes::ClassList;
use crate::data::dataset::Dataset;
use crate::data::views::{View, ViewConfig, make_views};
use crate::error::{Result, file_err, invalid};
use crate::io::atomic::write_atomic;
use crate::io::safetensors as st;
use crate::pipeline::model::EvalModel;
use crate::pipeline::model::LazyBackbone;
use crate::tensor::Tensor;
use checkpoint::{Progress, resume};
use epochs::{EpochData, run_epochs};
use features::FeaturePass;
use head::Head;
use loss_scale::LossScaler;
use model_file::{MODEL, backbone_weights};
use scoring::predict;
use sides::{load_labelled, make_sides};

/// The outcome of `train`.
pub struct TrainResult {
    pub history: Vec<EpochMetrics>,
    pub best_epoch: usize,
    pub model_path: PathBuf,
    pub val_ids: Vec<String>,
    pub val_labels: Vec<usize>,
    /// Softmax outputs of the best model on the validation views (one per class).
    pub val_probs: Vec<Vec<f32>>,
    /// The best model on the official test set, when one was given.
    pub test: Option<Scored>,
    /// Images that could not be read (the reasons, which name the files).
    pub skipped: Vec<String>,
    /// The classes trained (the training data's list).
    pub classes: ClassList,
}

impl TrainResult {
    /// The line `train` ends with: best epoch, its val bmca, the model and report paths.
    pub fn summary(&self, cfg: &TrainConfig) -> String {
        format!(
            "best epoch {} (val bmca {:.4}); model {}; report {}",
            self.best_epoch,
            self.history
                .iter()
                .find(|h| h.epoch == self.best_epoch)
                .map_or(0.0, |h| h.val_bmca),
            self.model_path.display(),
            cfg.out.join("report.md").display()
        )
    }
}

/// Standardised features, labels and view names of one side (train, val or test).
struct Side {
    x: Tensor,
    labels: Vec<usize>,
    names: Vec<String>,
    skipped: Vec<String>,
}

/// Backbone features of `views` of `ds` (through the cache), with their labels and names.
fn side<B: Backend>(
    b: &B,
    model: &dyn EvalModel<B>,
    pass: &FeaturePass,
    ds: &Dataset,
    views: &[View],
) -> Result<Side> {
    let vf = features::view_features(b, model, ds, views, pass)?;
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
}

pub fn train<B: Backend>(b: &B, cfg: &TrainConfig) -> Result<TrainResult> {
    if cfg.epochs == 0 || cfg.batch_size == 0 {
        return Err(invalid("train", "--epochs and --batch-size must be >= 1"));
    }
    cfg.fine.validate(cfg.adam.weight_decay)?;
    // Every data set is loaded and its images checked whole before the run folder is touched:
    // with --strict a bad image (in the test set too) stops the run before anything is written,
    // and without it the images left out are fixed here, once, for the whole (resumable) run.
    let (ds, mut load_skipped) = load_labelled(&cfg.data, cfg.strict)?;
    let mut load_side = |p: &Option<PathBuf>| -> Result<Option<Dataset>> {
        let Some(p) = p else { return Ok(None) };
        let (d, bad) = load_labelled(p, cfg.strict)?;
        load_skipped.extend(bad);
        Ok(Some(d))
    };
    let val_ds = load_side(&cfg.val_data)?;
    let test_ds = load_side(&cfg.test_data)?;
    // One class list for the whole run: labels index it on every side.
    for (d, path) in [(&val_ds, &cfg.val_data), (&test_ds, &cfg.test_data)] {
        if let (Some(d), Some(p)) = (d, path)
            && d.classes != ds.classes
        {
            return Err(file_err(
                p,
                format!(
                    "its classes {} are not the training data's {} ({})",
                    d.classes.joined(),
                    ds.classes.joined(),
                    cfg.data.display()
                ),
            ));
        }
    }
    std::fs::create_dir_all(&cfg.out)
        .map_err(|e| file_err(&cfg.out, format!("cannot create: {e}")))?;
    write_atomic(
        &cfg.out.join("config.json"),
        serde_json::to_string_pretty(&cfg.to_json())
            .expect("json")
            .as_bytes(),
    )?;
    let (train_views, val_views) = make_sides(cfg, &ds, val_ds.as_ref())?;
    if cfg.fine.through_backbone() {
        let mut result = finetune::run::run(
            b,
            cfg,
            &ds,
            val_ds.as_ref(),
            test_ds.as_ref(),
            &train_views,
            &val_views,
        )?;
        result.skipped.extend(load_skipped);
        result.skipped.sort();
        result.skipped.dedup();
        report::write(cfg, &result)?;
        return Ok(result);
    }

    // The backbone (ResNet50 runs folded, the others as a Net in eval mode) and its identity.
    let (arch, sd, backbone_id) = backbone_weights(cfg.fine.backbone, cfg.weights.as_deref())?;
    if cfg.weights.is_none() {
        eprintln!(
            "note: no --weights given: using a deterministic random-init {} backbone (features are not ImageNet features)",
            arch.pretty()
        );
    }
    // Built by the first forward pass that needs it: not at all when every view is cached.
    let model = LazyBackbone::new(arch, sd);
    let cache_dir = cfg
        .cache_dir
        .clone()
        .unwrap_or_else(|| cfg.out.join("cache"));
    let pass = FeaturePass {
        arch,
        preprocess: cfg.preprocess,
        cache: Some(features::cache_path(
            &cache_dir,
            arch,
            &backbone_id.1,
            &cfg.preprocess,
            b.precisions().conv,
        )),
        batch: 16,
        strict: cfg.strict,
    };
    let tr = side(b, &model, &pass, &ds, &train_views)?;
    let va = side(b, &model, &pass, val_ds.as_ref().unwrap_or(&ds), &val_views)?;
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
    let mut skipped = load_skipped;
    skipped.extend(tr.skipped);
    skipped.extend(va.skipped);
    let weights = cfg.class_weights.compute_for(&ds.classes, &y_train)?;
    let k = ds.classes.len();

    let mut head = Head::with_classes(b, arch.features(), &cfg.head, cfg.batchnorm, cfg.seed, k)?;
    let mut adam = head.adam_init(b)?;
    let mut scaler = LossScaler::new(&cfg.loss_scale, b.precisions())?;
    let mut progress = if cfg.resume {
        resume(b, &cfg.out, &mut head, &mut adam, &mut scaler)?
    } else {
        Progress::fresh()
    };
    let data = EpochData {
        x_train: &x_train,
        y_train: &y_train,
        x_val: &x_val,
        y_val: &y_val,
        weights: &weights,
        classes: &ds.classes,
        norm: &norm,
        arch,
        backbone: &backbone_id,
    };
    run_epochs(
        b,
        cfg,
        &data,
        &mut head,
        &mut adam,
        &mut scaler,
        &mut progress,
    )?;

    // Validation predictions of the best model.
    let mut best_head =
        Head::with_classes(b, arch.features(), &cfg.head, cfg.batchnorm, cfg.seed, k)?;
    let mp = cfg.out.join(MODEL);
    best_head.load_named(b, &st::read(&mp)?.tensors, &mp)?;
    let (_, val_probs) = predict(b, &best_head, &x_val, &y_val, &weights, cfg.reduction)?;
    // The official test set, if given: scored once with the best model.
    let test = match &test_ds {
        Some(td) => {
            let all: Vec<usize> = (0..td.samples.len()).collect();
            let tv = make_views(td, &all, &ViewConfig::default(), cfg.seed);
            let t = side(b, &model, &pass, td, &tv)?;
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
    skipped.sort();
    skipped.dedup();
    let result = TrainResult {
        history: progress.history,
        best_epoch: progress.best.0,
        model_path: mp,
        val_ids: va.names,
        val_labels: y_val,
        val_probs,
        test,
        skipped,
        classes: ds.classes.clone(),
    };
    report::write(cfg, &result)?;
    Ok(result)
}
