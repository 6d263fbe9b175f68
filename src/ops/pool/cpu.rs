//! Fast CPU pooling: planes in parallel, f32 throughout (max is exact and follows the
//! reference's tie and NaN rule; the average sums one plane of at most a few thousand values in
//! order, where f32 rounding stays near 1e-7 relative).

use super::{PoolGeom, PoolKernels, reference};
use crate::cpu::CpuBackend;
use crate::error::Result;
use crate::tensor::Tensor;
use rayon::prelude::*;

fn maxpool2d(x: &Tensor, g: &PoolGeom) -> Result<Tensor> {
    let (out, p) = (g.out, g.p);
    let [n, c, ho, wo] = out;
    let [_, _, h, w] = g.input;
    let ((kh, kw), (sh, sw), (ph, pw)) = (p.kernel, p.stride, p.padding);
    let mut y = vec![0.0f32; n * c * ho * wo];
    y.par_chunks_mut(ho * wo)
        .enumerate()
        .for_each(|(plane, yp)| {
            let xp = &x.data()[plane * h * w..(plane + 1) * h * w];
            for i in 0..ho {
                let r0 = (i * sh).saturating_sub(ph);
                let r1 = (i * sh + kh - ph).min(h);
                for j in 0..wo {
                    let c0 = (j * sw).saturating_sub(pw);
                    let c1 = (j * sw + kw - pw).min(w);
                    // The reference's rule: cells row by row, left to right, the first one
                    // kept unless a later one is strictly greater, so a NaN wins only as the
                    // first cell and of -0 / +0 the first found stays (bit-equal results).
                    let mut m = xp[r0 * w + c0];
                    for r in r0..r1 {
                        for &v in &xp[r * w + c0..r * w + c1] {
                            if v > m {
                                m = v;
                            }
                        }
                    }
                    yp[i * wo + j] = m;
                }
            }
        });
    Tensor::new(&out, y)
}

fn global_avg_pool(x: &Tensor, [n, c, h, w]: [usize; 4]) -> Result<Tensor> {
    let inv = 1.0 / (h * w) as f32;
    let y = x
        .data()
        .par_chunks(h * w)
        .map(|pl| pl.iter().sum::<f32>() * inv)
        .collect();
    Tensor::new(&[n, c], y)
}

impl PoolKernels for CpuBackend {
    fn max_forward(&self, x: &Tensor, g: &PoolGeom) -> Result<Tensor> {
        maxpool2d(x, g)
    }
    /// Only the stem's pool needs it, once per step: the reference's loop.
    fn max_backward(&self, dy: &Tensor, x: &Tensor, g: &PoolGeom) -> Result<Tensor> {
        reference::maxpool2d_backward(dy, x, g)
    }
    fn avg_forward(&self, x: &Tensor, dims: [usize; 4]) -> Result<Tensor> {
        global_avg_pool(x, dims)
    }
    fn avg_backward(&self, dy: &Tensor, dims: [usize; 4]) -> Result<Tensor> {
        reference::global_avg_pool_backward(dy, dims)
    }
}
