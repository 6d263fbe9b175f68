//! ISIC 2018 Task 3 and ISIC 2019 Task 1 metrics, computed exactly as the official scorer
//! `isic-challenge-scoring` 5.6.0 computes them (SPEC section 5), plus the seed's "MCA"
//! (`mean_precision`), plain accuracy and the confusion matrix; reading the ground-truth and
//! prediction CSVs the way the scorer reads them, and writing prediction CSVs it accepts.
//!
//! The scorer has no fixed class list: its categories are the ground truth's columns other
//! than `image` and the weights, in file order, and a prediction CSV must have exactly those
//! columns. Here too: the classes are the ground truth's (ISIC 2018's 7 keep ISIC order, as
//! before), and ISIC 2019's `UNK` is a class like any other when the truth has the column. A
//! 2019 *training* ground truth has no UNK image, so UNK's AUC is undefined there (see below:
//! the scorer crashes on such a file, skinengine reports null and notes it).
//!
//! # How the scorer defines each metric (read from its source, `isic_challenge_scoring/`)
//!
//! Rows are sorted by image id; every sum below is weighted by the truth file's `score_weight`
//! column (1.0 when absent; `ISIC_0035068` is always 0 — the test-set row without an image).
//!
//! * **Labels.** The truth label and the predicted label of a row are the argmax of the row. A
//!   row whose maximum is shared by two or more columns (exact `f64` equality) is labelled
//!   "undecided": it counts as wrong for its true class and as a prediction of no class.
//! * **`bmca`** (balanced multiclass accuracy, the ranking metric): for each class, the weight
//!   of rows of that class predicted as that class divided by the weight of rows of that class,
//!   then the mean over classes. A class without positive rows gives 0/0 = NaN, which the mean
//!   skips (pandas `mean`), so it is the mean over the classes present. (The scorer itself then
//!   crashes elsewhere, see below; here the value is still computed.)
//! * **Per class at threshold 0.5**, one class at a time and *independently of the argmax*:
//!   truth positive = truth value > 0.5, predicted positive = that column's value > 0.5 (so 0.5
//!   is negative, and a row can be positive for several classes or none). From the weighted
//!   TP, TN, FP, FN: accuracy (TP+TN)/all, sensitivity TP/(TP+FN), specificity TN/(TN+FP),
//!   F1 = dice 2TP/(2TP+FP+FN), PPV TP/(TP+FP), NPV TN/(TN+FN); a ratio whose denominator is
//!   0 counts as 1.0.
//! * **AUC**: `sklearn.metrics.roc_auc_score` with the weights: rows of weight 0 dropped, ROC
//!   points at every distinct score (ties form one point), collinear points dropped, trapezoids
//!   summed. NaN when the class has no positive or no negative row.
//! * **`auc_sens_80`**: the scorer's partial AUC: the area under the ROC curve (not
//!   normalised, at most 0.2) over the part where sensitivity is at least 0.8, the curve being
//!   cut at sensitivity exactly 0.8 by linear interpolation.
//! * **AP**: `sklearn.metrics.average_precision_score`: the uninterpolated step sum
//!   `sum_n (R_n - R_{n-1}) P_n` over distinct score thresholds (no 11-point or monotone
//!   interpolation), clamped at 0.
//! * **Macro averages**: the mean of each per-class metric over the classes, skipping NaN.
//! * **Validation score**: `bmca` with the truth file's `validation_weight` column instead.
//!
//! Floating-point operations are done in the scorer's order, including NumPy's pairwise
//! summation, so results agree with it to the last bit on the committed fixtures
//! (`tests/fixtures/scorer/`, written by `tools/make_scorer_fixture.py`).
//!
//! # Metrics the scorer does not report
//!
//! * **`accuracy`**: weight of rows whose predicted (argmax) label equals the true label,
//!   divided by the total weight; tied rows count as wrong.
//! * **`mean_precision`** (the seed's "MCA"): for every class that is the predicted label of at
//!   least one row of non-zero weight, precision = weight of correct predictions of the class /
//!   weight of all predictions of the class; then the plain mean over those classes. Classes
//!   never predicted are left out (not counted as 0); tied rows are predictions of no class.
//!   NaN when no row has a decided prediction.
//! * **Confusion matrix**: `confusion[t][p]` = number of rows (of non-zero weight) of true class
//!   `t` whose predicted label is `p`. Tied rows appear in no column; they are counted in
//!   `undecided[t]`. The counts are not weighted.
//!
//! # Where this differs from the scorer on purpose
//!
//! * The scorer pairs its weight column with the rows *in file order* while the rows themselves
//!   are sorted by image id: on a truth file not sorted by image, weights (including the zero of
//!   `ISIC_0035068`) land on the wrong rows. Here every weight stays with its own row. The two
//!   agree whenever the truth file is sorted by image id, as the official files are, or all
//!   weights are equal; [`GroundTruth::scorer_misaligns_weights`] says when they would not.
//! * The scorer crashes (`ValueError: array of sample points is empty`) when a class has no
//!   positive row; here that class's AUC and `auc_sens_80` are NaN, its AP is 0 (what sklearn
//!   gives) and everything else is computed as the scorer's formulas define it.
//! * The truth file must be one-hot (the scorer would accept other values and misbehave).
//! * Duplicate rows in the truth file are an error (the scorer does not check).
//!
//! # Layout
//!
//! * `csv`: reading ground-truth and prediction CSVs, matching their rows; `csv_write`: writing
//!   predictions;
//! * `scorer`: the metrics themselves; `curve`: the NumPy / scikit-learn routines they use;
//! * `report`: a [`Report`] as JSON and as a table.

mod csv;
mod csv_write;
mod curve;
mod report;
mod scorer;

pub use csv::{
    Aligned, GroundTruth, Predictions, ZERO_WEIGHT_IMAGE, align, read_ground_truth,
    read_ground_truth_for, read_predictions, read_predictions_for,
};
pub use csv_write::{format_probability, write_predictions_csv, write_predictions_csv_for};
pub use scorer::{
    ClassMetrics, Report, argmax_or_tie, evaluate, evaluate_for, evaluate_probs, evaluate_probs_for,
};

use crate::error::Result;
use std::path::Path;

/// Reads both files and scores them: the whole of `skinengine eval`. Fills
/// [`Report::validation_bmca`].
pub fn score_files(truth: &Path, pred: &Path) -> Result<Report> {
    let gt = read_ground_truth(truth)?;
    let p = read_predictions_for(pred, &gt.classes)?;
    let a = align(&gt, &p)?;
    let mut report = evaluate_for(&a.classes, &a.labels, &a.probs, Some(&a.score_weight))?;
    report.validation_bmca = Some(scorer::bmca_only(&a.labels, &a.probs, &a.validation_weight));
    Ok(report)
}
