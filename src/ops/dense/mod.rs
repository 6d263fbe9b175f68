//! Fully connected layer y = x W^T + b, PyTorch's `nn.Linear` layout:
//! x [N, I], W [O, I], b [O] -> y [N, O].

pub mod cpu;
pub mod cuda;
pub mod reference;
#[cfg(test)]
mod tests;

use crate::error::{Result, shape_err};
use crate::ops::BackendBase;
use crate::tensor::{ShapeFmt, expect_shape};

/// The sizes of a dense layer: batch, inputs, outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DenseDims {
    pub n: usize,
    pub i: usize,
    pub o: usize,
}

/// (n, in, out) after checking x, W and the optional bias.
pub fn dims(x: &[usize], w: &[usize], b: Option<&[usize]>) -> Result<(usize, usize, usize)> {
    const OP: &str = "dense";
    let (&[n, i], &[o, wi]) = (x, w) else {
        return Err(shape_err(
            OP,
            format!(
                "input {} must be [N, in] and weight {} must be [out, in]",
                ShapeFmt(x),
                ShapeFmt(w)
            ),
        ));
    };
    if i != wi {
        return Err(shape_err(
            OP,
            format!(
                "input {} has {i} features but weight {} expects {wi}",
                ShapeFmt(x),
                ShapeFmt(w)
            ),
        ));
    }
    if let Some(b) = b
        && b != [o]
    {
        return Err(shape_err(
            OP,
            format!(
                "bias {} must be [{o}] for weight {}",
                ShapeFmt(b),
                ShapeFmt(w)
            ),
        ));
    }
    Ok((n, i, o))
}

/// The three gradients of a dense layer.
#[derive(Clone, Debug)]
pub struct DenseGrads<T> {
    pub dx: T,
    pub dw: T,
    pub db: T,
}

/// What a backend implements; shapes are already checked by [`DenseOps`] against `d`.
pub trait DenseKernels: BackendBase {
    fn forward(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        b: Option<&Self::Tensor>,
        d: DenseDims,
    ) -> Result<Self::Tensor>;
    fn backward(
        &self,
        dy: &Self::Tensor,
        x: &Self::Tensor,
        w: &Self::Tensor,
        d: DenseDims,
    ) -> Result<DenseGrads<Self::Tensor>>;
}

/// The checked entry points, the same for every backend.
pub trait DenseOps: DenseKernels {
    fn dense(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        b: Option<&Self::Tensor>,
    ) -> Result<Self::Tensor> {
        let (n, i, o) = dims(self.shape(x), self.shape(w), b.map(|b| self.shape(b)))?;
        DenseKernels::forward(self, x, w, b, DenseDims { n, i, o })
    }
    fn dense_backward(
        &self,
        dy: &Self::Tensor,
        x: &Self::Tensor,
        w: &Self::Tensor,
    ) -> Result<DenseGrads<Self::Tensor>> {
        let (n, i, o) = dims(self.shape(x), self.shape(w), None)?;
        expect_shape("dense_backward", "output gradient", self.shape(dy), &[n, o])?;
        DenseKernels::backward(self, dy, x, w, DenseDims { n, i, o })
    }
}

impl<B: DenseKernels + ?Sized> DenseOps for B {}
