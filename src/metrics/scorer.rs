//! The maths of the official scorer (`isic-challenge-scoring` 5.6.0): argmax labels with ties,
//! the weighted confusion, `bmca`, per-class metrics at 0.5 and the macro averages, plus the
//! seed's `mean_precision`. The definitions are in the `metrics` module docs; ROC and
//! precision-recall curves (and NumPy's summation) are in `curve`.

use super::curve::{Curve, numpy_sum};
use crate::classes;
use crate::error::{Result, invalid};

/// The scorer's per-class sensitivity floor for `auc_sens_80`.
const SENS_THRESHOLD: f64 = 0.80;

/// Metrics of one class (one-vs-rest). Thresholded ones use `p > 0.5` on that class's column;
/// see the `metrics` module docs. NaN where undefined (AUC of a class without positives, ...).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ClassMetrics {
    pub accuracy: f64,
    pub sensitivity: f64,
    pub specificity: f64,
    pub ppv: f64,
    pub npv: f64,
    /// F1 = dice.
    pub f1: f64,
    pub auc: f64,
    /// The scorer's partial AUC above 80% sensitivity (not normalised; at most 0.2).
    pub auc_sens_80: f64,
    pub ap: f64,
}

impl ClassMetrics {
    /// (JSON key, value) pairs in display order.
    pub fn fields(&self) -> [(&'static str, f64); 9] {
        [
            ("sensitivity", self.sensitivity),
            ("specificity", self.specificity),
            ("ppv", self.ppv),
            ("npv", self.npv),
            ("f1", self.f1),
            ("accuracy", self.accuracy),
            ("auc", self.auc),
            ("auc_sens_80", self.auc_sens_80),
            ("ap", self.ap),
        ]
    }
}

/// Everything `skinengine eval` reports. See the `metrics` module docs for each definition.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Rows with non-zero weight.
    pub n: usize,
    /// Balanced multiclass accuracy (mean per-class recall of argmax labels): the official metric.
    pub bmca: f64,
    /// The seed's "MCA": mean per-class precision of argmax labels over predicted classes.
    pub mean_precision: f64,
    /// Fraction of rows whose argmax label is right (tied rows wrong).
    pub accuracy: f64,
    /// `bmca` with the truth file's `validation_weight`s (the scorer's "validation" score);
    /// only from [`super::score_files`].
    pub validation_bmca: Option<f64>,
    /// Class codes, in the order of every per-class field (ISIC 2018's by default; a ground
    /// truth's own list in [`super::score_files`]).
    pub classes: Vec<String>,
    pub per_class: Vec<ClassMetrics>,
    /// Mean of each per-class metric over the classes, NaN skipped (the scorer's macro average).
    pub macro_average: ClassMetrics,
    /// `confusion[truth][predicted]`, rows of non-zero weight, unweighted counts; tied rows are in
    /// no column but in `undecided`.
    pub confusion: Vec<Vec<usize>>,
    /// Rows per true class whose maximum was tied (counted wrong).
    pub undecided: Vec<usize>,
}

/// The argmax of a row, or None when the maximum is shared (exact equality) — the scorer's
/// "undecided".
pub fn argmax_or_tie(row: &[f64]) -> Option<usize> {
    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut found = None;
    for (c, &v) in row.iter().enumerate() {
        if v == max {
            if found.is_some() {
                return None;
            }
            found = Some(c);
        }
    }
    found
}

/// pandas `Series.mean()`: NaN skipped, NaN when nothing is left.
fn nan_mean(v: &[f64]) -> f64 {
    let kept: Vec<f64> = v
        .iter()
        .map(|&x| if x.is_nan() { 0.0 } else { x })
        .collect();
    let count = v.iter().filter(|x| !x.is_nan()).count();
    numpy_sum(&kept) / count as f64
}

