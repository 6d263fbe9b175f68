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

/// The gradient fixtures (tests/fixtures/grads_<arch>.safetensors, tools/make_grads_fixture.sh):
/// every parameter gradient of a whole network against PyTorch autograd, both BN modes.
pub mod grads {
    use super::*;
    use crate::model::arch::Arch;
    use crate::model::init::random_weights;

    /// ResNet50 and one basic-block ResNet (the other family member with a different block).
    pub const ARCHS: [Arch; 2] = [Arch::ResNet50, Arch::ResNet18];
    pub const WEIGHTS_SEED: u64 = 2019;
    pub const IMAGES_SEED: u64 = 25331;
    /// Two small non-square images: layer4 is 2x3, so train-mode BN has 12 values per channel.
    pub const IMAGES_SHAPE: [usize; 4] = [2, 3, 64, 80];
    pub const LABELS: [usize; 2] = [3, 11];
    /// Values sampled from each gradient into the fixture (plus its exact norm).
    pub const SAMPLES: usize = 48;

    pub fn weights(arch: Arch) -> BTreeMap<String, Tensor> {
        random_weights(arch, WEIGHTS_SEED, Some(FC_CLASSES))
    }

    /// VGG19's classifier needs a 7x7 map, i.e. 224x224 images (no BN, so the batch size only
    /// scales the time: two images, one per label).
    pub const VGG19_IMAGES_SHAPE: [usize; 4] = [2, 3, 224, 224];

    /// The ResNets' images (`IMAGES_SHAPE`).
    pub fn images() -> Tensor {
        images_of_shape(&IMAGES_SHAPE)
    }

    /// The images `arch`'s fixture was made from: `images()` for the ResNets, the same generator
    /// at `VGG19_IMAGES_SHAPE` for VGG19.
    pub fn images_for(arch: Arch) -> Tensor {
        match arch {
            Arch::Vgg19 => images_of_shape(&VGG19_IMAGES_SHAPE),
            _ => images(),
        }
    }

    fn images_of_shape(shape: &[usize; 4]) -> Tensor {
        let mut rng = Rng::new(IMAGES_SEED);
        Tensor::from_fn(shape, |_| rng.normal().clamp(-2.2, 2.7) as f32)
    }

    /// The flat indices sampled from a gradient of `len` values: evenly spread, first and last
    /// included (the Python side computes the same list).
    pub fn sample_indices(len: usize) -> Vec<usize> {
        let s = SAMPLES.min(len);
        if s <= 1 {
            return vec![0; s];
        }
        (0..s).map(|i| i * (len - 1) / (s - 1)).collect()
    }
}
