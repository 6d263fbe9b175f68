//! `skinengine eval`: arguments -> [`EvalConfig`]; the work is [`crate::eval`]. Prints the
//! report as a table or JSON, and the notes.

use crate::error::Result;
use crate::eval::{EvalConfig, evaluate_files_for};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// Ground-truth CSV: image,MEL,NV,BCC,AKIEC,BKL,DF,VASC (one-hot; ISIC 2019:
    /// image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK), optionally score_weight and validation_weight
    /// columns. The classes scored are its columns, as the official scorer takes them.
    #[arg(long)]
    pub truth: PathBuf,
    /// Prediction CSV: image + the ground truth's class columns (any order) with probabilities
    /// in [0, 1] (an ISIC submission).
    #[arg(long)]
    pub pred: PathBuf,
    /// Score another class list: the ground truth's class columns must be exactly these
    /// (comma-separated codes, e.g. A,B,C). Without it they must be ISIC 2018's or ISIC 2019's.
    #[arg(long, value_delimiter = ',')]
    pub classes: Option<Vec<String>>,
    /// Print JSON (bmca, mean_precision, accuracy, per_class, confusion, ...) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON to this file (atomically).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: &EvalArgs) -> Result<()> {
    if let Some(c) = &args.classes {
        crate::classes::ClassList::from_codes(c)
            .map_err(|e| crate::error::invalid("eval", format!("--classes: {e}")))?;
    }
    let cfg = EvalConfig {
        truth: args.truth.clone(),
        pred: args.pred.clone(),
        out: args.out.clone(),
    };
    let e = evaluate_files_for(&cfg, args.classes.as_deref())?;
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
