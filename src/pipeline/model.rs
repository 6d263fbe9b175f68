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
        Ok(if arch.resnet().is_some() {
            FrozenBackbone::Folded(ResNet50::from_state_dict_for(b, arch, sd)?)
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

/// A [`FrozenBackbone`] built on its first forward pass. A feature pass whose views are all in
/// the cache (the seed protocol after the honest one, a resumed run, a second run on the same
/// data) never runs the backbone, and building one costs time and memory: ResNet50's packed
/// weights were ~550 MB of a head-training run's peak RSS. Until then it holds the state
/// dict (~100 MB for ResNet50), which it drops once the backbone is built.
pub struct LazyBackbone<B: Backend> {
    arch: Arch,
    sd: std::cell::RefCell<Option<BTreeMap<String, Tensor>>>,
    built: std::cell::OnceCell<FrozenBackbone<B>>,
}

impl<B: Backend> LazyBackbone<B> {
    /// `sd` validated for `arch` as [`FrozenBackbone::new`] wants it (without a classifier).
    pub fn new(arch: Arch, sd: BTreeMap<String, Tensor>) -> Self {
        LazyBackbone {
            arch,
            sd: std::cell::RefCell::new(Some(sd)),
            built: std::cell::OnceCell::new(),
        }
    }

    /// The backbone, built now if it was not yet.
    pub fn get(&self, b: &B) -> Result<&FrozenBackbone<B>> {
        if self.built.get().is_none() {
            // Borrowed, not taken: a failed build leaves the weights for the next attempt.
            let model = {
                let sd = self.sd.borrow();
                let sd = sd
                    .as_ref()
                    .expect("the weights are kept until the backbone is built");
                FrozenBackbone::new(b, self.arch, sd, false)?
            };
            *self.sd.borrow_mut() = None;
            let _ = self.built.set(model);
        }
        Ok(self.built.get().expect("built above"))
    }

    /// Whether the backbone has been built (by a forward pass that needed it).
    pub fn is_built(&self) -> bool {
        self.built.get().is_some()
    }
}

impl<B: Backend> EvalModel<B> for LazyBackbone<B> {
    fn eval_forward(&self, b: &B, x: &B::Tensor, logits: bool) -> Result<Outputs<B::Tensor>> {
        self.get(b)?.eval_forward(b, x, logits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CpuBackend;
    use crate::model::init::random_weights;

    #[test]
    fn lazy_backbone_builds_on_first_use_and_equals_the_eager_one() {
        let b = CpuBackend;
        let arch = Arch::ResNet18;
        let sd = random_weights(arch, 3, None);
        let eager = FrozenBackbone::new(&b, arch, &sd, false).unwrap();
        let lazy = LazyBackbone::<CpuBackend>::new(arch, sd);
        assert!(!lazy.is_built());
        let mut rng = crate::Rng::new(1);
        let x = Tensor::from_fn(&[2, 3, 32, 32], |_| rng.normal() as f32);
        let want = eager.eval_forward(&b, &x, false).unwrap().features;
        let got = lazy.eval_forward(&b, &x, false).unwrap().features;
        assert!(lazy.is_built());
        assert_eq!(got, want);
        // Built once: a second pass reuses it.
        assert_eq!(lazy.eval_forward(&b, &x, false).unwrap().features, want);
    }
}
