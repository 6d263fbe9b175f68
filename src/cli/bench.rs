//! `skinengine bench`: arguments -> [`crate::bench::forward`] (or [`crate::bench::train`] with
//! `--train`) per batch size, as a table or JSON.

use super::{DeviceChoice, PrecisionChoice};
use crate::bench::{bench_backend, bench_train};
use crate::error::Result;
use crate::model::arch::Arch;
use crate::ops::channels_last::ChannelsLastKernels;
use crate::train::finetune::FineTune;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[arg(long, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Arithmetic of convolutions and matrix products on CUDA: auto = PyTorch's default (TF32
    /// convolutions, FP32 matmuls on sm_80+; FP32 elsewhere); tf32/bf16/fp16 need CUDA sm_80+.
    #[arg(long, value_enum, default_value_t = PrecisionChoice::Auto)]
    pub precision: PrecisionChoice,
    /// Comma-separated batch sizes.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 8, 32])]
    pub batch: Vec<usize>,
    /// Timed forward passes per batch size (after one warm-up pass); the median is reported.
    #[arg(long, default_value_t = 5)]
    pub iters: usize,
    /// Worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// One JSON object per batch size instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Time full training steps (forward in training mode, backward to every parameter, AdamW)
    /// instead of inference forwards.
    #[arg(long)]
    pub train: bool,
    /// Backbone: any ResNet for the forward benchmark (the folded inference model), any
    /// architecture for --train.
    #[arg(long, value_enum, default_value_t = Arch::ResNet50)]
    pub backbone: Arch,
    /// For --train: the first stage that trains (below it: frozen, forward only), as
    /// `train --fine-tune`; head = the classifier alone.
    #[arg(long, value_enum, default_value_t = FineTune::All)]
    pub fine_tune: FineTune,
}

pub fn run(args: &BenchArgs) -> Result<()> {
    super::set_threads(args.threads);
    if args.train {
        return run_train(args);
    }
    if args.backbone.resnet().is_none() {
        return Err(crate::error::invalid(
            "bench",
            format!(
                "the forward benchmark runs the folded ResNets; {} is timed by `bench --train`",
                args.backbone.name()
            ),
        ));
    }
    let resolved = args.device.resolve_at(args.precision)?;
    let precision = precision_of(&resolved);
    let threads = rayon::current_num_threads();
    if !args.json {
        println!(
            "{} forward, 224x224, {threads} threads, median of {} runs",
            args.backbone.pretty(),
            args.iters
        );
        println!(
            "{:>10} {:>6} {:>12} {:>12} {:>10}",
            "device", "batch", "images/s", "GFLOP/s", "ms/batch"
        );
    }
    for &batch in &args.batch {
        let (name, layout, r) = crate::with_backend!(resolved, |b| (
            b.name(),
            // The layout the forward takes (`ops::channels_last`).
            if b.channels_last() {
                "channels_last"
            } else {
                "nchw"
            },
            bench_backend(b, args.backbone, batch, args.iters)?
        ));
        if args.json {
            let v = serde_json::json!({
                "device": name,
                "backbone": args.backbone.name(),
                "batch": batch,
                "precision": precision,
                "layout": layout,
                "threads": threads,
                "iters": args.iters,
                "median_ms": r.median_s * 1e3,
                "images_per_s": r.images_per_s,
                "gflop_per_s": r.gflop_per_s,
            });
            println!("{v}");
        } else {
            println!(
                "{name:>10} {batch:>6} {:>12.2} {:>12.1} {:>10.1}",
                r.images_per_s,
                r.gflop_per_s,
                r.median_s * 1e3
            );
        }
    }
    Ok(())
}

/// What a run computes in, for its JSON lines (lines of several --precision runs stay apart).
fn precision_of(resolved: &crate::backend::select::ResolvedBackend) -> String {
    match resolved {
        crate::backend::select::ResolvedBackend::Cuda(c) => {
            let p = c.precisions();
            format!("conv {} matmul {}", p.conv, p.matmul)
        }
        _ => "fp32".to_string(),
    }
}

fn run_train(args: &BenchArgs) -> Result<()> {
    let resolved = args.device.resolve_at(args.precision)?;
    let precision = precision_of(&resolved);
    let threads = rayon::current_num_threads();
    if !args.json {
        println!(
            "{} training step from {} (AdamW, BN batch statistics), 224x224, {threads} threads, median of {} steps",
            args.backbone.pretty(),
            args.fine_tune.name(),
            args.iters
        );
        println!(
            "{:>10} {:>6} {:>12} {:>10} {:>14}",
            "device", "batch", "images/s", "ms/step", "peak act. MiB"
        );
    }
    for &batch in &args.batch {
        let (name, storage, r) = crate::with_backend!(resolved, |b| (
            b.name(),
            crate::ops::BackendBase::activation_storage(b),
            bench_train(b, args.backbone, batch, args.iters, args.fine_tune)?
        ));
        // "fp32", "bf16" or "f16": how the step stored its activations (16-bit at
        // --precision bf16|fp16 unless SKINENGINE_FP32_ACTIVATIONS=1).
        let storage = match storage {
            crate::cuda::Elem::Bf16 => "bf16",
            crate::cuda::Elem::F16 => "fp16",
            _ => "fp32",
        };
        if args.json {
            let v = serde_json::json!({
                "mode": "train",
                "precision": precision,
                "backbone": args.backbone.name(),
                "fine_tune": args.fine_tune.name(),
                "device": name,
                "batch": batch,
                "threads": threads,
                "iters": args.iters,
                "median_ms": r.median_s * 1e3,
                "images_per_s": r.images_per_s,
                "peak_activation_bytes": r.peak_bytes,
                "activations": storage,
            });
            println!("{v}");
        } else {
            println!(
                "{name:>10} {batch:>6} {:>12.2} {:>10.1} {:>14.1}",
                r.images_per_s,
                r.median_s * 1e3,
                r.peak_bytes as f64 / (1 << 20) as f64
            );
        }
    }
    Ok(())
}
