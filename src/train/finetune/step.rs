//! One optimiser step through the backbone: each micro-batch runs forward in training mode from
//! the first trained node, takes the weighted cross-entropy, updates BN running statistics and
//! runs backward; with `--accumulate N` the gradients of N micro-batches are averaged (each
//! micro-batch's dL/dlogits scaled by 1/N, so the sum of their gradients is the mean) before one
//! update, as PyTorch users do with `loss / N` and one `optimizer.step()`. BN statistics stay
//! per micro-batch, as there.

use super::super::loss_scale::{LossScaler, Unscaled, scale_grad};
use super::super::optim::{Group, Optimizer};
use super::super::step::all_zero_weight;
use crate::backend::Backend;
use crate::error::{Result, invalid};
use crate::model::net::{BnMode, Grads, Net};
use crate::ops::batchnorm::DEFAULT_MOMENTUM;
use crate::ops::loss::Reduction;
use crate::tensor::Tensor;

/// The trained parameters from node `from` on, with their learning-rate group and shape. The
/// head group is our head (`head.*`) or the architecture's own classifier.
pub fn trained_params<B: Backend>(
    b: &B,
    net: &Net<B>,
    from: usize,
) -> Result<Vec<(String, Group, Vec<usize>)>> {
    let classifier = net.graph.arch.classifier().0.rsplit_once('.').map(|p| p.0);
    net.graph
        .params_from(from)
        .into_iter()
        .map(|name| {
            let t = net
                .param(&name)
                .ok_or_else(|| invalid("fine-tune", format!("no parameter {name}")))?;
            let module = name.rsplit_once('.').map(|p| p.0);
            let group =
                if name.starts_with("head.") || (classifier.is_some() && module == classifier) {
                    Group::Head
                } else {
                    Group::Backbone
                };
            Ok((name, group, b.shape(t).to_vec()))
        })
        .collect()
}

/// What one micro-batch gives: its loss and logits (on the host, for running training metrics).
pub struct Micro {
    pub loss: f64,
    pub logits: Tensor,
}

/// Forward, loss, running statistics and backward of one micro-batch; its gradients (scaled by
/// `scale`: 1/N for N accumulated micro-batches, times the loss scale) are added into `sum`.
/// None when every label of the batch weighs 0 (the loss is undefined: the batch is skipped,
/// as on the head path).
#[allow(clippy::too_many_arguments)]
pub fn micro_step<B: Backend>(
    b: &B,
    net: &mut Net<B>,
    x: &B::Tensor,
    labels: &[usize],
    class_weights: &[f32],
    reduction: Reduction,
    bn: BnMode,
    from: usize,
    scale: f32,
    sum: &mut Option<Grads<B::Tensor>>,
) -> Result<Option<Micro>> {
    let Some(logits) = net.graph.logits else {
        return Err(invalid("fine-tune", "the network has no classifier"));
    };
    if all_zero_weight(labels, class_weights) {
        return Ok(None);
    }
    // Forward, loss and backward in one pass on the pool (BackendBase::run_on_workers).
    b.run_on_workers(|| {
        micro_step_here(
            b,
            net,
            x,
            labels,
            class_weights,
            reduction,
            (bn, from),
            logits,
            scale,
            sum,
        )
    })
}

#[allow(clippy::too_many_arguments)]
fn micro_step_here<B: Backend>(
    b: &B,
    net: &mut Net<B>,
    x: &B::Tensor,
    labels: &[usize],
    class_weights: &[f32],
    reduction: Reduction,
    (bn, from): (BnMode, usize),
    logits: usize,
    scale: f32,
    sum: &mut Option<Grads<B::Tensor>>,
) -> Result<Option<Micro>> {
    let tape = net.forward(b, x, bn, from, &[logits])?;
    let z = tape.value(logits).expect("kept");
    let host_logits = b.download(z)?;
    let (loss, dz) = b.weighted_cross_entropy(z, labels, class_weights, reduction)?;
    let dz = scale_grad(b, dz, scale)?;
    if bn == BnMode::Train {
        net.update_running(b, &tape, DEFAULT_MOMENTUM)?;
    }
    let grads = net.backward(b, tape, logits, dz)?;
    *sum = Some(match sum.take() {
        None => grads,
        Some(mut acc) => {
            for (k, g) in grads {
                let prev = acc
                    .remove(&k)
                    .ok_or_else(|| invalid("fine-tune", format!("no gradient for {k}")))?;
                acc.insert(k, b.add(&prev, &g)?);
            }
            acc
        }
    });
    Ok(Some(Micro {
        loss,
        logits: host_logits,
    }))
}

/// One step on batch `x` with `labels` (no accumulation), loss-scaled by `scaler` (a step that
/// overflows is skipped and backs the scale off, [`LossScaler`]): returns the batch loss
/// (before the update).
#[allow(clippy::too_many_arguments)]
pub fn train_step<B: Backend>(
    b: &B,
    net: &mut Net<B>,
    opt: &mut Optimizer<B>,
    scaler: &mut LossScaler,
    x: &B::Tensor,
    labels: &[usize],
    class_weights: &[f32],
    reduction: Reduction,
    bn: BnMode,
    from: usize,
) -> Result<f64> {
    let mut sum = None;
    let m = micro_step(
        b,
        net,
        x,
        labels,
        class_weights,
        reduction,
        bn,
        from,
        scaler.scale(),
        &mut sum,
    )?
    .ok_or_else(|| invalid("fine-tune", "every label of the batch has class weight 0"))?;
    update_scaled(b, net, opt, scaler, sum.expect("one micro-batch ran"))?;
    Ok(m.loss)
}

/// The optimiser step on summed, loss-scaled gradients: divided by the scale and applied, or
/// skipped when they overflowed; the scale follows ([`LossScaler::update`]).
pub fn update_scaled<B: Backend>(
    b: &B,
    net: &mut Net<B>,
    opt: &mut Optimizer<B>,
    scaler: &mut LossScaler,
    grads: Grads<B::Tensor>,
) -> Result<()> {
    let (names, grads): (Vec<String>, Vec<B::Tensor>) = grads.into_iter().unzip();
    // One parallel region per parameter tensor: on the pool (BackendBase::run_on_workers).
    b.run_on_workers(|| {
        match scaler.unscale(b, grads)? {
            Unscaled::Step(grads) => {
                opt.update(b, &names.into_iter().zip(grads).collect(), net)?;
                scaler.update(false);
            }
            Unscaled::Overflow => scaler.update(true),
        }
        Ok(())
    })
}

/// Softmax rows of host logits [N, classes] (for running training metrics).
pub fn softmax_rows(logits: &Tensor) -> Vec<Vec<f32>> {
    let k = logits.shape().get(1).copied().unwrap_or(1).max(1);
    logits
        .data()
        .chunks(k)
        .map(|r| {
            let m = r.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
            let e: Vec<f64> = r.iter().map(|&v| ((v - m) as f64).exp()).collect();
            let s: f64 = e.iter().sum();
            e.iter().map(|&x| (x / s) as f32).collect()
        })
        .collect()
}