/// Checks inputs of [`evaluate`] for `k` classes; returns the weights (all 1.0 when None).
fn check_inputs<R: AsRef<[f64]>>(
    k: usize,
    labels: &[usize],
    probs: &[R],
    weights: Option<&[f64]>,
) -> Result<Vec<f64>> {
    const OP: &str = "metrics";
    if labels.len() != probs.len() {
        return Err(invalid(
            OP,
            format!(
                "{} labels but {} probability rows",
                labels.len(),
                probs.len()
            ),
        ));
    }
    if let Some((i, &l)) = labels.iter().enumerate().find(|(_, l)| **l >= k) {
        return Err(invalid(
            OP,
            format!("row {i}: label {l} is not a class (0..{k})"),
        ));
    }
    if let Some(i) = probs.iter().position(|r| r.as_ref().len() != k) {
        return Err(invalid(
            OP,
            format!(
                "row {i}: {} scores for {k} classes",
                probs[i].as_ref().len()
            ),
        ));
    }
    if let Some(i) = probs
        .iter()
        .position(|r| r.as_ref().iter().any(|v| !v.is_finite()))
    {
        return Err(invalid(
            OP,
            format!("row {i}: non-finite score {:?}", probs[i].as_ref()),
        ));
    }
    let w = match weights {
        Some(w) if w.len() != labels.len() => {
            return Err(invalid(
                OP,
                format!("{} weights for {} rows", w.len(), labels.len()),
            ));
        }
        Some(w) => w.to_vec(),
        None => vec![1.0; labels.len()],
    };
    if let Some(i) = w.iter().position(|x| !(x.is_finite() && *x >= 0.0)) {
        return Err(invalid(
            OP,
            format!("row {i}: weight {} is not finite and >= 0", w[i]),
        ));
    }
    if !w.iter().any(|&x| x > 0.0) {
        return Err(invalid(OP, "nothing to score: no row (of non-zero weight)"));
    }
    Ok(w)
}

/// Weighted confusion of argmax labels for `k` classes: `[truth][pred]`, pred `k` = undecided.
fn weighted_confusion(
    k: usize,
    labels: &[usize],
    pred: &[Option<usize>],
    w: &[f64],
) -> Vec<Vec<f64>> {
    let mut m = vec![vec![0.0; k + 1]; k];
    for ((&t, p), &wi) in labels.iter().zip(pred).zip(w) {
        if wi != 0.0 {
            m[t][p.unwrap_or(k)] += wi;
        }
    }
    m
}

fn bmca_from(m: &[Vec<f64>]) -> f64 {
    // tp / (weight of the class's rows); 0/0 = NaN is skipped by the mean.
    let ratios: Vec<f64> = (0..m.len())
        .map(|c| m[c][c] / m[c].iter().sum::<f64>())
        .collect();
    nan_mean(&ratios)
}

/// `bmca` alone, with weights `w` (NaN when no row has weight): the scorer's validation score.
pub(super) fn bmca_only<R: AsRef<[f64]>>(labels: &[usize], probs: &[R], w: &[f64]) -> f64 {
    let pred: Vec<Option<usize>> = probs.iter().map(|r| argmax_or_tie(r.as_ref())).collect();
    if !w.iter().any(|&x| x > 0.0) {
        return f64::NAN;
    }
    let k = probs.first().map_or(0, |r| r.as_ref().len());
    bmca_from(&weighted_confusion(k, labels, &pred, w))
}

/// All metrics from true labels (0..7), per-class scores (rows need not sum to 1) and optional
/// non-negative weights (None = all 1), for the 7 classes of ISIC 2018; [`evaluate_for`] takes
/// any class list. Rows are used in the order given; the scorer sorts by image id first, which
/// only matters for the last bits of sums of non-dyadic weights.
pub fn evaluate(
    labels: &[usize],
    probs: &[[f64; classes::COUNT]],
    weights: Option<&[f64]>,
) -> Result<Report> {
    evaluate_for(&classes::CODES, labels, probs, weights)
}

