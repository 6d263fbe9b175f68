//! The reference: one plain loop per tensor, the product taken in f64 and rounded once (exact
//! for f32 operands, so it is f32's correctly rounded product), the flag from `f64::is_finite`
//! of each input and output (a different test from the CPU's and the kernel's exponent-bit test, so the
//! suites compare two formulations).

use super::GradScaleKernels;
use crate::error::Result;
use crate::reference::ReferenceBackend;
use crate::tensor::Tensor;

impl GradScaleKernels for ReferenceBackend {
    fn unscale_check(&self, grads: &[&Tensor], inv_scale: f32) -> Result<(Vec<Tensor>, bool)> {
        let mut found = false;
        let mut out = Vec::with_capacity(grads.len());
        for g in grads {
            let data = g
                .data()
                .iter()
                .map(|&v| {
                    let y = (v as f64 * inv_scale as f64) as f32;
                    found |= !(v as f64).is_finite() || !(y as f64).is_finite();
                    y
                })
                .collect();
            out.push(Tensor::new(g.shape(), data)?);
        }
        Ok((out, found))
    }
}
