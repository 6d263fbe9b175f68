//! The head of our own that fine-tuning puts on a backbone ([`HeadSpec`]): its input width for
//! an architecture, pooling and image size, the names and shapes of its tensors, and its random
//! initialisation (the same draws as the frozen-feature head of `train::head`, so a seed gives
//! the same starting head on both paths).

use super::graph::{HeadSpec, Pool};
use crate::error::{Result, invalid};
use crate::model::arch::Arch;
use crate::rng::Rng;
use crate::tensor::Tensor;
use std::collections::BTreeMap;

/// The side of a ResNet's last feature map for a `size` x `size` input: the stem's 7x7/2 conv
/// and 3x3/2 max-pool, then three stride-2 stages (each `floor((s - 1) / 2) + 1`).
pub fn resnet_map_side(size: usize) -> usize {
    let half = |s: usize| (s.max(1) - 1) / 2 + 1;
    let mut s = (size + 6).saturating_sub(7) / 2 + 1; // conv1: k7 s2 p3
    for _ in 0..4 {
        s = half(s); // max-pool (k3 s2 p1), then layer2..4's stride-2 blocks
    }
    s
}

impl HeadSpec {
    /// The head's input width on `arch` for `size` x `size` images, or why that combination
    /// cannot work.
    pub fn in_features(&self, arch: Arch, size: usize) -> Result<usize> {
        if arch.resnet().is_none() {
            if self.pool == Pool::Flatten {
                return Err(invalid(
                    "head",
                    "--pool flatten is for ResNets; VGG19 always flattens its 7x7x512 map into classifier.0",
                ));
            }
            if size != 224 {
                return Err(invalid(
                    "head",
                    format!(
                        "VGG19's classifier needs 224x224 images (a 7x7 map), not {size}x{size}"
                    ),
                ));
            }
            return Ok(arch.features());
        }
        if size < 32 {
            return Err(invalid(
                "head",
                format!("images of {size}x{size} are too small for a ResNet (at least 32x32)"),
            ));
        }
        Ok(match self.pool {
            Pool::Avg => arch.features(),
            Pool::Flatten => arch.features() * resnet_map_side(size).pow(2),
        })
    }

    /// Every tensor of the head with its shape, for an input width `input`.
    pub fn tensor_shapes(&self, input: usize) -> Vec<(String, Vec<usize>)> {
        let mut v = Vec::new();
        let mut i = input;
        for (k, &o) in self.hidden.iter().enumerate() {
            let p = format!("head.hidden.{k}");
            v.push((format!("{p}.weight"), vec![o, i]));
            v.push((format!("{p}.bias"), vec![o]));
            if self.batchnorm {
                for s in ["weight", "bias", "running_mean", "running_var"] {
                    v.push((format!("{p}.bn.{s}"), vec![o]));
                }
            }
            i = o;
        }
        v.push(("head.out.weight".into(), vec![self.classes, i]));
        v.push(("head.out.bias".into(), vec![self.classes]));
        v
    }

    /// Random initial tensors: Kaiming-normal hidden weights (ReLU follows), output weights of
    /// variance 1/fan-in (no ReLU after them), zero biases, BN gamma 1, beta 0, running (0, 1).
    /// The draws are those of `train::head::Head::new` with the same seed.
    pub fn init(&self, input: usize, seed: u64) -> Result<BTreeMap<String, Tensor>> {
        let mut rng = Rng::new(seed);
        let mut out = BTreeMap::new();
        let mut i = input;
        for (k, &o) in self.hidden.iter().enumerate() {
            let p = format!("head.hidden.{k}");
            out.insert(
                format!("{p}.weight"),
                Tensor::kaiming_normal(&[o, i], &mut rng),
            );
            out.insert(format!("{p}.bias"), Tensor::zeros(&[o]));
            if self.batchnorm {
                out.insert(format!("{p}.bn.weight"), Tensor::full(&[o], 1.0));
                out.insert(format!("{p}.bn.bias"), Tensor::zeros(&[o]));
                out.insert(format!("{p}.bn.running_mean"), Tensor::zeros(&[o]));
                out.insert(format!("{p}.bn.running_var"), Tensor::full(&[o], 1.0));
            }
            i = o;
        }
        let std = (1.0 / i as f64).sqrt();
        out.insert(
            "head.out.weight".into(),
            Tensor::randn(&[self.classes, i], std, &mut rng),
        );
        out.insert("head.out.bias".into(), Tensor::zeros(&[self.classes]));
        Ok(out)
    }

    /// Checks that `sd` holds every head tensor with its shape for input width `input`; the
    /// error lists every problem.
    pub fn check(&self, input: usize, sd: &BTreeMap<String, Tensor>) -> Result<()> {
        let mut problems = Vec::new();
        for (name, shape) in self.tensor_shapes(input) {
            match sd.get(&name) {
                None => problems.push(format!("missing {name}")),
                Some(t) if t.shape() != shape.as_slice() => problems.push(format!(
                    "{name} has shape {:?}, expected {shape:?}",
                    t.shape()
                )),
                _ => {}
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(invalid("head", problems.join("; ")))
        }
    }
}
