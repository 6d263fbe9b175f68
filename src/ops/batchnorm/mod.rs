//! Batch normalisation over channel C of x [N, C, H, W] (2d) or feature C of x [N, C] (1d).
//! Statistics are taken over the M = N*H*W (or N) values of each channel.
//!
//! Training mode normalises with the batch mean and biased variance and updates running stats
//! PyTorch's way: r <- (1 - momentum) r + momentum * s, with the unbiased variance for r_var.
//! Inference mode normalises with the running stats. y = gamma (x - mean) / sqrt(var + eps) + beta.

pub mod cpu;
pub mod cuda;
pub mod reference;
#[cfg(test)]
mod tests;

use crate::error::{Result, invalid, shape_err};
use crate::ops::BackendBase;
use crate::tensor::{ShapeFmt, expect_shape};

/// PyTorch's default, and what ResNet50's weights were trained with.
pub const DEFAULT_EPS: f64 = 1e-5;
pub const DEFAULT_MOMENTUM: f64 = 0.1;

/// Batch statistics saved by a training-mode batch norm for its backward pass.
#[derive(Clone, Debug)]
pub struct BnBatchStats<T> {
    pub mean: T,
    /// Biased variance (divided by the count, as used for normalising).
    pub var: T,
    /// Values per channel the statistics were taken over.
    pub count: usize,
}

/// Learnable and running parameters of one batch-norm layer.
#[derive(Clone, Debug)]
pub struct BnParams<T> {
    pub gamma: T,
    pub beta: T,
    pub running_mean: T,
    pub running_var: T,
    pub eps: f64,
}

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

/// What a backend implements; shapes are already checked by [`BatchNormOps`].
pub trait BatchNormKernels: BackendBase {
    /// y = gamma (x - mean) / sqrt(var + eps) + beta with the given per-channel statistics.
    #[allow(clippy::too_many_arguments)]
    fn normalize(
        &self,
        x: &Self::Tensor,
        d: BnDims,
        mean: &Self::Tensor,
        var: &Self::Tensor,
        gamma: &Self::Tensor,
        beta: &Self::Tensor,
        eps: f64,
    ) -> Result<Self::Tensor>;
    /// Per-channel mean and biased variance (at least 2 values per channel).
    fn batch_stats(&self, x: &Self::Tensor, d: BnDims) -> Result<(Self::Tensor, Self::Tensor)>;
    /// (dx, dgamma, dbeta) through a batch norm that normalised with `mean` / `var`: the batch's
    /// own statistics (`batch_stats`, so dx includes their gradient) or frozen ones. With
    /// `relu_out`, dy is the gradient of relu(bn(x)) and relu_out that ReLU's output: dy counts
    /// only where relu_out > 0 (ReLU's backward fused in, with the same values as applying it
    /// first, without writing and reading back its result).
    #[allow(clippy::too_many_arguments)]
    fn backward(
        &self,
        dy: &Self::Tensor,
        relu_out: Option<&Self::Tensor>,
        x: &Self::Tensor,
        d: BnDims,
        gamma: &Self::Tensor,
        mean: &Self::Tensor,
        var: &Self::Tensor,
        eps: f64,
        batch_stats: bool,
    ) -> Result<(Self::Tensor, Self::Tensor, Self::Tensor)>;
    /// running <- (1 - momentum) running + momentum batch (unbiased variance).
    fn update_running(
        &self,
        bn: &mut BnParams<Self::Tensor>,
        stats: &BnBatchStats<Self::Tensor>,
        momentum: f64,
    ) -> Result<()>;
}

