//! The CPU backend's channels-last inference: `cpu::nhwc` (AVX-512 kernel, layout changes,
//! poolings). Offered where AVX-512F is (`cpu::nhwc::available`).

use super::{ChannelsLastKernels, ClEpilogue};
use crate::cpu::CpuBackend;
use crate::cpu::nhwc::{self, layout};
use crate::error::Result;
use crate::ops::conv2d::ConvGeom;
use crate::ops::pool::PoolGeom;
use crate::tensor::Tensor;

impl ChannelsLastKernels for CpuBackend {
    fn channels_last(&self) -> bool {
        nhwc::available()
    }
    fn cl_from_nchw(&self, x: &Tensor, [n, c, h, w]: [usize; 4]) -> Result<Tensor> {
        Tensor::new(
            &[n, h, w, c],
            layout::nchw_to_nhwc(x.data(), [n, c, h, w], (0, 0)),
        )
    }
    fn cl_to_nchw(&self, x: &Tensor, d: [usize; 4]) -> Result<Tensor> {
        Tensor::new(&d, layout::nhwc_to_nchw(x.data(), d))
    }
    fn cl_conv2d(
        &self,
        x: &Tensor,
        w: &Tensor,
        g: &ConvGeom,
        e: ClEpilogue<'_, Tensor>,
    ) -> Result<Tensor> {
        let epi = nhwc::Epi {
            bias: e.bias.map(|b| b.data()),
            residual: e.residual.map(|r| r.data()),
            relu: e.relu,
        };
        let y = if nhwc::winograd::use_for(g) {
            nhwc::winograd::forward(x.data(), g, &nhwc::winograd::transformed(w), epi)
        } else if nhwc::wants_row_taps(g) {
            // Few channels (the stem): pad explicitly, one tap per kernel row.
            let padded = layout::pad_nhwc(x.data(), [g.n, g.h, g.w, g.c], (g.ph, g.pw));
            nhwc::conv(&padded, &nhwc::Conv::row_taps(g), &nhwc::packed(w), epi)
        } else {
            nhwc::conv(x.data(), &nhwc::Conv::per_pixel(g), &nhwc::packed(w), epi)
        };
        Tensor::new(&[g.n, g.ho, g.wo, g.o], y)
    }
    fn cl_maxpool(&self, x: &Tensor, g: &PoolGeom) -> Result<Tensor> {
        let [n, c, ho, wo] = g.out;
        Tensor::new(&[n, ho, wo, c], layout::maxpool(x.data(), g))
    }
    fn cl_global_avg_pool(&self, x: &Tensor, d: [usize; 4]) -> Result<Tensor> {
        Tensor::new(&[d[0], d[1]], layout::global_avg_pool(x.data(), d))
    }
}
