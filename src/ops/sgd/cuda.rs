//! SGD on the CUDA backend (`sgd.cu`): one element-wise kernel updating the parameter and, with
//! momentum, its buffer in place. The scalars (lr, wd, momentum, 1 - dampening) are computed
//! here in f64 as the reference's and passed rounded to float; without momentum the buffer goes
//! as a null pointer, so the kernel cannot touch it (and a shared buffer is not copied).

use super::{Mode, SgdConfig, SgdKernels};
use crate::cuda::launch::grid_stride;
use crate::cuda::{Arg, CudaBackend, CudaTensor, Elem};
use crate::error::Result;

impl SgdKernels for CudaBackend {
    fn sgd_update(
        &self,
        param: &mut CudaTensor,
        grad: &CudaTensor,
        buf: &mut CudaTensor,
        cfg: &SgdConfig,
        mode: Mode,
    ) -> Result<()> {
        let n = param.len();
        let p_buf = param.buf_mut()?;
        let b_arg = match mode {
            Mode::Plain => Arg::Null(Elem::F32),
            Mode::FirstMomentum | Mode::Momentum => Arg::Buf(buf.buf_mut()?),
        };
        let args = [
            Arg::Buf(p_buf),
            Arg::Buf(grad.buf()),
            b_arg,
            Arg::Int(n),
            Arg::F32(cfg.lr as f32),
            Arg::F32(cfg.weight_decay as f32),
            Arg::F32(cfg.momentum as f32),
            Arg::F32((1.0 - cfg.dampening) as f32),
            Arg::flag(mode == Mode::FirstMomentum),
            Arg::flag(cfg.nesterov),
        ];
        self.device().launch("sgd_step", grid_stride(n), &args)
    }
}
