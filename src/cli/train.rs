//! `skinengine train` and `skinengine infer`: arguments -> [`TrainConfig`] / [`InferConfig`].

use super::{DeviceChoice, PrecisionChoice};
use crate::data::augment::AugmentConfig;
use crate::data::class_weights::ClassWeights;
use crate::data::image::INPUT_SIZE;
use crate::data::image::{Decode, Preprocess, ResizeMode};
use crate::data::views::ViewConfig;
use crate::error::Result;
use crate::model::arch::Arch;
use crate::model::net::Pool;
use crate::ops::adam::AdamConfig;
use crate::ops::loss::Reduction;
use crate::pipeline::batches::describe_skipped;
use crate::pipeline::infer::{InferConfig, infer};
use crate::pipeline::infer_heatmaps::{HeatmapConfig, infer_with_heatmaps};
use crate::pipeline::shard::Shard;
use crate::pipeline::tta::Tta;
use crate::train::finetune::{FineTune, FineTuneConfig};
use crate::train::loss_scale::{LossScaleConfig, LossScaleMode};
use crate::train::optim::{OptimizerName, ScheduleKind};
use crate::train::{Protocol, TrainConfig, train};
use std::path::PathBuf;

/// Named training configurations (`--preset`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// The seed notebook's code as it ran.
    Seed,
}

