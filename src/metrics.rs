//! ISIC 2018 Task 3 metrics, computed exactly as the official scorer `isic-challenge-scoring`
//! 5.6.0 computes them (SPEC section 5), plus the seed's "MCA" (`mean_precision`), plain
//! accuracy and the confusion matrix; reading the ground-truth and prediction CSVs the way the
//! scorer reads them, and writing prediction CSVs it accepts.
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
//! * **Macro averages**: the mean of each per-class metric over the 7 classes, skipping NaN.
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

use crate::CLASSES;
use crate::error::{Result, file_err, invalid};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Number of classes (ISIC 2018 Task 3).
pub const NUM_CLASSES: usize = 7;

/// The test-set row without an image; the scorer always gives it weight 0.
pub const ZERO_WEIGHT_IMAGE: &str = "ISIC_0035068";

/// The scorer's per-class sensitivity floor for `auc_sens_80`.
const SENS_THRESHOLD: f64 = 0.80;

// ---------------------------------------------------------------------------------------------
// Reading CSVs
// ---------------------------------------------------------------------------------------------

/// A ground-truth CSV (`image,MEL,NV,BCC,AKIEC,BKL,DF,VASC[,score_weight][,validation_weight]`,
/// one-hot), rows in file order.
#[derive(Clone, Debug)]
pub struct GroundTruth {
    pub path: PathBuf,
    pub ids: Vec<String>,
    pub labels: Vec<usize>,
    /// `score_weight` column, or 1.0; 0.0 for [`ZERO_WEIGHT_IMAGE`].
    pub score_weight: Vec<f64>,
    /// `validation_weight` column, or 1.0; 0.0 for [`ZERO_WEIGHT_IMAGE`].
    pub validation_weight: Vec<f64>,
    /// 1-based line number of each row in the file (the header is line 1).
    pub lines: Vec<u64>,
}

impl GroundTruth {
    /// True when the official scorer would attach weights to the wrong rows (see the module
    /// docs): the rows are not sorted by image id and the weights are not all equal.
    pub fn scorer_misaligns_weights(&self) -> bool {
        let sorted = self.ids.windows(2).all(|w| w[0] <= w[1]);
        let uniform = |w: &[f64]| w.windows(2).all(|p| p[0] == p[1]);
        if sorted {
            return false;
        }
        let equal_weights = uniform(&self.score_weight) && uniform(&self.validation_weight);
        !equal_weights
    }
}

/// A prediction CSV (`image,MEL,...,VASC`, any column order), rows in file order, columns in
/// ISIC order. Image ids lose a trailing `.jpg` (any case), as in the scorer.
#[derive(Clone, Debug)]
pub struct Predictions {
    pub path: PathBuf,
    pub ids: Vec<String>,
    pub probs: Vec<[f64; NUM_CLASSES]>,
    /// 1-based line number of each row in the file (the header is line 1).
    pub lines: Vec<u64>,
}

struct Csv {
    header: Vec<String>,
    rows: Vec<(u64, csv::StringRecord)>,
}

fn read_csv(path: &Path) -> Result<Csv> {
    let bytes =
        std::fs::read(path).map_err(|e| file_err(path, format!("cannot read file: {e}")))?;
    if std::str::from_utf8(&bytes).is_err() {
        return Err(file_err(
            path,
            "cannot read CSV: the file is not UTF-8 text",
        ));
    }
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(bytes.as_slice());
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| file_err(path, format!("cannot read CSV header: {e}")))?
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let h = if i == 0 {
                h.trim_start_matches('\u{feff}')
            } else {
                h
            };
            h.to_string()
        })
        .collect();
    if header.iter().all(|h| h.trim().is_empty()) {
        return Err(file_err(path, "empty CSV: no header line"));
    }
    let mut rows = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            file_err(path, format!("line {line}: malformed CSV: {e}"))
        })?;
        let line = rec.position().map_or(0, |p| p.line());
        if rec.iter().all(|f| f.trim().is_empty()) {
            continue; // blank line
        }
        rows.push((line, rec));
    }
    if rows.is_empty() {
        return Err(file_err(path, "no data rows (only a header)"));
    }
    Ok(Csv { header, rows })
}

impl Csv {
    /// Errors on the first row whose field count differs from the header's (checked after the
    /// header itself, so that a bad header is reported as such).
    fn check_widths(&self, path: &Path) -> Result<()> {
        let want = self.header.len();
        match self.rows.iter().find(|(_, r)| r.len() != want) {
            Some((line, r)) => Err(file_err(
                path,
                format!(
                    "line {line}: {} fields, but the header has {want} ({})",
                    r.len(),
                    self.header.join(",")
                ),
            )),
            None => Ok(()),
        }
    }
}

