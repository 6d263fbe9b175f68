//! The backend interface: everything model, training and data code may compute.
//!
//! Each backend owns its tensor type (host memory for `reference` and `cpu`, device memory for
//! `cuda`) and moves data in and out only through `upload` / `download`, so code written against
//! this trait never knows where it runs. All shape checks are the op's own (`ops/*/mod.rs`) and
//! are the same on every backend.

pub mod cpu;
pub mod cuda;
pub mod reference;
pub mod select;

use crate::error::Result;
use crate::ops::adam::AdamConfig;
use crate::ops::conv2d::Conv2dParams;
use crate::ops::dense::DenseGrads;
use crate::ops::loss::Reduction;
use crate::ops::pool::Pool2dParams;
use crate::tensor::Tensor;

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

pub trait Backend: Send + Sync {
    /// A tensor living wherever this backend computes.
    type Tensor: Clone + Send + Sync;

    fn name(&self) -> &'static str;
    fn upload(&self, t: &Tensor) -> Result<Self::Tensor>;
    fn download(&self, t: &Self::Tensor) -> Result<Tensor>;
    fn shape<'a>(&self, t: &'a Self::Tensor) -> &'a [usize];

    // --- convolution -------------------------------------------------------------------------
    fn conv2d(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        bias: Option<&Self::Tensor>,
        p: &Conv2dParams,
    ) -> Result<Self::Tensor>;
    /// Inference convolution with its epilogue: relu?(conv(x, w) + bias + residual). Fast
    /// backends fuse it into one pass; this default composes the separate ops.
    fn conv2d_fused(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        bias: Option<&Self::Tensor>,
        residual: Option<&Self::Tensor>,
        relu: bool,
        p: &Conv2dParams,
    ) -> Result<Self::Tensor> {
        let mut y = self.conv2d(x, w, bias, p)?;
        if let Some(r) = residual {
            y = self.add(&y, r)?;
        }
        if relu {
            y = self.relu(&y)?;
        }
        Ok(y)
    }
    fn conv2d_backward_data(
        &self,
        dy: &Self::Tensor,
        w: &Self::Tensor,
        x_shape: &[usize],
        p: &Conv2dParams,
    ) -> Result<Self::Tensor>;
    fn conv2d_backward_weight(
        &self,
        dy: &Self::Tensor,
        x: &Self::Tensor,
        w_shape: &[usize],
        p: &Conv2dParams,
    ) -> Result<Self::Tensor>;
    fn conv2d_backward_bias(&self, dy: &Self::Tensor) -> Result<Self::Tensor>;

    // --- batch norm (2d on [N,C,H,W], 1d on [N,C]) --------------------------------------------
    fn batchnorm_inference(
        &self,
        x: &Self::Tensor,
        bn: &BnParams<Self::Tensor>,
    ) -> Result<Self::Tensor>;
    /// Normalises with batch statistics and returns them for backward and the running update.
    fn batchnorm_train(
        &self,
        x: &Self::Tensor,
        bn: &BnParams<Self::Tensor>,
    ) -> Result<(Self::Tensor, BnBatchStats<Self::Tensor>)>;
    /// Gradient through a training-mode batch norm: (dx, dgamma, dbeta).
    fn batchnorm_train_backward(
        &self,
        dy: &Self::Tensor,
        x: &Self::Tensor,
        bn: &BnParams<Self::Tensor>,
        stats: &BnBatchStats<Self::Tensor>,
    ) -> Result<(Self::Tensor, Self::Tensor, Self::Tensor)>;
    /// Gradient through an inference-mode (frozen statistics) batch norm: (dx, dgamma, dbeta).
    fn batchnorm_inference_backward(
        &self,
        dy: &Self::Tensor,
        x: &Self::Tensor,
        bn: &BnParams<Self::Tensor>,
    ) -> Result<(Self::Tensor, Self::Tensor, Self::Tensor)>;
    /// running <- (1 - momentum) running + momentum batch (unbiased variance).
    fn batchnorm_update_running(
        &self,
        bn: &mut BnParams<Self::Tensor>,
        stats: &BnBatchStats<Self::Tensor>,
        momentum: f64,
    ) -> Result<()>;

    // --- element-wise -------------------------------------------------------------------------
    fn relu(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    fn relu_backward(&self, dy: &Self::Tensor, x: &Self::Tensor) -> Result<Self::Tensor>;
    /// Residual add; its gradient is dy for both operands.
    fn add(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;

    // --- pooling ------------------------------------------------------------------------------
    fn maxpool2d(&self, x: &Self::Tensor, p: &Pool2dParams) -> Result<Self::Tensor>;
    fn maxpool2d_backward(
        &self,
        dy: &Self::Tensor,
        x: &Self::Tensor,
        p: &Pool2dParams,
    ) -> Result<Self::Tensor>;
    fn global_avg_pool(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    fn global_avg_pool_backward(
        &self,
        dy: &Self::Tensor,
        x_shape: &[usize],
    ) -> Result<Self::Tensor>;

    // --- dense --------------------------------------------------------------------------------
    fn dense(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        b: Option<&Self::Tensor>,
    ) -> Result<Self::Tensor>;
    fn dense_backward(
        &self,
        dy: &Self::Tensor,
        x: &Self::Tensor,
        w: &Self::Tensor,
    ) -> Result<DenseGrads<Self::Tensor>>;

    // --- loss ---------------------------------------------------------------------------------
    fn softmax(&self, logits: &Self::Tensor) -> Result<Self::Tensor>;
    /// Mean weighted cross-entropy of the batch and its gradient with respect to the logits.
    fn weighted_cross_entropy(
        &self,
        logits: &Self::Tensor,
        labels: &[usize],
        class_weights: &[f32],
        reduction: Reduction,
    ) -> Result<(f64, Self::Tensor)>;

    // --- optimiser ----------------------------------------------------------------------------
    /// One Adam update in place; `step` counts from 1.
    fn adam_step(
        &self,
        param: &mut Self::Tensor,
        grad: &Self::Tensor,
        m: &mut Self::Tensor,
        v: &mut Self::Tensor,
        cfg: &AdamConfig,
        step: u64,
    ) -> Result<()>;
}
