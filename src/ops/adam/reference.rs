//! Reference Adam step, in f64 per element, and the `reference` backend's kernel.

use super::{AdamConfig, AdamKernels};
use crate::error::Result;
use crate::real::Real;
use crate::reference::ReferenceBackend;
use crate::tensor::Tensor;

/// One update of `param` in place; `m`, `v` are the moment buffers (zeros before step 1); `bc`
/// the bias corrections of the step ([`AdamConfig::check_step`]).
pub fn step<T: Real>(
    param: &mut Tensor<T>,
    grad: &Tensor<T>,
    m: &mut Tensor<T>,
    v: &mut Tensor<T>,
    cfg: &AdamConfig,
    (bc1, bc2): (f64, f64),
) -> Result<()> {
    for i in 0..param.len() {
        let g = grad.data()[i].to_f64();
        let mut p = param.data()[i].to_f64();
        p -= cfg.lr * cfg.weight_decay * p;
        let mi = cfg.beta1 * m.data()[i].to_f64() + (1.0 - cfg.beta1) * g;
        let vi = cfg.beta2 * v.data()[i].to_f64() + (1.0 - cfg.beta2) * g * g;
        p -= cfg.lr * (mi / bc1) / ((vi / bc2).sqrt() + cfg.eps);
        param.data_mut()[i] = T::from_f64(p);
        m.data_mut()[i] = T::from_f64(mi);
        v.data_mut()[i] = T::from_f64(vi);
    }
    Ok(())
}

impl AdamKernels for ReferenceBackend {
    fn adam_update(
        &self,
        param: &mut Tensor,
        grad: &Tensor,
        m: &mut Tensor,
        v: &mut Tensor,
        cfg: &AdamConfig,
        bc: (f64, f64),
    ) -> Result<()> {
        step(param, grad, m, v, cfg, bc)
    }
}
