//! Reading ISIC 2019 Task 1: `ISIC_2019_<Part>_GroundTruth.csv` (one-hot over `MEL, NV, BCC,
//! AK, BKL, DF, VASC, SCC, UNK`) and, beside it or at the root, `ISIC_2019_<Part>_Metadata.csv`
//! (`image, age_approx, anatom_site_general, lesion_id, sex`).
//!
//! The classes are [`ClassList::isic2019`]: the 8 trained ones. The `UNK` column may be absent;
//! a row whose 1 is in `UNK` (none in the official training set) is left out and listed as a
//! problem, since no class of the list is its label. The header must name each class exactly
//! once and nothing else (besides `image` and the scorer's weight columns): a missing, unknown
//! or repeated column is an error naming the file. An empty `lesion_id` (about a tenth of the
//! official rows) makes the image its own lesion, reported once as a note.

use super::{Dataset, Layout, RowIds, Sample, clean_id, column, image_for, read_csv, unlisted};
use crate::classes::{ClassList, UNK};
use crate::data::schema::{isic, isic2019};
use crate::error::{Result, file_err};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The ISIC 2019 ground-truth CSV under `root` (directly or one folder down); the training part
/// when several parts sit side by side.
pub(super) fn find_ground_truth(root: &Path) -> Option<PathBuf> {
    super::find_ground_truth(root, isic2019::is_ground_truth_file, isic2019::TRAINING)
}

/// Column of each class of `list` and of `UNK` (if present), checking the header: `image`
/// present, no repeated column, no class missing, no unknown column.
pub(super) fn class_columns(
    path: &Path,
    header: &[String],
    list: &ClassList,
) -> Result<(Vec<usize>, Option<usize>)> {
    column(header, isic2019::IMAGE, path)?;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, h) in header.iter().enumerate() {
        if let Some(j) = seen.insert(h.as_str(), i) {
            return Err(file_err(
                path,
                format!("duplicate column '{h}' (columns {} and {})", j + 1, i + 1),
            ));
        }
    }
    let expected = list.prediction_columns();
    let missing: Vec<&str> = list
        .codes()
        .into_iter()
        .filter(|c| !seen.contains_key(c))
        .collect();
    if !missing.is_empty() {
        return Err(file_err(
            path,
            format!(
                "missing column(s) {} (header is: {}; expected image,{})",
                missing.join(","),
                header.join(","),
                expected.join(",")
            ),
        ));
    }
    let other = [isic2019::IMAGE, isic::SCORE_WEIGHT, isic::VALIDATION_WEIGHT];
    let unknown: Vec<&str> = header
        .iter()
        .map(String::as_str)
        .filter(|h| !expected.contains(h) && !other.contains(h))
        .collect();
    if !unknown.is_empty() {
        return Err(file_err(
            path,
            format!(
                "unexpected column(s) {} (expected image,{}; ISIC 2019 has no other class)",
                unknown.join(","),
                expected.join(",")
            ),
        ));
    }
    let cols = list.codes().iter().map(|c| seen[c]).collect();
    Ok((cols, seen.get(UNK).copied()))
}

/// Lesion id and other columns of every image of the metadata file, by image id.
type Metadata = HashMap<String, (String, BTreeMap<String, String>)>;

fn read_metadata(path: &Path) -> Result<Metadata> {
    let (h, rows) = read_csv(path)?;
    let (ci, cl) = (
        column(&h, isic2019::IMAGE, path)?,
        column(&h, isic2019::LESION_ID, path)?,
    );
    let mut out = HashMap::new();
    for row in rows {
        let meta = h
            .iter()
            .enumerate()
            .filter(|(c, _)| *c != ci && *c != cl)
            .map(|(c, name)| (name.clone(), row.get(c).trim().to_string()))
            .collect();
        out.insert(
            clean_id(row.get(ci)),
            (row.get(cl).trim().to_string(), meta),
        );
    }
    Ok(out)
}

