//! Reference convolution: direct loops, f64 accumulators. Padding is read as zero.

use super::{Conv2dKernels, ConvGeom, Epilogue};
use crate::error::Result;
use crate::ops::elementwise::{Activation, reference as ew};
use crate::real::Real;
use crate::reference::ReferenceBackend;
use crate::tensor::Tensor;

/// Input row/column read by output index `i` and kernel tap `k`, or None in the padding.
#[inline]
fn src(i: usize, k: usize, stride: usize, pad: usize, len: usize) -> Option<usize> {
    let pos = (i * stride + k) as isize - pad as isize;
    (pos >= 0 && (pos as usize) < len).then_some(pos as usize)
}

/// y = conv(x, w) + bias for a checked geometry `g` (see [`super::geometry`]).
pub fn forward<T: Real>(
    x: &Tensor<T>,
    w: &Tensor<T>,
    bias: Option<&Tensor<T>>,
    g: &ConvGeom,
) -> Result<Tensor<T>> {
    let ConvGeom {
        n,
        c,
        h,
        w: wd,
        o,
        kh,
        kw,
        ho,
        wo,
        sh,
        sw,
        ph,
        pw,
    } = *g;
    let (xd, wdat) = (x.data(), w.data());
    let mut y = Vec::with_capacity(n * o * ho * wo);
    for ni in 0..n {
        for oi in 0..o {
            for i in 0..ho {
                for j in 0..wo {
                    let mut acc = bias.map_or(0.0, |b| b.data()[oi].to_f64());
                    for ci in 0..c {
                        for ki in 0..kh {
                            let Some(hi) = src(i, ki, sh, ph, h) else {
                                continue;
                            };
                            for kj in 0..kw {
                                let Some(wi) = src(j, kj, sw, pw, wd) else {
                                    continue;
                                };
                                let xv = xd[((ni * c + ci) * h + hi) * wd + wi].to_f64();
                                let wv = wdat[((oi * c + ci) * kh + ki) * kw + kj].to_f64();
                                acc += xv * wv;
                            }
                        }
                    }
                    y.push(T::from_f64(acc));
                }
            }
        }
    }
    Tensor::new(&g.y_shape(), y)
}

/// dL/dx given dL/dy: every output position scatters dy * w back to the inputs it read.
pub fn backward_data<T: Real>(dy: &Tensor<T>, w: &Tensor<T>, g: &ConvGeom) -> Result<Tensor<T>> {
    let mut dx = vec![0.0f64; g.n * g.c * g.h * g.w];
    for ni in 0..g.n {
        for oi in 0..g.o {
            for i in 0..g.ho {
                for j in 0..g.wo {
                    let d = dy.data()[((ni * g.o + oi) * g.ho + i) * g.wo + j].to_f64();
                    for ci in 0..g.c {
                        for ki in 0..g.kh {
                            let Some(hi) = src(i, ki, g.sh, g.ph, g.h) else {
                                continue;
                            };
                            for kj in 0..g.kw {
                                let Some(wi) = src(j, kj, g.sw, g.pw, g.w) else {
                                    continue;
                                };
                                let wv = w.data()[((oi * g.c + ci) * g.kh + ki) * g.kw + kj];
                                dx[((ni * g.c + ci) * g.h + hi) * g.w + wi] += d * wv.to_f64();
                            }
                        }
                    }
                }
            }
        }
    }
    Tensor::new(&g.x_shape(), dx.into_iter().map(T::from_f64).collect())
}

/// dL/dw given dL/dy and the forward input x.
pub fn backward_weight<T: Real>(dy: &Tensor<T>, x: &Tensor<T>, g: &ConvGeom) -> Result<Tensor<T>> {
    let mut dw = Vec::with_capacity(g.o * g.c * g.kh * g.kw);
    for oi in 0..g.o {
        for ci in 0..g.c {
            for ki in 0..g.kh {
                for kj in 0..g.kw {
                    let mut acc = 0.0f64;
                    for ni in 0..g.n {
                        for i in 0..g.ho {
                            let Some(hi) = src(i, ki, g.sh, g.ph, g.h) else {
                                continue;
                            };
                            for j in 0..g.wo {
                                let Some(wi) = src(j, kj, g.sw, g.pw, g.w) else {
                                    continue;
                                };
                                let d = dy.data()[((ni * g.o + oi) * g.ho + i) * g.wo + j];
                                let xv = x.data()[((ni * g.c + ci) * g.h + hi) * g.w + wi];
                                acc += d.to_f64() * xv.to_f64();
                            }
                        }
                    }
                    dw.push(T::from_f64(acc));
                }
            }
        }
    }
    Tensor::new(&g.w_shape(), dw)
}

/// dL/db: the sum of dy over batch and positions, per output channel.
pub fn backward_bias<T: Real>(dy: &Tensor<T>) -> Result<Tensor<T>> {
    let [n, o, ho, wo] = dy.dims4("conv2d_backward_bias", "output gradient")?;
    let plane = ho * wo;
    let db = (0..o)
        .map(|oi| {
            let s: f64 = (0..n)
                .flat_map(|ni| {
                    let start = (ni * o + oi) * plane;
                    dy.data()[start..start + plane].iter()
                })
                .map(|v| v.to_f64())
                .sum();
            T::from_f64(s)
        })
        .collect();
    Tensor::new(&[o], db)
}

impl Conv2dKernels for ReferenceBackend {
    /// The unfused definition: conv + bias, then the residual add, then ReLU, each rounded to
    /// f32 as separate ops would.
    fn forward(
        &self,
        x: &Tensor,
        w: &Tensor,
        g: &ConvGeom,
        e: Epilogue<'_, Tensor>,
    ) -> Result<Tensor> {
        let mut y = forward(x, w, e.bias, g)?;
        if let Some(r) = e.residual {
            y = ew::add(&y, r);
        }
        if e.relu {
            y = ew::activation(Activation::Relu, &y);
        }
        Ok(y)
    }
    fn backward_data(&self, dy: &Tensor, w: &Tensor, g: &ConvGeom) -> Result<Tensor> {
        backward_data(dy, w, g)
    }
    fn backward_weight(&self, dy: &Tensor, x: &Tensor, g: &ConvGeom) -> Result<Tensor> {
        backward_weight(dy, x, g)
    }
    fn backward_bias(&self, dy: &Tensor, _dims: [usize; 4]) -> Result<Tensor> {
        backward_bias(dy)
    }
}
