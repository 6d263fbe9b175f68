//! `skinengine eval`: score a prediction CSV against ISIC ground truth with the official
//! metrics (SPEC section 5; definitions in [`crate::metrics`]).

use crate::classes;
use crate::error::Result;
use crate::metrics::{Report, align, evaluate, read_ground_truth, read_predictions};
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
    let gt = read_ground_truth(&args.truth)?;
    let pred = read_predictions(&args.pred)?;
    let a = align(&gt, &pred)?;
    let mut report: Report = evaluate(&a.labels, &a.probs, Some(&a.score_weight))?;
    report.validation_bmca = Some(
        evaluate(&a.labels, &a.probs, Some(&a.validation_weight)).map_or(f64::NAN, |r| r.bmca),
    );

    // Things the official scorer would do differently (see crate::metrics docs).
    let mut notes = Vec::new();
    if gt.scorer_misaligns_weights() {
        notes.push(format!(
            "{} is not sorted by image id and its weights differ between rows: the official \
             scorer would pair weights with the wrong rows (its numbers would differ); \
             skinengine keeps each weight with its row",
            args.truth.display()
        ));
    }
    let absent: Vec<&str> = (0..classes::COUNT)
        .filter(|&c| {
            !a.labels
                .iter()
                .zip(&a.score_weight)
                .any(|(&l, &w)| l == c && w > 0.0)
        })
        .map(|c| classes::CODES[c])
        .collect();
    if !absent.is_empty() {
        notes.push(format!(
            "no image of class(es) {} in the ground truth: their AUC/AP are undefined (null) and \
             bmca is the mean over the other classes; the official scorer 5.6.0 fails on such a \
             file",
            absent.join(",")
        ));
    }

    let json = report.to_json_string();
    if let Some(out) = &args.out {
        crate::io::atomic::write_atomic(out, json.as_bytes())?;
    }
    if args.json {
        print!("{json}");
    } else {
        println!(
            "truth {}  predictions {}",
            args.truth.display(),
            args.pred.display()
        );
        print!("{}", report.to_table());
    }
    for n in notes {
        eprintln!("note: {n}");
    }
    Ok(())
}
