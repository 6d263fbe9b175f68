//! Reading labelled data sets in the layouts of SPEC section 3, auto-detected under one folder:
//! 1. HAM10000: `HAM10000_metadata.csv` (or without extension) + images anywhere below;
//! 2. ISIC 2018 Task 3: `ISIC2018_Task3_<Part>_GroundTruth.csv` (one-hot) + images, optional
//!    `ISIC2018_Task3_<Part>_LesionGroupings.csv`;
//! 3. ISIC 2019 Task 1: `ISIC_2019_<Part>_GroundTruth.csv` (one-hot over MEL, NV, BCC, AK, BKL,
//!    DF, VASC, SCC, UNK) + images, optional `ISIC_2019_<Part>_Metadata.csv` (lesion ids);
//!    read by [`isic2019`];
//! 4. a plain folder of images (unlabelled; for `infer` and `embed`).
//!
//! A data set carries its [`ClassList`]: ISIC 2018's for HAM10000, ISIC 2018 and plain folders,
//! ISIC 2019's 8 trained classes for ISIC 2019 (see [`ClassList`] for `UNK`).
//!
//! Rows that cannot be used (image missing, unknown label, duplicate id, ...) are not fatal: they
//! are excluded and listed in `problems`, so `inspect` can show all of them and `train --strict`
//! can refuse. Fatal are: no layout found, an unreadable or malformed CSV, no usable sample.
//!
//! File, folder and column names come from `data::schema` (shared with the `synth` writers);
//! CSVs are read by `io::csv`, folders listed by `io::walk`.

use crate::classes::{self, ClassList};
use crate::data::files::is_image_file;
use crate::data::image::check_file;
use crate::data::schema::{ham, isic};
use crate::error::{Result, file_err};
use crate::io::csv::{self as csv_file, Row};
use crate::io::walk::{Walk, walk};
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

mod isic2019;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Ham10000,
    Isic2018,
    Isic2019,
    Folder,
}

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Layout::Ham10000 => "HAM10000 (metadata CSV)",
            Layout::Isic2018 => "ISIC 2018 Task 3 (ground-truth CSV)",
            Layout::Isic2019 => "ISIC 2019 Task 1 (ground-truth + metadata CSV)",
            Layout::Folder => "plain image folder (no labels)",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Image id without extension, e.g. `ISIC_0024306`.
    pub id: String,
    pub path: PathBuf,
    /// Class index in the data set's [`Dataset::classes`]; None in an unlabelled folder.
    pub label: Option<usize>,
    /// Lesion id; the image id itself when the data set has no lesion groupings.
    pub lesion: String,
    /// Other metadata columns as given (age, sex, localization, dx_type, dataset, ...).
    pub meta: BTreeMap<String, String>,
}

#[derive(Clone, Debug)]
pub struct Dataset {
    pub root: PathBuf,
    pub layout: Layout,
    /// The classes labels index (ISIC 2018's unless the layout has another list).
    pub classes: ClassList,
    /// The file labels came from (metadata or ground-truth CSV).
    pub labels_file: Option<PathBuf>,
    pub samples: Vec<Sample>,
    /// Every problem found, each naming its file (and row) and what is wrong.
    pub problems: Vec<String>,
    /// Facts worth telling the user that are not problems.
    pub notes: Vec<String>,
    /// False when lesion ids were not given (each image is then its own lesion).
    pub has_lesions: bool,
    /// Ids of the images [`Dataset::remove_bad_images`] left out (a split file that lists them
    /// still fits this data set).
    pub left_out: Vec<String>,
}

impl Dataset {
    /// Images per class, in class order.
    pub fn counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.classes.len()];
        for s in &self.samples {
            if let Some(l) = s.label {
                c[l] += 1;
            }
        }
        c
    }
    pub fn lesion_count(&self) -> usize {
        let mut l: Vec<&str> = self.samples.iter().map(|s| s.lesion.as_str()).collect();
        l.sort_unstable();
        l.dedup();
        l.len()
    }

    /// Checks every sample's image file whole without decoding it ([`check_file`]: truncated,
    /// corrupt, not an image, too large), in parallel; the samples that fail are removed and
    /// their problems (each naming the file) returned, in sample order. Training decides here,
    /// when a data set is loaded, which images it uses, so the split, the class weights, the
    /// batches and a resumed run never depend on an image failing mid-epoch. Costs a read of
    /// every file (the structure walk itself is ~0.02 ms for a 600x450 JPEG).
    pub fn remove_bad_images(&mut self) -> Vec<String> {
        let bar = indicatif::ProgressBar::new(self.samples.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "checking images {bar:30} {pos}/{len}  {per_sec}  ETA {eta}",
            )
            .expect("static template"),
        );
        let verdicts: Vec<Option<String>> = self
            .samples
            .par_iter()
            .map(|s| {
                let r = check_file(&s.path).err().map(|e| e.to_string());
                bar.inc(1);
                r
            })
            .collect();
        bar.finish_and_clear();
        let mut bad = Vec::new();
        let mut verdicts = verdicts.into_iter();
        let mut left_out = Vec::new();
        self.samples.retain(|s| match verdicts.next().flatten() {
            Some(problem) => {
                bad.push(problem);
                left_out.push(s.id.clone());
                false
            }
            None => true,
        });
        self.left_out.extend(left_out);
        bad
    }
}

