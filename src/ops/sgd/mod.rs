//! Stochastic gradient descent with momentum, dampening, Nesterov momentum and (coupled, L2)
//! weight decay, matching `torch.optim.SGD` step for step (its documented algorithm, `maximize`
//! aside):
//!   g <- g + wd p                                     (when wd != 0)
//!   b <- g                        at step 1           (when momentum != 0)
//!   b <- mu b + (1 - dampening) g after it
//!   g <- g + mu b  (Nesterov)  or  g <- b
//!   p <- p - lr g
//!
//! As in torch, the first step initialises the momentum buffer with the (decayed) gradient
//! itself, undamped; the buffer is neither read nor written when momentum is 0 (torch keeps
//! none), so any tensor of the parameter's shape serves then.

pub mod cpu;
pub mod cuda;
pub mod reference;
#[cfg(test)]
mod tests;

use crate::error::{Result, invalid};
use crate::ops::BackendBase;
use crate::tensor::expect_shape;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
}

impl Default for SgdConfig {
    /// torch's defaults.
    fn default() -> Self {
        SgdConfig {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }
    }
}

/// What one step does, decided once from the configuration and the step number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// momentum = 0: p <- p - lr g; no buffer.
    Plain,
    /// Step 1 with momentum: b <- g.
    FirstMomentum,
    /// Later steps: b <- mu b + (1 - dampening) g.
    Momentum,
}

impl SgdConfig {
    /// torch's checks (lr, momentum, weight decay >= 0; Nesterov needs momentum > 0 and zero
    /// dampening), every value finite, dampening in [0, 1] (torch does not check it; outside
    /// [0, 1] the buffer would weight the gradient negatively or by more than 1), and `step`
    /// counting from 1.
    pub fn validate(&self, step: u64) -> Result<()> {
        let ok = self.lr.is_finite()
            && self.lr >= 0.0
            && self.momentum.is_finite()
            && self.momentum >= 0.0
            && (0.0..=1.0).contains(&self.dampening)
            && self.weight_decay.is_finite()
            && self.weight_decay >= 0.0;
        if !ok {
            return Err(invalid("sgd", format!("invalid configuration {self:?}")));
        }
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(invalid(
                "sgd",
                format!("Nesterov momentum requires a momentum and zero dampening: {self:?}"),
            ));
        }
        if step == 0 {
            return Err(invalid("sgd", "step counts from 1"));
        }
        Ok(())
    }

    /// Every check of one step (configuration, then the gradient and buffer against the
    /// parameter's shape, in this order on every backend), returning what the step does.
    pub fn check_step(
        &self,
        step: u64,
        param: &[usize],
        grad: &[usize],
        buf: &[usize],
    ) -> Result<Mode> {
        const OP: &str = "sgd";
        self.validate(step)?;
        expect_shape(OP, "gradient", grad, param)?;
        expect_shape(OP, "momentum buffer", buf, param)?;
        Ok(if self.momentum == 0.0 {
            Mode::Plain
        } else if step == 1 {
            Mode::FirstMomentum
        } else {
            Mode::Momentum
        })
    }
}

/// What a backend implements: one update in place, shapes and configuration checked, `mode`
/// decided by [`SgdOps`]. In [`Mode::Plain`] the buffer must be neither read nor written.
pub trait SgdKernels: BackendBase {
    fn sgd_update(
        &self,
        param: &mut Self::Tensor,
        grad: &Self::Tensor,
        buf: &mut Self::Tensor,
        cfg: &SgdConfig,
        mode: Mode,
    ) -> Result<()>;
}

/// The checked entry point, the same for every backend.
pub trait SgdOps: SgdKernels {
    /// One SGD update of `param` in place, with `buf` its momentum buffer; `step` counts from
    /// 1, and step 1 (re)initialises the buffer from the gradient (its old contents unread).
    fn sgd_step(
        &self,
        param: &mut Self::Tensor,
        grad: &Self::Tensor,
        buf: &mut Self::Tensor,
        cfg: &SgdConfig,
        step: u64,
    ) -> Result<()> {
        let mode = cfg.check_step(step, self.shape(param), self.shape(grad), self.shape(buf))?;
        self.sgd_update(param, grad, buf, cfg, mode)
    }
}

impl<B: SgdKernels + ?Sized> SgdOps for B {}
