//! The `cuda` backend: every op a kernel from `kernels/*.cu`, launched through
//! [`Device`](crate::cuda::Device) — on the GPU, or on the CPU emulator in tests. Tensors stay on
//! the device between ops; only `upload`/`download` (and the scalar loss) cross to the host.
//! Each op's launch code lives beside its reference in `ops/<op>/cuda.rs`.

use std::sync::Arc;

use super::{Backend, BnBatchStats, BnParams};
use crate::cuda::{CudaTensor, Device};
use crate::error::Result;
use crate::ops::adam::{self, AdamConfig};
use crate::ops::batchnorm;
use crate::ops::conv2d::{self, Conv2dParams};
use crate::ops::dense::{self, DenseGrads};
use crate::ops::elementwise;
use crate::ops::loss::{self, Reduction};
use crate::ops::pool::{self, Pool2dParams};
use crate::tensor::Tensor;

#[derive(Clone)]
pub struct CudaBackend {
    dev: Arc<Device>,
}

impl CudaBackend {
    /// The first GPU; an error (never a panic) names what is missing: driver, GPU or NVRTC.
    pub fn gpu() -> Result<CudaBackend> {
        Ok(CudaBackend {
            dev: crate::cuda::gpu::gpu()?,
        })
    }
    /// The CPU emulator running the same kernels with `threads` OS threads (0 = all cores).
    #[cfg(skinengine_emu)]
    pub fn emulator(threads: usize) -> CudaBackend {
        CudaBackend {
            dev: crate::cuda::emu::emulator(threads),
        }
    }
    pub fn device(&self) -> &Arc<Device> {
        &self.dev
    }
}

impl Backend for CudaBackend {
    type Tensor = CudaTensor;

