//! `skinengine demo`: the whole pipeline on a small synthetic data set, offline, on whatever
//! device exists: synth -> train -> infer -> eval -> report.

use super::Device;
use super::train::{InferArgs, TrainArgs, run_infer, run_train};
use crate::data::class_weights::ClassWeights;
use crate::data::dataset::load;
use crate::data::synth::{SynthConfig, SynthLayout, write_synth};
use crate::error::{Result, file_err};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Output folder: data/ (synthetic HAM10000 layout), run/ (training), pred.csv.
    #[arg(long, default_value = "demo")]
    pub out: PathBuf,
    /// Synthetic images to generate.
    #[arg(long, default_value_t = 300)]
    pub n: usize,
    /// ResNet50 weights; without them a deterministic random-init backbone is used (and said).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, value_enum, default_value_t = Device::Auto)]
    pub device: Device,
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

pub fn run(args: &DemoArgs) -> Result<()> {
    super::set_threads(args.threads);
    let t0 = Instant::now();
    let data = args.out.join("data");
    if data.join("HAM10000_metadata.csv").exists() {
        eprintln!("[demo] reusing synthetic data in {}", data.display());
    } else {
        let cfg = SynthConfig {
            n: args.n,
            layout: SynthLayout::Ham10000,
            seed: args.seed,
            width: 600,
            height: 450,
            progress: true,
            ..SynthConfig::default()
        };
        let s = write_synth(&data, &cfg)?;
        eprintln!(
            "[demo] synthesised {} images of {} lesions in {:.1} s -> {}",
            s.images,
            s.lesions,
            s.seconds,
            data.display()
        );
    }
    let t_synth = t0.elapsed().as_secs_f64();

    let run_dir = args.out.join("run");
    let train = TrainArgs {
        weights: args.weights.clone(),
        device: args.device,
        val_fraction: 0.2,
        batchnorm: true,
        mirror: true,
        class_weights: ClassWeights::Inverse,
        epochs: args.epochs,
        batch_size: 32,
        seed: args.seed,
        threads: args.threads,
        ..TrainArgs::new(data.clone(), run_dir.clone())
    };
    let t1 = Instant::now();
    run_train(&train)?;
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
    let pred = args.out.join("pred.csv");
    let infer = InferArgs {
        model: run_dir.join("model.safetensors"),
        weights: args.weights.clone(),
        images,
        out: pred.clone(),
        tta: false,
        batch: 16,
        device: args.device,
        threads: args.threads,
    };
    let t2 = Instant::now();
    run_infer(&infer)?;
    let t_infer = t2.elapsed().as_secs_f64();

    let rep = crate::metrics::score_files(&run_dir.join("val_truth.csv"), &pred)?;
    println!();
    println!(
        "demo: validation ({} images, split by lesion): bmca {:.4}, mean precision {:.4}, accuracy {:.4}",
        rep.n, rep.bmca, rep.mean_precision, rep.accuracy
    );
    if args.weights.is_none() {
        println!(
            "      (random-init backbone: features are random projections, not ImageNet features)"
        );
    }
    println!(
        "      times: synth {t_synth:.1} s, train (features + head) {t_train:.1} s, infer {t_infer:.1} s, total {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    println!("      report: {}", run_dir.join("report.md").display());
    Ok(())
}
