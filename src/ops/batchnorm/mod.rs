//! Batch normalisation over channel C of x [N, C, H, W] (2d) or feature C of x [N, C] (1d).
//! Statistics are taken over the M = N*H*W (or N) values of each channel.
//!
//! Training mode normalises with the batch mean and biased variance and updates running stats
//! PyTorch's way: r <- (1 - momentum) r + momentum * s, with the unbiased variance for r_var.
//! Inference mode normalises with the running stats. y = gamma (x - mean) / sqrt(var + eps) + beta.

pub mod cuda;
pub mod reference;

use crate::error::{Result, invalid, shape_err};
use crate::tensor::ShapeFmt;

/// PyTorch's default, and what ResNet50's weights were trained with.
pub const DEFAULT_EPS: f64 = 1e-5;
pub const DEFAULT_MOMENTUM: f64 = 0.1;

/// x viewed as [n, c, s] with s = H*W (1 for 1d).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BnDims {
    pub n: usize,
    pub c: usize,
    pub s: usize,
}

impl BnDims {
    /// Values per channel.
    pub fn m(&self) -> usize {
        self.n * self.s
    }
}

pub fn dims(op: &'static str, x: &[usize]) -> Result<BnDims> {
    match *x {
        [n, c] => Ok(BnDims { n, c, s: 1 }),
        [n, c, h, w] => Ok(BnDims { n, c, s: h * w }),
        _ => Err(shape_err(
            op,
            format!("input must be [N, C] or [N, C, H, W], got {}", ShapeFmt(x)),
        )),
    }
}

/// A per-channel parameter (gamma, beta, mean, var) must be [C].
pub fn check_param(op: &'static str, what: &str, p: &[usize], x: &[usize], c: usize) -> Result<()> {
    if p != [c] {
        return Err(shape_err(
            op,
            format!(
                "{what} {} must be [{c}] for input {}",
                ShapeFmt(p),
                ShapeFmt(x)
            ),
        ));
    }
    Ok(())
}

/// Training mode needs more than one value per channel for a variance.
pub fn check_train_batch(op: &'static str, d: &BnDims) -> Result<()> {
    if d.m() < 2 {
        return Err(invalid(
            op,
            format!(
                "training-mode batch norm needs at least 2 values per channel, got {}",
                d.m()
            ),
        ));
    }
    Ok(())
}

/// The running update needs a count it can unbias (>= 2) and a momentum in [0, 1].
pub fn check_update(op: &'static str, count: usize, momentum: f64) -> Result<()> {
    if count < 2 || !(0.0..=1.0).contains(&momentum) {
        return Err(invalid(
            op,
            format!(
                "need count >= 2 and momentum in [0, 1], got count {count}, momentum {momentum}"
            ),
        ));
    }
    Ok(())
}
