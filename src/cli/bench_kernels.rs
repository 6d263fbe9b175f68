//! `skinengine bench-kernels`: each distinct ResNet50 convolution (and the dense layers) timed
//! alone on a backend, reported with its GEMM view (m, n, k) so the GPU check can time cuBLAS
//! SGEMM (`torch.matmul`) on exactly the same problem sizes.

use std::time::Instant;

use super::{Device, Resolved};
use crate::error::{Result, invalid};
use crate::model::resnet50::CONV_SHAPES;
use crate::ops::conv2d::{Conv2dParams, geometry};
use crate::ops::prelude::*;
use crate::rng::Rng;
use crate::tensor::Tensor;

#[derive(clap::Args, Debug)]
pub struct BenchKernelsArgs {
    #[arg(long, value_enum, default_value_t = Device::Auto)]
    pub device: Device,
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

struct Row {
    kind: &'static str,
    name: String,
    count: usize,
    mnk: (usize, usize, usize),
    median_s: f64,
}

/// Median seconds per call of `f`, waiting for the device with `sync` once per round.
fn time<F: FnMut() -> Result<()>>(
    iters: usize,
    reps: usize,
    sync: &dyn Fn() -> Result<()>,
    mut f: F,
) -> Result<f64> {
    f()?;
    sync()?;
    let mut t = Vec::with_capacity(iters);
    for _ in 0..iters {
        let s = Instant::now();
        for _ in 0..reps {
            f()?;
        }
        sync()?;
        t.push(s.elapsed().as_secs_f64() / reps as f64);
    }
    t.sort_by(f64::total_cmp);
    Ok(t[t.len() / 2])
}

fn bench<B: Backend>(
    b: &B,
    args: &BenchKernelsArgs,
    sync: &dyn Fn() -> Result<()>,
) -> Result<Vec<Row>> {
    let n = args.batch;
    let mut rng = Rng::new(0);
    let mut rows = Vec::new();
    let wanted = |name: &str| {
        args.filter
            .as_ref()
            .is_none_or(|f| name.contains(f.as_str()))
    };
    for &(count, c, h, o, k, s, p) in CONV_SHAPES {
        let name = format!("conv{k}x{k}s{s} c{c} {h}x{h} -> o{o}");
        if !wanted(&name) {
            continue;
        }
        let prm = Conv2dParams::square(s, p);
        let xs = [n, c, h, h];
        let ws = [o, c, k, k];
        let g = geometry(&xs, &ws, &prm)?;
        let x = b.upload(&Tensor::uniform(&xs, -1.0, 1.0, &mut rng))?;
        let w = b.upload(&Tensor::kaiming_normal(&ws, &mut rng))?;
        let bias = b.upload(&Tensor::uniform(&[o], -0.1, 0.1, &mut rng))?;
        // The inference form ResNet50 runs: folded-BN bias and ReLU fused.
        let median_s = time(args.iters, args.reps, sync, || {
            b.conv2d_fused(&x, &w, Some(&bias), None, true, &prm)
                .map(drop)
        })?;
        rows.push(Row {
            kind: "conv",
            name,
            count,
            mnk: (o, n * g.ho * g.wo, c * k * k),
            median_s,
        });
    }
    // The classifier head (2048-120-84-7) and ImageNet's fc, as dense layers.
    for (i, o) in [(2048, 1000), (2048, 120), (120, 84), (84, 7)] {
        let name = format!("dense {i} -> {o}");
        if !wanted(&name) {
            continue;
        }
        let x = b.upload(&Tensor::uniform(&[n, i], -1.0, 1.0, &mut rng))?;
        let w = b.upload(&Tensor::kaiming_uniform(&[o, i], &mut rng))?;
        let bias = b.upload(&Tensor::zeros(&[o]))?;
        let median_s = time(args.iters, args.reps, sync, || {
            b.dense(&x, &w, Some(&bias)).map(drop)
        })?;
        rows.push(Row {
            kind: "dense",
            name,
            count: 1,
            mnk: (n, o, i),
            median_s,
        });
    }
    Ok(rows)
}

pub fn run(args: &BenchKernelsArgs) -> Result<()> {
    if args.batch == 0 || args.iters == 0 || args.reps == 0 {
        return Err(invalid(
            "bench-kernels",
            "batch, iters and reps must be >= 1",
        ));
    }
    super::set_threads(args.threads);
    let resolved = args.device.resolve()?;
    let rows = match &resolved {
        Resolved::Cuda(c) => {
            let dev = c.device().clone();
            bench(c, args, &move || dev.synchronize())?
        }
        _ => crate::with_backend!(resolved, |b| bench(b, args, &|| Ok(()))?),
    };
    let device = crate::with_backend!(resolved, |b| b.name());
    if !args.json {
        println!(
            "{:<36} {:>5} {:>6} {:>8} {:>6} {:>10} {:>10}",
            "shape", "count", "m", "n", "k", "ms", "GFLOP/s"
        );
    }
    for r in &rows {
        let (m, n, k) = r.mnk;
        let gflop = 2.0 * (m * n * k) as f64 / 1e9;
        if args.json {
            let v = serde_json::json!({
                "kind": r.kind,
                "name": r.name,
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
                "{:<36} {:>5} {m:>6} {n:>8} {k:>6} {:>10.3} {:>10.1}",
                r.name,
                r.count,
                r.median_s * 1e3,
                gflop / r.median_s
            );
        }
    }
    Ok(())
}
