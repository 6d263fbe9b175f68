//! `skinengine merge`: shard CSVs of `infer --shard K/N` -> the one CSV a single run writes;
//! the work is [`crate::pipeline::shard::merge`].

use crate::error::Result;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct MergeArgs {
    /// The merged prediction CSV.
    #[arg(long)]
    pub out: PathBuf,
    /// Every shard's CSV (each with its .shard.json beside it).
    #[arg(required = true, num_args = 1..)]
    pub shards: Vec<PathBuf>,
}

pub fn run(args: &MergeArgs) -> Result<()> {
    let n = crate::pipeline::shard::merge(&args.out, &args.shards)?;
    println!(
        "{n} images from {} shards -> {}",
        args.shards.len(),
        args.out.display()
    );
    Ok(())
}
