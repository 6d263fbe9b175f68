//! Adam on the CUDA backend (`adam.cu`): one element-wise kernel updating param, m and v in
//! place. The scalar factors (lr*wd, 1 - b_i, lr / (1 - b1^t), 1 / sqrt(1 - b2^t)) are computed
//! here in f64 from the same bias corrections as the reference's, and passed rounded to float.

use super::{AdamConfig, AdamKernels};
use crate::cuda::launch::grid_stride;
use crate::cuda::{Arg, CudaBackend, CudaTensor};
use crate::error::Result;

impl AdamKernels for CudaBackend {
    fn adam_update(
        &self,
        param: &mut CudaTensor,
        grad: &CudaTensor,
        m: &mut CudaTensor,
        v: &mut CudaTensor,
        cfg: &AdamConfig,
        (bc1, bc2): (f64, f64),
    ) -> Result<()> {
        let n = param.len();
        let scalars = [
            cfg.lr * cfg.weight_decay,
            cfg.beta1,
            1.0 - cfg.beta1,
            cfg.beta2,
            1.0 - cfg.beta2,
            cfg.lr / bc1,
            1.0 / bc2.sqrt(),
            cfg.eps,
        ];
        let (p_buf, m_buf, v_buf) = (param.buf_mut()?, m.buf_mut()?, v.buf_mut()?);
        let mut args = vec![
            Arg::Buf(p_buf),
            Arg::Buf(grad.buf()),
            Arg::Buf(m_buf),
            Arg::Buf(v_buf),
            Arg::Int(n),
        ];
        args.extend(scalars.iter().map(|&s| Arg::F32(s as f32)));
        self.device().launch("adam_step", grid_stride(n), &args)
    }
}
