//! Reference dropout, generic over [`Real`] (the gradient check runs it in f64), and the
//! `reference` backend's kernel: one plain loop over the flat index.

use super::{DropoutKernels, DropoutMask};
use crate::error::Result;
use crate::real::Real;
use crate::reference::ReferenceBackend;
use crate::tensor::Tensor;

/// y_i = x_i * scale where the mask keeps i, else +0. The product is taken in f64 and rounded
/// once to `T`: for f32 inputs it is exact in f64 (24 x 24 significant bits), so the result is
/// f32's correctly rounded product, the same bits as the CPU's and the kernel's f32 multiply.
pub fn apply<T: Real>(x: &Tensor<T>, mask: &DropoutMask) -> Tensor<T> {
    let scale = mask.scale as f64;
    Tensor::from_fn(x.shape(), |i| {
        if mask.keeps(i as u64) {
            T::from_f64(x.data()[i].to_f64() * scale)
        } else {
            T::default()
        }
    })
}

impl DropoutKernels for ReferenceBackend {
    fn dropout_apply(&self, x: &Tensor, mask: &DropoutMask) -> Result<Tensor> {
        Ok(apply(x, mask))
    }
}
