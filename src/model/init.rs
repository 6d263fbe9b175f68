//! Deterministic random ResNet50 weights with torchvision names: for tests, benchmarks, the
//! parity fixture (tools/torch_parity.py reads the same file) and the demo when no real weights
//! are given. BN running statistics are randomised so BN folding is exercised, and the last BN of
//! each block is scaled down (as trained ResNets are) so activations stay bounded over 16 blocks.

use super::resnet50::{FEATURES, expected_tensors};
use crate::rng::Rng;
use crate::tensor::Tensor;
use std::collections::BTreeMap;

pub fn random_state_dict(seed: u64, fc_classes: Option<usize>) -> BTreeMap<String, Tensor> {
    let mut rng = Rng::new(seed);
    let mut sd = BTreeMap::new();
    for (name, shape) in expected_tensors() {
        let residual_bn = name.contains(".bn3.") || name.contains(".downsample.1.");
        let t = if name.ends_with(".weight") && shape.len() == 4 {
            Tensor::kaiming_normal(&shape, &mut rng)
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
        sd.insert(
            "fc.weight".into(),
            Tensor::randn(&[k, FEATURES], (1.0 / FEATURES as f64).sqrt(), &mut rng),
        );
        sd.insert("fc.bias".into(), Tensor::randn(&[k], 0.01, &mut rng));
    }
    sd
}
