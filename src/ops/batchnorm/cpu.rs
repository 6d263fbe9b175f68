//! Batch norm on the `cpu` backend: the reference's code. Inference folds batch norm into the
//! convolutions (`model::resnet50`), so only the classifier head's small batch norms run here;
//! a fast training path comes with fine-tuning through the backbone.

use super::{BatchNormKernels, BnBatchStats, BnDims, BnParams};
use crate::cpu::CpuBackend;
use crate::error::Result;
use crate::reference::ReferenceBackend;
use crate::tensor::Tensor;

const REF: ReferenceBackend = ReferenceBackend;

impl BatchNormKernels for CpuBackend {
    fn normalize(
        &self,
        x: &Tensor,
        d: BnDims,
        mean: &Tensor,
        var: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        eps: f64,
    ) -> Result<Tensor> {
        REF.normalize(x, d, mean, var, gamma, beta, eps)
    }
    fn batch_stats(&self, x: &Tensor, d: BnDims) -> Result<(Tensor, Tensor)> {
        REF.batch_stats(x, d)
    }
    fn backward(
        &self,
        dy: &Tensor,
        x: &Tensor,
        d: BnDims,
        gamma: &Tensor,
        mean: &Tensor,
        var: &Tensor,
        eps: f64,
        batch_stats: bool,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        REF.backward(dy, x, d, gamma, mean, var, eps, batch_stats)
    }
    fn update_running(
        &self,
        bn: &mut BnParams<Tensor>,
        stats: &BnBatchStats<Tensor>,
        momentum: f64,
    ) -> Result<()> {
        REF.update_running(bn, stats, momentum)
    }
}