/// Column index of each class, by name; errors on missing, duplicate or unknown columns.
/// `allowed_extra` are further accepted column names, returned by index (None when absent).
fn class_columns(
    path: &Path,
    header: &[String],
    allowed_extra: &[&str],
) -> Result<([usize; NUM_CLASSES], Vec<Option<usize>>)> {
    let image = header.iter().position(|h| h == "image");
    if image != Some(0) {
        let what = if image.is_none() {
            "missing column 'image'".to_string()
        } else {
            "column 'image' must come first".to_string()
        };
        return Err(file_err(
            path,
            format!(
                "{what} (header is: {}; expected image,{})",
                header.join(","),
                CLASSES.join(",")
            ),
        ));
    }
    let mut seen = HashMap::new();
    for (i, h) in header.iter().enumerate() {
        if let Some(j) = seen.insert(h.as_str(), i) {
            return Err(file_err(
                path,
                format!("duplicate column '{h}' (columns {} and {})", j + 1, i + 1),
            ));
        }
    }
    let missing: Vec<&str> = CLASSES
        .iter()
        .copied()
        .filter(|c| !seen.contains_key(c))
        .collect();
    if !missing.is_empty() {
        return Err(file_err(
            path,
            format!(
                "missing column(s) {} (header is: {})",
                missing.join(","),
                header.join(",")
            ),
        ));
    }
    let extra: Vec<&str> = header[1..]
        .iter()
        .map(String::as_str)
        .filter(|h| !CLASSES.contains(h) && !allowed_extra.contains(h))
        .collect();
    if !extra.is_empty() {
        let allowed = if allowed_extra.is_empty() {
            String::new()
        } else {
            format!(" or {}", allowed_extra.join(", "))
        };
        return Err(file_err(
            path,
            format!(
                "unexpected column(s) {} (expected image, {}{allowed})",
                extra.join(","),
                CLASSES.join(",")
            ),
        ));
    }
    let cols = std::array::from_fn(|c| seen[CLASSES[c]]);
    let extras = allowed_extra.iter().map(|e| seen.get(e).copied()).collect();
    Ok((cols, extras))
}

/// A number as the scorer's pandas would take it; errors name the line, image and column.
fn parse_number(path: &Path, line: u64, id: &str, column: &str, s: &str) -> Result<f64> {
    let t = s.trim();
    let at = || format!("line {line} (image {id}), column {column}");
    if t.is_empty() {
        return Err(file_err(path, format!("{}: missing value", at())));
    }
    match t.parse::<f64>() {
        Ok(v) if v.is_nan() => Err(file_err(path, format!("{}: missing value ({t})", at()))),
        Ok(v) => Ok(v),
        Err(_) => Err(file_err(path, format!("{}: '{t}' is not a number", at()))),
    }
}

/// An integer literal as pandas infers it (a column of only these is read as int64, which the
/// scorer rejects).
fn is_integer_literal(s: &str) -> bool {
    let t = s.trim();
    let t = t.strip_prefix(['+', '-']).unwrap_or(t);
    !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())
}

fn duplicate_check<'a>(path: &Path, ids: impl Iterator<Item = (&'a str, u64)>) -> Result<()> {
    let mut first: HashMap<&str, u64> = HashMap::new();
    for (id, line) in ids {
        if let Some(l0) = first.insert(id, line) {
            return Err(file_err(
                path,
                format!("line {line}: duplicate image {id} (first on line {l0})"),
            ));
        }
    }
    Ok(())
}

fn image_id(path: &Path, line: u64, raw: &str) -> Result<String> {
    let id = raw.trim();
    if id.is_empty() {
        return Err(file_err(path, format!("line {line}: empty image id")));
    }
    Ok(id.to_string())
}

/// Reads an ISIC ground-truth CSV. Errors name the file and the line: missing/unknown
/// columns, values other than 0/1, rows that are not one-hot, duplicate images, bad weights.
pub fn read_ground_truth(path: &Path) -> Result<GroundTruth> {
    let csv = read_csv(path)?;
    let (cols, extras) = class_columns(path, &csv.header, &["score_weight", "validation_weight"])?;
    csv.check_widths(path)?;
    let n = csv.rows.len();
    let mut gt = GroundTruth {
        path: path.to_path_buf(),
        ids: Vec::with_capacity(n),
        labels: Vec::with_capacity(n),
        score_weight: Vec::with_capacity(n),
        validation_weight: Vec::with_capacity(n),
        lines: Vec::with_capacity(n),
    };
    for (line, rec) in &csv.rows {
        let line = *line;
        let id = image_id(path, line, &rec[0])?;
        let mut label = None;
        for (c, &col) in cols.iter().enumerate() {
            let v = parse_number(path, line, &id, CLASSES[c], &rec[col])?;
            if v == 1.0 {
                if let Some(prev) = label {
                    return Err(file_err(
                        path,
                        format!(
                            "line {line} (image {id}): not one-hot: both {} and {} are 1",
                            CLASSES[prev], CLASSES[c]
                        ),
                    ));
                }
                label = Some(c);
            } else if v != 0.0 {
                return Err(file_err(
                    path,
                    format!(
                        "line {line} (image {id}), column {}: ground truth must be 0 or 1, found {}",
                        CLASSES[c],
                        rec[col].trim()
                    ),
                ));
            }
        }
        let Some(label) = label else {
            return Err(file_err(
                path,
                format!("line {line} (image {id}): not one-hot: no class is 1"),
            ));
        };
        let weight = |k: usize, name: &str| -> Result<f64> {
            let Some(col) = extras[k] else { return Ok(1.0) };
            let w = parse_number(path, line, &id, name, &rec[col])?;
            if !(w.is_finite() && w >= 0.0) {
                return Err(file_err(
                    path,
                    format!(
                        "line {line} (image {id}), column {name}: weight must be finite and >= 0, found {}",
                        rec[col].trim()
                    ),
                ));
            }
            Ok(w)
        };
        let (mut sw, mut vw) = (weight(0, "score_weight")?, weight(1, "validation_weight")?);
        if id == ZERO_WEIGHT_IMAGE {
            (sw, vw) = (0.0, 0.0);
        }
        gt.ids.push(id);
        gt.labels.push(label);
        gt.score_weight.push(sw);
        gt.validation_weight.push(vw);
        gt.lines.push(line);
    }
    duplicate_check(
        path,
        gt.ids
            .iter()
            .map(String::as_str)
            .zip(gt.lines.iter().copied()),
    )?;
    Ok(gt)
}

