//! Deterministic random weights with torchvision names, for every backbone: for tests,
//! benchmarks, the parity fixtures (the tools/ scripts read the same files) and the demo when no
//! real weights are given. BN running statistics are randomised so BN folding and eval-mode BN
//! are exercised, and the last BN of each residual block is scaled down (as trained ResNets are)
//! so activations stay bounded over many blocks.

use super::arch::{Arch, Block};
use crate::rng::Rng;
use crate::tensor::Tensor;
use std::collections::BTreeMap;

/// Random ResNet50 weights (the stream every existing fixture was made with).
pub fn random_state_dict(seed: u64, fc_classes: Option<usize>) -> BTreeMap<String, Tensor> {
    random_weights(Arch::ResNet50, seed, fc_classes)
}

/// Random weights of `arch`, with a `fc_classes`-way classifier when asked for.
pub fn random_weights(
    arch: Arch,
    seed: u64,
    fc_classes: Option<usize>,
) -> BTreeMap<String, Tensor> {
    let mut rng = Rng::new(seed);
    let mut sd = BTreeMap::new();
    // The BN whose output is added to the shortcut.
    let last_bn = match arch.resnet() {
        Some((Block::Basic, _)) => ".bn2.",
        _ => ".bn3.",
    };
    for (name, shape) in arch.expected_tensors() {
        let residual_bn = name.contains(last_bn) || name.contains(".downsample.1.");
        let t = if name.ends_with(".weight") && shape.len() == 4 {
            Tensor::kaiming_normal(&shape, &mut rng)
        } else if name.ends_with(".weight") && shape.len() == 2 {
            // VGG's hidden classifier layers.
            Tensor::randn(&shape, (2.0 / shape[1] as f64).sqrt(), &mut rng)
        } else if name.ends_with(".weight") {
            let (lo, hi) = if residual_bn { (0.1, 0.4) } else { (0.5, 1.5) };
            Tensor::uniform(&shape, lo, hi, &mut rng)
        } else if name.ends_with(".bias") {
            Tensor::randn(&shape, 0.1, &mut rng)
        } else if name.ends_with("running_mean") {
            Tensor::randn(&shape, 0.2, &mut rng)
        } else {
            Tensor::uniform(&shape, 0.5, 2.0, &mut rng)
        };
        sd.insert(name, t);
    }
    if let Some(k) = fc_classes {
        let f = arch.features();
        let (cw, cb) = arch.classifier();
        sd.insert(
            cw.into(),
            Tensor::randn(&[k, f], (1.0 / f as f64).sqrt(), &mut rng),
        );
        sd.insert(cb.into(), Tensor::randn(&[k], 0.01, &mut rng));
    }
    sd
}
