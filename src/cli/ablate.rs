//! `skinengine ablate`: arguments -> [`AblateConfig`]; the work is [`crate::ablate`].

use super::{DeviceChoice, PrecisionChoice};
use crate::ablate::{AblateConfig, ablate};
use crate::data::image::INPUT_SIZE;
use crate::error::Result;
use crate::model::arch::Arch;
use crate::train::Protocol;
use crate::train::finetune::FineTune;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct AblateArgs {
    #[arg(long)]
    pub data: PathBuf,
    /// Backbone weights; without them a deterministic random-init backbone is used (and said).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Output folder: one run folder per configuration, ablation.md, ablation.json, cache/.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value_t = Protocol::Honest)]
    pub protocol: Protocol,
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    #[arg(long, default_value_t = 0.1)]
    pub val_fraction: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Add two rows trained through the backbone: the last configuration fine-tuned from this
    /// stage with per-epoch augmentation, and the seed's code as it ran (--preset seed).
    #[arg(long, value_enum)]
    pub fine_tune: Option<FineTune>,
    /// Backbone architecture (default: what --weights holds; resnet50 without weights).
    #[arg(long, value_enum)]
    pub backbone: Option<Arch>,
    /// Input size of the fine-tuned rows.
    #[arg(long, default_value_t = INPUT_SIZE)]
    pub image_size: u32,
    #[arg(long, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Arithmetic of convolutions and matrix products on CUDA: auto = PyTorch's default (TF32
    /// convolutions, FP32 matmuls on sm_80+; FP32 elsewhere); tf32/bf16/fp16 need CUDA sm_80+.
    #[arg(long, value_enum, default_value_t = PrecisionChoice::Auto)]
    pub precision: PrecisionChoice,
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

pub fn run(args: &AblateArgs) -> Result<()> {
    super::set_threads(args.threads);
    let cfg = AblateConfig {
        data: args.data.clone(),
        weights: args.weights.clone(),
        out: args.out.clone(),
        protocol: args.protocol,
        epochs: args.epochs,
        val_fraction: args.val_fraction,
        seed: args.seed,
        fine_tune: args.fine_tune,
        backbone: args.backbone,
        image_size: args.image_size,
    };
    let a = crate::with_backend!(args.device.resolve_at(args.precision)?, |b| ablate(
        b, &cfg
    )?);
    println!("{}", a.table);
    Ok(())
}