/// Reads a prediction CSV the way the scorer does: header `image` + the 7 classes in any
/// order (no other column), ids with a trailing `.jpg` (any case) stripped, every value a number
/// in [0, 1]. Errors name the file and the line: missing values, non-numbers, values outside
/// [0, 1], duplicate images, missing/extra columns, and a column holding only integers such as
/// `0`/`1` (pandas reads it as integers and the scorer rejects it).
pub fn read_predictions(path: &Path) -> Result<Predictions> {
    let csv = read_csv(path)?;
    let (cols, _) = class_columns(path, &csv.header, &[])?;
    csv.check_widths(path)?;
    let n = csv.rows.len();
    let mut p = Predictions {
        path: path.to_path_buf(),
        ids: Vec::with_capacity(n),
        probs: Vec::with_capacity(n),
        lines: Vec::with_capacity(n),
    };
    let mut all_integer = [true; NUM_CLASSES];
    for (line, rec) in &csv.rows {
        let line = *line;
        let raw = image_id(path, line, &rec[0])?;
        let id = strip_jpg(&raw).to_string();
        if id.is_empty() {
            return Err(file_err(
                path,
                format!("line {line}: empty image id ({raw})"),
            ));
        }
        let mut row = [0.0; NUM_CLASSES];
        for (c, &col) in cols.iter().enumerate() {
            let v = parse_number(path, line, &id, CLASSES[c], &rec[col])?;
            if !(0.0..=1.0).contains(&v) {
                return Err(file_err(
                    path,
                    format!(
                        "line {line} (image {id}), column {}: {} is outside [0, 1]",
                        CLASSES[c],
                        rec[col].trim()
                    ),
                ));
            }
            all_integer[c] &= is_integer_literal(&rec[col]);
            row[c] = v;
        }
        p.ids.push(id);
        p.probs.push(row);
        p.lines.push(line);
    }
    let int_cols: Vec<&str> = (0..NUM_CLASSES)
        .filter(|&c| all_integer[c])
        .map(|c| CLASSES[c])
        .collect();
    if !int_cols.is_empty() {
        return Err(file_err(
            path,
            format!(
                "column(s) {} hold only integers (such as 0/1); the official scorer rejects \
                 them as non-floating-point: write probabilities as decimals (0.0, 1.0)",
                int_cols.join(",")
            ),
        ));
    }
    duplicate_check(
        path,
        p.ids
            .iter()
            .map(String::as_str)
            .zip(p.lines.iter().copied()),
    )?;
    Ok(p)
}

fn strip_jpg(id: &str) -> &str {
    let n = id.len();
    if n >= 4 && id.is_char_boundary(n - 4) && id[n - 4..].eq_ignore_ascii_case(".jpg") {
        &id[..n - 4]
    } else {
        id
    }
}

/// Rows of ground truth and predictions matched by image id, sorted by image id (the scorer's
/// order).
#[derive(Clone, Debug)]
pub struct Aligned {
    pub ids: Vec<String>,
    pub labels: Vec<usize>,
    pub probs: Vec<[f64; NUM_CLASSES]>,
    pub score_weight: Vec<f64>,
    pub validation_weight: Vec<f64>,
}

