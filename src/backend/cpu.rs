//! The `cpu` backend: fast, multithreaded (rayon) f32 implementations for the ops that carry
//! the work (convolution and dense as GEMM, pooling, element-wise). Batch norm, softmax,
//! cross-entropy and Adam only ever touch the small classifier head (a few hundred thousand
//! values per step), so this backend runs their reference code, which is already linear-time.

use super::{Backend, BnBatchStats, BnParams, reference::ReferenceBackend};
use crate::error::Result;
use crate::ops::adam::AdamConfig;
use crate::ops::conv2d::{self, Conv2dParams, cpu::Epilogue};
use crate::ops::dense::{self, DenseGrads};
use crate::ops::loss::Reduction;
use crate::ops::pool::{self, Pool2dParams};
use crate::ops::{elementwise, pool::reference as pool_ref};
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug, Default)]
pub struct CpuBackend;

const REF: ReferenceBackend = ReferenceBackend;

impl Backend for CpuBackend {
    type Tensor = Tensor;

    fn name(&self) -> &'static str {
        "cpu"
    }
    fn upload(&self, t: &Tensor) -> Result<Tensor> {
        Ok(t.clone())
    }
    fn download(&self, t: &Tensor) -> Result<Tensor> {
        Ok(t.clone())
    }
    fn shape<'a>(&self, t: &'a Tensor) -> &'a [usize] {
        t.shape()
    }

    fn conv2d(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        p: &Conv2dParams,
    ) -> Result<Tensor> {
        conv2d::cpu::forward(x, w, b, p)
    }
    fn conv2d_fused(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        residual: Option<&Tensor>,
        relu: bool,
        p: &Conv2dParams,
    ) -> Result<Tensor> {
        let g = conv2d::geometry(x.shape(), w.shape(), p)?;
        if let Some(b) = bias {
            conv2d::check_bias(b.shape(), g.o)?;
        }
        if let Some(r) = residual {
            r.expect_shape("conv2d", "residual", &g.y_shape())?;
        }
        let e = Epilogue {
            bias: bias.map(|b| b.data()),
            residual: residual.map(|r| r.data()),
            relu,
        };
        conv2d::cpu::forward_fused(x, w, p, e)
    }
    fn conv2d_backward_data(
        &self,
        dy: &Tensor,
        w: &Tensor,
        x_shape: &[usize],
        p: &Conv2dParams,
    ) -> Result<Tensor> {
        conv2d::cpu::backward_data(dy, w, x_shape, p)
    }
    fn conv2d_backward_weight(
        &self,
        dy: &Tensor,
        x: &Tensor,
        w_shape: &[usize],
        p: &Conv2dParams,
    ) -> Result<Tensor> {
        conv2d::cpu::backward_weight(dy, x, w_shape, p)
    }
    fn conv2d_backward_bias(&self, dy: &Tensor) -> Result<Tensor> {
        REF.conv2d_backward_bias(dy)
    }

    fn batchnorm_inference(&self, x: &Tensor, bn: &BnParams<Tensor>) -> Result<Tensor> {
        REF.batchnorm_inference(x, bn)
    }
    fn batchnorm_train(
        &self,
        x: &Tensor,
        bn: &BnParams<Tensor>,
    ) -> Result<(Tensor, BnBatchStats<Tensor>)> {
        REF.batchnorm_train(x, bn)
    }
    fn batchnorm_train_backward(
        &self,
        dy: &Tensor,
        x: &Tensor,
        bn: &BnParams<Tensor>,
        stats: &BnBatchStats<Tensor>,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        REF.batchnorm_train_backward(dy, x, bn, stats)
    }
    fn batchnorm_inference_backward(
        &self,
        dy: &Tensor,
        x: &Tensor,
        bn: &BnParams<Tensor>,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        REF.batchnorm_inference_backward(dy, x, bn)
    }
    fn batchnorm_update_running(
        &self,
        bn: &mut BnParams<Tensor>,
        stats: &BnBatchStats<Tensor>,
        momentum: f64,
    ) -> Result<()> {
        REF.batchnorm_update_running(bn, stats, momentum)
    }

    fn relu(&self, x: &Tensor) -> Result<Tensor> {
        Ok(elementwise::cpu::relu(x))
    }
    fn relu_backward(&self, dy: &Tensor, x: &Tensor) -> Result<Tensor> {
        elementwise::cpu::relu_backward(dy, x)
    }
    fn add(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        elementwise::cpu::add(a, b)
    }

    fn maxpool2d(&self, x: &Tensor, p: &Pool2dParams) -> Result<Tensor> {
        pool::cpu::maxpool2d(x, p)
    }
    fn maxpool2d_backward(&self, dy: &Tensor, x: &Tensor, p: &Pool2dParams) -> Result<Tensor> {
        pool_ref::maxpool2d_backward(dy, x, p)
    }
    fn global_avg_pool(&self, x: &Tensor) -> Result<Tensor> {
        pool::cpu::global_avg_pool(x)
    }
    fn global_avg_pool_backward(&self, dy: &Tensor, x_shape: &[usize]) -> Result<Tensor> {
        pool_ref::global_avg_pool_backward(dy, x_shape)
    }

    fn dense(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
        dense::cpu::forward(x, w, b)
    }
    fn dense_backward(&self, dy: &Tensor, x: &Tensor, w: &Tensor) -> Result<DenseGrads<Tensor>> {
        dense::cpu::backward(dy, x, w)
    }

    fn softmax(&self, logits: &Tensor) -> Result<Tensor> {
        REF.softmax(logits)
    }
    fn weighted_cross_entropy(
        &self,
        logits: &Tensor,
        labels: &[usize],
        class_weights: &[f32],
        reduction: Reduction,
    ) -> Result<(f64, Tensor)> {
        REF.weighted_cross_entropy(logits, labels, class_weights, reduction)
    }

    fn adam_step(
        &self,
        param: &mut Tensor,
        grad: &Tensor,
        m: &mut Tensor,
        v: &mut Tensor,
        cfg: &AdamConfig,
        step: u64,
    ) -> Result<()> {
        REF.adam_step(param, grad, m, v, cfg, step)
    }
}
