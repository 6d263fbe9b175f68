//! Inference in channels-last layout: activations [N, H, W, C] from a network's first layer to
//! its last, for backends whose convolutions run faster that way (the CPU's AVX-512 kernel:
//! output channels fill the vectors, so small maps waste no lanes and the input is read in
//! place). Weights stay [O, C, KH, KW] and parameters mean what they mean in NCHW; only the
//! activations' storage order differs. Forward only, for frozen backbones
//! (`model::resnet50`): training keeps NCHW.
//!
//! A backend says whether it has this ([`ChannelsLastKernels::channels_last`]); model code
//! asks before using it, and backends without it refuse every call. The CPU offers it with
//! AVX-512 (`cpu.rs`), the CUDA backend on tensor cores (`cuda.rs`: activations stored in the
//! convolutions' format, 16-bit at BF16/FP16). `SKINENGINE_CHANNELS_LAST=0` turns it off on
//! both (benchmarks comparing the layouts).

pub mod cpu;
pub mod cuda;
#[cfg(test)]
mod cuda_tests;
#[cfg(test)]
mod tests;

use crate::error::{Result, invalid, shape_err};
use crate::ops::BackendBase;
use crate::ops::conv2d::{Conv2dParams, ConvGeom, check_bias, geometry};
use crate::ops::pool::{Pool2dParams, PoolGeom};
use crate::tensor::{ShapeFmt, expect_shape};

/// Whether `SKINENGINE_CHANNELS_LAST=0` asks for the NCHW ops everywhere.
pub(crate) fn switched_off() -> bool {
    static OFF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OFF.get_or_init(|| std::env::var("SKINENGINE_CHANNELS_LAST").is_ok_and(|v| v == "0"))
}

fn unsupported(backend: &str) -> crate::error::Error {
    invalid(
        "channels_last",
        format!("the {backend} backend has no channels-last inference"),
    )
}

/// The epilogue of a channels-last convolution (residual in the output's NHWC shape).
#[derive(Clone, Copy)]
pub struct ClEpilogue<'a, T> {
    pub bias: Option<&'a T>,
    pub residual: Option<&'a T>,
    pub relu: bool,
}

/// What a backend implements (inputs already checked by [`ChannelsLastOps`]). The defaults
/// refuse: a backend without channels-last inference implements nothing.
pub trait ChannelsLastKernels: BackendBase {
    /// Whether the methods below run (and run faster than the NCHW ops).
    fn channels_last(&self) -> bool {
        false
    }
    /// NCHW [n, c, h, w] -> NHWC [n, h, w, c].
    fn cl_from_nchw(&self, _x: &Self::Tensor, _dims: [usize; 4]) -> Result<Self::Tensor> {
        Err(unsupported(self.name()))
    }
    /// NHWC [n, h, w, c] -> NCHW [n, c, h, w] (`dims` in NCHW order).
    fn cl_to_nchw(&self, _x: &Self::Tensor, _dims: [usize; 4]) -> Result<Self::Tensor> {
        Err(unsupported(self.name()))
    }
    fn cl_conv2d(
        &self,
        _x: &Self::Tensor,
        _w: &Self::Tensor,
        _g: &ConvGeom,
        _e: ClEpilogue<'_, Self::Tensor>,
    ) -> Result<Self::Tensor> {
        Err(unsupported(self.name()))
    }
    fn cl_maxpool(&self, _x: &Self::Tensor, _g: &PoolGeom) -> Result<Self::Tensor> {
        Err(unsupported(self.name()))
    }
    /// [n, h, w, c] -> [n, c] (`dims` in NCHW order).
    fn cl_global_avg_pool(&self, _x: &Self::Tensor, _dims: [usize; 4]) -> Result<Self::Tensor> {
        Err(unsupported(self.name()))
    }
}

/// An activation's [n, h, w, c] as NCHW dims [n, c, h, w].
fn nchw_dims(op: &'static str, s: &[usize]) -> Result<[usize; 4]> {
    let &[n, h, w, c] = s else {
        return Err(shape_err(
            op,
            format!("input must be 4-d [N, H, W, C], got {}", ShapeFmt(s)),
        ));
    };
    Ok([n, c, h, w])
}

/// The checked entry points, the same for every backend.
pub trait ChannelsLastOps: ChannelsLastKernels {
    /// [N, C, H, W] -> [N, H, W, C].
    fn to_channels_last(&self, x: &Self::Tensor) -> Result<Self::Tensor> {
        let &[n, c, h, w] = self.shape(x) else {
            return Err(shape_err(
                "to_channels_last",
                format!(
                    "input must be 4-d [N, C, H, W], got {}",
                    ShapeFmt(self.shape(x))
                ),
            ));
        };
        self.cl_from_nchw(x, [n, c, h, w])
    }
    /// [N, H, W, C] -> [N, C, H, W].
    fn to_nchw(&self, x: &Self::Tensor) -> Result<Self::Tensor> {
        let d = nchw_dims("to_nchw", self.shape(x))?;
        self.cl_to_nchw(x, d)
    }
    /// [`crate::ops::conv2d::Conv2dOps::conv2d_fused`] on x [N, H, W, C] (residual
    /// [N, HO, WO, O]) -> [N, HO, WO, O].
    fn conv2d_fused_cl(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        bias: Option<&Self::Tensor>,
        residual: Option<&Self::Tensor>,
        relu: bool,
        p: &Conv2dParams,
    ) -> Result<Self::Tensor> {
        let g = geometry(&nchw_dims("conv2d", self.shape(x))?, self.shape(w), p)?;
        if let Some(b) = bias {
            check_bias(self.shape(b), g.o)?;
        }
        if let Some(r) = residual {
            expect_shape("conv2d", "residual", self.shape(r), &[g.n, g.ho, g.wo, g.o])?;
        }
        let e = ClEpilogue {
            bias,
            residual,
            relu,
        };
        self.cl_conv2d(x, w, &g, e)
    }
    /// [`crate::ops::pool::PoolOps::maxpool2d`] on [N, H, W, C] -> [N, HO, WO, C].
    fn maxpool2d_cl(&self, x: &Self::Tensor, p: &Pool2dParams) -> Result<Self::Tensor> {
        let g = p.geometry(&nchw_dims("maxpool2d", self.shape(x))?)?;
        self.cl_maxpool(x, &g)
    }
    /// [N, H, W, C] -> [N, C], the mean over each channel's pixels.
    fn global_avg_pool_cl(&self, x: &Self::Tensor) -> Result<Self::Tensor> {
        let d = nchw_dims("global_avg_pool", self.shape(x))?;
        if d[2] * d[3] == 0 {
            return Err(shape_err(
                "global_avg_pool",
                format!("input {} has an empty plane", ShapeFmt(self.shape(x))),
            ));
        }
        self.cl_global_avg_pool(x, d)
    }
}

impl<B: ChannelsLastKernels + ?Sized> ChannelsLastOps for B {}

impl ChannelsLastKernels for crate::ReferenceBackend {}