    fn name(&self) -> &'static str {
        "cuda"
    }
    fn upload(&self, t: &Tensor) -> Result<CudaTensor> {
        CudaTensor::upload(&self.dev, t)
    }
    fn download(&self, t: &CudaTensor) -> Result<Tensor> {
        t.download()
    }
    fn shape<'a>(&self, t: &'a CudaTensor) -> &'a [usize] {
        t.shape()
    }

    fn conv2d(
        &self,
        x: &CudaTensor,
        w: &CudaTensor,
        bias: Option<&CudaTensor>,
        p: &Conv2dParams,
    ) -> Result<CudaTensor> {
        conv2d::cuda::forward(&self.dev, x, w, bias, None, false, p)
    }
    fn conv2d_fused(
        &self,
        x: &CudaTensor,
        w: &CudaTensor,
        bias: Option<&CudaTensor>,
        residual: Option<&CudaTensor>,
        relu: bool,
        p: &Conv2dParams,
    ) -> Result<CudaTensor> {
        conv2d::cuda::forward(&self.dev, x, w, bias, residual, relu, p)
    }
    fn conv2d_backward_data(
        &self,
        dy: &CudaTensor,
        w: &CudaTensor,
        x_shape: &[usize],
        p: &Conv2dParams,
    ) -> Result<CudaTensor> {
        conv2d::cuda::backward_data(&self.dev, dy, w, x_shape, p)
    }
    fn conv2d_backward_weight(
        &self,
        dy: &CudaTensor,
        x: &CudaTensor,
        w_shape: &[usize],
        p: &Conv2dParams,
    ) -> Result<CudaTensor> {
        conv2d::cuda::backward_weight(&self.dev, dy, x, w_shape, p)
    }
    fn conv2d_backward_bias(&self, dy: &CudaTensor) -> Result<CudaTensor> {
        conv2d::cuda::backward_bias(&self.dev, dy)
    }

    fn batchnorm_inference(&self, x: &CudaTensor, bn: &BnParams<CudaTensor>) -> Result<CudaTensor> {
        batchnorm::cuda::inference(&self.dev, x, bn)
    }
    fn batchnorm_train(
        &self,
        x: &CudaTensor,
        bn: &BnParams<CudaTensor>,
    ) -> Result<(CudaTensor, BnBatchStats<CudaTensor>)> {
        batchnorm::cuda::train(&self.dev, x, bn)
    }
    fn batchnorm_train_backward(
        &self,
        dy: &CudaTensor,
        x: &CudaTensor,
        bn: &BnParams<CudaTensor>,
        stats: &BnBatchStats<CudaTensor>,
    ) -> Result<(CudaTensor, CudaTensor, CudaTensor)> {
        batchnorm::cuda::train_backward(&self.dev, dy, x, bn, stats)
    }
    fn batchnorm_inference_backward(
        &self,
        dy: &CudaTensor,
        x: &CudaTensor,
        bn: &BnParams<CudaTensor>,
    ) -> Result<(CudaTensor, CudaTensor, CudaTensor)> {
        batchnorm::cuda::inference_backward(&self.dev, dy, x, bn)
    }
    fn batchnorm_update_running(
        &self,
        bn: &mut BnParams<CudaTensor>,
        stats: &BnBatchStats<CudaTensor>,
        momentum: f64,
    ) -> Result<()> {
        batchnorm::cuda::update_running(&self.dev, bn, stats, momentum)
    }

    fn relu(&self, x: &CudaTensor) -> Result<CudaTensor> {
        elementwise::cuda::relu(&self.dev, x)
    }
    fn relu_backward(&self, dy: &CudaTensor, x: &CudaTensor) -> Result<CudaTensor> {
        elementwise::cuda::relu_backward(&self.dev, dy, x)
    }
    fn add(&self, a: &CudaTensor, b: &CudaTensor) -> Result<CudaTensor> {
        elementwise::cuda::add(&self.dev, a, b)
    }

    fn maxpool2d(&self, x: &CudaTensor, p: &Pool2dParams) -> Result<CudaTensor> {
        pool::cuda::maxpool2d(&self.dev, x, p)
    }
    fn maxpool2d_backward(
        &self,
        dy: &CudaTensor,
        x: &CudaTensor,
        p: &Pool2dParams,
    ) -> Result<CudaTensor> {
        pool::cuda::maxpool2d_backward(&self.dev, dy, x, p)
    }
    fn global_avg_pool(&self, x: &CudaTensor) -> Result<CudaTensor> {
        pool::cuda::global_avg_pool(&self.dev, x)
    }
    fn global_avg_pool_backward(&self, dy: &CudaTensor, x_shape: &[usize]) -> Result<CudaTensor> {
        pool::cuda::global_avg_pool_backward(&self.dev, dy, x_shape)
    }

    fn dense(&self, x: &CudaTensor, w: &CudaTensor, b: Option<&CudaTensor>) -> Result<CudaTensor> {
        dense::cuda::forward(&self.dev, x, w, b)
    }
    fn dense_backward(
        &self,
        dy: &CudaTensor,
        x: &CudaTensor,
        w: &CudaTensor,
    ) -> Result<DenseGrads<CudaTensor>> {
        dense::cuda::backward(&self.dev, dy, x, w)
    }

    fn softmax(&self, logits: &CudaTensor) -> Result<CudaTensor> {
        loss::cuda::softmax(&self.dev, logits)
    }
    fn weighted_cross_entropy(
        &self,
        logits: &CudaTensor,
        labels: &[usize],
        class_weights: &[f32],
        reduction: Reduction,
    ) -> Result<(f64, CudaTensor)> {
        loss::cuda::weighted_cross_entropy(&self.dev, logits, labels, class_weights, reduction)
    }

    fn adam_step(
        &self,
        param: &mut CudaTensor,
        grad: &CudaTensor,
        m: &mut CudaTensor,
        v: &mut CudaTensor,
        cfg: &AdamConfig,
        step: u64,
    ) -> Result<()> {
        adam::cuda::step(&self.dev, param, grad, m, v, cfg, step)
    }
}
