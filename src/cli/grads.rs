//! `skinengine grads`: arguments -> [`GradsConfig`]; the work is [`crate::grads`].

use super::{DeviceChoice, PrecisionChoice};
use crate::data::image::ResizeMode;
use crate::error::Result;
use crate::grads::{GradsConfig, grads, write};
use crate::model::arch::Arch;
use crate::model::net::BnMode;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct GradsArgs {
    /// Weights with their ImageNet classifier (safetensors, torchvision names).
    #[arg(long)]
    pub weights: PathBuf,
    /// Image files (decoded, resized to 224x224, ImageNet-normalised), or one .safetensors
    /// file holding `images` [N, 3, H, W] already normalised.
    #[arg(long, num_args = 1.., required = true)]
    pub images: Vec<PathBuf>,
    /// One class index (0..K-1 of the weights' classifier) per image, comma-separated.
    #[arg(long, value_delimiter = ',', num_args = 1.., required = true)]
    pub labels: Vec<usize>,
    /// Output safetensors: `loss`, `images`, `labels` and one gradient per parameter.
    #[arg(long)]
    pub out: PathBuf,
    /// Batch norm with batch statistics (train) or running statistics (eval).
    #[arg(long, value_enum, default_value_t = BnMode::Train)]
    pub bn: BnMode,
    /// The architecture of the weights (default: recognised from the tensors they hold).
    #[arg(long, value_enum)]
    pub backbone: Option<Arch>,
    #[arg(long, value_enum, default_value_t = ResizeMode::Squash)]
    pub resize: ResizeMode,
    #[arg(long, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Arithmetic of convolutions and matrix products on CUDA: auto = PyTorch's default (TF32
    /// convolutions, FP32 matmuls on sm_80+; FP32 elsewhere); tf32/bf16/fp16 need CUDA sm_80+.
    #[arg(long, value_enum, default_value_t = PrecisionChoice::Auto)]
    pub precision: PrecisionChoice,
    /// Worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

pub fn run(args: &GradsArgs) -> Result<()> {
    super::set_threads(args.threads);
    let resolved = args.device.resolve_at(args.precision)?;
    let cfg = GradsConfig {
        weights: args.weights.clone(),
        images: args.images.clone(),
        labels: args.labels.clone(),
        bn: args.bn,
        backbone: args.backbone,
        resize: args.resize,
    };
    let t = std::time::Instant::now();
    let (r, device) = crate::with_backend!(resolved, |b| (grads(b, &cfg)?, b.name()));
    write(&args.out, &r, &args.labels, args.bn, device)?;
    eprintln!(
        "{} bn={} on {device}: loss {:.6} over {} images; {} gradients in {:.1} s -> {}",
        r.arch,
        args.bn.name(),
        r.loss,
        args.labels.len(),
        r.grads.len(),
        t.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}
