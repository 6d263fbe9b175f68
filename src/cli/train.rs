//! `skinengine train` and `skinengine infer`.

use super::Device;
use crate::backend::Backend;
use crate::classes;
use crate::data::class_weights::ClassWeights;
use crate::data::files::collect_images;
use crate::data::image::{Preprocess, ResizeMode, Transform, preprocess_view};
use crate::data::views::ViewConfig;
use crate::error::{Result, file_err};
use crate::model::resnet50::ResNet50;
use crate::ops::adam::AdamConfig;
use crate::ops::loss::Reduction;
use crate::tensor::Tensor;
use crate::train::{LoadedModel, Protocol, TrainConfig, TrainResult, backbone, load_model, train};
use std::path::{Path, PathBuf};

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
    #[arg(long, value_enum, default_value_t = Device::Auto)]
    pub device: Device,
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
    /// The command line's defaults for `data` and `out`: callers (demo, ablate) change only
    /// what they mean to.
    pub fn new(data: PathBuf, out: PathBuf) -> Self {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrap {
            #[command(flatten)]
            t: TrainArgs,
        }
        let (d, o) = (data.display().to_string(), out.display().to_string());
        Wrap::try_parse_from(["train", "--data", d.as_str(), "--out", o.as_str()])
            .expect("TrainArgs defaults parse")
            .t
    }

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

/// Trains and writes the run folder's report; returns the result for callers (demo, ablate).
pub fn run_train(args: &TrainArgs) -> Result<TrainResult> {
    super::set_threads(args.threads);
    let cfg = args.config();
    let r = crate::with_backend!(args.device.resolve()?, |b| train(b, &cfg)?);
    eprintln!(
        "best epoch {} (val bmca {:.4}); model {}; report {}",
        r.best_epoch,
        r.history
            .iter()
            .find(|h| h.epoch == r.best_epoch)
            .map_or(0.0, |h| h.val_bmca),
        r.model_path.display(),
        cfg.out.join("report.md").display()
    );
    Ok(r)
}

pub fn run(args: &TrainArgs) -> Result<()> {
    run_train(args).map(|_| ())
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
    #[arg(long, value_enum, default_value_t = Device::Auto)]
    pub device: Device,
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// What `infer` computed.
pub struct Inferred {
    pub ids: Vec<String>,
    pub probs: Vec<[f32; classes::COUNT]>,
    /// Unreadable images, with the reason.
    pub skipped: Vec<String>,
}

/// Probabilities for images under a trained model.
pub fn infer_probs<B: Backend>(b: &B, args: &InferArgs) -> Result<Inferred> {
    let LoadedModel {
        head,
        norm,
        preprocess: pp,
        backbone: (bb_name, bb_hash),
    } = load_model(b, &args.model)?;
    let wpath = match (&args.weights, bb_name.as_str()) {
        (Some(w), _) => Some(w.clone()),
        (None, "random-init") => None,
        (None, p) => Some(PathBuf::from(p)),
    };
    let (sd, (_, hash)) = backbone(wpath.as_deref())?;
    if hash != bb_hash {
        return Err(file_err(
            wpath.as_deref().unwrap_or(Path::new("random-init")),
            format!(
                "these backbone weights (hash {hash}) are not the ones the model was trained on (hash {bb_hash})"
            ),
        ));
    }
    let model = ResNet50::from_state_dict(b, &sd)?;
    let images = collect_images(&args.images)?;
    let transforms: Vec<Transform> = if args.tta {
        vec![
            Transform::IDENTITY,
            Transform {
                hflip: true,
                ..Transform::IDENTITY
            },
        ]
    } else {
        vec![Transform::IDENTITY]
    };
    let (mut ids, mut probs, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    let decode = |(_, p): &(String, std::path::PathBuf)| -> Result<Vec<Tensor>> {
        transforms
            .iter()
            .map(|t| preprocess_view(p, t, &pp))
            .collect()
    };
    crate::data::prefetch::decode_ahead(&images, args.batch, decode, |_, chunk, decoded| {
        let mut x = Vec::new();
        let mut ok = Vec::new();
        for ((id, _), r) in chunk.iter().zip(decoded) {
            match r {
                Ok(ts) => {
                    ts.iter().for_each(|t| x.extend_from_slice(t.data()));
                    ok.push(id.clone());
                }
                Err(e) => skipped.push(e.to_string()),
            }
        }
        if ok.is_empty() {
            return Ok(());
        }
        let nt = transforms.len();
        let xt = Tensor::new(&[ok.len() * nt, 3, 224, 224], x)?;
        let f = norm.apply(b.download(&model.forward(b, &b.upload(&xt)?, false)?.features)?);
        let (logits, _) = head.forward(b, &b.upload(&f)?, false)?;
        let p = b.download(&b.softmax(&logits)?)?;
        for (k, id) in ok.into_iter().enumerate() {
            let mut avg = [0f32; classes::COUNT];
            for row in p.data()[k * nt * 7..(k + 1) * nt * 7].chunks(7) {
                for (a, v) in avg.iter_mut().zip(row) {
                    *a += v / nt as f32;
                }
            }
            ids.push(id);
            probs.push(avg);
        }
        Ok(())
    })?;
    Ok(Inferred {
        ids,
        probs,
        skipped,
    })
}

pub fn run_infer(args: &InferArgs) -> Result<()> {
    super::set_threads(args.threads);
    let Inferred {
        ids,
        probs,
        skipped,
    } = crate::with_backend!(args.device.resolve()?, |b| infer_probs(b, args)?);
    if ids.is_empty() {
        return Err(file_err(
            &args.out,
            "no image could be read; nothing written",
        ));
    }
    crate::metrics::write_predictions_csv(&args.out, &ids, &probs)?;
    let mut counts = [0usize; classes::COUNT];
    for p in &probs {
        let best = (0..7).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap_or(0);
        counts[best] += 1;
    }
    println!("{} images -> {}", ids.len(), args.out.display());
    println!(
        "predicted  {}",
        classes::CODES
            .iter()
            .map(|c| format!("{c:>6}"))
            .collect::<String>()
    );
    println!(
        "images     {}",
        counts.iter().map(|c| format!("{c:>6}")).collect::<String>()
    );
    if !skipped.is_empty() {
        eprintln!(
            "skipped {} unreadable images:\n  {}",
            skipped.len(),
            skipped.join("\n  ")
        );
    }
    Ok(())
}
