//! Max pooling (general kernel, stride, padding; padding never wins the max) and global average
//! pooling [N, C, H, W] -> [N, C]. ResNet50's stem uses max-pool 3x3, stride 2, padding 1.

pub mod cpu;
pub mod cuda;
pub mod reference;
#[cfg(test)]
mod tests;

use crate::error::{Result, invalid, shape_err};
use crate::ops::BackendBase;
use crate::tensor::{ShapeFmt, expect_shape};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pool2dParams {
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
}

impl Pool2dParams {
    pub fn square(kernel: usize, stride: usize, padding: usize) -> Self {
        Pool2dParams {
            kernel: (kernel, kernel),
            stride: (stride, stride),
            padding: (padding, padding),
        }
    }

    /// The checked geometry of pooling an input of shape `x`.
    pub fn geometry(&self, x: &[usize]) -> Result<PoolGeom> {
        let out = self.output_shape(x)?;
        Ok(PoolGeom {
            input: [x[0], x[1], x[2], x[3]],
            out,
            p: *self,
        })
    }

    /// Output [N, C, HO, WO] (floor mode, as PyTorch's default).
    pub fn output_shape(&self, x: &[usize]) -> Result<[usize; 4]> {
        const OP: &str = "maxpool2d";
        let &[n, c, h, w] = x else {
            return Err(shape_err(
                OP,
                format!("input must be [N, C, H, W], got {}", ShapeFmt(x)),
            ));
        };
        let ((kh, kw), (sh, sw), (ph, pw)) = (self.kernel, self.stride, self.padding);
        if kh == 0 || kw == 0 || sh == 0 || sw == 0 {
            return Err(invalid(
                OP,
                format!("kernel {kh}x{kw} and stride {sh}x{sw} must be >= 1"),
            ));
        }
        // PyTorch's rule: padding at most half the kernel, so every window holds a real value.
        if 2 * ph > kh || 2 * pw > kw {
            return Err(invalid(
                OP,
                format!("padding {ph}x{pw} must be at most half of kernel {kh}x{kw}"),
            ));
        }
        // An empty plane would leave windows holding only padding (nothing to take a max of).
        if h == 0 || w == 0 {
            return Err(shape_err(
                OP,
                format!("input {} has an empty plane", ShapeFmt(x)),
            ));
        }
        if h + 2 * ph < kh || w + 2 * pw < kw {
            return Err(shape_err(
                OP,
                format!(
                    "kernel {kh}x{kw} is larger than padded input {}",
                    ShapeFmt(x)
                ),
            ));
        }
        Ok([n, c, (h + 2 * ph - kh) / sh + 1, (w + 2 * pw - kw) / sw + 1])
    }
}

/// A checked max-pool geometry: input [N, C, H, W], output [N, C, HO, WO] and the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeom {
    pub input: [usize; 4],
    pub out: [usize; 4],
    pub p: Pool2dParams,
}

/// What a backend implements; shapes are already checked by [`PoolOps`].
pub trait PoolKernels: BackendBase {
    fn max_forward(&self, x: &Self::Tensor, g: &PoolGeom) -> Result<Self::Tensor>;
    fn max_backward(
        &self,
        dy: &Self::Tensor,
        x: &Self::Tensor,
        g: &PoolGeom,
    ) -> Result<Self::Tensor>;
    /// x is [n, c, h, w] with h * w > 0.
    fn avg_forward(&self, x: &Self::Tensor, dims: [usize; 4]) -> Result<Self::Tensor>;
    /// dy is [n, c] for an input of `dims` = [n, c, h, w].
    fn avg_backward(&self, dy: &Self::Tensor, dims: [usize; 4]) -> Result<Self::Tensor>;
}

/// The checked entry points, the same for every backend.
pub trait PoolOps: PoolKernels {
    fn maxpool2d(&self, x: &Self::Tensor, p: &Pool2dParams) -> Result<Self::Tensor> {
        let g = p.geometry(self.shape(x))?;
        PoolKernels::max_forward(self, x, &g)
    }
    fn maxpool2d_backward(
        &self,
        dy: &Self::Tensor,
        x: &Self::Tensor,
        p: &Pool2dParams,
    ) -> Result<Self::Tensor> {
        let g = p.geometry(self.shape(x))?;
        expect_shape(
            "maxpool2d_backward",
            "output gradient",
            self.shape(dy),
            &g.out,
        )?;
        PoolKernels::max_backward(self, dy, x, &g)
    }
    /// Mean over H, W: [N, C, H, W] -> [N, C].
    fn global_avg_pool(&self, x: &Self::Tensor) -> Result<Self::Tensor> {
        const OP: &str = "global_avg_pool";
        let &[n, c, h, w] = self.shape(x) else {
            return Err(shape_err(
                OP,
                format!(
                    "input must be 4-d [N, C, H, W], got {}",
                    ShapeFmt(self.shape(x))
                ),
            ));
        };
        if h * w == 0 {
            return Err(shape_err(
                OP,
                format!("input {} has an empty plane", ShapeFmt(self.shape(x))),
            ));
        }
        self.avg_forward(x, [n, c, h, w])
    }
    /// dx[n, c, :, :] = dy[n, c] / (H W).
    fn global_avg_pool_backward(
        &self,
        dy: &Self::Tensor,
        x_shape: &[usize],
    ) -> Result<Self::Tensor> {
        const OP: &str = "global_avg_pool_backward";
        let &[n, c, h, w] = x_shape else {
            return Err(shape_err(
                OP,
                format!("input shape must be 4-d, got {}", ShapeFmt(x_shape)),
            ));
        };
        expect_shape(OP, "output gradient", self.shape(dy), &[n, c])?;
        PoolKernels::avg_backward(self, dy, [n, c, h, w])
    }
}

impl<B: PoolKernels + ?Sized> PoolOps for B {}
