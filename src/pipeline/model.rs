//! What the batch loop runs images through ([`EvalModel`]): the folded ResNet50 inference model
//! (BN folded into the convolutions, fused epilogues: the fast path for ImageNet ResNet50
//! weights) or a [`Net`] in evaluation mode (every backbone, and fine-tuned models with their
//! own head).

use crate::backend::Backend;
use crate::error::Result;
use crate::model::net::{BnMode, Net};
use crate::model::resnet50::ResNet50;

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
