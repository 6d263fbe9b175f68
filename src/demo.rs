//! The demo: the whole pipeline on a small synthetic data set, offline, on one backend:
//! synth -> train -> infer (the validation images, from the saved model file, as a user would)
//! -> eval against the validation truth.

use std::path::PathBuf;
use std::time::Instant;

use crate::backend::Backend;
use crate::data::class_weights::ClassWeights;
use crate::data::dataset::load;
use crate::data::synth::{SynthConfig, SynthLayout, write_synth};
use crate::error::{Result, file_err};
use crate::metrics::Report;
use crate::pipeline::batches::describe_skipped;
use crate::pipeline::infer::{InferConfig, infer};
use crate::train::finetune::FineTuneConfig;
use crate::train::{TrainConfig, train};

/// A demo run.
#[derive(Clone, Debug)]
pub struct DemoConfig {
    /// Output folder: data/ (synthetic HAM10000 layout), run/ (training), pred.csv.
    pub out: PathBuf,
    /// Synthetic images to generate.
    pub n: usize,
    /// ResNet50 weights; `None`: a deterministic random-init backbone (and said).
    pub weights: Option<PathBuf>,
    pub epochs: usize,
    pub seed: u64,
    /// How deep training goes, the backbone and the input size (default: the head on cached
    /// ResNet50 features at 224).
    pub fine: FineTuneConfig,
}

/// What the demo produced.
pub struct Demo {
    /// The validation predictions scored against the validation truth.
    pub report: Report,
    /// What infer printed about its predictions (see [`crate::pipeline::Inferred::summary`]).
    pub infer_summary: String,
    pub run_dir: PathBuf,
    pub pred: PathBuf,
    /// Seconds: synth, train (features + head), infer, total.
    pub seconds: DemoTimes,
}

pub struct DemoTimes {
    pub synth: f64,
    pub train: f64,
    pub infer: f64,
    pub total: f64,
}

/// The training config the demo uses for `data` and run folder `run_dir`.
pub fn train_config(cfg: &DemoConfig, data: PathBuf, run_dir: PathBuf) -> TrainConfig {
    let mut t = TrainConfig::new(data, run_dir);
    t.weights = cfg.weights.clone();
    t.val_fraction = 0.2;
    t.batchnorm = true;
    t.views.mirror = true;
    t.class_weights = ClassWeights::Inverse;
    t.epochs = cfg.epochs;
    t.batch_size = 32;
    t.seed = cfg.seed;
    t.fine = cfg.fine.clone();
    t
}

/// Runs the demo (reusing synthetic data already in `cfg.out/data`).
pub fn demo<B: Backend>(b: &B, cfg: &DemoConfig) -> Result<Demo> {
    let t0 = Instant::now();
    let data = cfg.out.join("data");
    if data.join("HAM10000_metadata.csv").exists() {
        eprintln!("[demo] reusing synthetic data in {}", data.display());
    } else {
        let synth = SynthConfig {
            n: cfg.n,
            layout: SynthLayout::Ham10000,
            seed: cfg.seed,
            width: 600,
            height: 450,
            progress: true,
            ..SynthConfig::default()
        };
        let s = write_synth(&data, &synth)?;
        eprintln!(
            "[demo] synthesised {} images of {} lesions in {:.1} s -> {}",
            s.images,
            s.lesions,
            s.seconds,
            data.display()
        );
    }
    let t_synth = t0.elapsed().as_secs_f64();

    let run_dir = cfg.out.join("run");
    let tc = train_config(cfg, data.clone(), run_dir.clone());
    let t1 = Instant::now();
    let r = train(b, &tc)?;
    eprintln!("{}", r.summary(&tc));
    let t_train = t1.elapsed().as_secs_f64();

    // Classify the validation images from scratch with the saved model, as a user would.
    let ds = load(&data)?;
    let split = std::fs::read_to_string(run_dir.join("split.csv"))
        .map_err(|e| file_err(run_dir.join("split.csv"), e.to_string()))?;
    let val_ids: std::collections::HashSet<&str> = split
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split(',');
            let id = f.next()?;
            (f.next()? == "val").then_some(id)
        })
        .collect();
    let images: Vec<PathBuf> = ds
        .samples
        .iter()
        .filter(|s| val_ids.contains(s.id.as_str()))
        .map(|s| s.path.clone())
        .collect();
    let pred = cfg.out.join("pred.csv");
    let ic = InferConfig {
        model: run_dir.join("model.safetensors"),
        // A fine-tuned model carries its backbone; a head model reads the weights it names.
        weights: (!cfg.fine.through_backbone())
            .then(|| cfg.weights.clone())
            .flatten(),
        images,
        tta: crate::pipeline::tta::Tta::None,
        // Decoded as the run's feature pass decoded.
        decode: tc.preprocess.decode,
        shard: None,
        batch: 16,
        strict: false,
    };
    let t2 = Instant::now();
    let inferred = infer(b, &ic)?;
    inferred.write_csv(&pred)?;
    let t_infer = t2.elapsed().as_secs_f64();
    if !inferred.skipped.is_empty() {
        eprintln!("{}", describe_skipped(&inferred.skipped));
    }

    let report = crate::metrics::score_files(&run_dir.join("val_truth.csv"), &pred)?;
    Ok(Demo {
        report,
        infer_summary: inferred.summary(&pred),
        run_dir,
        pred,
        seconds: DemoTimes {
            synth: t_synth,
            train: t_train,
            infer: t_infer,
            total: t0.elapsed().as_secs_f64(),
        },
    })
}
