//! `skinengine embed`: arguments -> [`EmbedConfig`]; the work is [`crate::pipeline::embed`].

use super::{DeviceChoice, PrecisionChoice};
use crate::data::image::{Decode, ResizeMode};
use crate::error::Result;
use crate::model::arch::Arch;
use crate::pipeline::batches::describe_skipped;
use crate::pipeline::embed::{EmbedConfig, EmbedOptions, EmbedSource, embed, write_embedding};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["weights", "model"])))]
pub struct EmbedArgs {
    /// Backbone weights (safetensors, torchvision/timm names; f32, f16 or bf16): ResNet18/34/
    /// 50/101/152 or VGG19, recognised from the tensors (or --backbone).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// A fine-tuned model file (RUN/model.safetensors of `train --fine-tune`): the features
    /// of its fine-tuned backbone at its image size and preprocessing.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The architecture of --weights (default: recognised from the tensors).
    #[arg(long, value_enum, conflicts_with = "model")]
    pub backbone: Option<Arch>,
    /// Image files and/or folders (searched recursively for .jpg, .jpeg, .png).
    #[arg(long, num_args = 1.., required = true)]
    pub images: Vec<PathBuf>,
    /// Output safetensors file: `features` [N, F] (F = 512 for ResNet18/34, 2048 for
    /// ResNet50/101/152, 4096 for VGG19, the head's input for --model) and `logits` [N, K]
    /// with --logits.
    #[arg(long)]
    pub out: PathBuf,
    /// How --weights inputs are resized to 224x224 (--model uses the model's own).
    #[arg(long, value_enum, conflicts_with = "model")]
    pub resize: Option<ResizeMode>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    #[arg(long, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Arithmetic of convolutions and matrix products on CUDA: auto = PyTorch's default (TF32
    /// convolutions, FP32 matmuls on sm_80+; FP32 elsewhere); tf32/bf16/fp16 need CUDA sm_80+.
    #[arg(long, value_enum, default_value_t = PrecisionChoice::Auto)]
    pub precision: PrecisionChoice,
    /// Also write the logits: the weights' classifier (fc.* or classifier.6.*, which they must
    /// contain), or a --model's class logits (its own class list, recorded as `classes`).
    #[arg(long)]
    pub logits: bool,
    /// Fail on the first unreadable image instead of skipping it.
    #[arg(long)]
    pub strict: bool,
    /// Decode JPEGs at the smallest DCT scale (1/2, 1/4, 1/8) that still leaves the image at
    /// least the input size, then resize. Default: full-size decoding, as Pillow does (on the
    /// CPUs measured it was also the faster one; README, "Scaled JPEG decoding").
    #[arg(long, conflicts_with = "full_decode")]
    pub scaled_decode: bool,
    /// Decode JPEGs at full size: the default, accepted so that scripts passing it keep working.
    #[arg(long, hide = true)]
    pub full_decode: bool,
    /// Worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

impl EmbedArgs {
    pub fn config(&self) -> EmbedConfig {
        let source = match (&self.weights, &self.model) {
            (_, Some(m)) => EmbedSource::Model(m.clone()),
            (Some(w), None) => EmbedSource::Weights {
                path: w.clone(),
                arch: self.backbone,
            },
            (None, None) => unreachable!("clap requires --weights or --model"),
        };
        EmbedConfig {
            source,
            images: self.images.clone(),
            options: EmbedOptions {
                resize: self.resize.unwrap_or_default(),
                batch: self.batch,
                logits: self.logits,
                strict: self.strict,
                decode: Decode::from_scaled_flag(self.scaled_decode),
            },
        }
    }
}

pub fn run(args: &EmbedArgs) -> Result<()> {
    super::set_threads(args.threads);
    let resolved = args.device.resolve_at(args.precision)?;
    let cfg = args.config();
    let e = crate::with_backend!(resolved, |b| embed(b, &cfg)?);
    write_embedding(&args.out, &e, &cfg)?;
    eprintln!(
        "embedded {} images ({} features [{}, {}]) in {:.1} s ({:.1} images/s) -> {}",
        e.ids.len(),
        e.arch.pretty(),
        e.features.shape()[0],
        e.features.shape()[1],
        e.seconds,
        e.ids.len() as f64 / e.seconds,
        args.out.display()
    );
    if !e.skipped.is_empty() {
        eprintln!("{}", describe_skipped(&e.skipped));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: EmbedArgs,
    }

    fn parse(extra: &[&str]) -> std::result::Result<EmbedArgs, String> {
        let mut v = vec!["embed", "--images", "a.jpg", "--out", "f.safetensors"];
        v.extend_from_slice(extra);
        Cli::try_parse_from(v)
            .map(|c| c.args)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn exactly_one_of_weights_and_model() {
        let a = parse(&["--weights", "w.safetensors", "--backbone", "resnet18"]).unwrap();
        assert_eq!(
            a.config().source,
            EmbedSource::Weights {
                path: "w.safetensors".into(),
                arch: Some(Arch::ResNet18)
            }
        );
        assert_eq!(a.config().options.resize, ResizeMode::Squash);
        let a = parse(&["--model", "run/model.safetensors", "--logits"]).unwrap();
        assert_eq!(
            a.config().source,
            EmbedSource::Model("run/model.safetensors".into())
        );
        assert!(a.config().options.logits);
        for bad in [
            &[][..],
            &["--weights", "w", "--model", "m"],
            &["--model", "m", "--backbone", "vgg19"],
            &["--model", "m", "--resize", "crop"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
