//! Max pooling (general kernel, stride, padding; padding never wins the max) and global average
//! pooling [N, C, H, W] -> [N, C]. ResNet50's stem uses max-pool 3x3, stride 2, padding 1.

pub mod cpu;
pub mod cuda;
pub mod reference;

use crate::error::{Result, invalid, shape_err};
use crate::tensor::ShapeFmt;

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
