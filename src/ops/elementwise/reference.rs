//! Reference activations and add, generic over [`Real`] (gradient checks run them in f64), and
//! the `reference` backend's kernels. The gradient of `add` is dy for both operands.

use super::{Activation, ElementwiseKernels};
use crate::error::Result;
use crate::real::Real;
use crate::reference::ReferenceBackend;
use crate::tensor::Tensor;

/// y = f(x), evaluated in f64 and rounded once.
pub fn activation<T: Real>(act: Activation, x: &Tensor<T>) -> Tensor<T> {
    Tensor::from_fn(x.shape(), |i| T::from_f64(act.f64(x.data()[i].to_f64())))
}

/// dx = dy f'(x) (shapes checked by the caller). Where f'(x) is 0 the gradient is an exact 0
/// (not -0, nor NaN from an infinite dy), as PyTorch's ReLU backward gives.
pub fn activation_backward<T: Real>(act: Activation, dy: &Tensor<T>, x: &Tensor<T>) -> Tensor<T> {
    Tensor::from_fn(x.shape(), |i| {
        let g = act.grad_f64(x.data()[i].to_f64());
        if g == 0.0 {
            T::default()
        } else {
            T::from_f64(dy.data()[i].to_f64() * g)
        }
    })
}

/// a + b (the residual connection; shapes checked by the caller).
pub fn add<T: Real>(a: &Tensor<T>, b: &Tensor<T>) -> Tensor<T> {
    Tensor::from_fn(a.shape(), |i| {
        T::from_f64(a.data()[i].to_f64() + b.data()[i].to_f64())
    })
}

impl ElementwiseKernels for ReferenceBackend {
    fn activation_forward(&self, act: Activation, x: &Tensor) -> Result<Tensor> {
        Ok(activation(act, x))
    }
    fn activation_backward(&self, act: Activation, dy: &Tensor, x: &Tensor) -> Result<Tensor> {
        Ok(activation_backward(act, dy, x))
    }
    fn add_forward(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        Ok(add(a, b))
    }
}
