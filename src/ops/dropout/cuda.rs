//! Dropout on the CUDA backend (`dropout.cu`): one grid-stride kernel for forward and backward
//! (the same map). The host passes the mask's parameters as checked by [`DropoutMask::new`]: the
//! 64-bit generator state as a `long long` (its bits; the kernel reads them back unsigned), the
//! keep threshold and the f32 scale, so the kernel redoes no float arithmetic of its own.

use super::{DropoutKernels, DropoutMask};
use crate::cuda::launch::grid_stride;
use crate::cuda::{Arg, CudaBackend, CudaTensor};
use crate::error::Result;

impl DropoutKernels for CudaBackend {
    fn dropout_apply(&self, x: &CudaTensor, mask: &DropoutMask) -> Result<CudaTensor> {
        let y = CudaTensor::alloc(self.device(), x.shape())?;
        let args = [
            Arg::Buf(x.buf()),
            Arg::Buf(y.buf()),
            Arg::Int(x.len()),
            Arg::I64(mask.key as i64),
            Arg::U32(mask.threshold),
            Arg::F32(mask.scale),
        ];
        self.device()
            .launch("dropout_apply", grid_stride(x.len()), &args)?;
        Ok(y)
    }
}
