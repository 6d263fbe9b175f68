//! Reference softmax and weighted cross-entropy, max-subtracted for stability.

use super::{LossKernels, Reduction};
use crate::error::Result;
use crate::real::Real;
use crate::reference::ReferenceBackend;
use crate::tensor::Tensor;

/// Row-wise softmax of [N, K] logits.
pub fn softmax<T: Real>(logits: &Tensor<T>) -> Result<Tensor<T>> {
    let [_, k] = logits.dims2("softmax", "logits")?;
    let mut out = Vec::with_capacity(logits.len());
    for row in logits.data().chunks(k.max(1)) {
        let m = row
            .iter()
            .map(|v| v.to_f64())
            .fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = row.iter().map(|v| (v.to_f64() - m).exp()).collect();
        let s: f64 = e.iter().sum();
        out.extend(e.into_iter().map(|v| T::from_f64(v / s)));
    }
    Tensor::new(logits.shape(), out)
}

/// Loss and dL/dlogits for checked arguments ([`super::check`]).
/// dL/dz_j = f_j (softmax(z_j) - onehot(y_j)) with f_j = w[y_j] / sum w[y] (normalized) or
/// mean(w[y]) / N (seed).
pub fn weighted_cross_entropy<T: Real>(
    logits: &Tensor<T>,
    labels: &[usize],
    class_weights: &[f32],
    reduction: Reduction,
) -> Result<(f64, Tensor<T>)> {
    let [n, k] = logits.dims2("cross_entropy", "logits")?;
    let p = softmax(&logits.cast::<f64>())?;
    let w = |j: usize| class_weights[labels[j]] as f64;
    let sum_w: f64 = (0..n).map(w).sum();
    // logsumexp form: ln(softmax) would underflow to -inf for very negative logits.
    let ce = |j: usize| {
        let row = &logits.data()[j * k..(j + 1) * k];
        let m = row
            .iter()
            .map(|v| v.to_f64())
            .fold(f64::NEG_INFINITY, f64::max);
        let lse = m + row.iter().map(|v| (v.to_f64() - m).exp()).sum::<f64>().ln();
        lse - row[labels[j]].to_f64()
    };
    let (loss, factor): (f64, Box<dyn Fn(usize) -> f64>) = match reduction {
        Reduction::Normalized => (
            (0..n).map(|j| w(j) * ce(j)).sum::<f64>() / sum_w,
            Box::new(|j| w(j) / sum_w),
        ),
        Reduction::Seed => {
            let mean_w = sum_w / n as f64;
            (
                (0..n).map(ce).sum::<f64>() / n as f64 * mean_w,
                Box::new(move |_| mean_w / n as f64),
            )
        }
    };
    let grad = Tensor::from_fn(logits.shape(), |idx| {
        let (j, c) = (idx / k, idx % k);
        let onehot = if c == labels[j] { 1.0 } else { 0.0 };
        T::from_f64(factor(j) * (p.data()[idx] - onehot))
    });
    Ok((loss, grad))
}

impl LossKernels for ReferenceBackend {
    fn softmax_forward(&self, logits: &Tensor, _n: usize, _k: usize) -> Result<Tensor> {
        softmax(logits)
    }
    fn cross_entropy_forward(
        &self,
        logits: &Tensor,
        labels: &[usize],
        class_weights: &[f32],
        reduction: Reduction,
    ) -> Result<(f64, Tensor)> {
        weighted_cross_entropy(logits, labels, class_weights, reduction)
    }
}