#[derive(clap::Args, Debug, Clone)]
pub struct TrainArgs {
    /// A named configuration; flags given with it override its values. `seed`: the seed
    /// notebook's code as it ran (SPEC 2): the whole ResNet50 fine-tuned (--fine-tune all),
    /// the 7x7x2048 map flattened (--pool flatten), head 120 -> 7 without batch norm, Adam at
    /// 2e-5 for every layer, batch 32, 16 epochs, its fixed views (--mirror --oversample, no
    /// random augmentation) and its frequency-weighted loss (--class-weights frequency
    /// --loss-reduction seed).
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// Data folder (HAM10000 or ISIC 2018 Task 3 layout).
    #[arg(long)]
    pub data: PathBuf,
    /// Backbone weights (safetensors, torchvision names; `skinengine convert` reads .pth). Without
    /// them a deterministic random-init backbone is used.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Run folder: config.json, split.csv, metrics.json, model.safetensors, report.md, cache/.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Arithmetic of convolutions and matrix products on CUDA: auto = PyTorch's default (TF32
    /// convolutions, FP32 matmuls on sm_80+; FP32 elsewhere); tf32/bf16/fp16 need CUDA sm_80+.
    #[arg(long, value_enum, default_value_t = PrecisionChoice::Auto)]
    pub precision: PrecisionChoice,
    #[arg(long, value_enum, default_value_t = Protocol::Honest)]
    pub protocol: Protocol,
    /// Reuse a split.csv instead of drawing one.
    #[arg(long)]
    pub split_file: Option<PathBuf>,
    /// Official validation set (e.g. ISIC2018_Task3_Validation_*): validate on it instead of
    /// splitting --data (all of --data trains).
    #[arg(long)]
    pub val_data: Option<PathBuf>,
    /// Official test set: scored once with the best model (test_pred.csv, report).
    #[arg(long)]
    pub test_data: Option<PathBuf>,
    #[arg(long, default_value_t = 0.1)]
    pub val_fraction: f64,
    /// Hidden layer widths of the head.
    #[arg(long, value_delimiter = ',', default_values_t = vec![120, 84], default_value_if("preset", "seed", "120"))]
    pub head: Vec<usize>,
    /// Batch norm before each hidden ReLU.
    #[arg(long)]
    pub batchnorm: bool,
    /// Add the horizontal mirror of every training image.
    #[arg(long, default_value_if("preset", "seed", "true"))]
    pub mirror: bool,
    /// The seed's oversampling: DF/VASC 4 random central crops + mirrors, AKIEC vertical flips.
    #[arg(long, default_value_if("preset", "seed", "true"))]
    pub oversample: bool,
    /// none | frequency (the seed's) | inverse | w1,..,w7
    #[arg(
        long,
        default_value = "none",
        default_value_if("preset", "seed", "frequency")
    )]
    pub class_weights: ClassWeights,
    #[arg(
        long,
        default_value = "normalized",
        default_value_if("preset", "seed", "seed")
    )]
    pub loss_reduction: Reduction,
    /// Shades-of-Gray colour constancy (p = 6) before resizing.
    #[arg(long)]
    pub color_constancy: bool,
    /// Decode JPEGs at the smallest DCT scale (1/2, 1/4, 1/8) that still leaves the image at
    /// least the input size, then resize. Default: full-size decoding, as Pillow does (on the
    /// CPUs measured it was also the faster one; README, "Scaled JPEG decoding").
    #[arg(long, conflicts_with = "full_decode")]
    pub scaled_decode: bool,
    /// Decode JPEGs at full size: the default, accepted so that scripts passing it keep working.
    #[arg(long, hide = true)]
    pub full_decode: bool,
    #[arg(long, value_enum, default_value_t = ResizeMode::Squash)]
    pub resize: ResizeMode,
    #[arg(long, default_value_t = 30, default_value_if("preset", "seed", "16"))]
    pub epochs: usize,
    #[arg(long, default_value_t = 64, default_value_if("preset", "seed", "32"))]
    pub batch_size: usize,
    /// Adam learning rate (1e-3 suits a head on frozen features; the seed's 2e-5 was for
    /// fine-tuning the whole network).
    #[arg(
        long,
        default_value_t = 1e-3,
        default_value_if("preset", "seed", "2e-5")
    )]
    pub lr: f64,
    /// Decoupled weight decay (AdamW).
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Continue from the last completed epoch in --out.
    #[arg(long)]
    pub resume: bool,
    /// Refuse data sets with any problem (default: skip bad rows and images, and list them).
    #[arg(long)]
    pub strict: bool,
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Feature cache folder (default RUN/cache); share one between runs on the same data.
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Dynamic loss scaling (PyTorch's GradScaler): auto = on when a matrix product runs in
    /// FP16 (--precision fp16), dynamic = always, off = never.
    #[arg(long, value_enum, default_value_t = LossScaleMode::Auto)]
    pub loss_scale: LossScaleMode,
    /// The first loss scale (GradScaler's init_scale).
    #[arg(long, default_value_t = LossScaleConfig::default().init)]
    pub loss_scale_init: f32,
    /// Optimiser steps without overflow before the loss scale doubles (GradScaler's
    /// growth_interval).
    #[arg(long, default_value_t = LossScaleConfig::default().growth_interval)]
    pub loss_scale_interval: u32,
    #[command(flatten)]
    pub fine: FineTuneArgs,
}

