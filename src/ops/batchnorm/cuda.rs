//! Batch norm on the CUDA backend (`batchnorm.cu`).
//!
//! Per-channel reductions (batch statistics, dgamma/dbeta) run one block per channel with a
//! deterministic tree reduction; the element-wise passes run a (channel, chunk) grid.
//!
//! x may be 16-bit ([`CudaBackend::activation_storage`]): y and dx keep its format; statistics,
//! parameters and their gradients are FP32.

use std::sync::Arc;

use super::{BatchNormKernels, BnBatchStats, BnDims, BnParams};
use crate::cuda::{Arg, CudaBackend, CudaTensor, Device, Dims};
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
    [Arg::Int(d.n), Arg::Int(d.c), Arg::Int(d.s)]
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
    let y = CudaTensor::alloc_as(dev, x.shape(), x.elem())?;
    if x.is_empty() {
        return Ok(y);
    }
    let [n, c, s] = ints(d);
    let ([xb, xf], [yb, yf]) = (x.act(), y.act());
    dev.launch(
        "bn_normalise",
        elementwise(d),
        &[
            xb,
            xf,
            Arg::Buf(mean.buf()),
            Arg::Buf(var.buf()),
            Arg::Buf(gamma.buf()),
            Arg::Buf(beta.buf()),
            yb,
            yf,
            n,
            c,
            s,
            Arg::F32(eps as f32),
        ],
    )?;
    Ok(y)
}

/// (dgamma, dbeta) = (sum(dy xhat), sum(dy)) per channel; zeros for a channel without values.
#[allow(clippy::too_many_arguments)]
fn backward_sums(
    dev: &Arc<Device>,
    dy: &CudaTensor,
    relu_out: Option<&CudaTensor>,
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
        let ([db, df], [rb, rf], [xb, xf]) = (dy.act(), CudaTensor::opt_act(relu_out), x.act());
        dev.launch(
            "bn_backward_sums",
            per_channel(d),
            &[
                db,
                df,
                rb,
                rf,
                xb,
                xf,
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

impl BatchNormKernels for CudaBackend {
    fn normalize(
        &self,
        x: &CudaTensor,
        d: BnDims,
        mean: &CudaTensor,
        var: &CudaTensor,
        gamma: &CudaTensor,
        beta: &CudaTensor,
        eps: f64,
    ) -> Result<CudaTensor> {
        normalise(self.device(), x, d, mean, var, gamma, beta, eps)
    }

    fn batch_stats(&self, x: &CudaTensor, d: BnDims) -> Result<(CudaTensor, CudaTensor)> {
        let dev = self.device();
        let mean = CudaTensor::alloc(dev, &[d.c])?;
        let var = CudaTensor::alloc(dev, &[d.c])?;
        if d.c > 0 {
            let [n, c, s] = ints(d);
            let [xb, xf] = x.act();
            dev.launch(
                "bn_batch_stats",
                per_channel(d),
                &[xb, xf, Arg::Buf(mean.buf()), Arg::Buf(var.buf()), n, c, s],
            )?;
        }
        Ok((mean, var))
    }

    fn backward(
        &self,
        dy: &CudaTensor,
        relu_out: Option<&CudaTensor>,
        x: &CudaTensor,
        d: BnDims,
        gamma: &CudaTensor,
        mean: &CudaTensor,
        var: &CudaTensor,
        eps: f64,
        batch_stats: bool,
    ) -> Result<(CudaTensor, CudaTensor, CudaTensor)> {
        let dev = self.device();
        let (dgamma, dbeta) = backward_sums(dev, dy, relu_out, x, d, mean, var, eps)?;
        let dx = CudaTensor::alloc_as(dev, x.shape(), x.elem())?;
        if x.is_empty() {
            return Ok((dx, dgamma, dbeta));
        }
        let [n, c, s] = ints(d);
        let ([db, df], [rb, rf], [ob, of]) = (dy.act(), CudaTensor::opt_act(relu_out), dx.act());
        if batch_stats {
            let [xb, xf] = x.act();
            dev.launch(
                "bn_backward_train_dx",
                elementwise(d),
                &[
                    db,
                    df,
                    rb,
                    rf,
                    xb,
                    xf,
                    Arg::Buf(mean.buf()),
                    Arg::Buf(var.buf()),
                    Arg::Buf(gamma.buf()),
                    Arg::Buf(dbeta.buf()),
                    Arg::Buf(dgamma.buf()),
                    ob,
                    of,
                    n,
                    c,
                    s,
                    Arg::F32(eps as f32),
                ],
            )?;
        } else {
            dev.launch(
                "bn_backward_frozen_dx",
                elementwise(d),
                &[
                    db,
                    df,
                    rb,
                    rf,
                    Arg::Buf(var.buf()),
                    Arg::Buf(gamma.buf()),
                    ob,
                    of,
                    n,
                    c,
                    s,
                    Arg::F32(eps as f32),
                ],
            )?;
        }
        Ok((dx, dgamma, dbeta))
    }

    /// One thread per channel, in double with the exact f64 momentum (the reference's
    /// arithmetic: with momentum 0.1 about one value in ten is an exact tie between two floats,
    /// which only the exact momentum breaks the same way).
    fn update_running(
        &self,
        bn: &mut BnParams<CudaTensor>,
        stats: &BnBatchStats<CudaTensor>,
        momentum: f64,
    ) -> Result<()> {
        let c = bn.running_mean.len();
        if c == 0 {
            return Ok(());
        }
        let rm = bn.running_mean.buf_mut()?;
        let rv = bn.running_var.buf_mut()?;
        self.device().launch(
            "bn_update_running",
            Dims::linear(c, THREADS),
            &[
                Arg::Buf(rm),
                Arg::Buf(rv),
                Arg::Buf(stats.mean.buf()),
                Arg::Buf(stats.var.buf()),
                Arg::Int(c),
                Arg::F64(momentum),
                Arg::I64(stats.count as i64),
            ],
        )
    }
}
