//! The on-disk layouts of SPEC section 3, by name: file names, folder names and column names of
//! HAM10000, ISIC 2018 Task 3 and ISIC 2019 Task 1 data sets. The readers (`data::dataset`, `metrics`) and the
//! writers (`data::synth`) take every name from here, so a synthetic set is by construction
//! what the readers look for.

/// HAM10000 (Harvard Dataverse / Kaggle): one metadata CSV, images in two folders.
pub mod ham {
    /// The metadata file, with or without extension (both exist in the wild); the first is
    /// what `synth` writes.
    pub const METADATA_FILES: [&str; 2] = ["HAM10000_metadata.csv", "HAM10000_metadata"];
    /// Image folders of the download (images are found anywhere below the root, though).
    pub const IMAGE_FOLDERS: [&str; 2] = ["HAM10000_images_part_1", "HAM10000_images_part_2"];

    pub const LESION_ID: &str = "lesion_id";
    pub const IMAGE_ID: &str = "image_id";
    /// Diagnosis as a `dx` code (`classes::DX`).
    pub const DX: &str = "dx";
    pub const DX_TYPE: &str = "dx_type";
    pub const AGE: &str = "age";
    pub const SEX: &str = "sex";
    pub const LOCALIZATION: &str = "localization";
    /// Only in some releases; optional for the reader.
    pub const DATASET: &str = "dataset";
    /// Metadata columns in file order, as `synth` writes them.
    pub const COLUMNS: [&str; 8] = [
        LESION_ID,
        IMAGE_ID,
        DX,
        DX_TYPE,
        AGE,
        SEX,
        LOCALIZATION,
        DATASET,
    ];
}

/// ISIC 2018 Task 3: `ISIC2018_Task3_<Part>_...` files, `<Part>` being `Training`,
/// `Validation` or `Test`.
pub mod isic {
    /// Start of every file and folder name of the layout.
    pub const PREFIX: &str = "ISIC2018_Task3_";
    /// End of a ground-truth CSV's name (after the part).
    pub const GROUND_TRUTH_SUFFIX: &str = "_GroundTruth.csv";
    /// End of a lesion-groupings CSV's name (after the part).
    pub const GROUPINGS_SUFFIX: &str = "_LesionGroupings.csv";
    /// The part preferred when several sit side by side, and the one `synth` writes.
    pub const TRAINING: &str = "Training";

    /// Image id column of the ground truth, the lesion groupings and prediction CSVs; the
    /// class columns are `classes::CODES`.
    pub const IMAGE: &str = "image";
    /// Optional per-row weights of a ground-truth CSV (the official scorer's columns).
    pub const SCORE_WEIGHT: &str = "score_weight";
    pub const VALIDATION_WEIGHT: &str = "validation_weight";
    /// Lesion groupings columns (after [`IMAGE`]).
    pub const LESION_ID: &str = "lesion_id";
    pub const CONFIRM_TYPE: &str = "diagnosis_confirm_type";
    /// Lesion groupings columns in file order.
    pub const GROUPINGS_COLUMNS: [&str; 3] = [IMAGE, LESION_ID, CONFIRM_TYPE];

    /// Folder of the images of `part`.
    pub fn input_folder(part: &str) -> String {
        format!("{PREFIX}{part}_Input")
    }
    /// Folder holding the ground-truth CSV of `part`.
    pub fn ground_truth_folder(part: &str) -> String {
        format!("{PREFIX}{part}_GroundTruth")
    }
    /// Ground-truth CSV of `part`.
    pub fn ground_truth_file(part: &str) -> String {
        format!("{PREFIX}{part}{GROUND_TRUTH_SUFFIX}")
    }
    /// Lesion groupings CSV of `part`.
    pub fn groupings_file(part: &str) -> String {
        format!("{PREFIX}{part}{GROUPINGS_SUFFIX}")
    }
    /// Whether a file name is a ground-truth CSV of some part.
    pub fn is_ground_truth_file(name: &str) -> bool {
        name.starts_with(PREFIX) && name.ends_with(GROUND_TRUTH_SUFFIX)
    }
    /// The lesion groupings file name of the same part as ground-truth file `gt_name`.
    pub fn groupings_for(gt_name: &str) -> String {
        gt_name.replace(GROUND_TRUTH_SUFFIX, GROUPINGS_SUFFIX)
    }
}

