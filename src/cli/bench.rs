//! `skinengine bench`: ResNet50 forward throughput on random weights and inputs at 224x224.

use super::Device;
use crate::error::{Result, invalid};
use crate::model::init::random_state_dict;
use crate::model::resnet50::{ResNet50, forward_flops};
use crate::ops::prelude::*;
use crate::rng::Rng;
use crate::tensor::Tensor;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value_t = Device::Auto)]
    pub device: Device,
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
}

pub struct BenchResult {
    pub batch: usize,
    pub median_s: f64,
    pub images_per_s: f64,
    pub gflop_per_s: f64,
}

pub fn bench_backend<B: Backend>(b: &B, batch: usize, iters: usize) -> Result<BenchResult> {
    if batch == 0 || iters == 0 {
        return Err(invalid("bench", "batch and iters must be >= 1"));
    }
    let model = ResNet50::from_state_dict(b, &random_state_dict(0, None))?;
    let x = b.upload(&Tensor::uniform(
        &[batch, 3, 224, 224],
        -2.0,
        2.0,
        &mut Rng::new(1),
    ))?;
    model.forward(b, &x, false)?; // warm-up: thread pools, scratch buffers, caches
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        let out = model.forward(b, &x, false)?;
        b.download(&out.features)?; // includes the wait for asynchronous backends
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let median_s = times[times.len() / 2];
    let flops = forward_flops(224, 224)? * batch as f64;
    Ok(BenchResult {
        batch,
        median_s,
        images_per_s: batch as f64 / median_s,
        gflop_per_s: flops / median_s / 1e9,
    })
}

pub fn run(args: &BenchArgs) -> Result<()> {
    super::set_threads(args.threads);
    let resolved = args.device.resolve()?;
    let threads = rayon::current_num_threads();
    if !args.json {
        println!(
            "ResNet50 forward, 224x224, {threads} threads, median of {} runs",
            args.iters
        );
        println!(
            "{:>10} {:>6} {:>12} {:>12} {:>10}",
            "device", "batch", "images/s", "GFLOP/s", "ms/batch"
        );
    }
    for &batch in &args.batch {
        let (name, r) = crate::with_backend!(resolved, |b| (
            b.name(),
            bench_backend(b, batch, args.iters)?
        ));
        if args.json {
            let v = serde_json::json!({
                "device": name,
                "batch": batch,
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