/// The checked entry points, the same for every backend (2d on [N,C,H,W], 1d on [N,C]).
pub trait BatchNormOps: BatchNormKernels {
    fn batchnorm_inference(
        &self,
        x: &Self::Tensor,
        bn: &BnParams<Self::Tensor>,
    ) -> Result<Self::Tensor> {
        const OP: &str = "batchnorm_inference";
        let d = dims(OP, self.shape(x))?;
        for (what, p) in [
            ("gamma", &bn.gamma),
            ("beta", &bn.beta),
            ("running_mean", &bn.running_mean),
            ("running_var", &bn.running_var),
        ] {
            check_param(OP, what, self.shape(p), self.shape(x), d.c)?;
        }
        self.normalize(
            x,
            d,
            &bn.running_mean,
            &bn.running_var,
            &bn.gamma,
            &bn.beta,
            bn.eps,
        )
    }
    /// Normalises with batch statistics and returns them for backward and the running update.
    fn batchnorm_train(
        &self,
        x: &Self::Tensor,
        bn: &BnParams<Self::Tensor>,
    ) -> Result<(Self::Tensor, BnBatchStats<Self::Tensor>)> {
        const OP: &str = "batchnorm_train";
        let d = dims(OP, self.shape(x))?;
        check_param(OP, "gamma", self.shape(&bn.gamma), self.shape(x), d.c)?;
        check_param(OP, "beta", self.shape(&bn.beta), self.shape(x), d.c)?;
        check_train_batch(OP, &d)?;
        let (mean, var) = BatchNormKernels::batch_stats(self, x, d)?;
        let y = self.normalize(x, d, &mean, &var, &bn.gamma, &bn.beta, bn.eps)?;
        Ok((
            y,
            BnBatchStats {
                mean,
                var,
                count: d.m(),
            },
        ))
    }
    /// Gradient through a training-mode batch norm: (dx, dgamma, dbeta).
    fn batchnorm_train_backward(
        &self,
        dy: &Self::Tensor,
        x: &Self::Tensor,
        bn: &BnParams<Self::Tensor>,
        stats: &BnBatchStats<Self::Tensor>,
    ) -> Result<(Self::Tensor, Self::Tensor, Self::Tensor)> {
        checked_backward(self, dy, None, x, bn, (&stats.mean, &stats.var), true)
    }
    /// Gradient through relu(batchnorm_train(x)) given the ReLU's output, ReLU's backward fused
    /// into the batch norm's: (dx, dgamma, dbeta), equal to `relu_backward` followed by
    /// [`batchnorm_train_backward`](Self::batchnorm_train_backward).
    fn batchnorm_relu_train_backward(
        &self,
        dy: &Self::Tensor,
        relu_out: &Self::Tensor,
        x: &Self::Tensor,
        bn: &BnParams<Self::Tensor>,
        stats: &BnBatchStats<Self::Tensor>,
    ) -> Result<(Self::Tensor, Self::Tensor, Self::Tensor)> {
        let stats = (&stats.mean, &stats.var);
        checked_backward(self, dy, Some(relu_out), x, bn, stats, true)
    }
    /// Gradient through an inference-mode (frozen statistics) batch norm: (dx, dgamma, dbeta).
    fn batchnorm_inference_backward(
        &self,
        dy: &Self::Tensor,
        x: &Self::Tensor,
        bn: &BnParams<Self::Tensor>,
    ) -> Result<(Self::Tensor, Self::Tensor, Self::Tensor)> {
        let stats = (&bn.running_mean, &bn.running_var);
        checked_backward(self, dy, None, x, bn, stats, false)
    }
    /// [`batchnorm_inference_backward`](Self::batchnorm_inference_backward) of
    /// relu(batchnorm_inference(x)) given the ReLU's output, ReLU's backward fused in.
    fn batchnorm_relu_inference_backward(
        &self,
        dy: &Self::Tensor,
        relu_out: &Self::Tensor,
        x: &Self::Tensor,
        bn: &BnParams<Self::Tensor>,
    ) -> Result<(Self::Tensor, Self::Tensor, Self::Tensor)> {
        let stats = (&bn.running_mean, &bn.running_var);
        checked_backward(self, dy, Some(relu_out), x, bn, stats, false)
    }
    /// running <- (1 - momentum) running + momentum batch (unbiased variance).
    fn batchnorm_update_running(
        &self,
        bn: &mut BnParams<Self::Tensor>,
        stats: &BnBatchStats<Self::Tensor>,
        momentum: f64,
    ) -> Result<()> {
        const OP: &str = "batchnorm_update_running";
        let rshape = self.shape(&bn.running_mean).to_vec();
        let c = rshape.iter().product();
        for (what, p) in [
            ("running_var", &bn.running_var),
            ("batch_mean", &stats.mean),
            ("batch_var", &stats.var),
        ] {
            check_param(OP, what, self.shape(p), &rshape, c)?;
        }
        check_update(OP, stats.count, momentum)?;
        BatchNormKernels::update_running(self, bn, stats, momentum)
    }
}

impl<B: BatchNormKernels + ?Sized> BatchNormOps for B {}

/// The four backward passes: the shape checks, then the backend's kernel. `(mean, var)` are the
/// batch's statistics (`batch_stats`, training mode) or the running ones (inference mode).
fn checked_backward<B: BatchNormKernels + ?Sized>(
    b: &B,
    dy: &B::Tensor,
    relu_out: Option<&B::Tensor>,
    x: &B::Tensor,
    bn: &BnParams<B::Tensor>,
    (mean, var): (&B::Tensor, &B::Tensor),
    batch_stats: bool,
) -> Result<(B::Tensor, B::Tensor, B::Tensor)> {
    const OP: &str = "batchnorm_backward";
    let d = dims(OP, b.shape(x))?;
    expect_shape(OP, "output gradient", b.shape(dy), b.shape(x))?;
    if let Some(r) = relu_out {
        expect_shape(OP, "ReLU output", b.shape(r), b.shape(x))?;
    }
    for (what, p) in [("gamma", &bn.gamma), ("mean", mean), ("var", var)] {
        check_param(OP, what, b.shape(p), b.shape(x), d.c)?;
    }
    if batch_stats {
        check_train_batch(OP, &d)?;
    }
    let gamma = &bn.gamma;
    BatchNormKernels::backward(b, dy, relu_out, x, d, gamma, mean, var, bn.eps, batch_stats)
}
