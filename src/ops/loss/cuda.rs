//! Softmax and weighted cross-entropy on the CUDA backend (`loss.cu`). Labels are validated by
//! the entry point before they are converted to i32 and uploaded.

use super::{LossKernels, Reduction};
use crate::cuda::launch::grid_stride;
use crate::cuda::{Arg, CudaBackend, CudaTensor, Dims, Elem};
use crate::error::Result;

/// Threads of the single cross-entropy block (a multiple of 32; the kernel reduces per warp).
const CE_THREADS: u32 = 256;

impl LossKernels for CudaBackend {
    fn softmax_forward(&self, logits: &CudaTensor, n: usize, k: usize) -> Result<CudaTensor> {
        let y = CudaTensor::alloc(self.device(), logits.shape())?;
        self.device().launch(
            "softmax_forward",
            grid_stride(n),
            &[
                Arg::Buf(logits.buf()),
                Arg::Buf(y.buf()),
                Arg::Int(n),
                Arg::Int(k),
            ],
        )?;
        Ok(y)
    }
    fn cross_entropy_forward(
        &self,
        logits: &CudaTensor,
        labels: &[usize],
        class_weights: &[f32],
        reduction: Reduction,
    ) -> Result<(f64, CudaTensor)> {
        let dev = self.device();
        let (n, k) = (labels.len(), class_weights.len());
        // The entry point put every label below k; k itself is range-checked at launch.
        let labels_i32: Vec<i32> = labels.iter().map(|&y| y as i32).collect();
        let labels_d = dev.upload_i32(&labels_i32)?;
        let weights_d = dev.upload_f32(class_weights)?;
        let grad = CudaTensor::alloc(dev, logits.shape())?;
        let loss = dev.alloc(1, Elem::F32)?;
        dev.launch(
            "weighted_cross_entropy",
            Dims::new([1, 1, 1], [CE_THREADS, 1, 1]),
            &[
                Arg::Buf(logits.buf()),
                Arg::Buf(&labels_d),
                Arg::Buf(&weights_d),
                Arg::Buf(grad.buf()),
                Arg::Buf(&loss),
                Arg::Int(n),
                Arg::Int(k),
                Arg::flag(reduction == Reduction::Seed),
            ],
        )?;
        let l = dev.download_f32(&loss)?[0] as f64;
        Ok((l, grad))
    }
}
