//! The deterministic inputs of the PyTorch parity fixture (tests/fixtures/resnet50_parity.*):
//! random torchvision-named weights and images that our code and tools/torch_parity.py both see.
//! The test regenerates them from the seeds below; `examples/parity_inputs.rs` writes them to
//! files for the Python side.

use super::init::random_state_dict;
use crate::rng::Rng;
use crate::tensor::Tensor;
use std::collections::BTreeMap;

pub const WEIGHTS_SEED: u64 = 2018;
pub const IMAGES_SEED: u64 = 10015;
/// A small classifier keeps the fixture small; any K works the same as 1000.
pub const FC_CLASSES: usize = 16;
/// Two images, non-square, so every stage has odd or uneven sizes (96x128 -> ... -> 3x4).
pub const IMAGES_SHAPE: [usize; 4] = [2, 3, 96, 128];

pub fn weights() -> BTreeMap<String, Tensor> {
    random_state_dict(WEIGHTS_SEED, Some(FC_CLASSES))
}

/// Normalised-image-like values: N(0, 1) per pixel, clamped to the range real inputs take.
pub fn images() -> Tensor {
    let mut rng = Rng::new(IMAGES_SEED);
    Tensor::from_fn(&IMAGES_SHAPE, |_| rng.normal().clamp(-2.2, 2.7) as f32)
}
