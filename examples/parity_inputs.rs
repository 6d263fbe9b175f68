//! Writes the parity fixture's inputs for tools/torch_parity.py:
//!   cargo run --release --example parity_inputs -- OUT_DIR
//! -> OUT_DIR/weights.safetensors (torchvision names) and OUT_DIR/inputs.safetensors (`images`).

use skinengine::io::safetensors::write;
use skinengine::model::parity;
use std::collections::HashMap;
use std::path::PathBuf;

fn main() -> skinengine::Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| ".".into()));
    let sd = parity::weights();
    let named: Vec<(&str, &skinengine::Tensor)> = sd.iter().map(|(k, v)| (k.as_str(), v)).collect();
    write(&dir.join("weights.safetensors"), &named, &HashMap::new())?;
    let images = parity::images();
    write(
        &dir.join("inputs.safetensors"),
        &[("images", &images)],
        &HashMap::new(),
    )?;
    eprintln!(
        "wrote {} and {}",
        dir.join("weights.safetensors").display(),
        dir.join("inputs.safetensors").display()
    );
    Ok(())
}
