//! `skinengine eval`: arguments -> [`EvalConfig`]; the work is [`crate::eval`]. Prints the
//! report as a table or JSON, and the notes.

use crate::error::Result;
use crate::eval::{EvalConfig, evaluate_files};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// Ground-truth CSV: image,MEL,NV,BCC,AKIEC,BKL,DF,VASC (one-hot), optionally
    /// score_weight and validation_weight columns.
    #[arg(long)]
    pub truth: PathBuf,
    /// Prediction CSV: image,MEL,...,VASC with probabilities in [0, 1] (an ISIC submission).
    #[arg(long)]
    pub pred: PathBuf,
    /// Print JSON (bmca, mean_precision, accuracy, per_class, confusion, ...) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON to this file (atomically).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: &EvalArgs) -> Result<()> {
    let e = evaluate_files(&EvalConfig {
        truth: args.truth.clone(),
        pred: args.pred.clone(),
        out: args.out.clone(),
    })?;
    if args.json {
        print!("{}", e.report.to_json_string());
    } else {
        println!(
            "truth {}  predictions {}",
            args.truth.display(),
            args.pred.display()
        );
        print!("{}", e.report.to_table());
    }
    for n in e.notes {
        eprintln!("note: {n}");
    }
    Ok(())
}
