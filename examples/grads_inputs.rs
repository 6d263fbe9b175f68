//! Writes the gradient fixtures' inputs for tools/torch_grads.py:
//!   cargo run --release --example grads_inputs -- ARCH OUT_DIR
//! -> OUT_DIR/weights.safetensors (torchvision names, with a classifier) and
//!    OUT_DIR/inputs.safetensors (`images` [N,3,H,W], `labels` [N] as f32): 2x3x64x80 for the
//!    ResNets, 2x3x224x224 for VGG19 (its classifier needs a 7x7 map).

use skinengine::Tensor;
use skinengine::io::safetensors::write;
use skinengine::model::arch::Arch;
use skinengine::model::parity::grads;
use std::collections::HashMap;
use std::path::PathBuf;

fn main() -> skinengine::Result<()> {
    let mut args = std::env::args().skip(1);
    let arch = args.next().unwrap_or_else(|| "resnet50".into());
    let arch = Arch::parse(&arch).unwrap_or_else(|| panic!("unknown architecture {arch}"));
    let dir = PathBuf::from(args.next().unwrap_or_else(|| ".".into()));
    let sd = grads::weights(arch);
    let named: Vec<(&str, &Tensor)> = sd.iter().map(|(k, v)| (k.as_str(), v)).collect();
    write(&dir.join("weights.safetensors"), &named, &HashMap::new())?;
    let labels = Tensor::new(
        &[grads::LABELS.len()],
        grads::LABELS.iter().map(|&l| l as f32).collect(),
    )?;
    write(
        &dir.join("inputs.safetensors"),
        &[("images", &grads::images_for(arch)), ("labels", &labels)],
        &HashMap::new(),
    )?;
    eprintln!("wrote {arch} weights and inputs to {}", dir.display());
    Ok(())
}
