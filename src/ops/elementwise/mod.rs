//! Element-wise ops: activations (ReLU) and the residual add. Shape rule: operands of a binary
//! op need identical shapes (no broadcasting: nothing in ResNet or the head needs it, and an
//! accidental broadcast hides bugs).
//!
//! An activation is one [`Activation`] variant with its formula (f64 for the reference, f32 for
//! the CPU) and a pair of CUDA kernels `<name>_forward` / `<name>_backward` in `elementwise.cu`;
//! the backends dispatch on the variant, so a new activation touches only this file, the `.cu`
//! file and the tests.

pub mod cpu;
pub mod cuda;
pub mod reference;
#[cfg(test)]
mod tests;

use crate::error::{Result, shape_err};
use crate::ops::BackendBase;
use crate::tensor::ShapeFmt;

/// A point-wise activation y = f(x) with dx = dy f'(x).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    /// max(x, 0); the gradient at exactly 0 is taken as 0, as PyTorch does.
    Relu,
    /// x * sigmoid(x) (also called swish), used by EfficientNet-style backbones.
    Silu,
}

impl Activation {
    pub const ALL: &[Activation] = &[Activation::Relu, Activation::Silu];

    /// The op's name; its CUDA kernels are `<name>_forward` and `<name>_backward`.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Silu => "silu",
        }
    }

    /// f(x) in f64 (the reference).
    pub fn f64(self, x: f64) -> f64 {
        match self {
            Activation::Relu => {
                if x > 0.0 {
                    x
                } else {
                    0.0
                }
            }
            Activation::Silu => x / (1.0 + (-x).exp()),
        }
    }

    /// f'(x) in f64 (the reference).
    pub fn grad_f64(self, x: f64) -> f64 {
        match self {
            Activation::Relu => {
                if x > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            // d/dx x s(x) = s(x) + x s(x) (1 - s(x)), s = sigmoid.
            Activation::Silu => {
                let s = 1.0 / (1.0 + (-x).exp());
                s * (1.0 + x * (1.0 - s))
            }
        }
    }

    /// f(x) in f32, the CPU backend's inner loop (the CUDA kernel evaluates the same formula).
    #[inline(always)]
    pub fn f32(self, x: f32) -> f32 {
        match self {
            Activation::Relu => x.max(0.0),
            Activation::Silu => x / (1.0 + (-x).exp()),
        }
    }

    /// dy f'(x) in f32.
    #[inline(always)]
    pub fn backward_f32(self, dy: f32, x: f32) -> f32 {
        match self {
            Activation::Relu => {
                if x > 0.0 {
                    dy
                } else {
                    0.0
                }
            }
            Activation::Silu => {
                let s = 1.0 / (1.0 + (-x).exp());
                dy * (s * (1.0 + x * (1.0 - s)))
            }
        }
    }
}

/// What a backend implements; inputs are already checked by [`ElementwiseOps`].
pub trait ElementwiseKernels: BackendBase {
    fn activation_forward(&self, act: Activation, x: &Self::Tensor) -> Result<Self::Tensor>;
    /// `dy` and `x` have the same shape.
    fn activation_backward(
        &self,
        act: Activation,
        dy: &Self::Tensor,
        x: &Self::Tensor,
    ) -> Result<Self::Tensor>;
    /// `a` and `b` have the same shape.
    fn add_forward(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
}

/// The checked entry points, the same for every backend.
pub trait ElementwiseOps: ElementwiseKernels {
    fn activation(&self, act: Activation, x: &Self::Tensor) -> Result<Self::Tensor> {
        self.activation_forward(act, x)
    }
    fn activation_grad(
        &self,
        act: Activation,
        dy: &Self::Tensor,
        x: &Self::Tensor,
    ) -> Result<Self::Tensor> {
        check_same(backward_op(act), self.shape(dy), self.shape(x))?;
        self.activation_backward(act, dy, x)
    }
    fn relu(&self, x: &Self::Tensor) -> Result<Self::Tensor> {
        self.activation(Activation::Relu, x)
    }
    fn relu_backward(&self, dy: &Self::Tensor, x: &Self::Tensor) -> Result<Self::Tensor> {
        self.activation_grad(Activation::Relu, dy, x)
    }
    /// Residual add; its gradient is dy for both operands.
    fn add(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        check_same("add", self.shape(a), self.shape(b))?;
        self.add_forward(a, b)
    }
}

impl<B: ElementwiseKernels + ?Sized> ElementwiseOps for B {}

/// The op name of an activation's backward pass, as errors name it (`relu_backward`).
fn backward_op(act: Activation) -> &'static str {
    match act {
        Activation::Relu => "relu_backward",
        Activation::Silu => "silu_backward",
    }
}

pub fn check_same(op: &'static str, a: &[usize], b: &[usize]) -> Result<()> {
    if a != b {
        return Err(shape_err(
            op,
            format!(
                "operands must have the same shape, got {} and {}",
                ShapeFmt(a),
                ShapeFmt(b)
            ),
        ));
    }
    Ok(())
}
