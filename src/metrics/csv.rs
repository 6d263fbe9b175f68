//! The scorer's CSV files: reading ground-truth and prediction CSVs the way
//! `isic-challenge-scoring` reads them (with the checks it makes, and a few it should make),
//! matching their rows, and writing prediction CSVs it accepts. Lines and blank rows follow
//! `io::csv`; every error names the file and the line.

use crate::classes::{self, ClassList};
use crate::data::schema::isic;
use crate::error::{Result, file_err};
use crate::io::csv::{self as csv_file, Table};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The test-set row without an image; the scorer always gives it weight 0.
pub const ZERO_WEIGHT_IMAGE: &str = "ISIC_0035068";

/// A ground-truth CSV (`image,MEL,NV,BCC,AKIEC,BKL,DF,VASC[,score_weight][,validation_weight]`,
/// one-hot, or the columns of another class list, see [`read_ground_truth`]), rows in file
/// order.
#[derive(Clone, Debug)]
pub struct GroundTruth {
    pub path: PathBuf,
    /// The class columns, in the order labels index them.
    pub classes: Vec<String>,
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
    /// True when the official scorer would attach weights to the wrong rows (see the `metrics`
    /// module docs): the rows are not sorted by image id and the weights are not all equal.
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
/// the order of `classes`. Image ids lose a trailing `.jpg` (any case), as in the scorer.
#[derive(Clone, Debug)]
pub struct Predictions {
    pub path: PathBuf,
    /// The class columns read, in the order of each row of `probs`.
    pub classes: Vec<String>,
    pub ids: Vec<String>,
    pub probs: Vec<Vec<f64>>,
    /// 1-based line number of each row in the file (the header is line 1).
    pub lines: Vec<u64>,
}

/// A CSV read by `io::csv` (BOM, blank lines, line numbers), with at least one
/// data row. Callers check widths after their
/// header check, so that a bad header is reported as such.
fn read_table(path: &Path) -> Result<Table> {
    let t = csv_file::read(path)?;
    if t.rows.is_empty() {
        return Err(file_err(path, "no data rows (only a header)"));
    }
    Ok(t)
}

/// Errors unless column `image` comes first and no column name repeats (`codes` is the class
/// list named in the message).
fn check_image_and_duplicates<S: AsRef<str>>(
    path: &Path,
    header: &[String],
    codes: &[S],
) -> Result<()> {
    let codes: Vec<&str> = codes.iter().map(AsRef::as_ref).collect();
    let image = header.iter().position(|h| h == isic::IMAGE);
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
                codes.join(",")
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
    Ok(())
}

/// The class list of a ground-truth header, as the scorer takes it: every column but `image`
/// and `allowed_extra`. The set must be one of the known layouts' (ISIC 2018's 7 classes, ISIC
/// 2019's 9 columns with `UNK`, or its 8 trained classes, as `train` writes `val_truth.csv`),
/// or exactly `fixed` when given (`eval --classes`). The order is the file's (the scorer's
/// category order, which fixes the order of its means), except that ISIC 2018's classes keep
/// ISIC order as they always have here. A header that is none of them is reported against the
/// closest list (missing and unexpected columns) by [`class_columns`].
fn truth_classes(
    header: &[String],
    allowed_extra: &[&str],
    fixed: Option<&[String]>,
) -> Vec<String> {
    let own: Vec<&str> = header
        .iter()
        .skip(1)
        .map(String::as_str)
        .filter(|h| !allowed_extra.contains(h))
        .collect();
    let known: Vec<Vec<String>> = match fixed {
        Some(f) => vec![f.to_vec()],
        None => {
            let l19 = ClassList::isic2019();
            [
                ClassList::isic2018().codes(),
                l19.prediction_columns(),
                l19.codes(),
            ]
            .iter()
            .map(|l| l.iter().map(|c| c.to_string()).collect())
            .collect()
        }
    };
    let overlap = |l: &[String]| own.iter().filter(|h| l.iter().any(|c| c == *h)).count();
    let same_set = |l: &[String]| own.len() == l.len() && overlap(l) == l.len();
    if let Some(l) = known.iter().find(|l| same_set(l)) {
        if fixed.is_none() && *l == ClassList::isic2018().codes() {
            return l.clone();
        }
        return own.iter().map(|h| h.to_string()).collect();
    }
    // The closest list (most columns in common; the first on a tie), for the error message.
    let mut best = &known[0];
    for l in &known[1..] {
        if overlap(l) > overlap(best) {
            best = l;
        }
    }
    best.clone()
}

/// Column index of each class of `codes`, by name; errors on missing, duplicate or unknown
/// columns. `allowed_extra` are further accepted column names, returned by index (None when
/// absent).
fn class_columns<S: AsRef<str>>(
    path: &Path,
    header: &[String],
    codes: &[S],
    allowed_extra: &[&str],
) -> Result<(Vec<usize>, Vec<Option<usize>>)> {
    check_image_and_duplicates(path, header, codes)?;
    let codes: Vec<&str> = codes.iter().map(AsRef::as_ref).collect();
    let seen: HashMap<&str, usize> = header
        .iter()
        .enumerate()
        .map(|(i, h)| (h.as_str(), i))
        .collect();
    let missing: Vec<&str> = codes
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
        .filter(|h| !codes.contains(h) && !allowed_extra.contains(h))
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
                codes.join(",")
            ),
        ));
    }
    let cols = codes.iter().map(|c| seen[c]).collect();
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

/// Reads an ISIC ground-truth CSV: ISIC 2018 Task 3's classes, ISIC 2019 Task 1's (with or
/// without `UNK`), see [`read_ground_truth_for`] for any other list. Errors name the file and
/// the line: missing/unknown columns, values other than 0/1, rows that are not one-hot,
/// duplicate images, bad weights.
pub fn read_ground_truth(path: &Path) -> Result<GroundTruth> {
    read_ground_truth_for(path, None)
}

