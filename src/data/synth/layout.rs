//! The layouts a synthetic data set can be written in ([`SynthLayout`]: HAM10000, ISIC 2018
//! Task 3 or ISIC 2019 Task 1), where its files go and what its tables say. Every file, folder and column name
//! comes from `data::schema`, the module the readers in `data::dataset` use too, so what is
//! written here is what they look for.

use super::plan::{HAM_IMAGE_COUNTS, ISIC2019_IMAGE_COUNTS, Plan, sub_seed};
use crate::classes::{self, ClassList};
use crate::data::schema::{ham, isic, isic2019};
use crate::error::Result;
use crate::io::atomic::write_atomic;
use std::path::{Path, PathBuf};

/// Which on-disk layout to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SynthLayout {
    /// `HAM10000_metadata.csv` + `HAM10000_images_part_{1,2}/` (Harvard Dataverse / Kaggle).
    #[default]
    #[value(name = "ham10000")]
    Ham10000,
    /// `ISIC2018_Task3_Training_{Input,GroundTruth}/` + `..._LesionGroupings.csv`.
    #[value(name = "isic2018")]
    Isic2018,
    /// `ISIC_2019_Training_Input/` + `ISIC_2019_Training_{GroundTruth,Metadata}.csv`: 8 classes
    /// (SCC besides ISIC 2018's, AKIEC named AK) in ISIC 2019's proportions, an all-zero UNK
    /// column, and an empty lesion_id for a tenth of the single-image lesions (as in the real
    /// metadata, where some images have none).
    #[value(name = "isic2019")]
    Isic2019,
}

impl SynthLayout {
    pub fn name(self) -> &'static str {
        match self {
            SynthLayout::Ham10000 => "ham10000",
            SynthLayout::Isic2018 => "isic2018",
            SynthLayout::Isic2019 => "isic2019",
        }
    }

    /// The classes the layout's labels index.
    pub fn classes(self) -> ClassList {
        match self {
            SynthLayout::Ham10000 | SynthLayout::Isic2018 => ClassList::isic2018(),
            SynthLayout::Isic2019 => ClassList::isic2019(),
        }
    }

    /// Images per class of the real data set the class proportions follow.
    pub(super) fn image_counts(self) -> &'static [usize] {
        match self {
            SynthLayout::Ham10000 | SynthLayout::Isic2018 => &HAM_IMAGE_COUNTS,
            SynthLayout::Isic2019 => &ISIC2019_IMAGE_COUNTS,
        }
    }
}

/// ISIC 2019 `anatom_site_general` for a HAM10000 localization ("" where it has none).
fn site_2019(localization: &str) -> &'static str {
    match localization {
        "back" => "posterior torso",
        "trunk" | "abdomen" | "chest" => "anterior torso",
        "lower extremity" | "foot" => "lower extremity",
        "upper extremity" | "hand" => "upper extremity",
        "face" | "neck" | "scalp" | "ear" => "head/neck",
        "genital" => "oral/genital",
        "acral" => "palms/soles",
        _ => "",
    }
}

/// HAM10000 `dx_type` values; a lesion's `dx_type` indexes this.
const DX_TYPES: [&str; 4] = ["histo", "follow_up", "consensus", "confocal"];
/// ISIC 2018 `diagnosis_confirm_type` for each of [`DX_TYPES`].
const CONFIRM_TYPES: [&str; 4] = [
    "histopathology",
    "serial imaging showing no change",
    "single image expert consensus",
    "confocal microscopy with consensus dermoscopy",
];

/// The folders a layout's images and tables go in (created before any image is written).
pub(super) fn folders(out: &Path, layout: SynthLayout) -> Vec<PathBuf> {
    match layout {
        SynthLayout::Ham10000 => ham::IMAGE_FOLDERS.iter().map(|f| out.join(f)).collect(),
        SynthLayout::Isic2018 => vec![
            out.join(isic::input_folder(isic::TRAINING)),
            out.join(isic::ground_truth_folder(isic::TRAINING)),
        ],
        SynthLayout::Isic2019 => vec![out.join(isic2019::input_folder(isic2019::TRAINING))],
    }
}

/// The folder of image `k` of `n`: HAM10000 splits the images over its two folders, the first
/// half (rounded up) in part 1.
pub(super) fn image_folder(out: &Path, layout: SynthLayout, k: usize, n: usize) -> PathBuf {
    match layout {
        SynthLayout::Ham10000 if k < n.div_ceil(2) => out.join(ham::IMAGE_FOLDERS[0]),
        SynthLayout::Ham10000 => out.join(ham::IMAGE_FOLDERS[1]),
        SynthLayout::Isic2018 => out.join(isic::input_folder(isic::TRAINING)),
        SynthLayout::Isic2019 => out.join(isic2019::input_folder(isic2019::TRAINING)),
    }
}

