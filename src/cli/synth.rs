//! `skinengine synth`: write a synthetic dermoscopy-like data set in the HAM10000, ISIC 2018
//! Task 3 or ISIC 2019 Task 1 layout (for demos, tests and benchmarks; see `data::synth`).

use crate::data::synth::{SynthConfig, SynthLayout, parse_size, write_synth};
use crate::error::Result;
use crate::model::arch::Arch;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct SynthArgs {
    /// Output folder (created; must be new or empty).
    #[arg(long)]
    pub out: PathBuf,
    /// Number of images.
    #[arg(long)]
    pub n: usize,
    /// Folder layout to write.
    #[arg(long, value_enum, default_value_t = SynthLayout::Ham10000)]
    pub layout: SynthLayout,
    /// Random seed: the same seed writes the same files, byte for byte.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Image size, WIDTHxHEIGHT.
    #[arg(long, default_value = "600x450")]
    pub size: String,
    /// Worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Also write the deterministic random-init weights of --backbone (torchvision names, the
    /// ones `train` and `demo` use when given no --weights) to this safetensors file, so that
    /// `embed`, `grads` and anything else that takes --weights runs offline. Their features are
    /// not ImageNet features: for checks and timings only.
    #[arg(long)]
    pub weights_out: Option<PathBuf>,
    /// The architecture of --weights-out.
    #[arg(long, value_enum, default_value_t = Arch::ResNet50, requires = "weights_out")]
    pub backbone: Arch,
}

pub fn run(args: &SynthArgs) -> Result<()> {
    super::set_threads(args.threads);
    let (width, height) = parse_size(&args.size)?;
    let cfg = SynthConfig {
        n: args.n,
        layout: args.layout,
        seed: args.seed,
        width,
        height,
        progress: true,
        ..SynthConfig::default()
    };
    let s = write_synth(&args.out, &cfg)?;
    eprintln!(
        "wrote {} images of {} lesions ({} layout, {width}x{height}, seed {}) to {} in {:.1} s ({:.1} images/s)",
        s.images,
        s.lesions,
        args.layout.name(),
        args.seed,
        args.out.display(),
        s.seconds,
        s.images as f64 / s.seconds.max(1e-9)
    );
    let list = args.layout.classes();
    let per_class: Vec<String> = (0..list.len())
        .map(|c| {
            format!(
                "{} {} ({} lesions)",
                list.code(c),
                s.class_images[c],
                s.class_lesions[c]
            )
        })
        .collect();
    eprintln!("  {}", per_class.join(", "));
    if let Some(path) = &args.weights_out {
        write_random_weights(path, args.backbone)?;
        eprintln!(
            "wrote random-init {} weights (seed 0, no classifier) to {}",
            args.backbone.pretty(),
            path.display()
        );
    }
    Ok(())
}

/// `arch`'s random-init weights (seed 0, as a run without --weights has them) as safetensors.
fn write_random_weights(path: &Path, arch: Arch) -> Result<()> {
    let sd = crate::model::init::random_weights(arch, 0, None);
    let tensors: Vec<(&str, &crate::Tensor)> = sd.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let meta = HashMap::from([(
        "skinengine".to_string(),
        format!("random-init {} seed 0", arch.name()),
    )]);
    crate::io::safetensors::write(path, &tensors, &meta)
}
