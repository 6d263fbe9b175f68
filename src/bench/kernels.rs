//! Each distinct ResNet50 convolution (and the dense layers) timed alone on a backend, with its
//! GEMM view (m, n, k) and the precision it computed in, so the GPU check can time cuBLAS
//! (`torch.matmul` at that precision) on exactly the same problem sizes. Where the backend runs
//! ResNet50 inference channels-last (`ops::channels_last`), each convolution is timed that way
//! too (kind `conv_cl`: NHWC input in the backend's storage, as the network runs it).

use std::time::Instant;

use crate::backend::Backend;
use crate::backend::select::ResolvedBackend;
use crate::error::{Result, invalid};
use crate::model::resnet50::CONV_SHAPES;
use crate::ops::conv2d::{Conv2dParams, geometry};
use crate::rng::Rng;
use crate::tensor::Tensor;

/// What to time.
#[derive(Clone, Debug)]
pub struct KernelBenchConfig {
    /// Batch size the shapes are taken at.
    pub batch: usize,
    /// Timed rounds per shape (after a warm-up); each round runs `reps` launches back to back
    /// and waits once, so launch latency is amortised as in a real forward pass.
    pub iters: usize,
    pub reps: usize,
    /// Only shapes whose name contains this text.
    pub filter: Option<String>,
}

/// One shape's timing.
pub struct KernelTiming {
    pub kind: &'static str,
    pub name: String,
    /// How many times ResNet50 runs this shape per forward pass.
    pub count: usize,
    /// The GEMM view (m, n, k).
    pub mnk: (usize, usize, usize),
    /// Median seconds per launch.
    pub median_s: f64,
    /// The arithmetic: "fp32", "tf32", "bf16" or "fp16" (the backend's convolution or matmul
    /// precision for this kind).
    pub precision: &'static str,
}

impl KernelTiming {
    /// GFLOP of one launch (2 m n k).
    pub fn gflop(&self) -> f64 {
        let (m, n, k) = self.mnk;
        2.0 * (m * n * k) as f64 / 1e9
    }
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
    cfg: &KernelBenchConfig,
    sync: &dyn Fn() -> Result<()>,
) -> Result<Vec<KernelTiming>> {
    let n = cfg.batch;
    let mut rng = Rng::new(0);
    let mut rows = Vec::new();
    let wanted = |name: &str| {
        cfg.filter
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
        let median_s = time(cfg.iters, cfg.reps, sync, || {
            b.conv2d_fused(&x, &w, Some(&bias), None, true, &prm)
                .map(drop)
        })?;
        let mnk = (o, n * g.ho * g.wo, c * k * k);
        let precision = b.precisions().conv.name();
        rows.push(KernelTiming {
            kind: "conv",
            name: name.clone(),
            count,
            mnk,
            median_s,
            precision,
        });
        if b.channels_last() {
            let xc = b.to_channels_last(&x)?;
            let median_s = time(cfg.iters, cfg.reps, sync, || {
                b.conv2d_fused_cl(&xc, &w, Some(&bias), None, true, &prm)
                    .map(drop)
            })?;
            rows.push(KernelTiming {
                kind: "conv_cl",
                name,
                count,
                mnk,
                median_s,
                precision,
            });
        }
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
        let median_s = time(cfg.iters, cfg.reps, sync, || {
            b.dense(&x, &w, Some(&bias)).map(drop)
        })?;
        rows.push(KernelTiming {
            kind: "dense",
            name,
            count: 1,
            mnk: (n, o, i),
            median_s,
            precision: b.precisions().matmul.name(),
        });
    }
    Ok(rows)
}

/// Times every selected shape on `backend` (waiting for a GPU once per round).
pub fn bench_kernels(
    backend: &ResolvedBackend,
    cfg: &KernelBenchConfig,
) -> Result<Vec<KernelTiming>> {
    if cfg.batch == 0 || cfg.iters == 0 || cfg.reps == 0 {
        return Err(invalid(
            "bench-kernels",
            "batch, iters and reps must be >= 1",
        ));
    }
    match backend {
        ResolvedBackend::Cuda(c) => {
            let dev = c.device().clone();
            bench(c, cfg, &move || dev.synchronize())
        }
        _ => crate::with_backend!(backend, |b| bench(b, cfg, &|| Ok(()))),
    }
}
