//! Reference batch norm: two-pass statistics in f64.

use super::{BatchNormKernels, BnBatchStats, BnDims, BnParams};
use crate::error::Result;
use crate::real::Real;
use crate::reference::ReferenceBackend;
use crate::tensor::Tensor;

/// Iterates the flat indices of channel `ci`.
fn channel(d: BnDims, ci: usize) -> impl Iterator<Item = usize> {
    (0..d.n).flat_map(move |ni| {
        let start = (ni * d.c + ci) * d.s;
        start..start + d.s
    })
}

pub fn f64s<T: Real>(t: &Tensor<T>) -> Vec<f64> {
    t.data().iter().map(|v| v.to_f64()).collect()
}

/// y = gamma (x - mean) / sqrt(var + eps) + beta, per channel, in f64.
pub fn normalise<T: Real>(
    x: &Tensor<T>,
    d: BnDims,
    gamma: &[f64],
    beta: &[f64],
    mean: &[f64],
    var: &[f64],
    eps: f64,
) -> Result<Tensor<T>> {
    let mut y = vec![T::default(); x.len()];
    for ci in 0..d.c {
        let inv = 1.0 / (var[ci] + eps).sqrt();
        for i in channel(d, ci) {
            y[i] = T::from_f64(gamma[ci] * (x.data()[i].to_f64() - mean[ci]) * inv + beta[ci]);
        }
    }
    Tensor::new(x.shape(), y)
}

/// Per-channel mean and biased variance of x.
/// Per-channel mean and biased variance, two passes in f64 (d.m() >= 2).
pub fn batch_stats<T: Real>(x: &Tensor<T>, d: BnDims) -> Result<(Tensor<T>, Tensor<T>)> {
    let m = d.m() as f64;
    let mut mean = Vec::with_capacity(d.c);
    let mut var = Vec::with_capacity(d.c);
    for ci in 0..d.c {
        let mu = channel(d, ci).map(|i| x.data()[i].to_f64()).sum::<f64>() / m;
        let v = channel(d, ci)
            .map(|i| (x.data()[i].to_f64() - mu).powi(2))
            .sum::<f64>()
            / m;
        mean.push(T::from_f64(mu));
        var.push(T::from_f64(v));
    }
    Ok((Tensor::new(&[d.c], mean)?, Tensor::new(&[d.c], var)?))
}

/// Training-mode forward: returns y and the batch (mean, biased var) that backward needs.
/// Training forward: normalise with the batch's own statistics; returns (y, mean, var).
pub fn forward_train<T: Real>(
    x: &Tensor<T>,
    d: BnDims,
    gamma: &Tensor<T>,
    beta: &Tensor<T>,
    eps: f64,
) -> Result<(Tensor<T>, Tensor<T>, Tensor<T>)> {
    let (mean, var) = batch_stats(x, d)?;
    let y = normalise(
        x,
        d,
        &f64s(gamma),
        &f64s(beta),
        &f64s(&mean),
        &f64s(&var),
        eps,
    )?;
    Ok((y, mean, var))
}

#[allow(clippy::too_many_arguments)]
pub fn backward<T: Real>(
    dy: &Tensor<T>,
    x: &Tensor<T>,
    d: BnDims,
    gamma: &Tensor<T>,
    mean: &Tensor<T>,
    var: &Tensor<T>,
    eps: f64,
    batch_stats: bool,
) -> Result<(Tensor<T>, Tensor<T>, Tensor<T>)> {
    let m = d.m() as f64;
    let mut dx = vec![T::default(); x.len()];
    let mut dgamma = Vec::with_capacity(d.c);
    let mut dbeta = Vec::with_capacity(d.c);
    for ci in 0..d.c {
        let mu = mean.data()[ci].to_f64();
        let inv = 1.0 / (var.data()[ci].to_f64() + eps).sqrt();
        let g = gamma.data()[ci].to_f64();
        let xhat = |i: usize| (x.data()[i].to_f64() - mu) * inv;
        let (mut sum_dy, mut sum_dy_xhat) = (0.0, 0.0);
        for i in channel(d, ci) {
            let dyv = dy.data()[i].to_f64();
            sum_dy += dyv;
            sum_dy_xhat += dyv * xhat(i);
        }
        for i in channel(d, ci) {
            let dyv = dy.data()[i].to_f64();
            // Training: dx = g*inv/M * (M dy - sum(dy) - xhat * sum(dy xhat)).
            let v = if batch_stats {
                g * inv / m * (m * dyv - sum_dy - xhat(i) * sum_dy_xhat)
            } else {
                g * inv * dyv
            };
            dx[i] = T::from_f64(v);
        }
        dgamma.push(T::from_f64(sum_dy_xhat));
        dbeta.push(T::from_f64(sum_dy));
    }
    Ok((
        Tensor::new(x.shape(), dx)?,
        Tensor::new(&[d.c], dgamma)?,
        Tensor::new(&[d.c], dbeta)?,
    ))
}

/// ReLU's backward given its output: dy where relu_out > 0, else 0 (NaN outputs give 0, as the
/// ReLU op's own backward).
pub fn relu_mask<T: Real>(dy: &Tensor<T>, relu_out: &Tensor<T>) -> Result<Tensor<T>> {
    let v = dy
        .data()
        .iter()
        .zip(relu_out.data())
        .map(|(&g, &r)| if r.to_f64() > 0.0 { g } else { T::default() })
        .collect();
    Tensor::new(dy.shape(), v)
}

/// Running-stat update after a training step over `count` values per channel.
pub fn update_running<T: Real>(
    running_mean: &mut Tensor<T>,
    running_var: &mut Tensor<T>,
    batch_mean: &Tensor<T>,
    batch_var: &Tensor<T>,
    count: usize,
    momentum: f64,
) -> Result<()> {
    let c = running_mean.len();
    let unbias = count as f64 / (count as f64 - 1.0);
    for ci in 0..c {
        let rm = &mut running_mean.data_mut()[ci];
        *rm =
            T::from_f64((1.0 - momentum) * rm.to_f64() + momentum * batch_mean.data()[ci].to_f64());
        let rv = &mut running_var.data_mut()[ci];
        *rv = T::from_f64(
            (1.0 - momentum) * rv.to_f64() + momentum * batch_var.data()[ci].to_f64() * unbias,
        );
    }
    Ok(())
}

impl BatchNormKernels for ReferenceBackend {
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
        normalise(
            x,
            d,
            &f64s(gamma),
            &f64s(beta),
            &f64s(mean),
            &f64s(var),
            eps,
        )
    }
    fn batch_stats(&self, x: &Tensor, d: BnDims) -> Result<(Tensor, Tensor)> {
        batch_stats(x, d)
    }
    fn backward(
        &self,
        dy: &Tensor,
        relu_out: Option<&Tensor>,
        x: &Tensor,
        d: BnDims,
        gamma: &Tensor,
        mean: &Tensor,
        var: &Tensor,
        eps: f64,
        batch_stats: bool,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        match relu_out {
            Some(r) => {
                let masked = relu_mask(dy, r)?;
                backward(&masked, x, d, gamma, mean, var, eps, batch_stats)
            }
            None => backward(dy, x, d, gamma, mean, var, eps, batch_stats),
        }
    }
    fn update_running(
        &self,
        bn: &mut BnParams<Tensor>,
        stats: &BnBatchStats<Tensor>,
        momentum: f64,
    ) -> Result<()> {
        update_running(
            &mut bn.running_mean,
            &mut bn.running_var,
            &stats.mean,
            &stats.var,
            stats.count,
            momentum,
        )
    }
}