pub(super) fn read(
    root: &Path,
    gt: &Path,
    images: &BTreeMap<String, PathBuf>,
    mut problems: Vec<String>,
) -> Result<Dataset> {
    let list = ClassList::isic2019();
    let (header, rows) = read_csv(gt)?;
    let c_image = column(&header, isic2019::IMAGE, gt)?;
    let (cols, c_unk) = class_columns(gt, &header, &list)?;
    let all_cols: Vec<usize> = cols.iter().copied().chain(c_unk).collect();
    let meta_name = isic2019::metadata_for(&gt.file_name().unwrap_or_default().to_string_lossy());
    let meta_path = [
        gt.parent().map(|p| p.join(&meta_name)),
        Some(root.join(&meta_name)),
    ]
    .into_iter()
    .flatten()
    .find(|p| p.is_file());
    let mut notes = Vec::new();
    let metadata = match &meta_path {
        Some(m) => read_metadata(m)?,
        None => {
            notes.push(format!(
                "no {meta_name} found: each image is treated as its own lesion, so images of one lesion may land in both train and validation"
            ));
            HashMap::new()
        }
    };
    let mut samples = Vec::new();
    let mut rows_seen = RowIds::default();
    let (mut no_lesion, mut unk) = (0usize, 0usize);
    for row in &rows {
        let line = row.line;
        let id = clean_id(row.get(c_image));
        if !rows_seen.accept(gt, line, &id, &mut problems) {
            continue;
        }
        let vals: Vec<Option<f64>> = all_cols
            .iter()
            .map(|&c| row.get(c).trim().parse::<f64>().ok())
            .collect();
        let ones: Vec<usize> = (0..vals.len()).filter(|&k| vals[k] == Some(1.0)).collect();
        let valid = vals
            .iter()
            .all(|v| matches!(v, Some(x) if *x == 0.0 || *x == 1.0))
            && ones.len() == 1;
        if !valid {
            let names: Vec<&str> = all_cols.iter().map(|&c| header[c].as_str()).collect();
            problems.push(format!(
                "{}: row {line}: labels of {id} are not one-hot 0/1 over {} ({})",
                gt.display(),
                names.join(","),
                all_cols
                    .iter()
                    .map(|&c| row.get(c))
                    .collect::<Vec<_>>()
                    .join(",")
            ));
            continue;
        }
        if ones[0] >= list.len() {
            unk += 1;
            problems.push(format!(
                "{}: row {line}: {id} is {UNK} (none of the {} trained classes); left out",
                gt.display(),
                list.len()
            ));
            continue;
        }
        let Some(img) = image_for(images, root, gt, line, &id, &mut problems) else {
            continue;
        };
        let (lesion, meta) = match metadata.get(&id) {
            Some((l, m)) if !l.is_empty() => (l.clone(), m.clone()),
            Some((_, m)) => {
                no_lesion += 1;
                (id.clone(), m.clone())
            }
            None => {
                if let Some(m) = &meta_path {
                    problems.push(format!(
                        "{}: image {id} is not listed; treated as its own lesion",
                        m.display()
                    ));
                }
                (id.clone(), BTreeMap::new())
            }
        };
        samples.push(Sample {
            id,
            path: img.clone(),
            label: Some(ones[0]),
            lesion,
            meta,
        });
    }
    if no_lesion > 0 {
        notes.push(format!(
            "{no_lesion} images have an empty lesion_id: each is treated as its own lesion"
        ));
    }
    if unk > 0 {
        notes.push(format!(
            "{unk} {UNK} rows left out: a model learns only the {} classes with images",
            list.len()
        ));
    }
    notes.extend(unlisted(images, &rows_seen.0, gt));
    Ok(Dataset {
        root: root.into(),
        layout: Layout::Isic2019,
        classes: list,
        labels_file: Some(gt.into()),
        samples,
        problems,
        notes,
        has_lesions: meta_path.is_some(),
        left_out: Vec::new(),
    })
}
