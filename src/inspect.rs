//! Checking a data folder (SPEC section 7): the layout found, images, classes, lesions, notes,
//! and every problem (from the CSVs and files, and from checking every image: decoded, or with
//! `--no-decode` only checked whole).

use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use crate::data::dataset::{Dataset, load};
use crate::data::image::{check_file, load_rgb};
use crate::error::Result;

/// What to check.
#[derive(Clone, Debug)]
pub struct InspectConfig {
    /// Data folder (HAM10000 or ISIC 2018 Task 3 layout, or a plain image folder).
    pub data: PathBuf,
    /// Decode every image (otherwise each image file is only checked whole: truncated,
    /// corrupt, not an image, too large).
    pub decode: bool,
}

/// The outcome: the printable report and the number of problems in it.
pub struct Inspection {
    pub report: String,
    pub problems: usize,
}

/// Loads the data set, checks its images (decoding each, or only checking each file whole) and
/// builds the report.
pub fn inspect(cfg: &InspectConfig) -> Result<Inspection> {
    let ds = load(&cfg.data)?;
    let decode = if cfg.decode {
        decode_check(&ds)
    } else {
        whole_file_check(&ds)
    };
    Ok(Inspection {
        report: report(&ds, &decode),
        problems: ds.problems.len() + decode.len(),
    })
}

/// Decodes every image in parallel; returns one problem per unreadable file (truncated,
/// corrupt, not an image, too large, undecodable), each naming the file.
pub fn decode_check(ds: &Dataset) -> Vec<String> {
    check_all(ds, "decoding", |p| load_rgb(p).map(drop))
}

/// Checks every image file whole without decoding it (what `--no-decode` still does: a read
/// and a structure walk per file, so a truncated or corrupt file is reported either way).
pub fn whole_file_check(ds: &Dataset) -> Vec<String> {
    check_all(ds, "checking", |p| check_file(p).map(drop))
}

fn check_all(ds: &Dataset, what: &str, check: impl Fn(&Path) -> Result<()> + Sync) -> Vec<String> {
    let bar = ProgressBar::new(ds.samples.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{what} {{bar:30}} {{pos}}/{{len}}  {{per_sec}}  ETA {{eta}}"
        ))
        .expect("static template"),
    );
    let mut bad: Vec<String> = ds
        .samples
        .par_iter()
        .filter_map(|s| {
            let r = check(&s.path).err().map(|e| e.to_string());
            bar.inc(1);
            r
        })
        .collect();
    bar.finish_and_clear();
    bad.sort();
    bad
}

/// The report `inspect` prints.
pub fn report(ds: &Dataset, decode_problems: &[String]) -> String {
    let mut s = format!(
        "data: {}\nlayout: {}\n",
        ds.root.display(),
        ds.layout.name()
    );
    if let Some(f) = &ds.labels_file {
        s += &format!("labels: {}\n", f.display());
    }
    s += &format!("images: {}\n", ds.samples.len());
    if ds.samples.iter().any(|x| x.label.is_some()) {
        let counts = ds.counts();
        let n = ds.samples.len().max(1) as f64;
        s += "class   images  share\n";
        for (c, name) in ds.classes.codes().iter().enumerate() {
            s += &format!(
                "{name:<6} {:>7}  {:>5.1}%\n",
                counts[c],
                100.0 * counts[c] as f64 / n
            );
        }
        let mut per: std::collections::BTreeMap<&str, usize> = Default::default();
        for x in &ds.samples {
            *per.entry(x.lesion.as_str()).or_default() += 1;
        }
        let mut hist: std::collections::BTreeMap<usize, usize> = Default::default();
        for v in per.values() {
            *hist.entry(*v).or_default() += 1;
        }
        let h: Vec<String> = hist.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        s += &format!(
            "lesions: {}{} (images per lesion -> lesions: {})\n",
            ds.lesion_count(),
            if ds.has_lesions {
                ""
            } else {
                " (no lesion ids: one per image)"
            },
            h.join(", ")
        );
    }
    for n in &ds.notes {
        s += &format!("note: {n}\n");
    }
    let total = ds.problems.len() + decode_problems.len();
    s += &format!("problems: {total}\n");
    for p in ds.problems.iter().chain(decode_problems) {
        s += &format!("  - {p}\n");
    }
    s
}
