//! Unscaling gradients for dynamic loss scaling (FP16 training), with the overflow check that
//! decides whether the step runs: PyTorch's `_amp_foreach_non_finite_check_and_unscale_`, the
//! op inside `GradScaler.unscale_`.
//!
//! out_i = g_i * inv_scale for every element of every tensor (one f32 multiply), and one flag
//! for the whole list: whether any g_i or out_i is inf or NaN. PyTorch tests the input only (the
//! scaled gradient, so an overflow a multiply by a small inv_scale would hide is still seen);
//! we test the output too, because after many back-offs the scale can fall below 1, and then
//! inv_scale > 1 can overflow a finite gradient into inf, which the optimiser would turn into
//! NaN weights. The caller skips the optimiser step when the flag is set
//! ([`crate::train::loss_scale`]).
//!
//! Every backend returns the same bits: the product of two f32 values is exact in f64, so the
//! reference's f64 product rounded once is f32's correctly rounded product, which the CPU loop
//! and the kernel (`grad_scale.cu`) compute directly.

pub mod cpu;
pub mod cuda;
pub mod reference;
#[cfg(test)]
mod tests;

use crate::error::{Result, invalid};
use crate::ops::BackendBase;

/// What a backend implements: every tensor of `grads` times `inv_scale` (finite, checked), and
/// whether any input or output element is not finite.
pub trait GradScaleKernels: BackendBase {
    fn unscale_check(
        &self,
        grads: &[&Self::Tensor],
        inv_scale: f32,
    ) -> Result<(Vec<Self::Tensor>, bool)>;
}

/// The checked entry point, the same for every backend.
pub trait GradScaleOps: GradScaleKernels {
    /// `grads` each multiplied by `inv_scale` (a finite, positive f32; 1 / the loss scale),
    /// and whether any of their elements, before or after the multiply, is inf or NaN. An
    /// empty list is (empty, false).
    fn unscale_grads(
        &self,
        grads: &[&Self::Tensor],
        inv_scale: f32,
    ) -> Result<(Vec<Self::Tensor>, bool)> {
        if !(inv_scale.is_finite() && inv_scale > 0.0) {
            return Err(invalid(
                "unscale_grads",
                format!("the inverse loss scale must be finite and > 0, got {inv_scale}"),
            ));
        }
        if grads.is_empty() {
            return Ok((Vec::new(), false));
        }
        self.unscale_check(grads, inv_scale)
    }
}

impl<B: GradScaleKernels + ?Sized> GradScaleOps for B {}

/// Whether an f32 is inf or NaN, by its exponent bits (all ones): the test the kernel makes.
#[inline(always)]
pub fn non_finite(v: f32) -> bool {
    v.to_bits() & 0x7f80_0000 == 0x7f80_0000
}
