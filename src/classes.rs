//! Class lists: the 7 classes of ISIC 2018 Task 3 / HAM10000 as constants (SPEC section 3),
//! and [`ClassList`], the run-time list a data set, a model file and a prediction CSV carry
//! (ISIC 2018's, ISIC 2019's 8 trained classes, or any list an `eval` ground truth names).
//!
//! A class is an index 0..[`COUNT`] in ISIC CSV column order (`MEL, NV, BCC, AKIEC, BKL, DF,
//! VASC`): the order of ground-truth and prediction CSV columns, of model outputs and of every
//! per-class row. HAM10000 metadata names the same classes with lowercase `dx` codes. Every
//! reader, writer and report takes names from here, so the order cannot drift between them.

/// Number of classes.
pub const COUNT: usize = 7;

/// Class codes in ISIC CSV column order (the column names of ground-truth and prediction CSVs).
pub const CODES: [&str; COUNT] = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"];

/// HAM10000 `dx` codes, in class order.
pub const DX: [&str; COUNT] = ["mel", "nv", "bcc", "akiec", "bkl", "df", "vasc"];

/// Human-readable names, in class order.
pub const NAMES: [&str; COUNT] = [
    "melanoma",
    "melanocytic nevus",
    "basal cell carcinoma",
    "actinic keratosis / intraepithelial carcinoma",
    "benign keratosis",
    "dermatofibroma",
    "vascular lesion",
];

// Class indices by name, for code that treats one class specially (synthetic looks, the
// seed's oversampling of rare classes).
pub const MEL: usize = 0;
pub const NV: usize = 1;
pub const BCC: usize = 2;
pub const AKIEC: usize = 3;
pub const BKL: usize = 4;
pub const DF: usize = 5;
pub const VASC: usize = 6;

/// Index of an ISIC class code as written in a CSV header (`MEL`, ...; exact match).
pub fn from_code(code: &str) -> Option<usize> {
    CODES.iter().position(|c| *c == code)
}

/// Index of a HAM10000 `dx` code (`mel`, ...). Surrounding spaces and case are ignored, so
/// an ISIC code (`MEL`) is accepted as well, as the metadata reader always has.
pub fn from_dx(dx: &str) -> Option<usize> {
    let dx = dx.trim();
    DX.iter().position(|d| d.eq_ignore_ascii_case(dx))
}

/// One class of a [`ClassList`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Class {
    /// Column name in ground-truth and prediction CSVs (`MEL`, `AK`, ...).
    pub code: String,
    /// Human-readable name.
    pub name: String,
    /// HAM10000 `dx` code of the same class, where HAM10000 has it (`akiec` for ISIC 2019's
    /// `AK`; none for `SCC`).
    pub dx: Option<String>,
}

/// The classes a data set, a model and its predictions use, in column order: a run-time value
/// taken from the data (the ground-truth header, HAM10000's `dx` codes) and recorded in the
/// model file. [`ClassList::isic2018`] is the list of the constants above.
///
/// ISIC 2019 Task 1 has the columns `MEL, NV, BCC, AK, BKL, DF, VASC, SCC, UNK`, but no
/// training image is `UNK` (the column is all zeros in `ISIC_2019_Training_GroundTruth.csv`):
/// nothing can be learned for it. [`ClassList::isic2019`] therefore holds the 8 trained classes
/// and names `UNK` as an *untrained column*: a training ground truth must have it (all zeros;
/// a row with UNK = 1 is left out as a problem), and prediction CSVs for submission carry it as
/// 0.0 ([`ClassList::prediction_columns`]), which is what the official scorer needs to score
/// against the 2019 test ground truth (it requires exactly the truth's columns).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassList {
    classes: Vec<Class>,
    untrained: Vec<String>,
}

/// Pairs of codes that name the same class in different lists: HAM10000 / ISIC 2018 `AKIEC`
/// (actinic keratosis and intraepithelial carcinoma) became ISIC 2019's `AK` (HAM10000's
/// `akiec` images are labelled AK there; invasive SCC is the new class `SCC`).
const SAME_CLASS: [(&str, &str); 1] = [("AKIEC", "AK")];

