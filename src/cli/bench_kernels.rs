//! `skinengine bench-kernels`: arguments -> [`crate::bench::kernels`], as a table or JSON.

use super::{DeviceChoice, PrecisionChoice};
use crate::bench::kernels::{KernelBenchConfig, bench_kernels};
use crate::error::Result;

#[derive(clap::Args, Debug)]
pub struct BenchKernelsArgs {
    #[arg(long, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Arithmetic of convolutions and matrix products on CUDA: auto = PyTorch's default (TF32
    /// convolutions, FP32 matmuls on sm_80+; FP32 elsewhere); tf32/bf16/fp16 need CUDA sm_80+.
    #[arg(long, value_enum, default_value_t = PrecisionChoice::Auto)]
    pub precision: PrecisionChoice,
    /// Batch size the shapes are taken at.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Timed rounds per shape (after a warm-up); each round runs `--reps` launches back to back
    /// and waits once, so launch latency is amortised as in a real forward pass.
    #[arg(long, default_value_t = 11)]
    pub iters: usize,
    #[arg(long, default_value_t = 10)]
    pub reps: usize,
    /// Worker threads for CPU backends (0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Only shapes whose name contains this text.
    #[arg(long)]
    pub filter: Option<String>,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &BenchKernelsArgs) -> Result<()> {
    super::set_threads(args.threads);
    let resolved = args.device.resolve_at(args.precision)?;
    let cfg = KernelBenchConfig {
        batch: args.batch,
        iters: args.iters,
        reps: args.reps,
        filter: args.filter.clone(),
    };
    let rows = bench_kernels(&resolved, &cfg)?;
    let device = crate::with_backend!(resolved, |b| b.name());
    if !args.json {
        println!(
            "{:<8} {:<36} {:>5} {:>6} {:>8} {:>6} {:>5} {:>10} {:>10}",
            "kind", "shape", "count", "m", "n", "k", "prec", "ms", "GFLOP/s"
        );
    }
    for r in &rows {
        let (m, n, k) = r.mnk;
        let gflop = r.gflop();
        if args.json {
            let v = serde_json::json!({
                "kind": r.kind,
                "name": r.name,
                "precision": r.precision,
                "device": device,
                "batch": args.batch,
                "count": r.count,
                "m": m,
                "n": n,
                "k": k,
                "gflop": gflop,
                "median_ms": r.median_s * 1e3,
                "gflop_per_s": gflop / r.median_s,
            });
            println!("{v}");
        } else {
            println!(
                "{:<8} {:<36} {:>5} {m:>6} {n:>8} {k:>6} {:>5} {:>10.3} {:>10.1}",
                r.kind,
                r.name,
                r.count,
                r.precision,
                r.median_s * 1e3,
                gflop / r.median_s
            );
        }
    }
    Ok(())
}
