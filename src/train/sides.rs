//! Which views train and which validate, per split protocol: the honest protocol (split by
//! lesion before augmentation, or a given split.csv), the seed's (random split of augmented
//! views, for comparison only), or an official validation set. Writes RUN/split.csv. Also the
//! loading of labelled data sets with the `strict` rule for data set problems.

use std::path::Path;

use super::config::{Protocol, TrainConfig};
use crate::data::dataset::{Dataset, load};
use crate::data::split::{Split, SplitKind, read_split, split, write_split};
use crate::data::views::{View, ViewConfig, make_views, seed_protocol_split};
use crate::error::{Result, file_err, invalid};
use crate::io::atomic::write_atomic;

/// Views of both sides (train, val), per protocol (and writes split.csv).
pub fn make_sides(
    cfg: &TrainConfig,
    ds: &Dataset,
    val_ds: Option<&Dataset>,
) -> Result<(Vec<View>, Vec<View>)> {
    if let Some(vd) = val_ds {
        if cfg.protocol == Protocol::Seed || cfg.split_file.is_some() {
            return Err(invalid(
                "train",
                "--val-data replaces the split: it cannot be combined with --protocol seed or --split-file",
            ));
        }
        // All of `data` trains; the official validation set validates (no augmentation).
        let all: Vec<usize> = (0..ds.samples.len()).collect();
        write_split(
            &cfg.out.join("split.csv"),
            ds,
            &Split {
                train: all.clone(),
                val: vec![],
            },
        )?;
        let vall: Vec<usize> = (0..vd.samples.len()).collect();
        return Ok((
            make_views(ds, &all, &cfg.views, cfg.seed),
            make_views(vd, &vall, &ViewConfig::default(), cfg.seed),
        ));
    }
    match cfg.protocol {
        Protocol::Honest => {
            let sp = match &cfg.split_file {
                Some(f) => read_split(f, ds)?,
                None => split(ds, SplitKind::Lesion, cfg.val_fraction, cfg.seed)?,
            };
            write_split(&cfg.out.join("split.csv"), ds, &sp)?;
            let train = make_views(ds, &sp.train, &cfg.views, cfg.seed);
            let val = make_views(ds, &sp.val, &ViewConfig::default(), cfg.seed);
            Ok((train, val))
        }
        Protocol::Seed => {
            let all: Vec<usize> = (0..ds.samples.len()).collect();
            let (train, val) = seed_protocol_split(
                make_views(ds, &all, &cfg.views, cfg.seed),
                cfg.val_fraction,
                cfg.seed,
            );
            let mut csv = String::from("view,split,label,lesion_id\n");
            for (side, vs) in [("train", &train), ("val", &val)] {
                for v in vs {
                    let s = &ds.samples[v.sample];
                    csv += &format!(
                        "{},{side},{},{}\n",
                        v.name,
                        ds.classes.code(s.label.unwrap_or(0)),
                        s.lesion
                    );
                }
            }
            write_atomic(&cfg.out.join("split.csv"), csv.as_bytes())?;
            Ok((train, val))
        }
    }
}

/// Loads a labelled data set and checks every image file whole ([`Dataset::remove_bad_images`]).
/// With `strict`, any problem (a bad row, a truncated or corrupt image, ...) is an error listing
/// all of them, before the run writes anything; otherwise the affected rows are left out with a
/// warning, and the images left out are returned (each naming the file and its problem) for the
/// run's `skipped.txt`.
pub fn load_labelled(path: &Path, strict: bool) -> Result<(Dataset, Vec<String>)> {
    let mut ds = load(path)?;
    if ds.samples.iter().any(|s| s.label.is_none()) {
        return Err(file_err(
            path,
            "training needs labels (HAM10000 metadata or ISIC ground truth)",
        ));
    }
    let bad = ds.remove_bad_images();
    let count = ds.problems.len() + bad.len();
    if count > 0 && strict {
        return Err(file_err(
            path,
            format!(
                "{count} problems in the data set (--strict):\n  - {}",
                ds.problems
                    .iter()
                    .chain(&bad)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n  - ")
            ),
        ));
    }
    if !ds.problems.is_empty() {
        eprintln!(
            "warning: {}: {} data set problems; affected rows are skipped (see `skinengine inspect`)",
            path.display(),
            ds.problems.len()
        );
    }
    if !bad.is_empty() {
        eprintln!(
            "warning: {}: skipped {} unreadable images (left out of the run; --strict refuses):\n  {}",
            path.display(),
            bad.len(),
            bad.join("\n  ")
        );
    }
    if ds.samples.is_empty() {
        return Err(file_err(path, "no readable image left (empty data set)"));
    }
    Ok((ds, bad))
}
