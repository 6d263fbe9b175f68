//! The 7 classes of ISIC 2018 Task 3 / HAM10000, in one place (SPEC section 3).
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
}
