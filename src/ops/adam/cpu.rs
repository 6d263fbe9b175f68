//! Adam on the `cpu` backend: the reference's f64-per-element loop. Only the head's parameters
//! (a few hundred thousand values) are updated today, where the loop costs well under a
//! millisecond; fine-tuning the backbone brings a fast path.

use super::{AdamConfig, AdamKernels, reference};
use crate::cpu::CpuBackend;
use crate::error::Result;
use crate::tensor::Tensor;

impl AdamKernels for CpuBackend {
    fn adam_update(
        &self,
        param: &mut Tensor,
        grad: &Tensor,
        m: &mut Tensor,
        v: &mut Tensor,
        cfg: &AdamConfig,
        bc: (f64, f64),
    ) -> Result<()> {
        reference::step(param, grad, m, v, cfg, bc)
    }
}
