//! Fast CPU pooling: planes in parallel, f32 storage (max is exact and follows the reference's
//! tie and NaN rule; the average sums one plane of at most a few thousand values in order, where
//! f32 rounding stays near 1e-7 relative). Both backward passes equal the reference bit for bit:
//! max-pool's adds each plane's gradients in f64 in the reference's order, and the average's
//! gradient is the same f64 division rounded once.

use super::{PoolGeom, PoolKernels};
use crate::cpu::CpuBackend;
use crate::cpu::par::par_new;
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

/// One plane's pooling window geometry.
#[derive(Clone, Copy)]
struct Win {
    h: usize,
    w: usize,
    wo: usize,
    k: (usize, usize),
    s: (usize, usize),
    p: (usize, usize),
}

impl Win {
    fn of(g: &PoolGeom) -> Self {
        Win {
            h: g.input[2],
            w: g.input[3],
            wo: g.out[3],
            k: g.p.kernel,
            s: g.p.stride,
            p: g.p.padding,
        }
    }

    /// The winner of every window of output row i into `at[..wo]`: the flat index in the plane
    /// of the first maximal cell in row-major order (a later cell wins only if strictly
    /// greater, so a NaN wins only as the first cell and of -0 / +0 the first found stays: the
    /// reference's rule). The compare-and-select compiles to branch-free max / cmov; comparing
    /// one tap across a whole row instead compiled to a data-dependent branch and measured 3x
    /// slower on random data.
    fn row_winners(&self, xp: &[f32], i: usize, at: &mut [usize]) {
        let ((kh, kw), (sh, sw), (ph, pw)) = (self.k, self.s, self.p);
        let (w, wo) = (self.w, self.wo);
        let r0 = (i * sh).saturating_sub(ph);
        let r1 = (i * sh + kh - ph).min(self.h);
        for (j, a) in at[..wo].iter_mut().enumerate() {
            let c0 = (j * sw).saturating_sub(pw);
            let c1 = (j * sw + kw - pw).min(w);
            let (mut best, mut idx) = (xp[r0 * w + c0], r0 * w + c0);
            for r in r0..r1 {
                for (k, &v) in xp[r * w + c0..r * w + c1].iter().enumerate() {
                    if v > best {
                        (best, idx) = (v, r * w + c0 + k);
                    }
                }
            }
            *a = idx;
        }
    }
}

/// dx of max pooling: each output gradient goes to the input that won its window
/// ([`Win::row_winners`], the forward's and the reference's winner), summed per input in f64 in
/// output order as the reference does, so the result equals it bit for bit (ties, NaN and signed
/// zeros included). Planes run in parallel; each thread keeps one f64 plane and its row buffers.
fn maxpool2d_backward(dy: &Tensor, x: &Tensor, g: &PoolGeom) -> Result<Tensor> {
    let win = Win::of(g);
    let [_, _, ho, wo] = g.out;
    let (plane_in, plane_out) = (win.h * win.w, ho * wo);
    let mut dx: Vec<f32> = Vec::with_capacity(x.len());
    let scratch = || (Vec::<f64>::new(), vec![0usize; wo]);
    dx.spare_capacity_mut()[..x.len()]
        .par_chunks_mut(plane_in.max(1))
        .enumerate()
        .for_each_init(scratch, |(acc, at), (plane, dxp)| {
            let xp = &x.data()[plane * plane_in..(plane + 1) * plane_in];
            let dyp = &dy.data()[plane * plane_out..(plane + 1) * plane_out];
            acc.clear();
            acc.resize(plane_in, 0.0);
            for (i, dyr) in dyp.chunks(wo).enumerate() {
                win.row_winners(xp, i, at);
                for (&a, &d) in at.iter().zip(dyr) {
                    acc[a] += d as f64;
                }
            }
            for (o, &a) in dxp.iter_mut().zip(acc.iter()) {
                o.write(a as f32);
            }
        });
    // SAFETY: the planes cover dx's x.len() values and each was written from its accumulator.
    unsafe { dx.set_len(x.len()) };
    Tensor::new(x.shape(), dx)
}

/// dx[n, c, :, :] = dy[n, c] / (H W): the reference's f64 division, rounded once per plane.
fn global_avg_pool_backward(dy: &Tensor, dims: [usize; 4]) -> Result<Tensor> {
    let [n, c, h, w] = dims;
    let plane = (h * w) as f64;
    let dx = par_new(n * c * h * w, h * w, |i, out| {
        let v = (dy.data()[i] as f64 / plane) as f32;
        out.iter_mut().for_each(|o| {
            o.write(v);
        });
    });
    Tensor::new(&dims, dx)
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
    fn max_backward(&self, dy: &Tensor, x: &Tensor, g: &PoolGeom) -> Result<Tensor> {
        maxpool2d_backward(dy, x, g)
    }
    fn avg_forward(&self, x: &Tensor, dims: [usize; 4]) -> Result<Tensor> {
        global_avg_pool(x, dims)
    }
    fn avg_backward(&self, dy: &Tensor, dims: [usize; 4]) -> Result<Tensor> {
        global_avg_pool_backward(dy, dims)
    }
}
