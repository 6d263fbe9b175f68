//! Dense layers on the CUDA backend: GEMMs at the backend's matmul precision
//! (`src/cuda/gemm_tc.rs`: the strided SGEMM in FP32, tensor cores otherwise) with the bias
//! fused, and column sums (FP32 always) for the bias gradient. A 16-bit x (VGG's flattened
//! activations at `--precision bf16|fp16`) is widened to FP32 first; y, dx and the parameter
//! gradients are FP32.

use super::{DenseDims, DenseGrads, DenseKernels};
use crate::cuda::gemm::{Mat, column_sums};
use crate::cuda::gemm_tc::gemm_with;
use crate::cuda::{CudaBackend, CudaTensor};
use crate::error::Result;
use crate::ops::elementwise::cuda::widened;

impl DenseKernels for CudaBackend {
    /// y = x W^T + b: x [N, I], W [O, I] (PyTorch's layout).
    fn forward(
        &self,
        x: &CudaTensor,
        w: &CudaTensor,
        b: Option<&CudaTensor>,
        DenseDims { n, i, o }: DenseDims,
    ) -> Result<CudaTensor> {
        let dev = self.device();
        let x = &widened(self, x)?;
        let y = CudaTensor::alloc(dev, &[n, o])?;
        gemm_with(
            self.precisions().matmul,
            dev,
            Mat::rows(x.buf(), i),
            Mat::cols(w.buf(), i),
            y.buf(),
            0,
            b.map(|b| b.buf()),
            (n, o, i),
            1.0,
            0.0,
        )?;
        Ok(y)
    }

    /// dx = dy W, dW = dy^T x, db = column sums of dy.
    fn backward(
        &self,
        dy: &CudaTensor,
        x: &CudaTensor,
        w: &CudaTensor,
        DenseDims { n, i, o }: DenseDims,
    ) -> Result<DenseGrads<CudaTensor>> {
        let dev = self.device();
        let (x, dy) = (&widened(self, x)?, &widened(self, dy)?);
        let dx = CudaTensor::alloc(dev, &[n, i])?;
        gemm_with(
            self.precisions().matmul,
            dev,
            Mat::rows(dy.buf(), o),
            Mat::rows(w.buf(), i),
            dx.buf(),
            0,
            None,
            (n, i, o),
            1.0,
            0.0,
        )?;
        let dw = CudaTensor::alloc(dev, &[o, i])?;
        gemm_with(
            self.precisions().matmul,
            dev,
            Mat::cols(dy.buf(), o),
            Mat::rows(x.buf(), i),
            dw.buf(),
            0,
            None,
            (o, i, n),
            1.0,
            0.0,
        )?;
        let db = CudaTensor::alloc(dev, &[o])?;
        column_sums(dev, dy.buf(), db.buf(), n, o)?;
        Ok(DenseGrads { dx, dw, db })
    }
}
