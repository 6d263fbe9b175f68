//! Train/validation splits, written to and read back from `split.csv`.
//!
//! - `lesion` (default): stratified by class, grouped by lesion id: every image of a lesion
//!   lands on the same side, so validation never sees a lesion (or any view of it) that training
//!   saw. Lesions are assigned greedily per class in a seeded random order until the class's
//!   validation share reaches `val_fraction` of its images.
//! - `image`: stratified random split by image (lesions may straddle; for comparison).
//! - the seed's protocol (random split of the augmented views) lives in `views.rs`, because it
//!   splits after augmentation.

use crate::data::dataset::Dataset;
use crate::error::{Result, file_err, invalid};
use crate::io::atomic::write_atomic;
use crate::io::csv as csv_file;
use crate::rng::Rng;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SplitKind {
    /// Grouped by lesion, stratified by class (no lesion on both sides).
    #[default]
    Lesion,
    /// Stratified by class, random by image (lesions may straddle).
    Image,
}

/// Indices into `Dataset::samples`, each sorted.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Split {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
}

fn check_fraction(f: f64) -> Result<()> {
    if !(f > 0.0 && f < 1.0) {
        return Err(invalid(
            "split",
            format!("--val-fraction must be in (0, 1), got {f}"),
        ));
    }
    Ok(())
}

pub fn split(ds: &Dataset, kind: SplitKind, val_fraction: f64, seed: u64) -> Result<Split> {
    check_fraction(val_fraction)?;
    // Units: lesions (or single images), each with its image indices and class.
    let mut units: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, s) in ds.samples.iter().enumerate() {
        let key = match kind {
            SplitKind::Lesion => s.lesion.clone(),
            SplitKind::Image => s.id.clone(),
        };
        units.entry(key).or_default().push(i);
    }
    // A lesion's class is its first image's (HAM10000 lesions have one diagnosis); unlabelled
    // samples are class 0 for stratification purposes.
    let mut by_class: BTreeMap<usize, Vec<Vec<usize>>> = BTreeMap::new();
    for (_, imgs) in units {
        let c = ds.samples[imgs[0]].label.unwrap_or(0);
        by_class.entry(c).or_default().push(imgs);
    }
    let mut rng = Rng::new(seed);
    let mut out = Split::default();
    for (_, mut group) in by_class {
        rng.shuffle(&mut group);
        let total: usize = group.iter().map(|g| g.len()).sum();
        let target = (val_fraction * total as f64).round() as usize;
        let mut in_val = 0;
        for g in group {
            // Take a unit when it brings the validation count closer to the target.
            let closer = (in_val + g.len()).abs_diff(target) < in_val.abs_diff(target);
            if closer {
                in_val += g.len();
                out.val.extend(g);
            } else {
                out.train.extend(g);
            }
        }
    }
    out.train.sort_unstable();
    out.val.sort_unstable();
    if out.train.is_empty() || out.val.is_empty() {
        return Err(invalid(
            "split",
            format!(
                "{} images cannot be split with --val-fraction {val_fraction}: one side would be empty",
                ds.samples.len()
            ),
        ));
    }
    Ok(out)
}

/// Writes `split.csv`: image, split (train|val), label, lesion_id.
pub fn write_split(path: &Path, ds: &Dataset, s: &Split) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let row = |w: &mut csv::Writer<Vec<u8>>, i: usize, side: &str| {
        let smp = &ds.samples[i];
        let label = smp
            .label
            .map_or(String::new(), |l| ds.classes.code(l).to_string());
        w.write_record([smp.id.as_str(), side, label.as_str(), smp.lesion.as_str()])
    };
    let mut go = || -> csv::Result<()> {
        w.write_record(["image", "split", "label", "lesion_id"])?;
        for &i in &s.train {
            row(&mut w, i, "train")?;
        }
        for &i in &s.val {
            row(&mut w, i, "val")?;
        }
        Ok(())
    };
    go().map_err(|e| file_err(path, format!("cannot write split: {e}")))?;
    let bytes = w
        .into_inner()
        .map_err(|e| file_err(path, format!("cannot write split: {e}")))?;
    write_atomic(path, &bytes)
}

/// Reads a `split.csv` for this data set. Every image must be listed exactly once, on a known
/// side; unknown ids are an error (the split belongs to another data set), except images the
/// data set left out as unreadable ([`Dataset::left_out`]), whose rows are passed over.
pub fn read_split(path: &Path, ds: &Dataset) -> Result<Split> {
    let index: HashMap<&str, usize> = ds
        .samples
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    // Every row as wide as the header, as the writer makes them.
    let table = csv_file::read(path)?;
    table.check_widths(path)?;
    let mut side: Vec<Option<bool>> = vec![None; ds.samples.len()];
    for row in &table.rows {
        let (line, id, s) = (row.line, row.get(0), row.get(1));
        let Some(&i) = index.get(id) else {
            if ds.left_out.iter().any(|l| l == id) {
                continue;
            }
            return Err(file_err(
                path,
                format!("row {line}: image '{id}' is not in the data set"),
            ));
        };
        let is_val = match s {
            "train" => false,
            "val" => true,
            _ => {
                return Err(file_err(
                    path,
                    format!("row {line}: split must be train or val, got '{s}'"),
                ));
            }
        };
        if side[i].replace(is_val).is_some() {
            return Err(file_err(
                path,
                format!("row {line}: image '{id}' is listed twice"),
            ));
        }
    }
    let missing: Vec<&str> = side
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_none())
        .map(|(i, _)| ds.samples[i].id.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(file_err(
            path,
            format!(
                "{} images of the data set are not in the split (e.g. {})",
                missing.len(),
                missing[..missing.len().min(5)].join(", ")
            ),
        ));
    }
    let mut out = Split::default();
    for (i, s) in side.into_iter().enumerate() {
        if s == Some(true) {
            out.val.push(i)
        } else {
            out.train.push(i)
        }
    }
    Ok(out)
}