/// Names that mark a folder as already holding a data set of one of the layouts.
pub(super) fn dataset_markers() -> Vec<String> {
    ham::METADATA_FILES
        .iter()
        .chain(&ham::IMAGE_FOLDERS)
        .map(|s| s.to_string())
        .chain([
            isic::input_folder(isic::TRAINING),
            isic::ground_truth_folder(isic::TRAINING),
            isic::groupings_file(isic::TRAINING),
            isic2019::input_folder(isic2019::TRAINING),
            isic2019::ground_truth_file(isic2019::TRAINING),
            isic2019::metadata_file(isic2019::TRAINING),
        ])
        .collect()
}

/// Writes the layout's tables for `plan` (images are named by `image_id`, lesions by
/// `lesion_id`; `seed` picks ISIC 2019's empty lesion ids).
pub(super) fn write_tables(
    out: &Path,
    (layout, seed): (SynthLayout, u64),
    plan: &Plan,
    image_id: impl Fn(usize) -> String,
    lesion_id: impl Fn(usize) -> String,
) -> Result<()> {
    let n = plan.image_lesion.len();
    match layout {
        SynthLayout::Isic2019 => {
            let list = layout.classes();
            let (mut gt, mut meta) = (String::new(), String::new());
            gt.push_str(&format!(
                "{},{}\n",
                isic2019::IMAGE,
                list.prediction_columns().join(",")
            ));
            meta.push_str(&isic2019::METADATA_COLUMNS.join(","));
            meta.push('\n');
            let zeros = list.untrained().len();
            for k in 0..n {
                let li = plan.image_lesion[k];
                let l = &plan.lesions[li];
                gt.push_str(&image_id(k));
                for c in 0..list.len() {
                    gt.push_str(if c == l.class { ",1.0" } else { ",0.0" });
                }
                gt.push_str(&",0.0".repeat(zeros));
                gt.push('\n');
                let no_id = l.images.len() == 1 && sub_seed(seed, 3, li as u64).is_multiple_of(10);
                let lesion = if no_id {
                    String::new()
                } else {
                    lesion_id(l.number)
                };
                let age = l.age.map_or_else(String::new, |a| format!("{a}.0"));
                let sex = if l.sex == "unknown" { "" } else { l.sex };
                // In the order of isic2019::METADATA_COLUMNS.
                meta.push_str(&format!(
                    "{},{age},{},{lesion},{sex}\n",
                    image_id(k),
                    site_2019(l.localization)
                ));
            }
            write_atomic(
                &out.join(isic2019::ground_truth_file(isic2019::TRAINING)),
                gt.as_bytes(),
            )?;
            write_atomic(
                &out.join(isic2019::metadata_file(isic2019::TRAINING)),
                meta.as_bytes(),
            )
        }
        SynthLayout::Ham10000 => {
            let mut s = String::with_capacity(64 * (n + 1));
            s.push_str(&ham::COLUMNS.join(","));
            s.push('\n');
            for &k in &plan.row_order {
                let l = &plan.lesions[plan.image_lesion[k]];
                let age = l.age.map_or_else(String::new, |a| format!("{a}.0"));
                // In the order of ham::COLUMNS.
                s.push_str(&format!(
                    "{},{},{},{},{},{},{},{}\n",
                    lesion_id(l.number),
                    image_id(k),
                    classes::DX[l.class],
                    DX_TYPES[l.dx_type],
                    age,
                    l.sex,
                    l.localization,
                    l.dataset
                ));
            }
            write_atomic(&out.join(ham::METADATA_FILES[0]), s.as_bytes())
        }
        SynthLayout::Isic2018 => {
            let mut gt = String::with_capacity(48 * (n + 1));
            let mut groups = String::with_capacity(64 * (n + 1));
            gt.push_str(isic::IMAGE);
            for c in classes::CODES {
                gt.push(',');
                gt.push_str(c);
            }
            gt.push('\n');
            groups.push_str(&isic::GROUPINGS_COLUMNS.join(","));
            groups.push('\n');
            for k in 0..n {
                let l = &plan.lesions[plan.image_lesion[k]];
                gt.push_str(&image_id(k));
                for c in 0..classes::COUNT {
                    gt.push_str(if c == l.class { ",1.0" } else { ",0.0" });
                }
                gt.push('\n');
                // In the order of isic::GROUPINGS_COLUMNS.
                groups.push_str(&format!(
                    "{},{},{}\n",
                    image_id(k),
                    lesion_id(l.number),
                    CONFIRM_TYPES[l.dx_type]
                ));
            }
            write_atomic(
                &out.join(isic::ground_truth_folder(isic::TRAINING))
                    .join(isic::ground_truth_file(isic::TRAINING)),
                gt.as_bytes(),
            )?;
            write_atomic(
                &out.join(isic::groupings_file(isic::TRAINING)),
                groups.as_bytes(),
            )
        }
    }
}