/// Matches prediction rows to truth rows; every truth image must have exactly one prediction
/// row and no other row may exist (the scorer's rule). Errors name the prediction file, the
/// missing images, and the lines of extra rows.
pub fn align(truth: &GroundTruth, pred: &Predictions) -> Result<Aligned> {
    const SHOW: usize = 10;
    let index: HashMap<&str, usize> = pred
        .ids
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    let missing: Vec<&str> = truth
        .ids
        .iter()
        .map(String::as_str)
        .filter(|id| !index.contains_key(id))
        .collect();
    if !missing.is_empty() {
        let more = if missing.len() > SHOW {
            format!(" and {} more", missing.len() - SHOW)
        } else {
            String::new()
        };
        return Err(file_err(
            &pred.path,
            format!(
                "{} image(s) of the ground truth {} have no prediction row: {}{more}",
                missing.len(),
                truth.path.display(),
                missing[..missing.len().min(SHOW)].join(", ")
            ),
        ));
    }
    let known: std::collections::HashSet<&str> = truth.ids.iter().map(String::as_str).collect();
    let extra: Vec<String> = pred
        .ids
        .iter()
        .zip(&pred.lines)
        .filter(|(id, _)| !known.contains(id.as_str()))
        .map(|(id, line)| format!("line {line} ({id})"))
        .collect();
    if !extra.is_empty() {
        let more = if extra.len() > SHOW {
            format!(" and {} more", extra.len() - SHOW)
        } else {
            String::new()
        };
        return Err(file_err(
            &pred.path,
            format!(
                "{} row(s) for images not in the ground truth {}: {}{more}",
                extra.len(),
                truth.path.display(),
                extra[..extra.len().min(SHOW)].join(", ")
            ),
        ));
    }
    let mut order: Vec<usize> = (0..truth.ids.len()).collect();
    order.sort_by(|&a, &b| truth.ids[a].cmp(&truth.ids[b]));
    Ok(Aligned {
        ids: order.iter().map(|&i| truth.ids[i].clone()).collect(),
        labels: order.iter().map(|&i| truth.labels[i]).collect(),
        probs: order
            .iter()
            .map(|&i| pred.probs[index[truth.ids[i].as_str()]])
            .collect(),
        score_weight: order.iter().map(|&i| truth.score_weight[i]).collect(),
        validation_weight: order.iter().map(|&i| truth.validation_weight[i]).collect(),
    })
}

/// Reads both files and scores them: the whole of `skinengine eval`. Fills
/// [`Report::validation_bmca`].
pub fn score_files(truth: &Path, pred: &Path) -> Result<Report> {
    let gt = read_ground_truth(truth)?;
    let p = read_predictions(pred)?;
    let a = align(&gt, &p)?;
    let mut report = evaluate(&a.labels, &a.probs, Some(&a.score_weight))?;
    report.validation_bmca = Some(bmca_only(&a.labels, &a.probs, &a.validation_weight));
    Ok(report)
}

// ---------------------------------------------------------------------------------------------
// Writing predictions
// ---------------------------------------------------------------------------------------------

/// One probability as written to a prediction CSV: the shortest decimal that reads back as the
/// same `f32`, always with a decimal point (`0.0`, `1.0`, `0.25`, `0.000012345`), never an
/// exponent. Distinct `f32` values give distinct, identically ordered decimals, so every metric
/// here (all of which depend only on the order and ties of scores and on comparisons with 0.5)
/// is the same for the written file as for the `f32` values in memory.
pub fn format_probability(p: f32) -> String {
    let p = if p == 0.0 { 0.0 } else { p }; // no "-0"
    let s = format!("{p}");
    if s.contains('.') { s } else { s + ".0" }
}

/// Writes a prediction CSV that the official scorer accepts (`image,MEL,...,VASC`, one row per
/// id, probabilities as decimals, see [`format_probability`]), atomically. Ids are written as
/// given (without `.jpg`, normally). Errors on mismatched lengths, empty/duplicate ids, ids with
/// `,` `"` or line breaks, and values that are not finite or outside [0, 1].
pub fn write_predictions_csv<S: AsRef<str>>(
    path: &Path,
    ids: &[S],
    probs: &[[f32; NUM_CLASSES]],
) -> Result<()> {
    const OP: &str = "write_predictions_csv";
    if ids.len() != probs.len() {
        return Err(invalid(
            OP,
            format!("{} ids but {} probability rows", ids.len(), probs.len()),
        ));
    }
    let mut seen = HashMap::new();
    let mut out = String::with_capacity(32 + ids.len() * 80);
    out.push_str("image,");
    out.push_str(&CLASSES.join(","));
    out.push('\n');
    for (i, (id, row)) in ids.iter().zip(probs).enumerate() {
        let id = id.as_ref();
        if id.is_empty() || id.contains([',', '"', '\n', '\r']) || id.trim() != id {
            return Err(invalid(
                OP,
                format!(
                    "row {i}: image id {id:?} is empty or holds a comma, quote, space or line break"
                ),
            ));
        }
        if let Some(j) = seen.insert(id, i) {
            return Err(invalid(
                OP,
                format!("rows {j} and {i}: duplicate image id {id}"),
            ));
        }
        out.push_str(id);
        for (c, &v) in row.iter().enumerate() {
            if !(0.0..=1.0).contains(&v) {
                return Err(invalid(
                    OP,
                    format!(
                        "row {i} (image {id}), {}: {v} is not a probability in [0, 1]",
                        CLASSES[c]
                    ),
                ));
            }
            out.push(',');
            out.push_str(&format_probability(v));
        }
        out.push('\n');
    }
    crate::io::atomic::write_atomic(path, out.as_bytes())
}

// ---------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------