/// Every image file below `root`, by id (file stem). Duplicate ids are reported as problems
/// (the first path in sorted order is kept).
fn index_images(root: &Path, problems: &mut Vec<String>) -> Result<BTreeMap<String, PathBuf>> {
    let paths = walk(root, Walk::FILES)?
        .into_iter()
        .filter(|p| is_image_file(p));
    let mut index: BTreeMap<String, PathBuf> = BTreeMap::new();
    for p in paths {
        let id = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(prev) = index.get(&id) {
            problems.push(format!(
                "{}: duplicate image id '{id}' (also {}); the first one is used",
                p.display(),
                prev.display()
            ));
        } else {
            index.insert(id, p);
        }
    }
    Ok(index)
}

/// Strips a trailing image extension from an id as written in a CSV (`ISIC_0024306.jpg`).
fn clean_id(raw: &str) -> String {
    let t = raw.trim();
    let p = Path::new(t);
    if is_image_file(p) {
        p.file_stem()
            .map_or_else(|| t.to_string(), |s| s.to_string_lossy().into_owned())
    } else {
        t.to_string()
    }
}

/// Reads a CSV into (header, rows) with `io::csv`'s rules; column names are taken without
/// surrounding spaces (hand-edited metadata has them). Errors name the file.
fn read_csv(path: &Path) -> Result<(Vec<String>, Vec<Row>)> {
    let t = csv_file::read(path)?;
    let header = t.header.iter().map(|h| h.trim().to_string()).collect();
    Ok((header, t.rows))
}

fn column(header: &[String], name: &str, path: &Path) -> Result<usize> {
    header.iter().position(|h| h == name).ok_or_else(|| {
        file_err(
            path,
            format!("missing column '{name}' (header is: {})", header.join(",")),
        )
    })
}

fn find_file(root: &Path, names: &[&str]) -> Option<PathBuf> {
    names.iter().map(|n| root.join(n)).find(|p| p.is_file())
}

/// The ground-truth CSV under `root` (directly or one folder down) whose file name `is_gt`
/// accepts; the `training` part when several parts sit side by side. An unreadable folder means
/// no ground truth here (the image index reports it).
pub(super) fn find_ground_truth(
    root: &Path,
    is_gt: impl Fn(&str) -> bool,
    training: &str,
) -> Option<PathBuf> {
    let one_down = Walk {
        max_depth: 1,
        folders: false,
    };
    let found: Vec<PathBuf> = walk(root, one_down)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| is_gt(&n.to_string_lossy())))
        .collect();
    found
        .iter()
        .find(|p| p.to_string_lossy().contains(training))
        .or(found.first())
        .cloned()
}

/// The ISIC 2018 ground-truth CSV under root (`ISIC2018_Task3_<Part>_GroundTruth.csv`, directly
/// or in its `..._GroundTruth/` folder).
fn find_isic_gt(root: &Path) -> Option<PathBuf> {
    find_ground_truth(root, isic::is_ground_truth_file, isic::TRAINING)
}

