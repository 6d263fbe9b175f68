//! Forward throughput of a folded ResNet (ResNet50 by default) on random weights and inputs at
//! 224x224: the median of timed passes after one warm-up, as images/s and GFLOP/s.

use std::time::Instant;

use crate::backend::Backend;
use crate::error::{Result, invalid};
use crate::model::arch::Arch;
use crate::model::init::random_weights;
use crate::model::resnet50::{ResNet50, forward_flops_for};
use crate::rng::Rng;
use crate::tensor::Tensor;

/// One batch size's timing.
pub struct BenchResult {
    pub batch: usize,
    pub median_s: f64,
    pub images_per_s: f64,
    pub gflop_per_s: f64,
}

/// Times `iters` forward passes of `arch` at batch `batch` (after one warm-up) and reports the
/// median.
pub fn bench_backend<B: Backend>(
    b: &B,
    arch: Arch,
    batch: usize,
    iters: usize,
) -> Result<BenchResult> {
    if batch == 0 || iters == 0 {
        return Err(invalid("bench", "batch and iters must be >= 1"));
    }
    if arch.resnet().is_none() {
        return Err(invalid(
            "bench",
            format!(
                "the forward benchmark runs the folded ResNets; {} is timed by `bench --train`",
                arch.name()
            ),
        ));
    }
    let model = ResNet50::from_state_dict_for(b, arch, &random_weights(arch, 0, None))?;
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
    let flops = forward_flops_for(arch, 224, 224)? * batch as f64;
    Ok(BenchResult {
        batch,
        median_s,
        images_per_s: batch as f64 / median_s,
        gflop_per_s: flops / median_s / 1e9,
    })
}
