//! `skinengine demo`: arguments -> [`DemoConfig`]; the work is [`crate::demo`].

use super::{DeviceChoice, PrecisionChoice};
use crate::data::image::INPUT_SIZE;
use crate::demo::{DemoConfig, demo};
use crate::error::Result;
use crate::model::arch::Arch;
use crate::train::finetune::{FineTune, FineTuneConfig};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Output folder: data/ (synthetic HAM10000 layout), run/ (training), pred.csv.
    #[arg(long, default_value = "demo")]
    pub out: PathBuf,
    /// Synthetic images to generate.
    #[arg(long, default_value_t = 300)]
    pub n: usize,
    /// ResNet50 weights; without them a deterministic random-init backbone is used (and said).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Train through the backbone from this stage (head: the head on cached features).
    #[arg(long, value_enum, default_value_t = FineTune::Head)]
    pub fine_tune: FineTune,
    /// Backbone architecture (default: what --weights holds; resnet50 without weights).
    #[arg(long, value_enum)]
    pub backbone: Option<Arch>,
    /// Input size when fine-tuning (smaller is faster on a CPU).
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

pub fn run(args: &DemoArgs) -> Result<()> {
    super::set_threads(args.threads);
    let cfg = DemoConfig {
        out: args.out.clone(),
        n: args.n,
        weights: args.weights.clone(),
        epochs: args.epochs,
        seed: args.seed,
        fine: FineTuneConfig {
            depth: args.fine_tune,
            backbone: args.backbone,
            image_size: args.image_size,
            ..FineTuneConfig::default()
        },
    };
    let d = crate::with_backend!(args.device.resolve_at(args.precision)?, |b| demo(b, &cfg)?);
    let (rep, t) = (&d.report, &d.seconds);
    print!("{}", d.infer_summary);
    println!();
    println!(
        "demo: validation ({} images, split by lesion): bmca {:.4}, mean precision {:.4}, accuracy {:.4}",
        rep.n, rep.bmca, rep.mean_precision, rep.accuracy
    );
    if args.weights.is_none() {
        println!(
            "      (random-init backbone: features are random projections, not ImageNet features)"
        );
    }
    println!(
        "      times: synth {:.1} s, train {:.1} s, infer {:.1} s, total {:.1} s",
        t.synth, t.train, t.infer, t.total
    );
    println!("      report: {}", d.run_dir.join("report.md").display());
    Ok(())
}
