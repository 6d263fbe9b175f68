//! What the batch loop runs images through ([`EvalModel`]): the folded ResNet50 inference model
//! (BN folded into the convolutions, fused epilogues: the fast path for ImageNet ResNet50
//! weights) or a [`Net`] in evaluation mode (every backbone, and fine-tuned models with their
//! own head).

use crate::backend::Backend;
use crate::error::Result;
use crate::model::arch::Arch;
use crate::model::net::{BnMode, Net};
use crate::model::resnet50::ResNet50;
use crate::tensor::Tensor;
use std::collections::BTreeMap;

/// Features (and logits, when asked for and the model has a classifier) of one batch.
pub struct Outputs<T> {
    pub features: T,
    pub logits: Option<T>,
}

/// A model in evaluation mode (BN with running statistics, no dropout).
pub trait EvalModel<B: Backend> {
    /// Runs `x` [N, 3, H, W]: the feature vectors the classifier reads, and its logits.
    fn eval_forward(&self, b: &B, x: &B::Tensor, logits: bool) -> Result<Outputs<B::Tensor>>;
}

impl<B: Backend> EvalModel<B> for ResNet50<B> {
    fn eval_forward(&self, b: &B, x: &B::Tensor, logits: bool) -> Result<Outputs<B::Tensor>> {
        let out = self.forward(b, x, logits)?;
        Ok(Outputs {
            features: out.features,
            logits: out.logits,
        })
    }
}

impl<B: Backend> EvalModel<B> for Net<B> {
    fn eval_forward(&self, b: &B, x: &B::Tensor, logits: bool) -> Result<Outputs<B::Tensor>> {
        let g = &self.graph;
        let want_logits = if logits { g.logits } else { None };
        let keep: Vec<usize> = [Some(g.features), want_logits]
            .into_iter()
            .flatten()
            .collect();
        // Every node frozen: BN in eval mode, dropout off, nothing recorded for backward.
        let mut tape = self.forward(b, x, BnMode::Eval, g.nodes.len(), &keep)?;
        let mut take = |s: usize| tape.values[s].take().expect("kept slots are held");
        let logits = want_logits.map(&mut take);
        Ok(Outputs {
            features: take(g.features),
            logits,
        })
    }
}

/// A frozen backbone in evaluation mode: the folded ResNet50 (the fast path for ResNet50
/// weights) or a [`Net`] of any architecture (BN with running statistics).
pub enum FrozenBackbone<B: Backend> {
    Folded(ResNet50<B>),
    Net(Net<B>),
}

impl<B: Backend> FrozenBackbone<B> {
    /// The network of `arch` from a state dict validated for it, with the weights' own
    /// classifier when `classifier` (the state dict must hold it then; the folded ResNet50
    /// takes `fc.*` whenever present).
    pub fn new(b: &B, arch: Arch, sd: &BTreeMap<String, Tensor>, classifier: bool) -> Result<Self> {
        Ok(if arch == Arch::ResNet50 {
            FrozenBackbone::Folded(ResNet50::from_state_dict(b, sd)?)
        } else {
            FrozenBackbone::Net(Net::from_state_dict(b, arch, sd, classifier)?)
        })
    }
}

impl<B: Backend> EvalModel<B> for FrozenBackbone<B> {
    fn eval_forward(&self, b: &B, x: &B::Tensor, logits: bool) -> Result<Outputs<B::Tensor>> {
        match self {
            FrozenBackbone::Folded(m) => m.eval_forward(b, x, logits),
            FrozenBackbone::Net(m) => m.eval_forward(b, x, logits),
        }
    }
}
