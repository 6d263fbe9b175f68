//! What a training run depends on: [`TrainConfig`] (written to config.json and into the model
//! file) and the split [`Protocol`]. Defaults are those of `skinengine train`.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::data::class_weights::ClassWeights;
use crate::data::image::{Decode, Preprocess, ResizeMode};
use crate::data::views::ViewConfig;
use crate::ops::adam::AdamConfig;
use crate::ops::loss::Reduction;
use crate::train::finetune::FineTuneConfig;
use crate::train::loss_scale::LossScaleConfig;

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
    /// How deep training goes and everything that comes with training through the backbone.
    pub fine: FineTuneConfig,
    /// Dynamic loss scaling (`--loss-scale`; on by default when training in FP16).
    pub loss_scale: LossScaleConfig,
}

impl TrainConfig {
    /// The defaults of `skinengine train` for data folder `data` and run folder `out`: callers
    /// (demo, ablate) change only what they mean to.
    pub fn new(data: PathBuf, out: PathBuf) -> Self {
        TrainConfig {
            data,
            weights: None,
            out,
            protocol: Protocol::Honest,
            split_file: None,
            val_data: None,
            test_data: None,
            val_fraction: 0.1,
            head: vec![120, 84],
            batchnorm: false,
            views: ViewConfig::default(),
            class_weights: ClassWeights::None,
            reduction: Reduction::Normalized,
            preprocess: Preprocess {
                resize: ResizeMode::Squash,
                color_constancy: false,
                decode: Decode::Full,
            },
            epochs: 30,
            batch_size: 64,
            adam: AdamConfig {
                lr: 1e-3,
                weight_decay: 0.0,
                ..AdamConfig::default()
            },
            seed: 0,
            strict: false,
            resume: false,
            stop_after: None,
            cache_dir: None,
            fine: FineTuneConfig::default(),
            loss_scale: LossScaleConfig::default(),
        }
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({
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
            "decode": self.preprocess.decode.name(),
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.adam.lr,
            "weight_decay": self.adam.weight_decay,
            "seed": self.seed,
            "loss_scale": self.loss_scale.to_json(),
        });
        if let (Some(o), Value::Object(f)) = (v.as_object_mut(), self.fine.to_json()) {
            o.extend(f);
        }
        v
    }
}
