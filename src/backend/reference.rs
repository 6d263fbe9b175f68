//! The `reference` backend: the ops' reference implementations on host f32 tensors. Slow and
//! plain on purpose; it exists to check the fast backends.

use super::{Backend, BnBatchStats, BnParams};
use crate::error::Result;
use crate::ops::adam::{self, AdamConfig};
use crate::ops::conv2d::{self, Conv2dParams};
use crate::ops::dense::{self, DenseGrads};
use crate::ops::loss::{self, Reduction};
use crate::ops::pool::{self, Pool2dParams};
use crate::ops::{batchnorm, elementwise};
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug, Default)]
pub struct ReferenceBackend;

impl Backend for ReferenceBackend {
    type Tensor = Tensor;

    fn name(&self) -> &'static str {
        "reference"
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
        conv2d::reference::forward(x, w, b, p)
    }
    fn conv2d_backward_data(
        &self,
        dy: &Tensor,
        w: &Tensor,
        x_shape: &[usize],
        p: &Conv2dParams,
    ) -> Result<Tensor> {
        conv2d::reference::backward_data(dy, w, x_shape, p)
    }
    fn conv2d_backward_weight(
        &self,
        dy: &Tensor,
        x: &Tensor,
        w_shape: &[usize],
        p: &Conv2dParams,
    ) -> Result<Tensor> {
        conv2d::reference::backward_weight(dy, x, w_shape, p)
    }
    fn conv2d_backward_bias(&self, dy: &Tensor) -> Result<Tensor> {
        conv2d::reference::backward_bias(dy)
    }

    fn batchnorm_inference(&self, x: &Tensor, bn: &BnParams<Tensor>) -> Result<Tensor> {
        batchnorm::reference::forward_inference(
            x,
            &bn.gamma,
            &bn.beta,
            &bn.running_mean,
            &bn.running_var,
            bn.eps,
        )
    }
    fn batchnorm_train(
        &self,
        x: &Tensor,
        bn: &BnParams<Tensor>,
    ) -> Result<(Tensor, BnBatchStats<Tensor>)> {
        let (y, mean, var) = batchnorm::reference::forward_train(x, &bn.gamma, &bn.beta, bn.eps)?;
        let count = batchnorm::dims("batchnorm_train", x.shape())?.m();
        Ok((y, BnBatchStats { mean, var, count }))
    }
    fn batchnorm_train_backward(
        &self,
        dy: &Tensor,
        x: &Tensor,
        bn: &BnParams<Tensor>,
        stats: &BnBatchStats<Tensor>,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        batchnorm::reference::backward(dy, x, &bn.gamma, &stats.mean, &stats.var, bn.eps, true)
    }
    fn batchnorm_inference_backward(
        &self,
        dy: &Tensor,
        x: &Tensor,
        bn: &BnParams<Tensor>,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        batchnorm::reference::backward(
            dy,
            x,
            &bn.gamma,
            &bn.running_mean,
            &bn.running_var,
            bn.eps,
            false,
        )
    }
    fn batchnorm_update_running(
        &self,
        bn: &mut BnParams<Tensor>,
        stats: &BnBatchStats<Tensor>,
        momentum: f64,
    ) -> Result<()> {
        batchnorm::reference::update_running(
            &mut bn.running_mean,
            &mut bn.running_var,
            &stats.mean,
            &stats.var,
            stats.count,
            momentum,
        )
    }

    fn relu(&self, x: &Tensor) -> Result<Tensor> {
        Ok(elementwise::reference::relu(x))
    }
    fn relu_backward(&self, dy: &Tensor, x: &Tensor) -> Result<Tensor> {
        elementwise::reference::relu_backward(dy, x)
    }
    fn add(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        elementwise::reference::add(a, b)
    }

    fn maxpool2d(&self, x: &Tensor, p: &Pool2dParams) -> Result<Tensor> {
        pool::reference::maxpool2d(x, p)
    }
    fn maxpool2d_backward(&self, dy: &Tensor, x: &Tensor, p: &Pool2dParams) -> Result<Tensor> {
        pool::reference::maxpool2d_backward(dy, x, p)
    }
    fn global_avg_pool(&self, x: &Tensor) -> Result<Tensor> {
        pool::reference::global_avg_pool(x)
    }
    fn global_avg_pool_backward(&self, dy: &Tensor, x_shape: &[usize]) -> Result<Tensor> {
        pool::reference::global_avg_pool_backward(dy, x_shape)
    }

    fn dense(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
        dense::reference::forward(x, w, b)
    }
    fn dense_backward(&self, dy: &Tensor, x: &Tensor, w: &Tensor) -> Result<DenseGrads<Tensor>> {
        dense::reference::backward(dy, x, w)
    }

    fn softmax(&self, logits: &Tensor) -> Result<Tensor> {
        loss::reference::softmax(logits)
    }
    fn weighted_cross_entropy(
        &self,
        logits: &Tensor,
        labels: &[usize],
        class_weights: &[f32],
        reduction: Reduction,
    ) -> Result<(f64, Tensor)> {
        loss::reference::weighted_cross_entropy(logits, labels, class_weights, reduction)
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
        adam::reference::step(param, grad, m, v, cfg, step)
    }
}
