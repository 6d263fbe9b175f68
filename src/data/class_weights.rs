//! Class weights for the loss (one weight per class, not backbone weights): none, the
//! seed's frequency weights, balanced inverse frequency, or given numbers.

use crate::classes;
use crate::error::{Result, invalid};
use std::str::FromStr;

#[derive(Clone, Debug, PartialEq, Default)]
pub enum ClassWeights {
    /// All 1.
    #[default]
    None,
    /// Class frequency in the training labels (the seed's choice: common classes weigh MORE).
    Frequency,
    /// Inverse frequency, "balanced": total / (classes * count); absent classes get 0.
    Inverse,
    /// Given weights, one per class in CSV order (as many as the data set's class list has:
    /// 7 for ISIC 2018 / HAM10000, 8 for ISIC 2019; checked by [`ClassWeights::compute_for`]).
    Explicit(Vec<f32>),
}

impl FromStr for ClassWeights {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(ClassWeights::None),
            "frequency" => Ok(ClassWeights::Frequency),
            "inverse" => Ok(ClassWeights::Inverse),
            _ => {
                let v: Vec<f32> = s
                    .split(',')
                    .map(|x| x.trim().parse::<f32>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| format!("class weights must be none, frequency, inverse or one number per class w1,..,wK; got '{s}'"))?;
                // The data set's list is not known yet: accept the lengths of the known lists
                // here, and check against the data in compute_for.
                let known = [classes::COUNT, classes::ClassList::isic2019().len()];
                if !known.contains(&v.len()) || v.iter().any(|w| !w.is_finite() || *w < 0.0) {
                    return Err(format!(
                        "explicit class weights need 7 (ISIC 2018, HAM10000) or 8 (ISIC 2019) finite non-negative numbers, got '{s}'"
                    ));
                }
                Ok(ClassWeights::Explicit(v))
            }
        }
    }
}

impl ClassWeights {
    /// The weights (one per class of ISIC 2018) for training labels `labels`.
    pub fn compute(&self, labels: &[usize]) -> Result<Vec<f32>> {
        self.compute_for(&classes::ClassList::isic2018(), labels)
    }

    /// The weights, one per class of `list`, for training labels `labels`. The rules are the
    /// same for every list (frequency and inverse count the list's classes); explicit weights
    /// must number as many as the list's classes.
    pub fn compute_for(&self, list: &classes::ClassList, labels: &[usize]) -> Result<Vec<f32>> {
        let k = list.len();
        let mut counts = vec![0usize; k];
        for &l in labels {
            if l >= k {
                return Err(invalid("class_weights", format!("label {l} out of range")));
            }
            counts[l] += 1;
        }
        let n = labels.len().max(1) as f64;
        Ok(match self {
            ClassWeights::None => vec![1.0; k],
            ClassWeights::Frequency => counts.iter().map(|&c| (c as f64 / n) as f32).collect(),
            ClassWeights::Inverse => counts
                .iter()
                .map(|&c| {
                    if c == 0 {
                        0.0
                    } else {
                        (n / (k as f64 * c as f64)) as f32
                    }
                })
                .collect(),
            ClassWeights::Explicit(v) if v.len() != k => {
                return Err(invalid(
                    "class_weights",
                    format!(
                        "{} explicit class weights for the {k} classes {} of the data",
                        v.len(),
                        list.joined()
                    ),
                ));
            }
            ClassWeights::Explicit(v) => v.clone(),
        })
    }
}
