//! What a fine-tuning run adds to [`TrainConfig`](crate::train::TrainConfig): how deep it
//! trains, the backbone and head shape, the optimiser and schedule, accumulation and
//! augmentation. Checked once before anything runs ([`FineTuneConfig::validate`]).

use crate::backend::Backend;
use crate::data::augment::AugmentConfig;
use crate::data::image::INPUT_SIZE;
use crate::error::{Result, invalid};
use crate::model::arch::Arch;
use crate::model::net::{Net, Pool};
use crate::train::optim::{OptimizerName, Schedule, ScheduleKind};
use serde_json::{Value, json};

/// Which part of a network trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum FineTune {
    /// Only the classifier head, on cached frozen features (no backbone pass per epoch).
    #[default]
    Head,
    Layer4,
    Layer3,
    Layer2,
    /// Every layer, stem included.
    All,
}

impl FineTune {
    pub fn name(self) -> &'static str {
        match self {
            FineTune::Head => "head",
            FineTune::Layer4 => "layer4",
            FineTune::Layer3 => "layer3",
            FineTune::Layer2 => "layer2",
            FineTune::All => "all",
        }
    }

    /// The first node that trains (for `Head`: the head's).
    pub fn first_node<B: Backend>(self, net: &Net<B>) -> usize {
        let g = &net.graph;
        if self == FineTune::All {
            return 0;
        }
        g.first_of(self.name()).unwrap_or(g.nodes.len())
    }
}

/// The fine-tuning settings of a training run (all but `backbone` and `image_size` apply to
/// `--fine-tune` deeper than `head` only; see [`FineTuneConfig::validate`]).
#[derive(Clone, Debug, PartialEq)]
pub struct FineTuneConfig {
    pub depth: FineTune,
    /// None: the architecture the weights hold (ResNet50 without weights).
    pub backbone: Option<Arch>,
    pub pool: Pool,
    /// Batch norm in evaluation mode (running statistics, frozen) while training.
    pub freeze_bn: bool,
    pub optimizer: OptimizerName,
    pub momentum: f64,
    pub nesterov: bool,
    /// Learning rate of the backbone (None: the head's / 10).
    pub lr_backbone: Option<f64>,
    pub schedule: ScheduleKind,
    /// Linear warm-up, in epochs (may be fractional).
    pub warmup_epochs: f64,
    /// Step schedule: multiply by `lr_gamma` every `lr_step_epochs` epochs.
    pub lr_step_epochs: usize,
    pub lr_gamma: f64,
    /// Micro-batches per optimiser step.
    pub accumulate: usize,
    /// Random augmentation drawn every epoch (None: the fixed views only).
    pub augment: Option<AugmentConfig>,
    /// Side of the square input images.
    pub image_size: u32,
    /// Dropout before the head's first layer.
    pub dropout: f64,
}

impl Default for FineTuneConfig {
    fn default() -> Self {
        FineTuneConfig {
            depth: FineTune::Head,
            backbone: None,
            pool: Pool::Avg,
            freeze_bn: false,
            optimizer: OptimizerName::Adam,
            momentum: 0.9,
            nesterov: false,
            lr_backbone: None,
            schedule: ScheduleKind::Constant,
            warmup_epochs: 0.0,
            lr_step_epochs: 1,
            lr_gamma: 0.1,
            accumulate: 1,
            augment: Some(AugmentConfig::default()),
            image_size: INPUT_SIZE,
            dropout: 0.0,
        }
    }
}

impl FineTuneConfig {
    /// True when the backbone trains (anything deeper than the head).
    pub fn through_backbone(&self) -> bool {
        self.depth != FineTune::Head
    }

    /// The backbone's learning rate for a head learning rate `lr`.
    pub fn lr_backbone(&self, lr: f64) -> f64 {
        self.lr_backbone.unwrap_or(lr / 10.0)
    }

    /// The learning-rate schedule of a run of `epochs` epochs of `steps_per_epoch` optimiser
    /// steps (warm-up and step interval are given in epochs).
    pub fn schedule(&self, epochs: usize, steps_per_epoch: u64) -> Schedule {
        Schedule {
            kind: self.schedule,
            warmup: (self.warmup_epochs * steps_per_epoch as f64).round() as u64,
            total: epochs as u64 * steps_per_epoch,
            step_every: (self.lr_step_epochs as u64 * steps_per_epoch).max(1),
            gamma: self.lr_gamma,
        }
    }

    /// Refuses settings that cannot apply: options of fine-tuning given to the frozen-feature
    /// path, bad values, Adam with weight decay (PyTorch's Adam adds it to the gradient, which
    /// is not implemented; AdamW's decoupled decay is).
    pub fn validate(&self, weight_decay: f64) -> Result<()> {
        let bad = |m: String| Err(invalid("train", m));
        if !self.through_backbone() {
            let d = FineTuneConfig::default();
            let only = [
                (self.pool != d.pool, "--pool"),
                (self.freeze_bn, "--freeze-bn"),
                (self.optimizer == OptimizerName::Sgd, "--optimizer sgd"),
                (self.lr_backbone.is_some(), "--lr-backbone"),
                (self.accumulate != 1, "--accumulate"),
                (self.image_size != d.image_size, "--image-size"),
                (self.dropout != 0.0, "--dropout"),
            ];
            if let Some((_, flag)) = only.iter().find(|(set, _)| *set) {
                return bad(format!(
                    "{flag} applies when training through the backbone: add --fine-tune layer4|layer3|layer2|all"
                ));
            }
        }
        if self.optimizer == OptimizerName::Adam && weight_decay != 0.0 {
            return bad(
                "--optimizer adam takes no --weight-decay (PyTorch's Adam adds it to the gradient); use --optimizer adamw for decoupled weight decay".into(),
            );
        }
        if self.accumulate == 0 {
            return bad("--accumulate must be >= 1".into());
        }
        if !(self.dropout >= 0.0 && self.dropout < 1.0) {
            return bad(format!("--dropout {} must be in [0, 1)", self.dropout));
        }
        if !(self.warmup_epochs >= 0.0 && self.warmup_epochs.is_finite()) {
            return bad("--warmup-epochs must be finite and >= 0".into());
        }
        if let Some(a) = &self.augment {
            a.validate()?;
        }
        if self.image_size < 32 || self.image_size > 1024 {
            return bad(format!(
                "--image-size {} must be in 32..=1024",
                self.image_size
            ));
        }
        Ok(())
    }

    pub fn to_json(&self) -> Value {
        json!({
            "fine_tune": self.depth.name(),
            "backbone": self.backbone.map(|a| a.name()),
            "pool": self.pool.name(),
            "freeze_bn": self.freeze_bn,
            "optimizer": self.optimizer.name(),
            "momentum": self.momentum,
            "nesterov": self.nesterov,
            "lr_backbone": self.lr_backbone,
            "schedule": format!("{:?}", self.schedule).to_lowercase(),
            "warmup_epochs": self.warmup_epochs,
            "lr_step_epochs": self.lr_step_epochs,
            "lr_gamma": self.lr_gamma,
            "accumulate": self.accumulate,
            "augment": self.augment.is_some(),
            "crop_scale": self.augment.map(|a| [a.scale.0, a.scale.1]),
            "image_size": self.image_size,
            "dropout": self.dropout,
        })
    }
}
