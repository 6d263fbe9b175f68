//! Reference ReLU and add. The gradient of `add` is dy for both operands (no function needed).

use super::check_same;
use crate::error::Result;
use crate::real::Real;
use crate::tensor::Tensor;

pub fn relu<T: Real>(x: &Tensor<T>) -> Tensor<T> {
    Tensor::from_fn(x.shape(), |i| {
        let v = x.data()[i];
        if v.to_f64() > 0.0 { v } else { T::default() }
    })
}

/// dx = dy where x > 0, else 0 (the subgradient at 0 is taken as 0, as PyTorch does).
pub fn relu_backward<T: Real>(dy: &Tensor<T>, x: &Tensor<T>) -> Result<Tensor<T>> {
    check_same("relu_backward", dy.shape(), x.shape())?;
    Ok(Tensor::from_fn(x.shape(), |i| {
        if x.data()[i].to_f64() > 0.0 {
            dy.data()[i]
        } else {
            T::default()
        }
    }))
}

/// a + b (the residual connection).
pub fn add<T: Real>(a: &Tensor<T>, b: &Tensor<T>) -> Result<Tensor<T>> {
    check_same("add", a.shape(), b.shape())?;
    Ok(Tensor::from_fn(a.shape(), |i| {
        T::from_f64(a.data()[i].to_f64() + b.data()[i].to_f64())
    }))
}
