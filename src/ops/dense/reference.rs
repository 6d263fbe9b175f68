//! Reference dense layer.

use super::{DenseDims, DenseGrads, DenseKernels};
use crate::error::Result;
use crate::real::Real;
use crate::reference::ReferenceBackend;
use crate::tensor::Tensor;

pub fn forward<T: Real>(
    x: &Tensor<T>,
    w: &Tensor<T>,
    b: Option<&Tensor<T>>,
    d: DenseDims,
) -> Result<Tensor<T>> {
    let DenseDims { n, i, o } = d;
    let mut y = Vec::with_capacity(n * o);
    for r in 0..n {
        for c in 0..o {
            let mut acc = b.map_or(0.0, |b| b.data()[c].to_f64());
            for k in 0..i {
                acc += x.data()[r * i + k].to_f64() * w.data()[c * i + k].to_f64();
            }
            y.push(T::from_f64(acc));
        }
    }
    Tensor::new(&[n, o], y)
}

/// dx = dy W, dW = dy^T x, db = column sums of dy.
pub fn backward<T: Real>(
    dy: &Tensor<T>,
    x: &Tensor<T>,
    w: &Tensor<T>,
    d: DenseDims,
) -> Result<DenseGrads<Tensor<T>>> {
    let DenseDims { n, i, o } = d;
    let (dyd, xd, wd) = (dy.data(), x.data(), w.data());
    let dx = Tensor::from_fn(&[n, i], |idx| {
        let (r, k) = (idx / i, idx % i);
        T::from_f64(
            (0..o)
                .map(|c| dyd[r * o + c].to_f64() * wd[c * i + k].to_f64())
                .sum(),
        )
    });
    let dw = Tensor::from_fn(&[o, i], |idx| {
        let (c, k) = (idx / i, idx % i);
        T::from_f64(
            (0..n)
                .map(|r| dyd[r * o + c].to_f64() * xd[r * i + k].to_f64())
                .sum(),
        )
    });
    let db = Tensor::from_fn(&[o], |c| {
        T::from_f64((0..n).map(|r| dyd[r * o + c].to_f64()).sum())
    });
    Ok(DenseGrads { dx, dw, db })
}

impl DenseKernels for ReferenceBackend {
    fn forward(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>, d: DenseDims) -> Result<Tensor> {
        forward(x, w, b, d)
    }
    fn backward(
        &self,
        dy: &Tensor,
        x: &Tensor,
        w: &Tensor,
        d: DenseDims,
    ) -> Result<DenseGrads<Tensor>> {
        backward(dy, x, w, d)
    }
}
