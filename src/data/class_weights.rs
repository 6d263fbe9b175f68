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
    /// Given weights, one per class in CSV order.
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
                    .map_err(|_| format!("class weights must be none, frequency, inverse or 7 numbers w1,..,w7; got '{s}'"))?;
                if v.len() != classes::COUNT || v.iter().any(|w| !w.is_finite() || *w < 0.0) {
                    return Err(format!(
                        "explicit class weights need 7 finite non-negative numbers, got '{s}'"
                    ));
                }
                Ok(ClassWeights::Explicit(v))
            }
        }
    }
}

impl ClassWeights {
    /// The weights (one per class) for training labels `labels`.
    pub fn compute(&self, labels: &[usize]) -> Result<[f32; classes::COUNT]> {
        let mut counts = [0usize; classes::COUNT];
        for &l in labels {
            if l >= classes::COUNT {
                return Err(invalid("class_weights", format!("label {l} out of range")));
            }
            counts[l] += 1;
        }
        let n = labels.len().max(1) as f64;
        Ok(match self {
            ClassWeights::None => [1.0; classes::COUNT],
            ClassWeights::Frequency => counts.map(|c| (c as f64 / n) as f32),
            ClassWeights::Inverse => counts.map(|c| {
                if c == 0 {
                    0.0
                } else {
                    (n / (classes::COUNT as f64 * c as f64)) as f32
                }
            }),
            ClassWeights::Explicit(v) => std::array::from_fn(|i| v[i]),
        })
    }
}
