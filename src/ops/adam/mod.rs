//! Adam with bias correction (Kingma & Ba) and optional decoupled weight decay (AdamW,
//! Loshchilov & Hutter), matching `torch.optim.AdamW` (and `Adam` when weight_decay = 0):
//!   p <- p - lr * wd * p
//!   m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
//!   p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

pub mod cpu;
pub mod cuda;
pub mod reference;
#[cfg(test)]
mod tests;

use crate::error::{Result, invalid};
use crate::ops::BackendBase;
use crate::tensor::expect_shape;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

impl AdamConfig {
    pub fn validate(&self, step: u64) -> Result<()> {
        let ok = self.lr.is_finite()
            && self.lr >= 0.0
            && (0.0..1.0).contains(&self.beta1)
            && (0.0..1.0).contains(&self.beta2)
            && self.eps > 0.0
            && self.weight_decay.is_finite()
            && self.weight_decay >= 0.0;
        if !ok {
            return Err(invalid("adam", format!("invalid configuration {self:?}")));
        }
        if step == 0 {
            return Err(invalid("adam", "step counts from 1"));
        }
        Ok(())
    }

    /// Every check of one step (configuration, then the gradient and moments against the
    /// parameter's shape, in this order on every backend), returning the bias corrections
    /// (1 - beta1^step, 1 - beta2^step).
    pub fn check_step(
        &self,
        step: u64,
        param: &[usize],
        grad: &[usize],
        m: &[usize],
        v: &[usize],
    ) -> Result<(f64, f64)> {
        const OP: &str = "adam";
        self.validate(step)?;
        expect_shape(OP, "gradient", grad, param)?;
        expect_shape(OP, "first moment", m, param)?;
        expect_shape(OP, "second moment", v, param)?;
        Ok((
            1.0 - self.beta1.powf(step as f64),
            1.0 - self.beta2.powf(step as f64),
        ))
    }
}

/// What a backend implements: one update in place, shapes checked, with the step's bias
/// corrections `bc` = (1 - beta1^step, 1 - beta2^step) computed once by [`AdamOps`].
pub trait AdamKernels: BackendBase {
    fn adam_update(
        &self,
        param: &mut Self::Tensor,
        grad: &Self::Tensor,
        m: &mut Self::Tensor,
        v: &mut Self::Tensor,
        cfg: &AdamConfig,
        bc: (f64, f64),
    ) -> Result<()>;
}

/// The checked entry point, the same for every backend.
pub trait AdamOps: AdamKernels {
    /// One Adam update in place; `step` counts from 1.
    fn adam_step(
        &self,
        param: &mut Self::Tensor,
        grad: &Self::Tensor,
        m: &mut Self::Tensor,
        v: &mut Self::Tensor,
        cfg: &AdamConfig,
        step: u64,
    ) -> Result<()> {
        let bc = cfg.check_step(
            step,
            self.shape(param),
            self.shape(grad),
            self.shape(m),
            self.shape(v),
        )?;
        self.adam_update(param, grad, m, v, cfg, bc)
    }
}

impl<B: AdamKernels + ?Sized> AdamOps for B {}
