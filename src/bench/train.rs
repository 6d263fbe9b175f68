//! Training-step throughput (`skinengine bench --train`): one full step through a whole network
//! in training mode (forward with batch statistics, cross-entropy, backward to every parameter,
//! BN running update, AdamW) on random weights and inputs at 224x224 (VGG19 included), the
//! median of timed steps after one warm-up step. With a fine-tuning depth, the stages below it
//! run frozen (eval-mode BN, forward only), as `train --fine-tune` runs them. At
//! `--precision fp16` the step is loss-scaled as `train` scales it (the unscale and overflow
//! check included), as PyTorch's AMP step with a GradScaler.

use std::time::Instant;

use crate::backend::Backend;
use crate::error::{Result, invalid};
use crate::model::arch::Arch;
use crate::model::init::random_weights;
use crate::model::net::{BnMode, Net};
use crate::ops::adam::AdamConfig;
use crate::ops::loss::Reduction;
use crate::rng::Rng;
use crate::tensor::Tensor;
use crate::train::finetune::{FineTune, train_step, trained_params};
use crate::train::loss_scale::{LossScaleConfig, LossScaler};
use crate::train::optim::{OptimConfig, Optimizer, Schedule};

/// Classes of the benchmark's classifier (ImageNet's, as PyTorch's anchor uses).
const CLASSES: usize = 1000;

/// One batch size's training-step timing.
pub struct TrainBench {
    pub batch: usize,
    pub median_s: f64,
    pub images_per_s: f64,
    /// The most activation bytes held at once in a step's forward pass.
    pub peak_bytes: usize,
}

/// Times `iters` training steps of batch `batch` and reports the median.
pub fn bench_train<B: Backend>(
    b: &B,
    arch: Arch,
    batch: usize,
    iters: usize,
    depth: FineTune,
) -> Result<TrainBench> {
    if batch < 2 || iters == 0 {
        return Err(invalid(
            "bench --train",
            "batch must be >= 2 (batch statistics) and iters >= 1",
        ));
    }
    let mut net = Net::from_state_dict(b, arch, &random_weights(arch, 0, Some(CLASSES)), true)?;
    // `head` here is the classifier alone (the benchmark's network keeps its ImageNet one).
    let from = match depth {
        FineTune::Head => net.graph.nodes.len() - 1,
        d => d.first_node(&net),
    };
    let params = trained_params(b, &net, from)?;
    let adam = AdamConfig {
        lr: 1e-4,
        weight_decay: 1e-4,
        ..AdamConfig::default()
    };
    let mut opt = Optimizer::new(
        b,
        OptimConfig::adam(adam, 1e-4),
        Schedule::constant(),
        &params,
    )?;
    // Loss scaling as `train` would run it (on at fp16, as PyTorch's AMP + GradScaler step).
    let mut scaler = LossScaler::new(&LossScaleConfig::default(), b.precisions())?;
    let mut rng = Rng::new(1);
    let x = b.upload(&Tensor::uniform(&[batch, 3, 224, 224], -2.0, 2.0, &mut rng))?;
    let labels: Vec<usize> = (0..batch).map(|_| rng.below(CLASSES)).collect();
    let ones = vec![1.0f32; CLASSES];
    let mut step = |net: &mut Net<B>| {
        train_step(
            b,
            net,
            &mut opt,
            &mut scaler,
            &x,
            &labels,
            &ones,
            Reduction::Normalized,
            BnMode::Train,
            from,
        )
    };
    step(&mut net)?; // warm-up
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        step(&mut net)?; // the loss is read back, so asynchronous backends have finished
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let median_s = times[times.len() / 2];
    let logits = net.graph.logits.expect("with classifier");
    let peak = net
        .forward(b, &x, BnMode::Train, from, &[logits])?
        .peak_bytes;
    Ok(TrainBench {
        batch,
        median_s,
        images_per_s: batch as f64 / median_s,
        peak_bytes: peak,
    })
}
