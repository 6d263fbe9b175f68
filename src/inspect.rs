//! Checking a data folder (SPEC section 7): the layout found, images, classes, lesions, notes,
//! and every problem (from the CSVs and files, and, unless skipped, from decoding every image).

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use crate::classes;
use crate::data::dataset::{Dataset, load};
use crate::data::image::load_rgb;
use crate::error::Result;

/// What to check.
#[derive(Clone, Debug)]
pub struct InspectConfig {
    /// Data folder (HAM10000 or ISIC 2018 Task 3 layout, or a plain image folder).
    pub data: PathBuf,
    /// Decode every image (otherwise only the files and CSVs are checked).
    pub decode: bool,
}

/// The outcome: the printable report and the number of problems in it.
pub struct Inspection {
    pub report: String,
    pub problems: usize,
}

/// Loads the data set, decodes its images (if asked) and builds the report.
pub fn inspect(cfg: &InspectConfig) -> Result<Inspection> {
    let ds = load(&cfg.data)?;
    let decode = if cfg.decode {
        decode_check(&ds)
    } else {
        Vec::new()
    };
    Ok(Inspection {
        report: report(&ds, &decode),
        problems: ds.problems.len() + decode.len(),
    })
}

/// Decodes every image in parallel; returns one problem per unreadable file.
pub fn decode_check(ds: &Dataset) -> Vec<String> {
    let bar = ProgressBar::new(ds.samples.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("decoding {bar:30} {pos}/{len}  {per_sec}  ETA {eta}")
            .expect("static template"),
    );
    let mut bad: Vec<String> = ds
        .samples
        .par_iter()
        .filter_map(|s| {
            let r = load_rgb(&s.path).err().map(|e| e.to_string());
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
        for (c, name) in classes::CODES.iter().enumerate() {
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