/// ISIC 2019 Task 1 codes, names and HAM10000 `dx` codes, in its CSV column order.
const ISIC2019: [(&str, &str, Option<&str>); 8] = [
    ("MEL", "melanoma", Some("mel")),
    ("NV", "melanocytic nevus", Some("nv")),
    ("BCC", "basal cell carcinoma", Some("bcc")),
    ("AK", "actinic keratosis", Some("akiec")),
    ("BKL", "benign keratosis", Some("bkl")),
    ("DF", "dermatofibroma", Some("df")),
    ("VASC", "vascular lesion", Some("vasc")),
    ("SCC", "squamous cell carcinoma", None),
];
/// ISIC 2019's column for images of none of the trained classes.
pub const UNK: &str = "UNK";

impl ClassList {
    /// The 7 classes of ISIC 2018 Task 3 / HAM10000 ([`CODES`], [`NAMES`], [`DX`]).
    pub fn isic2018() -> ClassList {
        ClassList {
            classes: (0..COUNT)
                .map(|c| Class {
                    code: CODES[c].into(),
                    name: NAMES[c].into(),
                    dx: Some(DX[c].into()),
                })
                .collect(),
            untrained: Vec::new(),
        }
    }

    /// The 8 trained classes of ISIC 2019 Task 1 (`MEL, NV, BCC, AK, BKL, DF, VASC, SCC`), with
    /// `UNK` as an untrained column (see the type's docs).
    pub fn isic2019() -> ClassList {
        ClassList {
            classes: ISIC2019
                .iter()
                .map(|&(code, name, dx)| Class {
                    code: code.into(),
                    name: name.into(),
                    dx: dx.map(Into::into),
                })
                .collect(),
            untrained: vec![UNK.into()],
        }
    }

    /// The list whose codes are `codes` (a recorded list such as a model file's `classes`):
    /// ISIC 2018's or ISIC 2019's when it is one of them (ISIC 2019's with or without `UNK`),
    /// otherwise a list of those codes named by themselves. Errors on an empty list, an empty
    /// code, a code with a comma, quote or space, and a duplicate.
    pub fn from_codes<S: AsRef<str>>(codes: &[S]) -> Result<ClassList, String> {
        let codes: Vec<&str> = codes.iter().map(AsRef::as_ref).collect();
        for known in [ClassList::isic2018(), ClassList::isic2019()] {
            if codes == known.codes() || codes == known.prediction_columns() {
                return Ok(known);
            }
        }
        if codes.is_empty() {
            return Err("empty class list".into());
        }
        let mut seen = std::collections::HashSet::new();
        for c in &codes {
            if c.is_empty() || c.contains([',', '"', ' ', '\n', '\r', '\t']) {
                return Err(format!("bad class code {c:?}"));
            }
            if !seen.insert(*c) {
                return Err(format!("duplicate class {c}"));
            }
        }
        Ok(ClassList {
            classes: codes
                .iter()
                .map(|&c| Class {
                    code: c.into(),
                    name: c.into(),
                    dx: None,
                })
                .collect(),
            untrained: Vec::new(),
        })
    }

    /// [`ClassList::from_codes`] of a comma-separated list (as recorded in model files).
    pub fn parse(s: &str) -> Result<ClassList, String> {
        ClassList::from_codes(&s.split(',').collect::<Vec<_>>())
    }

    pub fn len(&self) -> usize {
        self.classes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }
    pub fn classes(&self) -> &[Class] {
        &self.classes
    }
    /// Class codes in column order.
    pub fn codes(&self) -> Vec<&str> {
        self.classes.iter().map(|c| c.code.as_str()).collect()
    }
    pub fn code(&self, i: usize) -> &str {
        &self.classes[i].code
    }
    pub fn name(&self, i: usize) -> &str {
        &self.classes[i].name
    }
    /// The codes joined by commas: the CSV header after `image`, and the record in model files.
    pub fn joined(&self) -> String {
        self.codes().join(",")
    }
    /// Columns of the layout that are no trained class (ISIC 2019's `UNK`).
    pub fn untrained(&self) -> &[String] {
        &self.untrained
    }
    /// The columns of a prediction CSV for submission: the classes, then the untrained columns
    /// (written as 0.0).
    pub fn prediction_columns(&self) -> Vec<&str> {
        let mut v = self.codes();
        v.extend(self.untrained.iter().map(String::as_str));
        v
    }

