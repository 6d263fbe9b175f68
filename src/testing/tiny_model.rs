//! A small fine-tuned model file made in code (no training): random-init ResNet18 with a
//! linear head at a small input size, with stirred batch-norm statistics and biases so its
//! classes differ. For the server's tests, its fuzz target and quick demos.

use std::path::Path;

use crate::Rng;
use crate::classes;
use crate::error::Result;
use crate::model::arch::Arch;
use crate::model::init::random_weights;
use crate::model::net::{Graph, HeadSpec, Net, Pool};
use crate::reference::ReferenceBackend;
use crate::train::TrainConfig;
use crate::train::model_file::save_net_model;

/// Writes a `skinengine-net-v1` model file at `path`: ResNet18 (random init from `seed`) and a
/// linear head of the 7 classes on its pooled features, for `size` x `size` inputs.
pub fn write_tiny_net_model(path: &Path, size: u32, seed: u64) -> Result<()> {
    let arch = Arch::ResNet18;
    let spec = HeadSpec {
        pool: Pool::Avg,
        hidden: vec![],
        batchnorm: false,
        dropout: 0.0,
        classes: classes::COUNT,
    };
    let mut sd = random_weights(arch, seed, None);
    let (cw, cb) = arch.classifier();
    sd.remove(cw);
    sd.remove(cb);
    sd.extend(spec.init(spec.in_features(arch, size as usize)?, seed + 1)?);
    // Non-trivial BN statistics and biases (init gives mean 0, var 1, beta 0, bias 0).
    let mut rng = Rng::new(seed + 2);
    for (k, v) in sd.iter_mut() {
        if k.starts_with("head.") && !k.ends_with(".weight") || k.ends_with("bn.weight") {
            let pos = k.ends_with("running_var") || k.ends_with("bn.weight");
            for x in v.data_mut() {
                let r = rng.normal() as f32 * 0.3;
                *x = if pos { 1.0 + r.abs() } else { r };
            }
        }
    }
    let b = ReferenceBackend;
    let net = Net::from_graph(&b, Graph::with_head(arch, &spec), &sd)?;
    let mut cfg = TrainConfig::new("data".into(), "run".into());
    cfg.head = vec![];
    cfg.fine.image_size = size;
    let origin = (
        "random-init".to_string(),
        format!("random-init-resnet18-seed{seed}"),
    );
    save_net_model(&b, path, &net, &spec, &cfg, &origin)
}