/// ISIC 2019 Task 1: `ISIC_2019_<Part>_...` files, `<Part>` being `Training` or `Test`: the
/// images in `ISIC_2019_<Part>_Input/`, a one-hot ground truth over the classes of
/// [`crate::classes::ClassList::isic2019`] and `UNK`, and a metadata CSV (age, site, sex and
/// lesion id, which is empty for some images) beside it.
pub mod isic2019 {
    /// Start of every file and folder name of the layout.
    pub const PREFIX: &str = "ISIC_2019_";
    pub const GROUND_TRUTH_SUFFIX: &str = "_GroundTruth.csv";
    pub const METADATA_SUFFIX: &str = "_Metadata.csv";
    /// The part preferred when several sit side by side, and the one `synth` writes.
    pub const TRAINING: &str = "Training";

    /// Image id column of the ground truth and the metadata (as in ISIC 2018).
    pub const IMAGE: &str = super::isic::IMAGE;
    pub const AGE: &str = "age_approx";
    pub const SITE: &str = "anatom_site_general";
    pub const LESION_ID: &str = "lesion_id";
    pub const SEX: &str = "sex";
    /// Metadata columns in file order (as in the official file).
    pub const METADATA_COLUMNS: [&str; 5] = [IMAGE, AGE, SITE, LESION_ID, SEX];

    pub fn input_folder(part: &str) -> String {
        format!("{PREFIX}{part}_Input")
    }
    pub fn ground_truth_file(part: &str) -> String {
        format!("{PREFIX}{part}{GROUND_TRUTH_SUFFIX}")
    }
    pub fn metadata_file(part: &str) -> String {
        format!("{PREFIX}{part}{METADATA_SUFFIX}")
    }
    pub fn is_ground_truth_file(name: &str) -> bool {
        name.starts_with(PREFIX) && name.ends_with(GROUND_TRUTH_SUFFIX)
    }
    /// The metadata file name of the same part as ground-truth file `gt_name`.
    pub fn metadata_for(gt_name: &str) -> String {
        gt_name.replace(GROUND_TRUTH_SUFFIX, METADATA_SUFFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::{isic, isic2019};

    #[test]
    fn isic2019_names_of_a_part() {
        let gt = isic2019::ground_truth_file(isic2019::TRAINING);
        assert_eq!(gt, "ISIC_2019_Training_GroundTruth.csv");
        assert!(isic2019::is_ground_truth_file(&gt));
        assert!(!isic::is_ground_truth_file(&gt));
        assert_eq!(
            isic2019::metadata_for(&gt),
            "ISIC_2019_Training_Metadata.csv"
        );
        assert_eq!(isic2019::input_folder("Test"), "ISIC_2019_Test_Input");
    }

    #[test]
    fn isic_names_of_a_part() {
        let gt = isic::ground_truth_file(isic::TRAINING);
        assert_eq!(gt, "ISIC2018_Task3_Training_GroundTruth.csv");
        assert!(isic::is_ground_truth_file(&gt));
        assert_eq!(
            isic::groupings_for(&gt),
            isic::groupings_file(isic::TRAINING)
        );
        assert_eq!(
            isic::groupings_file("Training"),
            "ISIC2018_Task3_Training_LesionGroupings.csv"
        );
        assert_eq!(
            isic::input_folder("Validation"),
            "ISIC2018_Task3_Validation_Input"
        );
        assert_eq!(
            isic::ground_truth_folder("Test"),
            "ISIC2018_Task3_Test_GroundTruth"
        );
    }
}
