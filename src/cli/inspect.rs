//! `skinengine inspect`: arguments -> [`crate::inspect`]; prints its report.

use crate::error::{Result, file_err};
use crate::inspect::{InspectConfig, inspect};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// Data folder (HAM10000 or ISIC 2018 Task 3 layout, or a plain image folder).
    #[arg(long)]
    pub data: PathBuf,
    /// Exit non-zero when any problem is found (a bad row, a missing, truncated or corrupt
    /// image, ...).
    #[arg(long)]
    pub strict: bool,
    /// Do not decode the images: only check each file whole (truncated, corrupt, not an image,
    /// too large) and the CSVs.
    #[arg(long)]
    pub no_decode: bool,
}

pub fn run(args: &InspectArgs) -> Result<()> {
    let r = inspect(&InspectConfig {
        data: args.data.clone(),
        decode: !args.no_decode,
    })?;
    print!("{}", r.report);
    if args.strict && r.problems > 0 {
        return Err(file_err(
            &args.data,
            format!("{} problems found (--strict)", r.problems),
        ));
    }
    Ok(())
}
