//! Per-feature standardisation of backbone features, fitted on the training features and stored
//! with the model. Backbone features vary little between images relative to their size (a
//! random-init backbone's by ~1%), so the head trains far better on standardised inputs.

use crate::tensor::Tensor;

/// Mean and standard deviation of each feature over the training rows.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureNorm {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl FeatureNorm {
    pub fn fit(x: &Tensor) -> Self {
        let (n, d) = (x.shape()[0], x.shape()[1]);
        let mut mean = vec![0f64; d];
        let mut sq = vec![0f64; d];
        for row in x.data().chunks(d) {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += *v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n.max(1) as f64);
        for row in x.data().chunks(d) {
            for ((q, v), m) in sq.iter_mut().zip(row).zip(&mean) {
                *q += (*v as f64 - m).powi(2);
            }
        }
        // A floor keeps constant features finite (they become 0).
        let std = sq
            .iter()
            .map(|s| ((s / n.max(1) as f64).sqrt().max(1e-6)) as f32)
            .collect();
        FeatureNorm {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            std,
        }
    }

    pub fn apply(&self, mut x: Tensor) -> Tensor {
        let d = self.mean.len();
        for row in x.data_mut().chunks_mut(d) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = (*v - m) / s;
            }
        }
        x
    }
}
