//! Scoring a prediction CSV against ISIC ground truth with the official metrics (SPEC section
//! 5; definitions in [`crate::metrics`]), with notes on where the official scorer would differ.

use std::path::PathBuf;

use crate::classes;
use crate::error::Result;
use crate::metrics::{Report, align, evaluate_for, read_ground_truth_for, read_predictions_for};

/// What to score.
#[derive(Clone, Debug)]
pub struct EvalConfig {
    /// Ground-truth CSV: image,MEL,...,VASC (one-hot; or ISIC 2019's MEL,...,SCC,UNK),
    /// optionally score_weight and validation_weight columns.
    pub truth: PathBuf,
    /// Prediction CSV: image,MEL,...,VASC with probabilities in [0, 1].
    pub pred: PathBuf,
    /// Also write the report's JSON here (atomically).
    pub out: Option<PathBuf>,
}

/// The report and the notes about it.
pub struct Evaluation {
    pub report: Report,
    /// Things the official scorer would do differently.
    pub notes: Vec<String>,
}

/// Reads both files, scores them (bmca with the score and the validation weights) and writes
/// the JSON to `cfg.out` when given.
pub fn evaluate_files(cfg: &EvalConfig) -> Result<Evaluation> {
    evaluate_files_for(cfg, None)
}

/// [`evaluate_files`] with the ground truth's class columns required to be exactly `classes`
/// (`eval --classes`, for a list other than ISIC 2018's and ISIC 2019's); the classes are
/// otherwise taken from the truth file (see [`crate::metrics`]).
pub fn evaluate_files_for(cfg: &EvalConfig, classes: Option<&[String]>) -> Result<Evaluation> {
    let gt = read_ground_truth_for(&cfg.truth, classes)?;
    let pred = read_predictions_for(&cfg.pred, &gt.classes)?;
    let a = align(&gt, &pred)?;
    let mut report: Report = evaluate_for(&a.classes, &a.labels, &a.probs, Some(&a.score_weight))?;
    report.validation_bmca = Some(
        evaluate_for(&a.classes, &a.labels, &a.probs, Some(&a.validation_weight))
            .map_or(f64::NAN, |r| r.bmca),
    );

    // Things the official scorer would do differently (see crate::metrics docs).
    let mut notes = Vec::new();
    if gt.scorer_misaligns_weights() {
        notes.push(format!(
            "{} is not sorted by image id and its weights differ between rows: the official \
             scorer would pair weights with the wrong rows (its numbers would differ); \
             skinengine keeps each weight with its row",
            cfg.truth.display()
        ));
    }
    let absent: Vec<&str> = (0..a.classes.len())
        .filter(|&c| {
            !a.labels
                .iter()
                .zip(&a.score_weight)
                .any(|(&l, &w)| l == c && w > 0.0)
        })
        .map(|c| a.classes[c].as_str())
        .collect();
    if !absent.is_empty() {
        notes.push(format!(
            "no image of class(es) {} in the ground truth: their AUC/AP are undefined (null) and \
             bmca is the mean over the other classes; the official scorer 5.6.0 fails on such a \
             file",
            absent.join(",")
        ));
        if absent.contains(&classes::UNK) {
            notes.push(format!(
                "{} has no {} image (as ISIC 2019's training ground truth): to score a model \
                 trained on it, use the val_truth.csv/val_pred.csv that train writes (its 8 \
                 trained classes) or the official test ground truth",
                cfg.truth.display(),
                classes::UNK
            ));
        }
    }
    if let Some(out) = &cfg.out {
        crate::io::atomic::write_atomic(out, report.to_json_string().as_bytes())?;
    }
    Ok(Evaluation { report, notes })
}
