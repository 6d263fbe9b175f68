//! Unscaling on the `cpu` backend: chunks of each tensor in parallel, written straight into new
//! buffers; each chunk reports whether it saw a non-finite value. One multiply and one compare
//! per element (vectorised by the compiler): memory-bound.

use super::{GradScaleKernels, non_finite};
use crate::cpu::CpuBackend;
use crate::cpu::par::par_new_map;
use crate::error::Result;
use crate::tensor::Tensor;

/// Values per parallel task.
const CHUNK: usize = 1 << 14;

impl GradScaleKernels for CpuBackend {
    fn unscale_check(&self, grads: &[&Tensor], inv_scale: f32) -> Result<(Vec<Tensor>, bool)> {
        let mut found = false;
        let mut out = Vec::with_capacity(grads.len());
        for g in grads {
            let x = g.data();
            let (y, bad) = par_new_map(x.len(), CHUNK, |c, o| {
                let src = &x[c * CHUNK..c * CHUNK + o.len()];
                let mut bad = false;
                for (o, &v) in o.iter_mut().zip(src) {
                    let y = v * inv_scale;
                    bad |= non_finite(v) | non_finite(y);
                    o.write(y);
                }
                bad
            });
            found |= bad.into_iter().any(|b| b);
            out.push(Tensor::new(g.shape(), y)?);
        }
        Ok((out, found))
    }
}
