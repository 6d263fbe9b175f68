//! Training through the backbone: one optimiser step of a [`Net`] with its classifier on a
//! batch (forward in training mode from the first trained node, weighted cross-entropy,
//! backward, BN running statistics, Adam/AdamW update). The epoch loop, augmentation and model
//! files of `train --fine-tune` build on this.

use super::optim::{Group, Optimizer};
use crate::backend::Backend;
use crate::error::{Result, invalid};
use crate::model::net::{BnMode, Net};
use crate::ops::batchnorm::DEFAULT_MOMENTUM;
use crate::ops::loss::Reduction;

/// Which part of a network trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum FineTune {
    /// Only the classifier head, on cached frozen features (no backbone pass per epoch).
    #[default]
    Head,
    Layer4,
    Layer3,
    Layer2,
    /// Every layer, stem included.
    All,
}

impl FineTune {
    /// The first node that trains (for `Head`: the classifier's).
    pub fn first_node<B: Backend>(self, net: &Net<B>) -> usize {
        let g = &net.graph;
        let stage = match self {
            FineTune::Head => "head",
            FineTune::Layer4 => "layer4",
            FineTune::Layer3 => "layer3",
            FineTune::Layer2 => "layer2",
            FineTune::All => return 0,
        };
        g.first_of(stage).unwrap_or(g.nodes.len())
    }
}

/// The trained parameters from node `from` on, with their learning-rate group and shape.
pub fn trained_params<B: Backend>(
    b: &B,
    net: &Net<B>,
    from: usize,
) -> Result<Vec<(String, Group, Vec<usize>)>> {
    let head = net.graph.arch.classifier().0.rsplit_once('.').map(|p| p.0);
    net.graph
        .params_from(from)
        .into_iter()
        .map(|name| {
            let t = net
                .param(&name)
                .ok_or_else(|| invalid("fine-tune", format!("no parameter {name}")))?;
            let group = if head.is_some_and(|h| name.rsplit_once('.').map(|p| p.0) == Some(h)) {
                Group::Head
            } else {
                Group::Backbone
            };
            Ok((name, group, b.shape(t).to_vec()))
        })
        .collect()
}

/// One step on batch `x` with `labels`: returns the batch loss (before the update).
#[allow(clippy::too_many_arguments)]
pub fn train_step<B: Backend>(
    b: &B,
    net: &mut Net<B>,
    opt: &mut Optimizer<B>,
    x: &B::Tensor,
    labels: &[usize],
    class_weights: &[f32],
    reduction: Reduction,
    bn: BnMode,
    from: usize,
) -> Result<f64> {
    let Some(logits) = net.graph.logits else {
        return Err(invalid("fine-tune", "the network has no classifier"));
    };
    let tape = net.forward(b, x, bn, from, &[logits])?;
    let z = tape.value(logits).expect("kept");
    let (loss, dz) = b.weighted_cross_entropy(z, labels, class_weights, reduction)?;
    if bn == BnMode::Train {
        net.update_running(b, &tape, DEFAULT_MOMENTUM)?;
    }
    let grads = net.backward(b, tape, logits, dz)?;
    opt.update(b, &grads, net)?;
    Ok(loss)
}
