//! Softmax and cross-entropy on the `cpu` backend: the reference's code. They only ever see the
//! classifier's logits (batch x 7 values per step), where the f64 reference is already linear in
//! time and far below the cost of one dense layer.

use super::{LossKernels, Reduction, reference};
use crate::cpu::CpuBackend;
use crate::error::Result;
use crate::tensor::Tensor;

impl LossKernels for CpuBackend {
    fn softmax_forward(&self, logits: &Tensor, _n: usize, _k: usize) -> Result<Tensor> {
        reference::softmax(logits)
    }
    fn cross_entropy_forward(
        &self,
        logits: &Tensor,
        labels: &[usize],
        class_weights: &[f32],
        reduction: Reduction,
    ) -> Result<(f64, Tensor)> {
        reference::weighted_cross_entropy(logits, labels, class_weights, reduction)
    }
}