    /// Index of a class code as written in a CSV header (exact match).
    pub fn from_code(&self, code: &str) -> Option<usize> {
        self.classes.iter().position(|c| c.code == code)
    }

    /// Index of the class `code` names in this list, also through a code of the same class in
    /// another list (`AKIEC` finds ISIC 2019's `AK` and `AK` finds ISIC 2018's `AKIEC`): how
    /// rules written for one list's classes (the seed's oversampling) apply to another.
    pub fn same_class(&self, code: &str) -> Option<usize> {
        self.from_code(code).or_else(|| {
            SAME_CLASS
                .iter()
                .filter_map(|&(a, b)| match code {
                    c if c == a => Some(b),
                    c if c == b => Some(a),
                    _ => None,
                })
                .find_map(|other| self.from_code(other))
        })
    }

    /// Index of a HAM10000 `dx` code (`mel`, `akiec`, ...). Surrounding spaces and case are
    /// ignored, and a class code (`MEL`) is accepted as well, as the metadata reader always has.
    pub fn from_dx(&self, dx: &str) -> Option<usize> {
        let dx = dx.trim();
        self.classes
            .iter()
            .position(|c| c.dx.as_deref().is_some_and(|d| d.eq_ignore_ascii_case(dx)))
            .or_else(|| {
                self.classes
                    .iter()
                    .position(|c| c.code.eq_ignore_ascii_case(dx))
            })
    }

    /// The `dx` codes (or lowercase codes where there is none) for messages.
    pub fn dx_names(&self) -> Vec<String> {
        self.classes
            .iter()
            .map(|c| c.dx.clone().unwrap_or_else(|| c.code.to_ascii_lowercase()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_dx_agree() {
        for c in 0..COUNT {
            assert_eq!(from_code(CODES[c]), Some(c));
            assert_eq!(from_dx(DX[c]), Some(c));
            assert_eq!(from_dx(CODES[c]), Some(c));
            assert_eq!(DX[c].to_ascii_uppercase(), CODES[c]);
        }
        assert_eq!([MEL, NV, BCC, AKIEC, BKL, DF, VASC], [0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(from_dx(" Nv "), Some(NV));
        assert_eq!(from_code("mel"), None);
        assert_eq!(from_dx("melanoma"), None);
    }

    #[test]
    fn lists_agree_with_the_constants_and_each_other() {
        let l18 = ClassList::isic2018();
        assert_eq!(l18.codes(), CODES);
        assert_eq!(l18.len(), COUNT);
        for c in 0..COUNT {
            assert_eq!(l18.from_dx(DX[c]), from_dx(DX[c]));
            assert_eq!(l18.from_dx(CODES[c]), Some(c));
            assert_eq!(l18.name(c), NAMES[c]);
        }
        assert_eq!(l18.prediction_columns(), CODES);
        let l19 = ClassList::isic2019();
        assert_eq!(l19.joined(), "MEL,NV,BCC,AK,BKL,DF,VASC,SCC");
        assert_eq!(
            l19.prediction_columns(),
            ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK"]
        );
        // The seed's rules keyed by ISIC 2018 codes find the same class in ISIC 2019.
        assert_eq!(l19.same_class("AKIEC"), Some(3));
        assert_eq!(l18.same_class("AK"), Some(AKIEC));
        assert_eq!(l19.same_class("DF"), Some(DF));
        assert_eq!(l18.same_class("SCC"), None);
        assert_eq!(l19.from_dx("akiec"), Some(3));
        assert_eq!(l19.from_dx(" SCC "), Some(7));
        assert_eq!(l19.from_dx("unk"), None);
        // Recorded lists come back as the known lists.
        assert_eq!(ClassList::parse(&l18.joined()).unwrap(), l18);
        assert_eq!(ClassList::parse(&l19.joined()).unwrap(), l19);
        assert_eq!(
            ClassList::parse("MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK").unwrap(),
            l19
        );
        let other = ClassList::parse("A,B").unwrap();
        assert_eq!(
            (other.len(), other.name(1), other.untrained().len()),
            (2, "B", 0)
        );
        assert!(
            ClassList::parse("A,A")
                .unwrap_err()
                .contains("duplicate class A")
        );
        assert!(ClassList::parse("A,,B").is_err());
        assert!(ClassList::parse("").is_err());
    }
}
