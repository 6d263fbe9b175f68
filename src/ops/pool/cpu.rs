//! Fast CPU pooling: planes in parallel, f32 throughout (max is exact; the average sums one
//! plane of at most a few thousand values, where f32 rounding stays near 1e-7 relative).

use super::Pool2dParams;
use crate::error::{Result, shape_err};
use crate::tensor::{ShapeFmt, Tensor};
use rayon::prelude::*;

pub fn maxpool2d(x: &Tensor, p: &Pool2dParams) -> Result<Tensor> {
    let out = p.output_shape(x.shape())?;
    let [n, c, ho, wo] = out;
    let (h, w) = (x.shape()[2], x.shape()[3]);
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
                    let mut m = f32::NEG_INFINITY;
                    for r in r0..r1 {
                        for v in &xp[r * w + c0..r * w + c1] {
                            m = m.max(*v);
                        }
                    }
                    yp[i * wo + j] = m;
                }
            }
        });
    Tensor::new(&out, y)
}

pub fn global_avg_pool(x: &Tensor) -> Result<Tensor> {
    let [n, c, h, w] = x.dims4("global_avg_pool", "input")?;
    if h * w == 0 {
        return Err(shape_err(
            "global_avg_pool",
            format!("input {} has an empty plane", ShapeFmt(x.shape())),
        ));
    }
    let inv = 1.0 / (h * w) as f32;
    let y = x
        .data()
        .par_chunks(h * w)
        .map(|pl| pl.iter().sum::<f32>() * inv)
        .collect();
    Tensor::new(&[n, c], y)
}
