//! Batch norm on the CUDA backend (`kernels/batchnorm.cu`).
//!
//! Per-channel reductions (batch statistics, dgamma/dbeta) run one block per channel with a
//! deterministic tree reduction; the element-wise passes run a (channel, chunk) grid. Shape
//! checks are the reference's own helpers, in the reference's order, so errors are identical.

use std::sync::Arc;

use super::{BnDims, check_param, check_train_batch, check_update, dims};
use crate::backend::{BnBatchStats, BnParams};
use crate::cuda::{Arg, CudaTensor, Device, Dims, int_arg};
use crate::error::Result;

/// Threads per block in every batch-norm kernel (a multiple of the warp size).
const THREADS: u32 = 256;
/// Values per thread the element-wise kernels aim for before adding blocks.
const PER_THREAD: usize = 4;

/// One block per channel.
fn per_channel(d: BnDims) -> Dims {
    Dims::new([d.c as u32, 1, 1], [THREADS, 1, 1])
}

/// (channel, chunk of the channel's m values).
fn elementwise(d: BnDims) -> Dims {
    let chunks = d
        .m()
        .div_ceil(THREADS as usize * PER_THREAD)
        .clamp(1, 65_535);
    Dims::new([d.c as u32, chunks as u32, 1], [THREADS, 1, 1])
}

fn ints(d: BnDims) -> [Arg<'static>; 3] {
    [
        Arg::I32(d.n as i32),
        Arg::I32(d.c as i32),
        Arg::I32(d.s as i32),
    ]
}

/// y = gamma (x - mean) / sqrt(var + eps) + beta.
#[allow(clippy::too_many_arguments)]
fn normalise(
    dev: &Arc<Device>,
    x: &CudaTensor,
    d: BnDims,
    mean: &CudaTensor,
    var: &CudaTensor,
    gamma: &CudaTensor,
    beta: &CudaTensor,
    eps: f64,
) -> Result<CudaTensor> {
    let y = CudaTensor::alloc(dev, x.shape())?;
    if x.is_empty() {
        return Ok(y);
    }
    let [n, c, s] = ints(d);
    dev.launch(
        "bn_normalise",
        elementwise(d),
        &[
            Arg::Buf(x.buf()),
            Arg::Buf(mean.buf()),
            Arg::Buf(var.buf()),
            Arg::Buf(gamma.buf()),
            Arg::Buf(beta.buf()),
            Arg::Buf(y.buf()),
            n,
            c,
            s,
            Arg::F32(eps as f32),
        ],
    )?;
    Ok(y)
}

pub fn inference(
    dev: &Arc<Device>,
    x: &CudaTensor,
    bn: &BnParams<CudaTensor>,
) -> Result<CudaTensor> {
    const OP: &str = "batchnorm_inference";
    let d = dims(OP, x.shape())?;
    for (what, p) in [
        ("gamma", &bn.gamma),
        ("beta", &bn.beta),
        ("running_mean", &bn.running_mean),
        ("running_var", &bn.running_var),
    ] {
        check_param(OP, what, p.shape(), x.shape(), d.c)?;
    }
    int_arg(OP, "elements", x.len())?;
    normalise(
        dev,
        x,
        d,
        &bn.running_mean,
        &bn.running_var,
        &bn.gamma,
        &bn.beta,
        bn.eps,
    )
}

pub fn train(
    dev: &Arc<Device>,
    x: &CudaTensor,
    bn: &BnParams<CudaTensor>,
) -> Result<(CudaTensor, BnBatchStats<CudaTensor>)> {
    const OP: &str = "batchnorm_train";
    let d = dims(OP, x.shape())?;
    check_param(OP, "gamma", bn.gamma.shape(), x.shape(), d.c)?;
    check_param(OP, "beta", bn.beta.shape(), x.shape(), d.c)?;
    check_train_batch(OP, &d)?;
    int_arg(OP, "elements", x.len())?;
    let mean = CudaTensor::alloc(dev, &[d.c])?;
    let var = CudaTensor::alloc(dev, &[d.c])?;
    if d.c > 0 {
        let [n, c, s] = ints(d);
        dev.launch(
            "bn_batch_stats",
            per_channel(d),
            &[
                Arg::Buf(x.buf()),
                Arg::Buf(mean.buf()),
                Arg::Buf(var.buf()),
                n,
                c,
                s,
            ],
        )?;
    }
    let y = normalise(dev, x, d, &mean, &var, &bn.gamma, &bn.beta, bn.eps)?;
    let count = d.m();
    Ok((y, BnBatchStats { mean, var, count }))
}

/// Checks shared by both backward passes, in the reference's order.
fn backward_checks(
    dy: &CudaTensor,
    x: &CudaTensor,
    gamma: &CudaTensor,
    mean: &CudaTensor,
    var: &CudaTensor,
    batch_stats: bool,
) -> Result<BnDims> {
    const OP: &str = "batchnorm_backward";
    let d = dims(OP, x.shape())?;
    dy.expect_shape(OP, "output gradient", x.shape())?;
    for (what, p) in [("gamma", gamma), ("mean", mean), ("var", var)] {
        check_param(OP, what, p.shape(), x.shape(), d.c)?;
    }
    if batch_stats {
        check_train_batch(OP, &d)?;
    }
    int_arg(OP, "elements", x.len())?;
    Ok(d)
}

