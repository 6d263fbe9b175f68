//! Reference pooling.

use super::Pool2dParams;
use crate::error::{Result, shape_err};
use crate::real::Real;
use crate::tensor::{ShapeFmt, Tensor};

/// Flat index of the maximum of each output window (the first one on ties), in output order.
fn argmax_windows<T: Real>(x: &Tensor<T>, p: &Pool2dParams) -> Result<(Vec<usize>, [usize; 4])> {
    let out = p.output_shape(x.shape())?;
    let [n, c, ho, wo] = out;
    let (h, w) = (x.shape()[2], x.shape()[3]);
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
                // output_shape guarantees every window overlaps the input.
                idx.push(best.expect("window inside input").1);
            }
        }
    }
    Ok((idx, out))
}

pub fn maxpool2d<T: Real>(x: &Tensor<T>, p: &Pool2dParams) -> Result<Tensor<T>> {
    let (idx, out) = argmax_windows(x, p)?;
    Tensor::new(&out, idx.iter().map(|&i| x.data()[i]).collect())
}

/// Routes each output gradient to the input that won its window.
pub fn maxpool2d_backward<T: Real>(
    dy: &Tensor<T>,
    x: &Tensor<T>,
    p: &Pool2dParams,
) -> Result<Tensor<T>> {
    let (idx, out) = argmax_windows(x, p)?;
    dy.expect_shape("maxpool2d_backward", "output gradient", &out)?;
    let mut dx = vec![0.0f64; x.len()];
    for (o, &i) in idx.iter().enumerate() {
        dx[i] += dy.data()[o].to_f64();
    }
    Tensor::new(x.shape(), dx.into_iter().map(T::from_f64).collect())
}

/// Mean over H, W: [N, C, H, W] -> [N, C].
pub fn global_avg_pool<T: Real>(x: &Tensor<T>) -> Result<Tensor<T>> {
    let [n, c, h, w] = x.dims4("global_avg_pool", "input")?;
    let plane = h * w;
    if plane == 0 {
        return Err(shape_err(
            "global_avg_pool",
            format!("input {} has an empty plane", ShapeFmt(x.shape())),
        ));
    }
    Tensor::new(
        &[n, c],
        x.data()
            .chunks(plane)
            .map(|ch| T::from_f64(ch.iter().map(|v| v.to_f64()).sum::<f64>() / plane as f64))
            .collect(),
    )
}

/// dx[n, c, :, :] = dy[n, c] / (H W).
pub fn global_avg_pool_backward<T: Real>(dy: &Tensor<T>, x_shape: &[usize]) -> Result<Tensor<T>> {
    const OP: &str = "global_avg_pool_backward";
    let &[n, c, h, w] = x_shape else {
        return Err(shape_err(
            OP,
            format!("input shape must be 4-d, got {}", ShapeFmt(x_shape)),
        ));
    };
    dy.expect_shape(OP, "output gradient", &[n, c])?;
    let plane = (h * w) as f64;
    Ok(Tensor::from_fn(x_shape, |i| {
        T::from_f64(dy.data()[i / (h * w)].to_f64() / plane)
    }))
}
