//! Reference pooling, generic over [`Real`], and the `reference` backend's pooling kernels.

use super::{PoolGeom, PoolKernels};
use crate::error::Result;
use crate::real::Real;
use crate::reference::ReferenceBackend;
use crate::tensor::Tensor;

/// Flat index of the maximum of each output window (the first one on ties), in output order.
fn argmax_windows<T: Real>(x: &Tensor<T>, g: &PoolGeom) -> Vec<usize> {
    let [n, c, ho, wo] = g.out;
    let [_, _, h, w] = g.input;
    let p = g.p;
    let ((kh, kw), (sh, sw), (ph, pw)) = (p.kernel, p.stride, p.padding);
    let mut idx = Vec::with_capacity(n * c * ho * wo);
    for plane in 0..n * c {
        for i in 0..ho {
            for j in 0..wo {
                let mut best: Option<(f64, usize)> = None;
                for ki in 0..kh {
                    let hi = (i * sh + ki) as isize - ph as isize;
                    if hi < 0 || hi as usize >= h {
                        continue;
                    }
                    for kj in 0..kw {
                        let wi = (j * sw + kj) as isize - pw as isize;
                        if wi < 0 || wi as usize >= w {
                            continue;
                        }
                        let at = (plane * h + hi as usize) * w + wi as usize;
                        let v = x.data()[at].to_f64();
                        if best.is_none_or(|(b, _)| v > b) {
                            best = Some((v, at));
                        }
                    }
                }
                // The geometry check guarantees every window overlaps the input.
                idx.push(best.expect("window inside input").1);
            }
        }
    }
    idx
}

/// The max of each window, for a checked geometry ([`super::Pool2dParams::geometry`]).
pub fn maxpool2d<T: Real>(x: &Tensor<T>, g: &PoolGeom) -> Result<Tensor<T>> {
    let idx = argmax_windows(x, g);
    Tensor::new(&g.out, idx.iter().map(|&i| x.data()[i]).collect())
}

/// Routes each output gradient to the input that won its window.
pub fn maxpool2d_backward<T: Real>(
    dy: &Tensor<T>,
    x: &Tensor<T>,
    g: &PoolGeom,
) -> Result<Tensor<T>> {
    let idx = argmax_windows(x, g);
    let mut dx = vec![0.0f64; x.len()];
    for (o, &i) in idx.iter().enumerate() {
        dx[i] += dy.data()[o].to_f64();
    }
    Tensor::new(x.shape(), dx.into_iter().map(T::from_f64).collect())
}

/// Mean over H, W: [N, C, H, W] -> [N, C] (a 4-d input with non-empty planes).
pub fn global_avg_pool<T: Real>(x: &Tensor<T>) -> Result<Tensor<T>> {
    let [n, c, h, w] = x.dims4("global_avg_pool", "input")?;
    let plane = h * w;
    Tensor::new(
        &[n, c],
        x.data()
            .chunks(plane)
            .map(|ch| T::from_f64(ch.iter().map(|v| v.to_f64()).sum::<f64>() / plane as f64))
            .collect(),
    )
}

/// dx[n, c, :, :] = dy[n, c] / (H W), for an input of `dims` = [n, c, h, w].
pub fn global_avg_pool_backward<T: Real>(dy: &Tensor<T>, dims: [usize; 4]) -> Result<Tensor<T>> {
    let [_, _, h, w] = dims;
    let plane = (h * w) as f64;
    Ok(Tensor::from_fn(&dims, |i| {
        T::from_f64(dy.data()[i / (h * w)].to_f64() / plane)
    }))
}

impl PoolKernels for ReferenceBackend {
    fn max_forward(&self, x: &Tensor, g: &PoolGeom) -> Result<Tensor> {
        maxpool2d(x, g)
    }
    fn max_backward(&self, dy: &Tensor, x: &Tensor, g: &PoolGeom) -> Result<Tensor> {
        maxpool2d_backward(dy, x, g)
    }
    fn avg_forward(&self, x: &Tensor, _dims: [usize; 4]) -> Result<Tensor> {
        global_avg_pool(x)
    }
    fn avg_backward(&self, dy: &Tensor, dims: [usize; 4]) -> Result<Tensor> {
        global_avg_pool_backward(dy, dims)
    }
}
