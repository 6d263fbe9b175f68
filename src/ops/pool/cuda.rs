//! Pooling on the CUDA backend (`pool.cu`). Max-pool kernels take the geometry as one [`Window`]
//! struct (O = C), the same struct convolution uses.
//!
//! Activations may be 16-bit ([`CudaBackend::activation_storage`]): max pooling and its
//! gradient keep x's format; the global average pool returns FP32 (the features the head reads)
//! and its gradient is stored in the backend's activation format.

use super::{PoolGeom, PoolKernels};
use crate::cuda::kernel_args::{Window, WindowSizes};
use crate::cuda::launch::grid_stride;
use crate::cuda::{Arg, CudaBackend, CudaTensor, Dims};
use crate::error::Result;

/// Warps (planes) per block of the global-average-pool forward.
const GAP_WARPS: u32 = 8;

pub(crate) fn window(g: &PoolGeom) -> Result<Window> {
    let [n, c, h, w] = g.input;
    let [_, _, ho, wo] = g.out;
    // Offsets into the tensor are 64-bit in the kernels; plane sizes must fit an int.
    crate::cuda::KInt::new("maxpool2d", "plane size", h * w)?;
    crate::cuda::KInt::new("maxpool2d", "output plane size", ho * wo)?;
    Window::new(
        "maxpool2d",
        WindowSizes {
            input: [n, c, h, w],
            out: [c, ho, wo],
            kernel: g.p.kernel,
            stride: g.p.stride,
            padding: g.p.padding,
        },
    )
}

impl PoolKernels for CudaBackend {
    fn max_forward(&self, x: &CudaTensor, g: &PoolGeom) -> Result<CudaTensor> {
        let win = window(g)?;
        let y = CudaTensor::alloc_as(self.device(), &g.out, x.elem())?;
        let ([xb, xf], [yb, yf]) = (x.act(), y.act());
        self.device().launch(
            "maxpool2d_forward",
            grid_stride(y.len()),
            &[xb, xf, yb, yf, Arg::by_value(&win)],
        )?;
        Ok(y)
    }
    fn max_backward(&self, dy: &CudaTensor, x: &CudaTensor, g: &PoolGeom) -> Result<CudaTensor> {
        let win = window(g)?;
        let dx = CudaTensor::alloc_as(self.device(), x.shape(), x.elem())?;
        let ([db, df], [xb, xf], [ob, of]) = (dy.act(), x.act(), dx.act());
        self.device().launch(
            "maxpool2d_backward",
            grid_stride(dx.len()),
            &[db, df, xb, xf, ob, of, Arg::by_value(&win)],
        )?;
        Ok(dx)
    }
    fn avg_forward(&self, x: &CudaTensor, [n, c, h, w]: [usize; 4]) -> Result<CudaTensor> {
        let y = CudaTensor::alloc(self.device(), &[n, c])?;
        let blocks = (n * c).div_ceil(GAP_WARPS as usize).clamp(1, 65_535) as u32;
        let [xb, xf] = x.act();
        self.device().launch(
            "global_avg_pool_forward",
            Dims::new([blocks, 1, 1], [32 * GAP_WARPS, 1, 1]),
            &[xb, xf, Arg::Buf(y.buf()), Arg::Int(n * c), Arg::Int(h * w)],
        )?;
        Ok(y)
    }
    fn avg_backward(&self, dy: &CudaTensor, [n, c, h, w]: [usize; 4]) -> Result<CudaTensor> {
        let dx = CudaTensor::alloc_as(self.device(), &[n, c, h, w], self.activation_storage())?;
        let [ob, of] = dx.act();
        self.device().launch(
            "global_avg_pool_backward",
            grid_stride(dx.len()),
            &[Arg::Buf(dy.buf()), ob, of, Arg::Int(n * c), Arg::Int(h * w)],
        )?;
        Ok(dx)
    }
}
