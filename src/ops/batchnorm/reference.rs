//! Reference batch norm: two-pass statistics in f64.

use super::{BnDims, check_param, check_train_batch, check_update, dims};
use crate::error::Result;
use crate::real::Real;
use crate::tensor::Tensor;

/// Iterates the flat indices of channel `ci`.
fn channel(d: BnDims, ci: usize) -> impl Iterator<Item = usize> {
    (0..d.n).flat_map(move |ni| {
        let start = (ni * d.c + ci) * d.s;
        start..start + d.s
    })
}

fn f64s<T: Real>(t: &Tensor<T>) -> Vec<f64> {
    t.data().iter().map(|v| v.to_f64()).collect()
}

fn normalise<T: Real>(
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
pub fn batch_stats<T: Real>(x: &Tensor<T>) -> Result<(Tensor<T>, Tensor<T>)> {
    const OP: &str = "batchnorm_train";
    let d = dims(OP, x.shape())?;
    check_train_batch(OP, &d)?;
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
pub fn forward_train<T: Real>(
    x: &Tensor<T>,
    gamma: &Tensor<T>,
    beta: &Tensor<T>,
    eps: f64,
) -> Result<(Tensor<T>, Tensor<T>, Tensor<T>)> {
    const OP: &str = "batchnorm_train";
    let d = dims(OP, x.shape())?;
    check_param(OP, "gamma", gamma.shape(), x.shape(), d.c)?;
    check_param(OP, "beta", beta.shape(), x.shape(), d.c)?;
    let (mean, var) = batch_stats(x)?;
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

/// Inference-mode forward with running statistics.
pub fn forward_inference<T: Real>(
    x: &Tensor<T>,
    gamma: &Tensor<T>,
    beta: &Tensor<T>,
    running_mean: &Tensor<T>,
    running_var: &Tensor<T>,
    eps: f64,
) -> Result<Tensor<T>> {
    const OP: &str = "batchnorm_inference";
    let d = dims(OP, x.shape())?;
    for (what, p) in [
        ("gamma", gamma),
        ("beta", beta),
        ("running_mean", running_mean),
        ("running_var", running_var),
    ] {
        check_param(OP, what, p.shape(), x.shape(), d.c)?;
    }
    normalise(
        x,
        d,
        &f64s(gamma),
        &f64s(beta),
        &f64s(running_mean),
        &f64s(running_var),
        eps,
    )
}

/// Gradients of batch norm. `batch_stats = true`: (mean, var) are the batch's own statistics and
/// depend on x (training mode); `false`: they are constants (inference mode, frozen stats).
/// Returns (dx, dgamma, dbeta).
#[allow(clippy::too_many_arguments)]
pub fn backward<T: Real>(
    dy: &Tensor<T>,
    x: &Tensor<T>,
    gamma: &Tensor<T>,
    mean: &Tensor<T>,
    var: &Tensor<T>,
    eps: f64,
    batch_stats: bool,
) -> Result<(Tensor<T>, Tensor<T>, Tensor<T>)> {
    const OP: &str = "batchnorm_backward";
    let d = dims(OP, x.shape())?;
    dy.expect_shape(OP, "output gradient", x.shape())?;
    for (what, p) in [("gamma", gamma), ("mean", mean), ("var", var)] {
        check_param(OP, what, p.shape(), x.shape(), d.c)?;
    }
    if batch_stats {
        check_train_batch(OP, &d)?;
    }
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

/// Running-stat update after a training step over `count` values per channel.
pub fn update_running<T: Real>(
    running_mean: &mut Tensor<T>,
    running_var: &mut Tensor<T>,
    batch_mean: &Tensor<T>,
    batch_var: &Tensor<T>,
    count: usize,
    momentum: f64,
) -> Result<()> {
    const OP: &str = "batchnorm_update_running";
    let c = running_mean.len();
    let rshape = running_mean.shape().to_vec();
    for (what, p) in [
        ("running_var", &*running_var),
        ("batch_mean", batch_mean),
        ("batch_var", batch_var),
    ] {
        check_param(OP, what, p.shape(), &rshape, c)?;
    }
    check_update(OP, count, momentum)?;
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
