//! Writing prediction CSVs the official scorer accepts (`image,MEL,...`, one row per image,
//! probabilities as shortest round-trip decimals), atomically. The reading side is `csv.rs`.

use crate::classes::ClassList;
use crate::data::schema::isic;
use crate::error::{Result, invalid};
use std::collections::HashMap;
use std::path::Path;

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
pub fn write_predictions_csv<S: AsRef<str>, R: AsRef<[f32]>>(
    path: &Path,
    ids: &[S],
    probs: &[R],
) -> Result<()> {
    write_predictions_csv_for(path, &ClassList::isic2018(), false, ids, probs)
}

/// [`write_predictions_csv`] for the classes of `list` (one value per class in each row), and
/// with `untrained` its untrained columns after them, each 0.0 (ISIC 2019's `UNK`: the columns
/// the official 2019 ground truth has).
pub fn write_predictions_csv_for<S: AsRef<str>, R: AsRef<[f32]>>(
    path: &Path,
    list: &ClassList,
    untrained: bool,
    ids: &[S],
    probs: &[R],
) -> Result<()> {
    const OP: &str = "write_predictions_csv";
    let k = list.len();
    if let Some(i) = probs.iter().position(|r| r.as_ref().len() != k) {
        return Err(invalid(
            OP,
            format!(
                "row {i}: {} values for the {k} classes {}",
                probs[i].as_ref().len(),
                list.joined()
            ),
        ));
    }
    let columns = if untrained {
        list.prediction_columns()
    } else {
        list.codes()
    };
    let zeros = columns.len() - k;
    if ids.len() != probs.len() {
        return Err(invalid(
            OP,
            format!("{} ids but {} probability rows", ids.len(), probs.len()),
        ));
    }
    let mut seen = HashMap::new();
    let mut out = String::with_capacity(32 + ids.len() * 80);
    out.push_str(isic::IMAGE);
    out.push(',');
    out.push_str(&columns.join(","));
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
        for (c, &v) in row.as_ref().iter().enumerate() {
            if !(0.0..=1.0).contains(&v) {
                return Err(invalid(
                    OP,
                    format!(
                        "row {i} (image {id}), {}: {v} is not a probability in [0, 1]",
                        list.code(c)
                    ),
                ));
            }
            out.push(',');
            out.push_str(&format_probability(v));
        }
        for _ in 0..zeros {
            out.push_str(",0.0");
        }
        out.push('\n');
    }
    crate::io::atomic::write_atomic(path, out.as_bytes())
}