/// Training through the backbone (`--fine-tune` deeper than `head`) and what comes with it.
#[derive(clap::Args, Debug, Clone)]
pub struct FineTuneArgs {
    /// How deep training goes: head (cached frozen features, default) | layer4 | layer3 |
    /// layer2 | all (the whole network).
    #[arg(long, value_enum, default_value_t = FineTune::Head, default_value_if("preset", "seed", "all"))]
    pub fine_tune: FineTune,
    /// Backbone architecture (default: what --weights holds; resnet50 without weights).
    #[arg(long, value_enum)]
    pub backbone: Option<Arch>,
    /// How a ResNet's last map feeds the head: avg (global average pool) | flatten (the seed's
    /// 7x7x2048 = 100,352 inputs).
    #[arg(long, value_enum, default_value_t = Pool::Avg, default_value_if("preset", "seed", "flatten"))]
    pub pool: Pool,
    /// Batch norm in evaluation mode (running statistics, frozen) while fine-tuning; common
    /// with small batches.
    #[arg(long)]
    pub freeze_bn: bool,
    #[arg(long, value_enum, default_value_t = OptimizerName::Adam)]
    pub optimizer: OptimizerName,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// Nesterov momentum (SGD).
    #[arg(long)]
    pub nesterov: bool,
    /// Learning rate of the backbone (default: --lr / 10); --lr is the head's.
    #[arg(long, default_value_if("preset", "seed", "2e-5"))]
    pub lr_backbone: Option<f64>,
    #[arg(long, value_enum, default_value_t = ScheduleKind::Constant)]
    pub schedule: ScheduleKind,
    /// Linear learning-rate warm-up over this many epochs (fractions allowed).
    #[arg(long, default_value_t = 0.0)]
    pub warmup_epochs: f64,
    /// Step schedule: multiply the learning rate by --lr-gamma every this many epochs.
    #[arg(long, default_value_t = 1)]
    pub lr_step_epochs: usize,
    #[arg(long, default_value_t = 0.1)]
    pub lr_gamma: f64,
    /// Average the gradients of N batches per optimiser step (effective batch N x --batch-size).
    #[arg(long, default_value_t = 1)]
    pub accumulate: usize,
    /// No random augmentation when fine-tuning (train on the fixed views only).
    #[arg(long, default_value_if("preset", "seed", "true"))]
    pub no_augment: bool,
    /// Random resized crop: range of the crop's area as a fraction of the image's.
    #[arg(long, value_delimiter = ',', num_args = 2, default_values_t = vec![0.25, 1.0])]
    pub crop_scale: Vec<f64>,
    /// Side of the square input images when fine-tuning.
    #[arg(long, default_value_t = INPUT_SIZE)]
    pub image_size: u32,
    /// Dropout before the head's first layer when fine-tuning.
    #[arg(long, default_value_t = 0.0)]
    pub dropout: f64,
}

impl FineTuneArgs {
    pub fn config(&self) -> FineTuneConfig {
        let augment = (!self.no_augment).then(|| AugmentConfig {
            scale: (self.crop_scale[0], self.crop_scale[1]),
            ..AugmentConfig::default()
        });
        FineTuneConfig {
            depth: self.fine_tune,
            backbone: self.backbone,
            pool: self.pool,
            freeze_bn: self.freeze_bn,
            optimizer: self.optimizer,
            momentum: self.momentum,
            nesterov: self.nesterov,
            lr_backbone: self.lr_backbone,
            schedule: self.schedule,
            warmup_epochs: self.warmup_epochs,
            lr_step_epochs: self.lr_step_epochs,
            lr_gamma: self.lr_gamma,
            accumulate: self.accumulate,
            augment,
            image_size: self.image_size,
            dropout: self.dropout,
        }
    }
}

impl TrainArgs {
    pub fn config(&self) -> TrainConfig {
        TrainConfig {
            data: self.data.clone(),
            weights: self.weights.clone(),
            out: self.out.clone(),
            protocol: self.protocol,
            split_file: self.split_file.clone(),
            val_data: self.val_data.clone(),
            test_data: self.test_data.clone(),
            val_fraction: self.val_fraction,
            head: self.head.clone(),
            batchnorm: self.batchnorm,
            views: ViewConfig {
                mirror: self.mirror,
                oversample: self.oversample,
                ..ViewConfig::default()
            },
            class_weights: self.class_weights.clone(),
            reduction: self.loss_reduction,
            preprocess: Preprocess {
                resize: self.resize,
                color_constancy: self.color_constancy,
                decode: Decode::from_scaled_flag(self.scaled_decode),
            },
            epochs: self.epochs,
            batch_size: self.batch_size,
            adam: AdamConfig {
                lr: self.lr,
                weight_decay: self.weight_decay,
                ..AdamConfig::default()
            },
            seed: self.seed,
            strict: self.strict,
            resume: self.resume,
            stop_after: None,
            cache_dir: self.cache.clone(),
            fine: self.fine.config(),
            loss_scale: LossScaleConfig {
                mode: self.loss_scale,
                init: self.loss_scale_init,
                growth_interval: self.loss_scale_interval,
            },
        }
    }
}

