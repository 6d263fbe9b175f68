//! The trainable network of every backbone ([`Arch`]): parameters under their torchvision
//! names on a backend, batch norm kept as batch norm (not folded) so it can train, a forward
//! pass that records what backward needs ([`Tape`]) and a backward pass that returns the
//! gradient of every trainable parameter ([`run`]).
//!
//! Where the inference path ([`crate::model::resnet50`]) folds BN into the convolutions, this one
//! runs conv -> BN -> ReLU as separate ops, because training needs BN's batch statistics and the
//! gradients of gamma and beta.

pub mod gradcam;
pub mod graph;
pub mod head;
pub mod run;
#[cfg(test)]
mod tests;

pub use graph::{Graph, HeadSpec, Node, Op, Pool};
pub use run::{Grads, Tape};

use crate::backend::Backend;
use crate::error::{Result, invalid};
use crate::model::arch::Arch;
use crate::ops::batchnorm::{BnParams, DEFAULT_EPS};
use crate::tensor::Tensor;
use std::collections::BTreeMap;

/// How batch norm runs in a training forward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum BnMode {
    /// Batch statistics, running statistics updated (PyTorch's `model.train()`).
    #[default]
    Train,
    /// Running statistics, frozen (PyTorch's `model.eval()`; `--freeze-bn`).
    Eval,
}

impl BnMode {
    pub fn name(self) -> &'static str {
        match self {
            BnMode::Train => "train",
            BnMode::Eval => "eval",
        }
    }
}

/// A backbone (and optionally its classifier) with its parameters on backend `B`.
pub struct Net<B: Backend> {
    pub graph: Graph,
    /// Convolution and dense weights and biases, by torchvision name.
    pub tensors: BTreeMap<String, B::Tensor>,
    /// Batch norms by module name (`layer1.0.bn1`): gamma = `.weight`, beta = `.bias`.
    pub bns: BTreeMap<String, BnParams<B::Tensor>>,
    /// Seed of this step's dropout masks (a pure function of the run seed and the step, set by
    /// the trainer, so a resumed run draws the masks the uninterrupted run drew).
    pub step_seed: u64,
}

impl<B: Backend> Net<B> {
    /// Builds the network from a state dict validated for `arch` (see
    /// [`Arch::load_state_dict`]); with `classifier`, the state dict must hold one.
    pub fn from_state_dict(
        b: &B,
        arch: Arch,
        sd: &BTreeMap<String, Tensor>,
        classifier: bool,
    ) -> Result<Self> {
        Self::from_graph(b, Graph::new(arch, classifier), sd)
    }

    /// Builds the network of `graph` with its parameters (and BN running statistics) from `sd`,
    /// which must hold every tensor the graph names with the shape the graph implies.
    pub fn from_graph(b: &B, graph: Graph, sd: &BTreeMap<String, Tensor>) -> Result<Self> {
        let arch = graph.arch;
        let mut tensors = BTreeMap::new();
        let mut bns = BTreeMap::new();
        let get = |name: &str| {
            sd.get(name).ok_or_else(|| {
                invalid(
                    "model",
                    format!("the {} weights have no tensor {name}", arch.pretty()),
                )
            })
        };
        for n in &graph.nodes {
            match &n.op {
                Op::Bn { name } => {
                    let p = |s: &str| b.upload(get(&format!("{name}.{s}"))?);
                    bns.insert(
                        name.clone(),
                        BnParams {
                            gamma: p("weight")?,
                            beta: p("bias")?,
                            running_mean: p("running_mean")?,
                            running_var: p("running_var")?,
                            eps: DEFAULT_EPS,
                        },
                    );
                }
                Op::Conv { name, bias, .. } => {
                    let w = format!("{name}.weight");
                    tensors.insert(w.clone(), b.upload(get(&w)?)?);
                    if *bias {
                        let bn = format!("{name}.bias");
                        tensors.insert(bn.clone(), b.upload(get(&bn)?)?);
                    }
                }
                Op::Dense { name } => {
                    for s in ["weight", "bias"] {
                        let k = format!("{name}.{s}");
                        tensors.insert(k.clone(), b.upload(get(&k)?)?);
                    }
                }
                _ => {}
            }
        }
        Ok(Net {
            graph,
            tensors,
            bns,
            step_seed: 0,
        })
    }

    /// A trainable parameter by torchvision name (BN gamma / beta as `.weight` / `.bias`).
    pub fn param(&self, name: &str) -> Option<&B::Tensor> {
        if let Some(t) = self.tensors.get(name) {
            return Some(t);
        }
        let (module, field) = name.rsplit_once('.')?;
        let bn = self.bns.get(module)?;
        match field {
            "weight" => Some(&bn.gamma),
            "bias" => Some(&bn.beta),
            _ => None,
        }
    }

    pub fn param_mut(&mut self, name: &str) -> Option<&mut B::Tensor> {
        if self.tensors.contains_key(name) {
            return self.tensors.get_mut(name);
        }
        let (module, field) = name.rsplit_once('.')?;
        let bn = self.bns.get_mut(module)?;
        match field {
            "weight" => Some(&mut bn.gamma),
            "bias" => Some(&mut bn.beta),
            _ => None,
        }
    }

    /// Replaces every tensor (running statistics included) with the one of the same name in
    /// `sd`; a missing or mis-shaped tensor is an error and leaves the network unchanged.
    pub fn load_state_dict(&mut self, b: &B, sd: &BTreeMap<String, Tensor>) -> Result<()> {
        let get = |name: &str, like: &B::Tensor| -> Result<B::Tensor> {
            let t = sd
                .get(name)
                .ok_or_else(|| invalid("model", format!("missing tensor {name}")))?;
            if t.shape() != b.shape(like) {
                return Err(invalid(
                    "model",
                    format!(
                        "tensor {name} has shape {:?}, the network expects {:?}",
                        t.shape(),
                        b.shape(like)
                    ),
                ));
            }
            b.upload(t)
        };
        let mut tensors = BTreeMap::new();
        for (k, t) in &self.tensors {
            tensors.insert(k.clone(), get(k, t)?);
        }
        let mut bns = BTreeMap::new();
        for (k, bn) in &self.bns {
            bns.insert(
                k.clone(),
                BnParams {
                    gamma: get(&format!("{k}.weight"), &bn.gamma)?,
                    beta: get(&format!("{k}.bias"), &bn.beta)?,
                    running_mean: get(&format!("{k}.running_mean"), &bn.running_mean)?,
                    running_var: get(&format!("{k}.running_var"), &bn.running_var)?,
                    eps: bn.eps,
                },
            );
        }
        self.tensors = tensors;
        self.bns = bns;
        Ok(())
    }

    /// Every tensor, running statistics included, under torchvision names on the host: what a
    /// model file stores and what PyTorch's `load_state_dict` reads.
    pub fn state_dict(&self, b: &B) -> Result<BTreeMap<String, Tensor>> {
        let mut sd = BTreeMap::new();
        for (k, t) in &self.tensors {
            sd.insert(k.clone(), b.download(t)?);
        }
        for (k, bn) in &self.bns {
            for (s, t) in [
                ("weight", &bn.gamma),
                ("bias", &bn.beta),
                ("running_mean", &bn.running_mean),
                ("running_var", &bn.running_var),
            ] {
                sd.insert(format!("{k}.{s}"), b.download(t)?);
            }
        }
        Ok(sd)
    }
}
