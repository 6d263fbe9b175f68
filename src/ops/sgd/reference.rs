//! Reference SGD step, in f64 per element, and the `reference` backend's kernel.

use super::{Mode, SgdConfig, SgdKernels};
use crate::error::Result;
use crate::real::Real;
use crate::reference::ReferenceBackend;
use crate::tensor::Tensor;

/// One update of `param` in place, torch's order of operations; `buf` is the momentum buffer,
/// untouched in [`Mode::Plain`]. The buffer's new value is used unrounded for the direction and
/// stored rounded to `T`.
pub fn step<T: Real>(
    param: &mut Tensor<T>,
    grad: &Tensor<T>,
    buf: &mut Tensor<T>,
    cfg: &SgdConfig,
    mode: Mode,
) -> Result<()> {
    let (lr, mu, wd) = (cfg.lr, cfg.momentum, cfg.weight_decay);
    for i in 0..param.len() {
        let p = param.data()[i].to_f64();
        let mut g = grad.data()[i].to_f64();
        if wd != 0.0 {
            g += wd * p;
        }
        if mode != Mode::Plain {
            let b = if mode == Mode::FirstMomentum {
                g
            } else {
                mu * buf.data()[i].to_f64() + (1.0 - cfg.dampening) * g
            };
            buf.data_mut()[i] = T::from_f64(b);
            g = if cfg.nesterov { g + mu * b } else { b };
        }
        param.data_mut()[i] = T::from_f64(p - lr * g);
    }
    Ok(())
}

impl SgdKernels for ReferenceBackend {
    fn sgd_update(
        &self,
        param: &mut Tensor,
        grad: &Tensor,
        buf: &mut Tensor,
        cfg: &SgdConfig,
        mode: Mode,
    ) -> Result<()> {
        step(param, grad, buf, cfg, mode)
    }
}