/// Trains and writes the run folder's report.
pub fn run(args: &TrainArgs) -> Result<()> {
    super::set_threads(args.threads);
    let cfg = args.config();
    let r = crate::with_backend!(args.device.resolve_at(args.precision)?, |b| train(b, &cfg)?);
    eprintln!("{}", r.summary(&cfg));
    Ok(())
}

#[derive(clap::Args, Debug, Clone)]
pub struct InferArgs {
    /// Model file written by `train` (RUN/model.safetensors).
    #[arg(long)]
    pub model: PathBuf,
    /// Backbone weights; default: the file recorded in the model (its hash must match).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Image files and/or folders.
    #[arg(long, num_args = 1.., required = true)]
    pub images: Vec<PathBuf>,
    /// Prediction CSV in the ISIC submission format.
    #[arg(long)]
    pub out: PathBuf,
    /// Test-time augmentation: `--tta` (= `--tta mirror`) averages the probabilities of the
    /// image and its horizontal mirror; `--tta dihedral` of the 8 flips and quarter turns of
    /// the square input.
    #[arg(long, value_enum, num_args = 0..=1, default_value_t = Tta::None, default_missing_value = "mirror")]
    pub tta: Tta,
    /// Grad-CAM heat maps into DIR: one PNG per image (DIR/ID.png, the original image with the
    /// map of the predicted class blended over it). The map is of the image itself, also with
    /// --tta (whose averaged probabilities pick the predicted class).
    #[arg(long, value_name = "DIR")]
    pub heatmaps: Option<PathBuf>,
    /// Explain this class in every image instead of the predicted one: a code of the model's
    /// class list, any case (ISIC 2018: MEL, NV, BCC, AKIEC, BKL, DF, VASC; ISIC 2019: MEL,
    /// NV, BCC, AK, BKL, DF, VASC, SCC).
    #[arg(long, value_name = "CODE", requires = "heatmaps")]
    pub heatmap_class: Option<String>,
    /// Also write each raw map (h x w f32, before normalisation) as DIR/ID.safetensors.
    #[arg(long, requires = "heatmaps")]
    pub heatmap_raw: bool,
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    #[arg(long, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Arithmetic of convolutions and matrix products on CUDA: auto = PyTorch's default (TF32
    /// convolutions, FP32 matmuls on sm_80+; FP32 elsewhere); tf32/bf16/fp16 need CUDA sm_80+.
    #[arg(long, value_enum, default_value_t = PrecisionChoice::Auto)]
    pub precision: PrecisionChoice,
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Only shard K of N (1 <= K <= N) of the images, by a stable hash of the image id; writes
    /// OUT and OUT.shard.json for `skinengine merge`.
    #[arg(long)]
    pub shard: Option<Shard>,
    /// Stop at the first unreadable image (truncated, corrupt, not an image, too large),
    /// writing nothing, instead of skipping it and listing it on stderr.
    #[arg(long)]
    pub strict: bool,
    /// Decode JPEGs at the smallest DCT scale (1/2, 1/4, 1/8) that still leaves the image at
    /// least the input size, then resize. Default: full-size decoding, as Pillow does (on the
    /// CPUs measured it was also the faster one; README, "Scaled JPEG decoding").
    #[arg(long, conflicts_with = "full_decode")]
    pub scaled_decode: bool,
    /// Decode JPEGs at full size: the default, accepted so that scripts passing it keep working.
    #[arg(long, hide = true)]
    pub full_decode: bool,
}

impl InferArgs {
    pub fn config(&self) -> InferConfig {
        InferConfig {
            model: self.model.clone(),
            weights: self.weights.clone(),
            images: self.images.clone(),
            tta: self.tta,
            shard: self.shard,
            batch: self.batch,
            strict: self.strict,
            decode: Decode::from_scaled_flag(self.scaled_decode),
        }
    }
}