/// Detects the layout under `root` and reads it.
pub fn load(root: &Path) -> Result<Dataset> {
    if !root.is_dir() {
        return Err(file_err(root, "not a folder"));
    }
    let mut problems = Vec::new();
    let images = index_images(root, &mut problems)?;
    let ds = if let Some(meta) = find_file(root, &ham::METADATA_FILES) {
        read_ham(root, &meta, &images, problems)?
    } else if let Some(gt) = find_isic_gt(root) {
        read_isic(root, &gt, &images, problems)?
    } else if let Some(gt) = isic2019::find_ground_truth(root) {
        isic2019::read(root, &gt, &images, problems)?
    } else if !images.is_empty() {
        let samples = images
            .iter()
            .map(|(id, p)| Sample {
                id: id.clone(),
                path: p.clone(),
                label: None,
                lesion: id.clone(),
                meta: BTreeMap::new(),
            })
            .collect();
        Dataset {
            root: root.into(),
            layout: Layout::Folder,
            classes: ClassList::isic2018(),
            labels_file: None,
            samples,
            problems,
            notes: vec!["no labels: a plain folder of images".into()],
            has_lesions: false,
            left_out: Vec::new(),
        }
    } else {
        return Err(file_err(
            root,
            format!(
                "no data set found: looked for {}, {}*{} (directly or in its _GroundTruth \
                 folder), {}*{} and .jpg/.jpeg/.png images anywhere below",
                ham::METADATA_FILES[0],
                isic::PREFIX,
                isic::GROUND_TRUTH_SUFFIX,
                crate::data::schema::isic2019::PREFIX,
                crate::data::schema::isic2019::GROUND_TRUTH_SUFFIX
            ),
        ));
    };
    if ds.samples.is_empty() {
        let mut detail = "no usable images (empty data set)".to_string();
        for p in ds.problems.iter().take(10) {
            detail.push_str("\n  - ");
            detail.push_str(p);
        }
        return Err(file_err(root, detail));
    }
    Ok(ds)
}

/// Image ids seen so far in a labels CSV, with their row numbers.
#[derive(Default)]
struct RowIds(HashMap<String, u64>);

impl RowIds {
    /// Whether row `line` of `path` with image `id` may be used: not empty, not a duplicate
    /// (both are recorded as problems naming the file and row).
    fn accept(&mut self, path: &Path, line: u64, id: &str, problems: &mut Vec<String>) -> bool {
        if id.is_empty() {
            problems.push(format!("{}: row {line}: empty image id", path.display()));
            return false;
        }
        if let Some(prev) = self.0.insert(id.to_string(), line) {
            problems.push(format!(
                "{}: row {line}: duplicate image id {id} (first on row {prev}); row ignored",
                path.display()
            ));
            return false;
        }
        true
    }
}

/// The file of image `id` named on row `line` of `labels`, or a problem saying it is missing.
fn image_for<'a>(
    images: &'a BTreeMap<String, PathBuf>,
    root: &Path,
    labels: &Path,
    line: u64,
    id: &str,
    problems: &mut Vec<String>,
) -> Option<&'a PathBuf> {
    let img = images.get(id);
    if img.is_none() {
        problems.push(format!(
            "{}: row {line}: image {id} is listed but no file {id}.jpg was found under {}",
            labels.display(),
            root.display()
        ));
    }
    img
}

/// Reports image files that no CSV row names (they are ignored, which may be a mistake).
fn unlisted(
    images: &BTreeMap<String, PathBuf>,
    used: &HashMap<String, u64>,
    labels: &Path,
) -> Option<String> {
    let extra: Vec<&String> = images.keys().filter(|k| !used.contains_key(*k)).collect();
    (!extra.is_empty()).then(|| {
        let shown: Vec<&str> = extra.iter().take(5).map(|s| s.as_str()).collect();
        format!(
            "{} image files are not listed in {} and are ignored (e.g. {})",
            extra.len(),
            labels.display(),
            shown.join(", ")
        )
    })
}

fn read_ham(
    root: &Path,
    path: &Path,
    images: &BTreeMap<String, PathBuf>,
    mut problems: Vec<String>,
) -> Result<Dataset> {
    let (header, rows) = read_csv(path)?;
    let (c_lesion, c_image, c_dx) = (
        column(&header, ham::LESION_ID, path)?,
        column(&header, ham::IMAGE_ID, path)?,
        column(&header, ham::DX, path)?,
    );
    let mut samples = Vec::new();
    let mut rows_seen = RowIds::default();
    for row in &rows {
        let line = row.line;
        let get = |c: usize| row.get(c).trim();
        let id = clean_id(get(c_image));
        if !rows_seen.accept(path, line, &id, &mut problems) {
            continue;
        }
        let Some(label) = classes::from_dx(get(c_dx)) else {
            problems.push(format!(
                "{}: row {line}: unknown label dx='{}' for {id} (expected one of {})",
                path.display(),
                get(c_dx),
                classes::DX.join(", ")
            ));
            continue;
        };
        let Some(img) = image_for(images, root, path, line, &id, &mut problems) else {
            continue;
        };
        let lesion = get(c_lesion);
        let meta = header
            .iter()
            .enumerate()
            .filter(|(c, _)| ![c_lesion, c_image, c_dx].contains(c))
            .map(|(c, h)| (h.clone(), get(c).to_string()))
            .collect();
        samples.push(Sample {
            id: id.clone(),
            path: img.clone(),
            label: Some(label),
            lesion: if lesion.is_empty() {
                id
            } else {
                lesion.to_string()
            },
            meta,
        });
    }
    let mut notes = Vec::new();
    notes.extend(unlisted(images, &rows_seen.0, path));
    Ok(Dataset {
        root: root.into(),
        layout: Layout::Ham10000,
        classes: ClassList::isic2018(),
        labels_file: Some(path.into()),
        samples,
        problems,
        notes,
        has_lesions: true,
        left_out: Vec::new(),
    })
}

