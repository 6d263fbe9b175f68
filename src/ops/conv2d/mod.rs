//! 2-d convolution (cross-correlation, as in PyTorch), groups = 1, no dilation.
//! x [N, C, H, W] * w [O, C, KH, KW] (+ b [O]) -> y [N, O, HO, WO],
//! HO = (H + 2 PH - KH) / SH + 1 (floor), likewise WO.

pub mod cpu;
mod cpu_groups;
#[cfg(test)]
mod cpu_tests;
pub mod cuda;
pub mod cuda_tc;
pub mod reference;
#[cfg(all(test, skinengine_emu))]
mod tc_tests;
#[cfg(test)]
mod tests;

use crate::error::{Result, invalid, shape_err};
use crate::ops::BackendBase;
use crate::tensor::{ShapeFmt, expect_shape};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2dParams {
    /// (vertical, horizontal)
    pub stride: (usize, usize),
    /// (vertical, horizontal) zero padding on both sides.
    pub padding: (usize, usize),
}

impl Conv2dParams {
    /// Same stride and padding in both directions.
    pub fn square(stride: usize, padding: usize) -> Self {
        Conv2dParams {
            stride: (stride, stride),
            padding: (padding, padding),
        }
    }
}

/// Every size a convolution implementation needs, validated once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub kh: usize,
    pub kw: usize,
    pub ho: usize,
    pub wo: usize,
    pub sh: usize,
    pub sw: usize,
    pub ph: usize,
    pub pw: usize,
}

impl ConvGeom {
    pub fn x_shape(&self) -> [usize; 4] {
        [self.n, self.c, self.h, self.w]
    }
    pub fn w_shape(&self) -> [usize; 4] {
        [self.o, self.c, self.kh, self.kw]
    }
    pub fn y_shape(&self) -> [usize; 4] {
        [self.n, self.o, self.ho, self.wo]
    }
    /// A 1x1, stride-1, unpadded convolution: a plain matrix product over channels.
    pub fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.sh == 1 && self.sw == 1 && self.ph == 0 && self.pw == 0
    }
    /// Multiply-adds of the forward pass.
    pub fn macs(&self) -> usize {
        self.n * self.o * self.ho * self.wo * self.c * self.kh * self.kw
    }
}

/// Checks the shapes of input and weight against the parameters and derives the output size.
pub fn geometry(x: &[usize], w: &[usize], p: &Conv2dParams) -> Result<ConvGeom> {
    const OP: &str = "conv2d";
    let (&[n, c, h, wd], &[o, wc, kh, kw]) = (x, w) else {
        return Err(shape_err(
            OP,
            format!(
                "input {} and weight {} must both be 4-d (NCHW and OIHW)",
                ShapeFmt(x),
                ShapeFmt(w)
            ),
        ));
    };
    if c != wc {
        return Err(shape_err(
            OP,
            format!(
                "input {} has {c} channels but weight {} expects {wc}",
                ShapeFmt(x),
                ShapeFmt(w)
            ),
        ));
    }
    let (sh, sw) = p.stride;
    let (ph, pw) = p.padding;
    if sh == 0 || sw == 0 {
        return Err(invalid(OP, format!("stride must be >= 1, got {sh}x{sw}")));
    }
    if kh == 0 || kw == 0 || o == 0 || c == 0 {
        return Err(shape_err(
            OP,
            format!("weight {} has a zero dimension", ShapeFmt(w)),
        ));
    }
    if h + 2 * ph < kh || wd + 2 * pw < kw {
        return Err(shape_err(
            OP,
            format!(
                "kernel {kh}x{kw} is larger than padded input {}x{} (input {}, padding {ph}x{pw})",
                h + 2 * ph,
                wd + 2 * pw,
                ShapeFmt(x)
            ),
        ));
    }
    Ok(ConvGeom {
        n,
        c,
        h,
        w: wd,
        o,
        kh,
        kw,
        ho: (h + 2 * ph - kh) / sh + 1,
        wo: (wd + 2 * pw - kw) / sw + 1,
        sh,
        sw,
        ph,
        pw,
    })
}

