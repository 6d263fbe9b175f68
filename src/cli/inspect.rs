//! `skinengine inspect`: arguments -> [`crate::inspect`]; prints its report.

use crate::error::{Result, file_err};
use crate::inspect::{InspectConfig, inspect};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// Data folder (HAM10000 or ISIC 2018 Task 3 layout, or a plain image folder).
    #[arg(long)]
    pub data: PathBuf,
    /// Exit non-zero when any problem is found.
    #[arg(long)]
    pub strict: bool,
    /// Skip decoding every image (only the files and CSVs are checked).
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
