//! Unscaling on the CUDA backend (`grad_scale.cu`): one grid-stride launch per tensor, all
//! writing one shared device flag, which is read once at the end (one 4-byte download per
//! optimiser step, the only synchronisation loss scaling adds).

use super::GradScaleKernels;
use crate::cuda::launch::grid_stride;
use crate::cuda::{Arg, CudaBackend, CudaTensor};
use crate::error::Result;

impl GradScaleKernels for CudaBackend {
    fn unscale_check(
        &self,
        grads: &[&CudaTensor],
        inv_scale: f32,
    ) -> Result<(Vec<CudaTensor>, bool)> {
        let dev = self.device();
        let flag = dev.upload_i32(&[0])?;
        let mut out = Vec::with_capacity(grads.len());
        for g in grads {
            if g.is_empty() {
                out.push((*g).clone());
                continue;
            }
            let y = CudaTensor::alloc(dev, g.shape())?;
            {
                let args = [
                    Arg::Buf(g.buf()),
                    Arg::Buf(y.buf()),
                    Arg::Int(g.len()),
                    Arg::F32(inv_scale),
                    Arg::Buf(&flag),
                ];
                dev.launch("unscale_check", grid_stride(g.len()), &args)?;
            }
            out.push(y);
        }
        let found = dev.download_i32(&flag)?[0] != 0;
        Ok((out, found))
    }
}