/// Metrics of one class (one-vs-rest). Thresholded ones use `p > 0.5` on that class's column;
/// see the module docs. NaN where undefined (AUC of a class without positives, ...).
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

/// Everything `skinengine eval` reports. See the module docs for each definition.
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
    /// only from [`score_files`].
    pub validation_bmca: Option<f64>,
    pub per_class: [ClassMetrics; NUM_CLASSES],
    /// Mean of each per-class metric over the classes, NaN skipped (the scorer's macro average).
    pub macro_average: ClassMetrics,
    /// `confusion[truth][predicted]`, rows of non-zero weight, unweighted counts; tied rows are in
    /// no column but in `undecided`.
    pub confusion: [[usize; NUM_CLASSES]; NUM_CLASSES],
    /// Rows per true class whose maximum was tied (counted wrong).
    pub undecided: [usize; NUM_CLASSES],
}

/// The argmax of a row, or None when the maximum is shared (exact equality) — the scorer's
/// "undecided".
pub fn argmax_or_tie(row: &[f64; NUM_CLASSES]) -> Option<usize> {
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

/// NumPy's `np.sum` of a contiguous float64 array: pairwise summation in blocks of up to 128
/// with 8 interleaved accumulators, starting from the identity 0.0. Reproducing it (rather than
/// summing left to right) makes AUC and AP agree with the scorer to the last bit.
fn numpy_sum(a: &[f64]) -> f64 {
    0.0 + pairwise(a)
}

fn pairwise(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for &x in a {
            res += x;
        }
        res
    } else if n <= 128 {
        let mut r: [f64; 8] = a[..8].try_into().expect("8 elements");
        let mut i = 8;
        while i < n - n % 8 {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res += a[i];
            i += 1;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise(&a[..n2]) + pairwise(&a[n2..])
    }
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

/// Checks inputs of [`evaluate`]; returns the weights (all 1.0 when None).
fn check_inputs(
    labels: &[usize],
    probs: &[[f64; NUM_CLASSES]],
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
    if let Some((i, &l)) = labels.iter().enumerate().find(|(_, l)| **l >= NUM_CLASSES) {
        return Err(invalid(
            OP,
            format!("row {i}: label {l} is not a class (0..7)"),
        ));
    }
    if let Some(i) = probs.iter().position(|r| r.iter().any(|v| !v.is_finite())) {
        return Err(invalid(
            OP,
            format!("row {i}: non-finite score {:?}", probs[i]),
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

/// Weighted confusion of argmax labels: `[truth][pred]`, pred 7 = undecided.
fn weighted_confusion(
    labels: &[usize],
    pred: &[Option<usize>],
    w: &[f64],
) -> [[f64; NUM_CLASSES + 1]; NUM_CLASSES] {
    let mut m = [[0.0; NUM_CLASSES + 1]; NUM_CLASSES];
    for ((&t, p), &wi) in labels.iter().zip(pred).zip(w) {
        if wi != 0.0 {
            m[t][p.unwrap_or(NUM_CLASSES)] += wi;
        }
    }
    m
}

fn bmca_from(m: &[[f64; NUM_CLASSES + 1]; NUM_CLASSES]) -> f64 {
    // tp / (weight of the class's rows); 0/0 = NaN is skipped by the mean.
    let ratios: Vec<f64> = (0..NUM_CLASSES)
        .map(|c| m[c][c] / m[c].iter().sum::<f64>())
        .collect();
    nan_mean(&ratios)
}

fn bmca_only(labels: &[usize], probs: &[[f64; NUM_CLASSES]], w: &[f64]) -> f64 {
    let pred: Vec<Option<usize>> = probs.iter().map(argmax_or_tie).collect();
    if !w.iter().any(|&x| x > 0.0) {
        return f64::NAN;
    }
    bmca_from(&weighted_confusion(labels, &pred, w))
}

/// All metrics from true labels (0..7), per-class scores (rows need not sum to 1) and optional
/// non-negative weights (None = all 1). Rows are used in the order given; the scorer sorts by
/// image id first, which only matters for the last bits of sums of non-dyadic weights.
pub fn evaluate(
    labels: &[usize],
    probs: &[[f64; NUM_CLASSES]],
    weights: Option<&[f64]>,
) -> Result<Report> {
    let w = check_inputs(labels, probs, weights)?;
    let pred: Vec<Option<usize>> = probs.iter().map(argmax_or_tie).collect();
    let m = weighted_confusion(labels, &pred, &w);

    let mut confusion = [[0usize; NUM_CLASSES]; NUM_CLASSES];
    let mut undecided = [0usize; NUM_CLASSES];
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
    let precisions: Vec<f64> = (0..NUM_CLASSES)
        .filter_map(|c| {
            let col: f64 = (0..NUM_CLASSES).map(|t| m[t][c]).sum();
            (col > 0.0).then(|| m[c][c] / col)
        })
        .collect();
    let mean_precision = if precisions.is_empty() {
        f64::NAN
    } else {
        numpy_sum(&precisions) / precisions.len() as f64
    };
    let correct: f64 = (0..NUM_CLASSES).map(|c| m[c][c]).sum();
    let accuracy = correct / numpy_sum(&w);

    let per_class: [ClassMetrics; NUM_CLASSES] =
        std::array::from_fn(|c| class_metrics(c, labels, probs, &w));
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
        per_class,
        macro_average,
        confusion,
        undecided,
    })
}

/// [`evaluate`] for training code: `f32` probabilities, unit weights. Gives exactly the report
/// that scoring a CSV written by [`write_predictions_csv`] from the same values gives.
pub fn evaluate_probs(labels: &[usize], probs: &[[f32; NUM_CLASSES]]) -> Result<Report> {
    let p: Vec<[f64; NUM_CLASSES]> = probs
        .iter()
        .map(|r| std::array::from_fn(|c| f64::from(r[c])))
        .collect();
    evaluate(labels, &p, None)
}

/// A binary ratio, 1.0 when the denominator is 0 (the scorer's "freebie").
fn ratio_or_one(num: f64, den: f64) -> f64 {
    if den == 0.0 { 1.0 } else { num / den }
}

fn class_metrics(
    c: usize,
    labels: &[usize],
    probs: &[[f64; NUM_CLASSES]],
    w: &[f64],
) -> ClassMetrics {
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

/// sklearn's `_binary_clf_curve`: cumulative weighted true and false positives at each distinct
/// score, scores descending, rows of weight 0 dropped.
struct Curve {
    tps: Vec<f64>,
    fps: Vec<f64>,
}

impl Curve {
    fn new(y: &[bool], score: &[f64], w: &[f64]) -> Curve {
        let mut idx: Vec<usize> = (0..y.len()).filter(|&i| w[i] != 0.0).collect();
        // Stable, descending (ties keep their order).
        idx.sort_by(|&a, &b| score[b].partial_cmp(&score[a]).expect("finite scores"));
        let (mut tps, mut fps) = (Vec::new(), Vec::new());
        let (mut tp, mut fp) = (0.0, 0.0);
        for (k, &i) in idx.iter().enumerate() {
            if y[i] {
                tp += w[i];
            } else {
                fp += w[i];
            }
            // (1 - y) * w adds 0.0 to fp for positives: the same bits as skipping it.
            let last = k + 1 == idx.len();
            if last || score[idx[k + 1]] != score[i] {
                tps.push(tp);
                fps.push(fp);
            }
        }
        Curve { tps, fps }
    }

    /// `sklearn.metrics.roc_curve` (fpr, tpr), with or without dropping collinear points.
    fn roc(&self, drop_intermediate: bool) -> (Vec<f64>, Vec<f64>) {
        let (mut tps, mut fps) = (self.tps.clone(), self.fps.clone());
        if drop_intermediate && fps.len() > 2 {
            let d2 = |v: &[f64], i: usize| (v[i + 2] - v[i + 1]) - (v[i + 1] - v[i]);
            let n = fps.len();
            let keep: Vec<usize> = (0..n)
                .filter(|&i| {
                    i == 0 || i == n - 1 || d2(&fps, i - 1) != 0.0 || d2(&tps, i - 1) != 0.0
                })
                .collect();
            tps = keep.iter().map(|&i| self.tps[i]).collect();
            fps = keep.iter().map(|&i| self.fps[i]).collect();
        }
        tps.insert(0, 0.0);
        fps.insert(0, 0.0);
        let rate = |v: &[f64]| -> Vec<f64> {
            let last = *v.last().expect("non-empty");
            if last <= 0.0 {
                vec![f64::NAN; v.len()]
            } else {
                v.iter().map(|x| x / last).collect()
            }
        };
        (rate(&fps), rate(&tps))
    }

    fn roc_auc(&self) -> f64 {
        let (fpr, tpr) = self.roc(true);
        sklearn_auc(&fpr, &tpr)
    }

    /// The scorer's `auc_above_sensitivity`.
    fn auc_above_sensitivity(&self, sens: f64) -> f64 {
        let (fpr, tpr) = self.roc(false);
        // searchsorted(tpr, sens, 'left'). A class without positives has a NaN curve: no index
        // is found and the result is NaN (the scorer crashes there).
        let i = tpr.iter().position(|&t| t >= sens).unwrap_or(tpr.len());
        if i == 0 || i >= tpr.len() {
            return f64::NAN;
        }
        let fpt = numpy_interp2(sens, [tpr[i - 1], tpr[i]], [fpr[i - 1], fpr[i]]);
        let mut x = vec![fpt];
        x.extend_from_slice(&fpr[i..]);
        let mut y = vec![sens];
        y.extend_from_slice(&tpr[i..]);
        sklearn_auc(&x, &y)
    }

    /// `sklearn.metrics.average_precision_score` (binary).
    fn average_precision(&self) -> f64 {
        let k = self.tps.len();
        let last_tp = self.tps[k - 1];
        let precision: Vec<f64> = (0..k)
            .map(|i| {
                let ps = self.tps[i] + self.fps[i];
                if ps != 0.0 { self.tps[i] / ps } else { 0.0 }
            })
            .collect();
        let recall: Vec<f64> = if last_tp == 0.0 {
            vec![1.0; k]
        } else {
            self.tps.iter().map(|t| t / last_tp).collect()
        };
        // Reversed, with (recall 0, precision 1) appended; sum of diff(recall) * precision[:-1].
        let r: Vec<f64> = recall.iter().rev().copied().chain([0.0]).collect();
        let p: Vec<f64> = precision.iter().rev().copied().collect();
        let terms: Vec<f64> = (0..k).map(|i| (r[i + 1] - r[i]) * p[i]).collect();
        let ap = -numpy_sum(&terms);
        // Python's max(0.0, ap): 0.0 unless ap > 0 (also for NaN).
        if ap > 0.0 { ap } else { 0.0 }
    }
}

/// `np.interp(x, xp, fp)` for two sample points (NumPy's C code path).
fn numpy_interp2(x: f64, xp: [f64; 2], fp: [f64; 2]) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x > xp[1] {
        return fp[1];
    }
    if x < xp[0] {
        return fp[0];
    }
    if x >= xp[1] {
        return fp[1];
    }
    if xp[0] == x {
        return fp[0];
    }
    let slope = (fp[1] - fp[0]) / (xp[1] - xp[0]);
    let mut r = slope * (x - xp[0]) + fp[0];
    if r.is_nan() {
        r = slope * (x - xp[1]) + fp[1];
        if r.is_nan() && fp[0] == fp[1] {
            r = fp[0];
        }
    }
    r
}

/// `sklearn.metrics.auc(x, y)`: trapezoids summed as `scipy.integrate.trapezoid` does; NaN where
/// sklearn raises (x neither increasing nor decreasing).
fn sklearn_auc(x: &[f64], y: &[f64]) -> f64 {
    let dx: Vec<f64> = x.windows(2).map(|p| p[1] - p[0]).collect();
    let direction = if dx.iter().any(|&d| d < 0.0) {
        if dx.iter().all(|&d| d <= 0.0) {
            -1.0
        } else {
            return f64::NAN;
        }
    } else {
        1.0
    };
    let terms: Vec<f64> = (0..dx.len())
        .map(|i| dx[i] * (y[i + 1] + y[i]) / 2.0)
        .collect();
    direction * numpy_sum(&terms)
}

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

fn num(v: f64) -> serde_json::Value {
    // NaN (undefined) becomes null.
    serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

fn metrics_json(m: &ClassMetrics) -> serde_json::Value {
    serde_json::Value::Object(
        m.fields()
            .iter()
            .map(|(k, v)| (k.to_string(), num(*v)))
            .collect(),
    )
}

impl Report {
    /// The `--json` output: `bmca`, `mean_precision`, `accuracy`, `per_class` (keyed by class
    /// name: sensitivity, specificity, ppv, npv, f1, accuracy, auc, auc_sens_80, ap),
    /// `macro_average`, `confusion` (7x7, rows truth, columns prediction, in `classes` order),
    /// `undecided`, `n`, `classes`, and `validation_bmca` when known. NaN is written as null.
    pub fn to_json(&self) -> serde_json::Value {
        let mut o = serde_json::Map::new();
        o.insert("n".into(), self.n.into());
        o.insert("bmca".into(), num(self.bmca));
        o.insert("mean_precision".into(), num(self.mean_precision));
        o.insert("accuracy".into(), num(self.accuracy));
        if let Some(v) = self.validation_bmca {
            o.insert("validation_bmca".into(), num(v));
        }
        o.insert("classes".into(), CLASSES.to_vec().into());
        o.insert(
            "per_class".into(),
            serde_json::Value::Object(
                CLASSES
                    .iter()
                    .zip(&self.per_class)
                    .map(|(c, m)| (c.to_string(), metrics_json(m)))
                    .collect(),
            ),
        );
        o.insert("macro_average".into(), metrics_json(&self.macro_average));
        o.insert(
            "confusion".into(),
            self.confusion
                .iter()
                .map(|r| r.to_vec())
                .collect::<Vec<_>>()
                .into(),
        );
        o.insert("undecided".into(), self.undecided.to_vec().into());
        serde_json::Value::Object(o)
    }

    /// [`Report::to_json`] as text laid out for reading: keys in the order documented there,
    /// classes in ISIC order, one line per class and per confusion row.
    pub fn to_json_string(&self) -> String {
        let v = |x: f64| num(x).to_string();
        let obj = |m: &ClassMetrics| {
            let kv: Vec<String> = m
                .fields()
                .iter()
                .map(|(k, x)| format!("\"{k}\": {}", v(*x)))
                .collect();
            format!("{{{}}}", kv.join(", "))
        };
        let list = |r: &[usize]| {
            let s: Vec<String> = r.iter().map(usize::to_string).collect();
            format!("[{}]", s.join(", "))
        };
        let mut s = String::from("{\n");
        let _ = writeln!(s, "  \"n\": {},", self.n);
        let _ = writeln!(s, "  \"bmca\": {},", v(self.bmca));
        let _ = writeln!(s, "  \"mean_precision\": {},", v(self.mean_precision));
        let _ = writeln!(s, "  \"accuracy\": {},", v(self.accuracy));
        if let Some(x) = self.validation_bmca {
            let _ = writeln!(s, "  \"validation_bmca\": {},", v(x));
        }
        let names: Vec<String> = CLASSES.iter().map(|c| format!("\"{c}\"")).collect();
        let _ = writeln!(s, "  \"classes\": [{}],", names.join(", "));
        s.push_str("  \"per_class\": {\n");
        for (c, m) in self.per_class.iter().enumerate() {
            let comma = if c + 1 < NUM_CLASSES { "," } else { "" };
            let _ = writeln!(s, "    \"{}\": {}{comma}", CLASSES[c], obj(m));
        }
        s.push_str("  },\n");
        let _ = writeln!(s, "  \"macro_average\": {},", obj(&self.macro_average));
        s.push_str("  \"confusion\": [\n");
        for (t, r) in self.confusion.iter().enumerate() {
            let comma = if t + 1 < NUM_CLASSES { "," } else { "" };
            let _ = writeln!(s, "    {}{comma}", list(r));
        }
        s.push_str("  ],\n");
        let _ = writeln!(s, "  \"undecided\": {}", list(&self.undecided));
        s.push_str("}\n");
        s
    }

    /// Number of classes predicted (argmax) at least once.
    pub fn classes_predicted(&self) -> usize {
        (0..NUM_CLASSES)
            .filter(|&c| (0..NUM_CLASSES).any(|t| self.confusion[t][c] > 0))
            .count()
    }

    /// A readable table of everything.
    pub fn to_table(&self) -> String {
        let f = |v: f64| {
            if v.is_nan() {
                "     -".to_string()
            } else {
                format!("{v:6.4}")
            }
        };
        let mut s = String::new();
        let tied: usize = self.undecided.iter().sum();
        let _ = writeln!(s, "images scored            {}", self.n);
        let _ = writeln!(
            s,
            "bmca (official metric)   {}   balanced multiclass accuracy = mean recall",
            f(self.bmca)
        );
        if let Some(v) = self.validation_bmca
            && v.to_bits() != self.bmca.to_bits()
        {
            let _ = writeln!(s, "bmca, validation weights {}", f(v));
        }
        let _ = writeln!(
            s,
            "mean_precision           {}   the seed's \"MCA\": mean precision over the {} classes predicted",
            f(self.mean_precision),
            self.classes_predicted()
        );
        let _ = writeln!(s, "accuracy                 {}", f(self.accuracy));
        if tied > 0 {
            let _ = writeln!(
                s,
                "tied rows                {tied}   (maximum shared by several classes: counted wrong)"
            );
        }
        let _ = writeln!(
            s,
            "\nper class (sens..acc at p > 0.5 on the class's own column; auc80 = partial AUC above 80% sensitivity):"
        );
        let _ = writeln!(
            s,
            "{:<7} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6}",
            "class", "sens", "spec", "ppv", "npv", "f1", "acc", "auc", "auc80", "ap"
        );
        let rows = CLASSES
            .iter()
            .map(|c| c.to_string())
            .zip(self.per_class.iter())
            .chain(std::iter::once(("macro".to_string(), &self.macro_average)));
        for (name, m) in rows {
            let _ = write!(s, "{name:<7}");
            for (_, v) in m.fields() {
                let _ = write!(s, " {}", f(v));
            }
            s.push('\n');
        }
        let _ = writeln!(s, "\nconfusion (rows truth, columns argmax prediction):");
        let _ = write!(s, "{:<7}", "");
        for c in CLASSES {
            let _ = write!(s, " {c:>6}");
        }
        let _ = writeln!(s, " {:>6}", "tied");
        for (t, row) in self.confusion.iter().enumerate() {
            let _ = write!(s, "{:<7}", CLASSES[t]);
            for v in row {
                let _ = write!(s, " {v:>6}");
            }
            let _ = writeln!(s, " {:>6}", self.undecided[t]);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_sum_matches_sequential_for_short_and_exact_inputs() {
        let v: Vec<f64> = (1..=300).map(f64::from).collect();
        assert_eq!(numpy_sum(&v), 45150.0);
        assert_eq!(numpy_sum(&[0.1, 0.2, 0.3]), 0.1 + 0.2 + 0.3);
        // 9 elements: ((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7)) then + a8.
        let a = [1e16, 1.0, -1e16, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0];
        assert_eq!(numpy_sum(&a), ((1e16 + 1.0) + (-1e16 + 1.0)) + 0.0 + 1.0);
    }

    #[test]
    fn interp_two_points() {
        assert_eq!(
            numpy_interp2(0.8, [0.5, 1.0], [0.2, 0.4]),
            ((0.4 - 0.2) / (1.0 - 0.5)) * (0.8 - 0.5) + 0.2
        );
        assert_eq!(numpy_interp2(1.0, [0.5, 1.0], [0.2, 0.4]), 0.4);
    }
}
