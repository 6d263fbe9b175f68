//! `skinengine embed`: arguments -> [`EmbedConfig`]; the work is [`crate::pipeline::embed`].

use super::DeviceChoice;
use crate::data::image::ResizeMode;
use crate::error::Result;
use crate::pipeline::batches::describe_skipped;
use crate::pipeline::embed::{EmbedConfig, EmbedOptions, embed, write_embedding};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct EmbedArgs {
    /// ResNet50 weights (safetensors, torchvision/timm names; f32, f16 or bf16).
    #[arg(long)]
    pub weights: PathBuf,
    /// Image files and/or folders (searched recursively for .jpg, .jpeg, .png).
    #[arg(long, num_args = 1.., required = true)]
    pub images: Vec<PathBuf>,
    /// Output safetensors file: `features` [N, 2048] (and `logits` [N, K] with --logits).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value_t = ResizeMode::Squash)]
    pub resize: ResizeMode,
    /// Images per forward pass.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Also write the fc outputs (the weights must contain fc.weight and fc.bias).
    #[arg(long)]
    pub logits: bool,
    /// Fail on the first unreadable image instead of skipping it.
    #[arg(long)]
    pub strict: bool,
    /// Worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

impl EmbedArgs {
    pub fn config(&self) -> EmbedConfig {
        EmbedConfig {
            weights: self.weights.clone(),
            images: self.images.clone(),
            options: EmbedOptions {
                resize: self.resize,
                batch: self.batch,
                logits: self.logits,
                strict: self.strict,
            },
        }
    }
}

pub fn run(args: &EmbedArgs) -> Result<()> {
    super::set_threads(args.threads);
    let resolved = args.device.resolve()?;
    let cfg = args.config();
    let e = crate::with_backend!(resolved, |b| embed(b, &cfg)?);
    write_embedding(&args.out, &e, &cfg)?;
    eprintln!(
        "embedded {} images in {:.1} s ({:.1} images/s) -> {}",
        e.ids.len(),
        e.seconds,
        e.ids.len() as f64 / e.seconds,
        args.out.display()
    );
    if !e.skipped.is_empty() {
        eprintln!("{}", describe_skipped(&e.skipped));
    }
    Ok(())
}
