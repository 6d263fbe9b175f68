//! Softmax and class-weighted cross-entropy from logits [N, K] and labels in 0..K.
//!
//! CE_j = logsumexp(z_j) - z_j[y_j]. Two reductions:
//! - `Normalized`: L = sum_j w[y_j] CE_j / sum_j w[y_j] (PyTorch's weighted "mean"; a weighted
//!   average, so the loss scale does not depend on the weights' scale).
//! - `Seed`: L = mean_j CE_j * mean_j w[y_j], what the seed's TensorFlow code computed
//!   (`reduce_mean(ce) * reduce_mean(weights)`, SPEC section 2): every sample's gradient is scaled
//!   by the same batch-level factor, so the weights barely re-balance classes.

pub mod cpu;
pub mod cuda;
pub mod reference;
#[cfg(test)]
mod tests;

use crate::error::{Result, invalid, shape_err};
use crate::ops::BackendBase;
use crate::tensor::ShapeFmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Reduction {
    #[default]
    Normalized,
    Seed,
}

impl std::str::FromStr for Reduction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "normalized" => Ok(Reduction::Normalized),
            "seed" => Ok(Reduction::Seed),
            _ => Err(format!(
                "unknown loss reduction '{s}' (expected normalized or seed)"
            )),
        }
    }
}

/// Validates logits [N, K], N labels in 0..K and K finite non-negative class weights.
/// Returns (n, k).
pub fn check(logits: &[usize], labels: &[usize], weights: &[f32]) -> Result<(usize, usize)> {
    const OP: &str = "cross_entropy";
    let &[n, k] = logits else {
        return Err(shape_err(
            OP,
            format!("logits must be [N, classes], got {}", ShapeFmt(logits)),
        ));
    };
    if n == 0 || k == 0 {
        return Err(shape_err(
            OP,
            format!("logits {} are empty", ShapeFmt(logits)),
        ));
    }
    if labels.len() != n {
        return Err(shape_err(
            OP,
            format!(
                "logits {} need {n} labels, got {}",
                ShapeFmt(logits),
                labels.len()
            ),
        ));
    }
    if weights.len() != k {
        return Err(shape_err(
            OP,
            format!(
                "logits {} have {k} classes but {} class weights were given",
                ShapeFmt(logits),
                weights.len()
            ),
        ));
    }
    if let Some((j, &y)) = labels.iter().enumerate().find(|&(_, &y)| y >= k) {
        return Err(invalid(
            OP,
            format!("label {y} of sample {j} is not below {k} classes"),
        ));
    }
    if let Some((c, w)) = weights
        .iter()
        .enumerate()
        .find(|(_, w)| !(w.is_finite() && **w >= 0.0))
    {
        return Err(invalid(
            OP,
            format!("class weight {c} is {w}; weights must be finite and >= 0"),
        ));
    }
    if labels.iter().all(|&y| weights[y] == 0.0) {
        return Err(invalid(
            OP,
            "every sample of the batch has class weight 0, so the loss is undefined",
        ));
    }
    Ok((n, k))
}

/// What a backend implements; arguments are already checked by [`LossOps`].
pub trait LossKernels: BackendBase {
    /// Row-wise softmax of logits [n, k].
    fn softmax_forward(&self, logits: &Self::Tensor, n: usize, k: usize) -> Result<Self::Tensor>;
    /// Loss and dL/dlogits for logits [n, k], n labels below k and k valid class weights that are
    /// not all zero over the batch's labels.
    fn cross_entropy_forward(
        &self,
        logits: &Self::Tensor,
        labels: &[usize],
        class_weights: &[f32],
        reduction: Reduction,
    ) -> Result<(f64, Self::Tensor)>;
}

/// The checked entry points, the same for every backend.
pub trait LossOps: LossKernels {
    fn softmax(&self, logits: &Self::Tensor) -> Result<Self::Tensor> {
        let &[n, k] = self.shape(logits) else {
            return Err(shape_err(
                "softmax",
                format!("logits must be 2-d, got {}", ShapeFmt(self.shape(logits))),
            ));
        };
        self.softmax_forward(logits, n, k)
    }
    /// Weighted cross-entropy of the batch and its gradient with respect to the logits.
    fn weighted_cross_entropy(
        &self,
        logits: &Self::Tensor,
        labels: &[usize],
        class_weights: &[f32],
        reduction: Reduction,
    ) -> Result<(f64, Self::Tensor)> {
        check(self.shape(logits), labels, class_weights)?;
        self.cross_entropy_forward(logits, labels, class_weights, reduction)
    }
}

impl<B: LossKernels + ?Sized> LossOps for B {}