/// (dgamma, dbeta) = (sum(dy xhat), sum(dy)) per channel; zeros for a channel without values.
#[allow(clippy::too_many_arguments)]
fn backward_sums(
    dev: &Arc<Device>,
    dy: &CudaTensor,
    x: &CudaTensor,
    d: BnDims,
    mean: &CudaTensor,
    var: &CudaTensor,
    eps: f64,
) -> Result<(CudaTensor, CudaTensor)> {
    let dgamma = CudaTensor::alloc(dev, &[d.c])?;
    let dbeta = CudaTensor::alloc(dev, &[d.c])?;
    if d.c > 0 {
        let [n, c, s] = ints(d);
        dev.launch(
            "bn_backward_sums",
            per_channel(d),
            &[
                Arg::Buf(dy.buf()),
                Arg::Buf(x.buf()),
                Arg::Buf(mean.buf()),
                Arg::Buf(var.buf()),
                Arg::Buf(dgamma.buf()),
                Arg::Buf(dbeta.buf()),
                n,
                c,
                s,
                Arg::F32(eps as f32),
            ],
        )?;
    }
    Ok((dgamma, dbeta))
}

pub fn train_backward(
    dev: &Arc<Device>,
    dy: &CudaTensor,
    x: &CudaTensor,
    bn: &BnParams<CudaTensor>,
    stats: &BnBatchStats<CudaTensor>,
) -> Result<(CudaTensor, CudaTensor, CudaTensor)> {
    let d = backward_checks(dy, x, &bn.gamma, &stats.mean, &stats.var, true)?;
    let (dgamma, dbeta) = backward_sums(dev, dy, x, d, &stats.mean, &stats.var, bn.eps)?;
    let dx = CudaTensor::alloc(dev, x.shape())?;
    if !x.is_empty() {
        let [n, c, s] = ints(d);
        dev.launch(
            "bn_backward_train_dx",
            elementwise(d),
            &[
                Arg::Buf(dy.buf()),
                Arg::Buf(x.buf()),
                Arg::Buf(stats.mean.buf()),
                Arg::Buf(stats.var.buf()),
                Arg::Buf(bn.gamma.buf()),
                Arg::Buf(dbeta.buf()),
                Arg::Buf(dgamma.buf()),
                Arg::Buf(dx.buf()),
                n,
                c,
                s,
                Arg::F32(bn.eps as f32),
            ],
        )?;
    }
    Ok((dx, dgamma, dbeta))
}

pub fn inference_backward(
    dev: &Arc<Device>,
    dy: &CudaTensor,
    x: &CudaTensor,
    bn: &BnParams<CudaTensor>,
) -> Result<(CudaTensor, CudaTensor, CudaTensor)> {
    let (mean, var) = (&bn.running_mean, &bn.running_var);
    let d = backward_checks(dy, x, &bn.gamma, mean, var, false)?;
    let (dgamma, dbeta) = backward_sums(dev, dy, x, d, mean, var, bn.eps)?;
    let dx = CudaTensor::alloc(dev, x.shape())?;
    if !x.is_empty() {
        let [n, c, s] = ints(d);
        dev.launch(
            "bn_backward_frozen_dx",
            elementwise(d),
            &[
                Arg::Buf(dy.buf()),
                Arg::Buf(var.buf()),
                Arg::Buf(bn.gamma.buf()),
                Arg::Buf(dx.buf()),
                n,
                c,
                s,
                Arg::F32(bn.eps as f32),
            ],
        )?;
    }
    Ok((dx, dgamma, dbeta))
}

pub fn update_running(
    dev: &Arc<Device>,
    bn: &mut BnParams<CudaTensor>,
    stats: &BnBatchStats<CudaTensor>,
    momentum: f64,
) -> Result<()> {
    const OP: &str = "batchnorm_update_running";
    let c = bn.running_mean.len();
    let rshape = bn.running_mean.shape().to_vec();
    for (what, p) in [
        ("running_var", &bn.running_var),
        ("batch_mean", &stats.mean),
        ("batch_var", &stats.var),
    ] {
        check_param(OP, what, p.shape(), &rshape, c)?;
    }
    check_update(OP, stats.count, momentum)?;
    if c == 0 {
        return Ok(());
    }
    // The f64 momentum exactly, as hi + (mid + lo): each part is the rounding of what the parts
    // before it leave, and the remainders are exact in f64. The kernel works in double.
    let mom_hi = momentum as f32;
    let rest = momentum - mom_hi as f64;
    let mom_mid = rest as f32;
    let mom_lo = (rest - mom_mid as f64) as f32;
    let rm = bn.running_mean.buf_mut()?;
    let rv = bn.running_var.buf_mut()?;
    dev.launch(
        "bn_update_running",
        Dims::linear(c, THREADS),
        &[
            Arg::Buf(rm),
            Arg::Buf(rv),
            Arg::Buf(stats.mean.buf()),
            Arg::Buf(stats.var.buf()),
            Arg::I32(c as i32),
            Arg::F32(mom_hi),
            Arg::F32(mom_mid),
            Arg::F32(mom_lo),
            Arg::I64(stats.count as i64),
        ],
    )
}
