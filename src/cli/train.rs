//! `skinengine train` and `skinengine infer`: arguments -> [`TrainConfig`] / [`InferConfig`].

use super::DeviceChoice;
use crate::data::class_weights::ClassWeights;
use crate::data::image::{Preprocess, ResizeMode};
use crate::data::views::ViewConfig;
use crate::error::Result;
use crate::ops::adam::AdamConfig;
use crate::ops::loss::Reduction;
use crate::pipeline::batches::describe_skipped;
use crate::pipeline::infer::{InferConfig, infer};
use crate::train::{Protocol, TrainConfig, train};
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct TrainArgs {
    /// Data folder (HAM10000 or ISIC 2018 Task 3 layout).
    #[arg(long)]
    pub data: PathBuf,
    /// ResNet50 weights (safetensors). Without it a deterministic random-init backbone is used.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Run folder: config.json, split.csv, metrics.json, model.safetensors, report.md, cache/.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
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
    #[arg(long, value_delimiter = ',', default_values_t = vec![120, 84])]
    pub head: Vec<usize>,
    /// Batch norm before each hidden ReLU.
    #[arg(long)]
    pub batchnorm: bool,
    /// Add the horizontal mirror of every training image.
    #[arg(long)]
    pub mirror: bool,
    /// The seed's oversampling: DF/VASC 4 random central crops + mirrors, AKIEC vertical flips.
    #[arg(long)]
    pub oversample: bool,
    /// none | frequency (the seed's) | inverse | w1,..,w7
    #[arg(long, default_value = "none")]
    pub class_weights: ClassWeights,
    #[arg(long, default_value = "normalized")]
    pub loss_reduction: Reduction,
    /// Shades-of-Gray colour constancy (p = 6) before resizing.
    #[arg(long)]
    pub color_constancy: bool,
    #[arg(long, value_enum, default_value_t = ResizeMode::Squash)]
    pub resize: ResizeMode,
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Adam learning rate (1e-3 suits a head on frozen features; the seed's 2e-5 was for
    /// fine-tuning the whole network).
    #[arg(long, default_value_t = 1e-3)]
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
        }
    }
}

/// Trains and writes the run folder's report.
pub fn run(args: &TrainArgs) -> Result<()> {
    super::set_threads(args.threads);
    let cfg = args.config();
    let r = crate::with_backend!(args.device.resolve()?, |b| train(b, &cfg)?);
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
    /// Test-time augmentation: average over the image and its horizontal mirror.
    #[arg(long)]
    pub tta: bool,
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

impl InferArgs {
    pub fn config(&self) -> InferConfig {
        InferConfig {
            model: self.model.clone(),
            weights: self.weights.clone(),
            images: self.images.clone(),
            tta: self.tta,
            batch: self.batch,
            strict: false,
        }
    }
}

pub fn run_infer(args: &InferArgs) -> Result<()> {
    super::set_threads(args.threads);
    let cfg = args.config();
    let inferred = crate::with_backend!(args.device.resolve()?, |b| infer(b, &cfg)?);
    inferred.write_csv(&args.out)?;
    print!("{}", inferred.summary(&args.out));
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
}