fn read_isic(
    root: &Path,
    gt: &Path,
    images: &BTreeMap<String, PathBuf>,
    mut problems: Vec<String>,
) -> Result<Dataset> {
    let (header, rows) = read_csv(gt)?;
    let c_image = column(&header, isic::IMAGE, gt)?;
    let cols: Vec<usize> = classes::CODES
        .iter()
        .map(|c| column(&header, c, gt))
        .collect::<Result<_>>()?;
    // Lesion groupings sit beside the ground truth (same part name) or at the root.
    let part = isic::groupings_for(&gt.file_name().unwrap().to_string_lossy());
    let groupings = [
        gt.parent().map(|p| p.join(&part)),
        gt.parent().and_then(|p| p.parent()).map(|p| p.join(&part)),
        Some(root.join(&part)),
    ]
    .into_iter()
    .flatten()
    .find(|p| p.is_file());
    let mut lesions: HashMap<String, (String, BTreeMap<String, String>)> = HashMap::new();
    let mut notes = Vec::new();
    if let Some(lg) = &groupings {
        let (h, rows) = read_csv(lg)?;
        let (ci, cl) = (
            column(&h, isic::IMAGE, lg)?,
            column(&h, isic::LESION_ID, lg)?,
        );
        for row in rows {
            let id = clean_id(row.get(ci));
            let meta = h
                .iter()
                .enumerate()
                .filter(|(c, _)| *c != ci && *c != cl)
                .map(|(c, name)| (name.clone(), row.get(c).to_string()))
                .collect();
            lesions.insert(id, (row.get(cl).trim().to_string(), meta));
        }
    } else {
        notes.push(format!(
            "no {part} found: each image is treated as its own lesion, so images of one lesion may land in both train and validation"
        ));
    }
    let mut samples = Vec::new();
    let mut rows_seen = RowIds::default();
    for row in &rows {
        let line = row.line;
        let id = clean_id(row.get(c_image));
        if !rows_seen.accept(gt, line, &id, &mut problems) {
            continue;
        }
        let vals: Vec<Option<f64>> = cols
            .iter()
            .map(|&c| row.get(c).trim().parse::<f64>().ok())
            .collect();
        let ones: Vec<usize> = (0..classes::COUNT)
            .filter(|&k| vals[k] == Some(1.0))
            .collect();
        let valid = vals
            .iter()
            .all(|v| matches!(v, Some(x) if *x == 0.0 || *x == 1.0))
            && ones.len() == 1;
        if !valid {
            problems.push(format!(
                "{}: row {line}: labels of {id} are not one-hot 0/1 over {} ({})",
                gt.display(),
                classes::CODES.join(","),
                cols.iter()
                    .map(|&c| row.get(c))
                    .collect::<Vec<_>>()
                    .join(",")
            ));
            continue;
        }
        let Some(img) = image_for(images, root, gt, line, &id, &mut problems) else {
            continue;
        };
        let (lesion, meta) = match lesions.get(&id) {
            Some((l, m)) if !l.is_empty() => (l.clone(), m.clone()),
            _ => {
                if let Some(g) = &groupings {
                    problems.push(format!(
                        "{}: image {id} has no lesion id; treated as its own lesion",
                        g.display()
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
    notes.extend(unlisted(images, &rows_seen.0, gt));
    Ok(Dataset {
        root: root.into(),
        layout: Layout::Isic2018,
        classes: ClassList::isic2018(),
        labels_file: Some(gt.into()),
        samples,
        problems,
        notes,
        has_lesions: groupings.is_some(),
        left_out: Vec::new(),
    })
}
