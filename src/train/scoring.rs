//! Scoring a head on standardised features: the mean loss and softmax probabilities over all
//! rows (per epoch on train and validation, and once with the best model on the validation and
//! the official test set).

use super::head::Head;
use super::step::{BatchLoss, batch_loss};
use crate::backend::Backend;
use crate::error::Result;
use crate::ops::loss::Reduction;
use crate::tensor::Tensor;

/// Predictions of the best model on a labelled set.
pub struct Scored {
    pub ids: Vec<String>,
    pub labels: Vec<usize>,
    pub probs: Vec<Vec<f32>>,
}

/// The rows `idx` of a 2-d tensor.
pub fn rows_of(t: &Tensor, idx: &[usize]) -> Tensor {
    let w = t.shape()[1];
    let mut d = Vec::with_capacity(idx.len() * w);
    for &i in idx {
        d.extend_from_slice(&t.data()[i * w..(i + 1) * w]);
    }
    Tensor::new(&[idx.len(), w], d).expect("row gather")
}

/// Inference over all rows of `x` in chunks: (mean loss, softmax probabilities). A chunk whose
/// labels all weigh 0 contributes no loss; any other loss error is returned.
pub fn predict<B: Backend>(
    b: &B,
    h: &Head<B>,
    x: &Tensor,
    labels: &[usize],
    w: &[f32],
    red: Reduction,
) -> Result<(f64, Vec<Vec<f32>>)> {
    let (mut loss, mut probs) = (0.0, Vec::new());
    let k = w.len();
    let n = x.shape()[0];
    for start in (0..n).step_by(1024) {
        let idx: Vec<usize> = (start..(start + 1024).min(n)).collect();
        let (logits, _) = h.forward(b, &b.upload(&rows_of(x, &idx))?, false)?;
        let lab: Vec<usize> = idx.iter().map(|&i| labels[i]).collect();
        if let BatchLoss::Computed((l, _)) =
            batch_loss(&lab, w, || b.weighted_cross_entropy(&logits, &lab, w, red))?
        {
            loss += l * idx.len() as f64;
        }
        let p = b.download(&b.softmax(&logits)?)?;
        probs.extend(p.data().chunks(k).map(<[f32]>::to_vec));
    }
    Ok((loss / n.max(1) as f64, probs))
}