/// Checks a bias against the number of output channels.
pub fn check_bias(bias: &[usize], o: usize) -> Result<()> {
    if bias != [o] {
        return Err(shape_err(
            "conv2d",
            format!(
                "bias {} must be [{o}] for {o} output channels",
                ShapeFmt(bias)
            ),
        ));
    }
    Ok(())
}

/// Checks that `dy` has the output shape the geometry implies.
pub fn check_dy(op: &'static str, dy: &[usize], g: &ConvGeom) -> Result<()> {
    if dy != g.y_shape() {
        return Err(shape_err(
            op,
            format!(
                "output gradient {} must be {} for this convolution",
                ShapeFmt(dy),
                ShapeFmt(&g.y_shape())
            ),
        ));
    }
    Ok(())
}

/// What is applied to each output element after the convolution sum, in this order:
/// y = relu?(conv(x, w) + bias + residual). Fast backends fuse it into the GEMM's output pass.
pub struct Epilogue<'a, T> {
    pub bias: Option<&'a T>,
    pub residual: Option<&'a T>,
    pub relu: bool,
}

/// What a backend implements; shapes are already checked by [`Conv2dOps`] against `g`.
pub trait Conv2dKernels: BackendBase {
    fn forward(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        g: &ConvGeom,
        e: Epilogue<'_, Self::Tensor>,
    ) -> Result<Self::Tensor>;
    fn backward_data(
        &self,
        dy: &Self::Tensor,
        w: &Self::Tensor,
        g: &ConvGeom,
    ) -> Result<Self::Tensor>;
    fn backward_weight(
        &self,
        dy: &Self::Tensor,
        x: &Self::Tensor,
        g: &ConvGeom,
    ) -> Result<Self::Tensor>;
    /// dy is [n, o, ho, wo].
    fn backward_bias(&self, dy: &Self::Tensor, dims: [usize; 4]) -> Result<Self::Tensor>;
}

/// The checked entry points, the same for every backend.
pub trait Conv2dOps: Conv2dKernels {
    fn conv2d(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        bias: Option<&Self::Tensor>,
        p: &Conv2dParams,
    ) -> Result<Self::Tensor> {
        self.conv2d_fused(x, w, bias, None, false, p)
    }
    /// Inference convolution with its epilogue: relu?(conv(x, w) + bias + residual).
    fn conv2d_fused(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        bias: Option<&Self::Tensor>,
        residual: Option<&Self::Tensor>,
        relu: bool,
        p: &Conv2dParams,
    ) -> Result<Self::Tensor> {
        let g = geometry(self.shape(x), self.shape(w), p)?;
        if let Some(b) = bias {
            check_bias(self.shape(b), g.o)?;
        }
        if let Some(r) = residual {
            expect_shape("conv2d", "residual", self.shape(r), &g.y_shape())?;
        }
        let e = Epilogue {
            bias,
            residual,
            relu,
        };
        Conv2dKernels::forward(self, x, w, &g, e)
    }
    fn conv2d_backward_data(
        &self,
        dy: &Self::Tensor,
        w: &Self::Tensor,
        x_shape: &[usize],
        p: &Conv2dParams,
    ) -> Result<Self::Tensor> {
        let g = geometry(x_shape, self.shape(w), p)?;
        check_dy("conv2d_backward_data", self.shape(dy), &g)?;
        Conv2dKernels::backward_data(self, dy, w, &g)
    }
    fn conv2d_backward_weight(
        &self,
        dy: &Self::Tensor,
        x: &Self::Tensor,
        w_shape: &[usize],
        p: &Conv2dParams,
    ) -> Result<Self::Tensor> {
        let g = geometry(self.shape(x), w_shape, p)?;
        check_dy("conv2d_backward_weight", self.shape(dy), &g)?;
        Conv2dKernels::backward_weight(self, dy, x, &g)
    }
    fn conv2d_backward_bias(&self, dy: &Self::Tensor) -> Result<Self::Tensor> {
        let &[n, o, ho, wo] = self.shape(dy) else {
            return Err(shape_err(
                "conv2d_backward_bias",
                format!(
                    "output gradient must be 4-d [N, C, H, W], got {}",
                    ShapeFmt(self.shape(dy))
                ),
            ));
        };
        Conv2dKernels::backward_bias(self, dy, [n, o, ho, wo])
    }
}

impl<B: Conv2dKernels + ?Sized> Conv2dOps for B {}