/// [`read_ground_truth`] whose class columns must be exactly `classes` (any order) when given.
pub fn read_ground_truth_for(path: &Path, classes: Option<&[String]>) -> Result<GroundTruth> {
    let csv = read_table(path)?;
    let extra = [isic::SCORE_WEIGHT, isic::VALIDATION_WEIGHT];
    let codes = match classes {
        Some(c) => c.to_vec(),
        None => classes::CODES.iter().map(|c| c.to_string()).collect(),
    };
    check_image_and_duplicates(path, &csv.header, &codes)?;
    let codes = truth_classes(&csv.header, &extra, classes);
    let (cols, extras) = class_columns(path, &csv.header, &codes, &extra)?;
    csv.check_widths(path)?;
    let n = csv.rows.len();
    let mut gt = GroundTruth {
        path: path.to_path_buf(),
        classes: codes.clone(),
        ids: Vec::with_capacity(n),
        labels: Vec::with_capacity(n),
        score_weight: Vec::with_capacity(n),
        validation_weight: Vec::with_capacity(n),
        lines: Vec::with_capacity(n),
    };
    for row in &csv.rows {
        let (line, rec) = (row.line, &row.fields);
        let id = image_id(path, line, &rec[0])?;
        let mut label = None;
        for (c, &col) in cols.iter().enumerate() {
            let v = parse_number(path, line, &id, &codes[c], &rec[col])?;
            if v == 1.0 {
                if let Some(prev) = label {
                    return Err(file_err(
                        path,
                        format!(
                            "line {line} (image {id}): not one-hot: both {} and {} are 1",
                            codes[prev], codes[c]
                        ),
                    ));
                }
                label = Some(c);
            } else if v != 0.0 {
                return Err(file_err(
                    path,
                    format!(
                        "line {line} (image {id}), column {}: ground truth must be 0 or 1, found {}",
                        codes[c],
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
        let (mut sw, mut vw) = (
            weight(0, isic::SCORE_WEIGHT)?,
            weight(1, isic::VALIDATION_WEIGHT)?,
        );
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

/// Reads a prediction CSV the way the scorer does: header `image` + the 7 classes of ISIC 2018
/// in any order (no other column), ids with a trailing `.jpg` (any case) stripped, every value a
/// number in [0, 1]. Errors name the file and the line: missing values, non-numbers, values
/// outside [0, 1], duplicate images, missing/extra columns, and a column holding only integers
/// such as `0`/`1` (pandas reads it as integers and the scorer rejects it).
pub fn read_predictions(path: &Path) -> Result<Predictions> {
    let codes: Vec<String> = classes::CODES.iter().map(|c| c.to_string()).collect();
    read_predictions_for(path, &codes)
}

/// [`read_predictions`] whose columns are `codes` (the ground truth's, as the scorer takes
/// them), in any order.
pub fn read_predictions_for(path: &Path, codes: &[String]) -> Result<Predictions> {
    let csv = read_table(path)?;
    let (cols, _) = class_columns(path, &csv.header, codes, &[])?;
    csv.check_widths(path)?;
    let n = csv.rows.len();
    let k = codes.len();
    let mut p = Predictions {
        path: path.to_path_buf(),
        classes: codes.to_vec(),
        ids: Vec::with_capacity(n),
        probs: Vec::with_capacity(n),
        lines: Vec::with_capacity(n),
    };
    let mut all_integer = vec![true; k];
    for row in &csv.rows {
        let (line, rec) = (row.line, &row.fields);
        let raw = image_id(path, line, &rec[0])?;
        let id = strip_jpg(&raw).to_string();
        if id.is_empty() {
            return Err(file_err(
                path,
                format!("line {line}: empty image id ({raw})"),
            ));
        }
        let mut row = vec![0.0; k];
        for (c, &col) in cols.iter().enumerate() {
            let v = parse_number(path, line, &id, &codes[c], &rec[col])?;
            if !(0.0..=1.0).contains(&v) {
                return Err(file_err(
                    path,
                    format!(
                        "line {line} (image {id}), column {}: {} is outside [0, 1]",
                        codes[c],
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
    let int_cols: Vec<&str> = (0..k)
        .filter(|&c| all_integer[c])
        .map(|c| codes[c].as_str())
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
    /// The class columns (the ground truth's).
    pub classes: Vec<String>,
    pub ids: Vec<String>,
    pub labels: Vec<usize>,
    pub probs: Vec<Vec<f64>>,
    pub score_weight: Vec<f64>,
    pub validation_weight: Vec<f64>,
}

/// Matches prediction rows to truth rows; every truth image must have exactly one prediction
/// row and no other row may exist (the scorer's rule). Errors name the prediction file, the
/// missing images, and the lines of extra rows.
pub fn align(truth: &GroundTruth, pred: &Predictions) -> Result<Aligned> {
    const SHOW: usize = 10;
    if truth.classes != pred.classes {
        return Err(file_err(
            &pred.path,
            format!(
                "read for classes {} but the ground truth {} has {}",
                pred.classes.join(","),
                truth.path.display(),
                truth.classes.join(",")
            ),
        ));
    }
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
        classes: truth.classes.clone(),
        ids: order.iter().map(|&i| truth.ids[i].clone()).collect(),
        labels: order.iter().map(|&i| truth.labels[i]).collect(),
        probs: order
            .iter()
            .map(|&i| pred.probs[index[truth.ids[i].as_str()]].clone())
            .collect(),
        score_weight: order.iter().map(|&i| truth.score_weight[i]).collect(),
        validation_weight: order.iter().map(|&i| truth.validation_weight[i]).collect(),
    })
}
