//! `skinengine convert`: arguments -> [`ConvertConfig`]; the work is [`crate::convert`].
//! Prints the report on stdout and what was skipped on stderr.

use crate::convert::{ConvertConfig, convert};
use crate::error::Result;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct ConvertArgs {
    /// PyTorch checkpoint written by torch.save (PyTorch >= 1.6 zip format), e.g. torchvision's
    /// resnet50-0676ba61.pth: a state dict, or one under `state_dict` / `model`. Its pickle is
    /// read with an allow-list, never executed.
    #[arg(long)]
    pub from: PathBuf,
    /// Safetensors file to write (f32 tensors, same names; default: FROM with the extension
    /// .safetensors).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: &ConvertArgs) -> Result<()> {
    let r = convert(&ConvertConfig {
        from: args.from.clone(),
        out: args
            .out
            .clone()
            .unwrap_or_else(|| args.from.with_extension("safetensors")),
    })?;
    for n in &r.notes {
        eprintln!("note: {n}");
    }
    print!("{}", r.report);
    Ok(())
}