pub fn run_infer(args: &InferArgs) -> Result<()> {
    super::set_threads(args.threads);
    let cfg = args.config();
    // The class is checked against the model's own list once it is loaded, before any image.
    let heat = args.heatmaps.as_ref().map(|dir| HeatmapConfig {
        dir: dir.clone(),
        class: args.heatmap_class.clone(),
        raw: args.heatmap_raw,
    });
    let (inferred, maps) =
        crate::with_backend!(args.device.resolve_at(args.precision)?, |b| match &heat {
            Some(h) => {
                let (i, m) = infer_with_heatmaps(b, &cfg, h)?;
                (i, Some(m))
            }
            None => (infer(b, &cfg)?, None),
        });
    match args.shard {
        Some(s) => inferred.write_shard_csv(&args.out, s, &args.model)?,
        None => inferred.write_csv(&args.out)?,
    }
    print!("{}", inferred.summary(&args.out));
    if let (Some(m), Some(h)) = (maps, &heat) {
        println!("{} heat maps -> {}", m.written, h.dir.display());
        if !m.all_zero.is_empty() {
            eprintln!(
                "note: {} maps are zero everywhere (no positive evidence for the class): {}",
                m.all_zero.len(),
                m.all_zero.join(", ")
            );
        }
    }
    if !inferred.skipped.is_empty() {
        eprintln!("{}", describe_skipped(&inferred.skipped));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::TrainArgs;
    use crate::train::TrainConfig;
    use clap::Parser;

    /// `TrainConfig::new` (what demo and ablate start from) holds the command line's defaults.
    #[test]
    fn train_config_defaults_are_the_command_line_defaults() {
        #[derive(Parser)]
        struct Wrap {
            #[command(flatten)]
            t: TrainArgs,
        }
        let args = Wrap::try_parse_from(["train", "--data", "d", "--out", "o"])
            .unwrap()
            .t;
        let lib = TrainConfig::new("d".into(), "o".into());
        assert_eq!(format!("{:?}", args.config()), format!("{lib:?}"));
    }

    /// `--preset seed` is the seed notebook's code (SPEC 2); flags given with it win.
    #[test]
    fn the_seed_preset_sets_the_notebooks_configuration_and_flags_override_it() {
        use crate::data::class_weights::ClassWeights;
        use crate::model::net::Pool;
        use crate::ops::loss::Reduction;
        use crate::train::finetune::FineTune;
        #[derive(Parser)]
        struct Wrap {
            #[command(flatten)]
            t: TrainArgs,
        }
        let parse = |extra: &[&str]| {
            let mut a = vec!["train", "--data", "d", "--out", "o", "--preset", "seed"];
            a.extend_from_slice(extra);
            Wrap::try_parse_from(a).unwrap().t.config()
        };
        let c = parse(&[]);
        assert_eq!(c.fine.depth, FineTune::All);
        assert_eq!(c.fine.pool, Pool::Flatten);
        assert_eq!(c.head, vec![120]);
        assert!(!c.batchnorm);
        assert_eq!((c.adam.lr, c.fine.lr_backbone), (2e-5, Some(2e-5)));
        assert_eq!((c.batch_size, c.epochs), (32, 16));
        assert!(c.views.mirror && c.views.oversample && c.fine.augment.is_none());
        assert_eq!(c.class_weights, ClassWeights::Frequency);
        assert_eq!(c.reduction, Reduction::Seed);
        let c = parse(&["--epochs", "2", "--fine-tune", "layer4", "--head", "64,32"]);
        assert_eq!((c.epochs, c.fine.depth), (2, FineTune::Layer4));
        assert_eq!(c.head, vec![64, 32]);
        assert_eq!(c.fine.pool, Pool::Flatten);
    }
}