/// [`evaluate`] for the classes `codes` (the columns of `probs`, in order; labels index them).
pub fn evaluate_for<S: AsRef<str>, R: AsRef<[f64]>>(
    codes: &[S],
    labels: &[usize],
    probs: &[R],
    weights: Option<&[f64]>,
) -> Result<Report> {
    let k = codes.len();
    if k == 0 {
        return Err(invalid("metrics", "no classes"));
    }
    let w = check_inputs(k, labels, probs, weights)?;
    let probs: Vec<&[f64]> = probs.iter().map(AsRef::as_ref).collect();
    let pred: Vec<Option<usize>> = probs.iter().map(|r| argmax_or_tie(r)).collect();
    let m = weighted_confusion(k, labels, &pred, &w);

    let mut confusion = vec![vec![0usize; k]; k];
    let mut undecided = vec![0usize; k];
    let mut n = 0;
    for ((&t, p), &wi) in labels.iter().zip(&pred).zip(&w) {
        if wi != 0.0 {
            n += 1;
            match p {
                Some(p) => confusion[t][*p] += 1,
                None => undecided[t] += 1,
            }
        }
    }

    let bmca = bmca_from(&m);
    let precisions: Vec<f64> = (0..k)
        .filter_map(|c| {
            let col: f64 = (0..k).map(|t| m[t][c]).sum();
            (col > 0.0).then(|| m[c][c] / col)
        })
        .collect();
    let mean_precision = if precisions.is_empty() {
        f64::NAN
    } else {
        numpy_sum(&precisions) / precisions.len() as f64
    };
    let correct: f64 = (0..k).map(|c| m[c][c]).sum();
    let accuracy = correct / numpy_sum(&w);

    let per_class: Vec<ClassMetrics> = (0..k)
        .map(|c| class_metrics(c, labels, &probs, &w))
        .collect();
    let macro_average = {
        let col =
            |f: fn(&ClassMetrics) -> f64| nan_mean(&per_class.iter().map(f).collect::<Vec<_>>());
        ClassMetrics {
            accuracy: col(|m| m.accuracy),
            sensitivity: col(|m| m.sensitivity),
            specificity: col(|m| m.specificity),
            ppv: col(|m| m.ppv),
            npv: col(|m| m.npv),
            f1: col(|m| m.f1),
            auc: col(|m| m.auc),
            auc_sens_80: col(|m| m.auc_sens_80),
            ap: col(|m| m.ap),
        }
    };
    Ok(Report {
        n,
        bmca,
        mean_precision,
        accuracy,
        validation_bmca: None,
        classes: codes.iter().map(|c| c.as_ref().to_string()).collect(),
        per_class,
        macro_average,
        confusion,
        undecided,
    })
}

/// [`evaluate`] for training code: `f32` probabilities, unit weights. Gives exactly the report
/// that scoring a CSV written by [`super::write_predictions_csv`] from the same values gives.
pub fn evaluate_probs(labels: &[usize], probs: &[[f32; classes::COUNT]]) -> Result<Report> {
    evaluate_probs_for(&classes::CODES, labels, probs)
}

/// [`evaluate_probs`] for the classes `codes`.
pub fn evaluate_probs_for<S: AsRef<str>, R: AsRef<[f32]>>(
    codes: &[S],
    labels: &[usize],
    probs: &[R],
) -> Result<Report> {
    let p: Vec<Vec<f64>> = probs
        .iter()
        .map(|r| r.as_ref().iter().map(|&v| f64::from(v)).collect())
        .collect();
    evaluate_for(codes, labels, &p, None)
}

/// A binary ratio, 1.0 when the denominator is 0 (the scorer's "freebie").
fn ratio_or_one(num: f64, den: f64) -> f64 {
    if den == 0.0 { 1.0 } else { num / den }
}

fn class_metrics(c: usize, labels: &[usize], probs: &[&[f64]], w: &[f64]) -> ClassMetrics {
    // Weighted binary confusion at 0.5, each cell an np.sum over all rows (in row order).
    let cell = |truth: bool, pred: bool| -> f64 {
        let v: Vec<f64> = labels
            .iter()
            .zip(probs)
            .zip(w)
            .map(|((&l, p), &wi)| {
                if (l == c) == truth && (p[c] > 0.5) == pred {
                    wi
                } else {
                    0.0
                }
            })
            .collect();
        numpy_sum(&v)
    };
    let (tp, tn, fp, fn_) = (
        cell(true, true),
        cell(false, false),
        cell(false, true),
        cell(true, false),
    );

    let y: Vec<bool> = labels.iter().map(|&l| l == c).collect();
    let score: Vec<f64> = probs.iter().map(|p| p[c]).collect();
    let curve = Curve::new(&y, &score, w);
    let both_classes = y.iter().any(|&t| t) && y.iter().any(|&t| !t);
    ClassMetrics {
        accuracy: (tp + tn) / (tp + tn + fp + fn_),
        sensitivity: ratio_or_one(tp, tp + fn_),
        specificity: ratio_or_one(tn, tn + fp),
        f1: if tp + fp + fn_ == 0.0 {
            1.0
        } else {
            (2.0 * tp) / ((2.0 * tp) + fp + fn_)
        },
        ppv: ratio_or_one(tp, tp + fp),
        npv: ratio_or_one(tn, tn + fn_),
        auc: if both_classes {
            curve.roc_auc()
        } else {
            f64::NAN
        },
        auc_sens_80: curve.auc_above_sensitivity(SENS_THRESHOLD),
        ap: curve.average_precision(),
    }
}
