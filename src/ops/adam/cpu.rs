//! Adam on the `cpu` backend: the reference's per-element f64 formula, unchanged operation for
//! operation (so p, m and v equal the reference's bit for bit), over chunks in parallel (rayon)
//! with the loop vectorised: 8 f64 lanes where the CPU has AVX-512
//! ([`multiversion!`](crate::multiversion)). A step over ResNet50's 25.6M parameters reads four
//! and writes three f32 arrays (0.7 GB): memory-bound, the f64 arithmetic is not the limit.

use super::{AdamConfig, AdamKernels};
use crate::cpu::CpuBackend;
use crate::error::Result;
use crate::tensor::Tensor;
use rayon::prelude::*;

/// Values per parallel task: big enough to amortise a task, small enough to balance.
const CHUNK: usize = 1 << 15;

/// The step's scalars, as the reference uses them.
#[derive(Clone, Copy)]
struct Coeffs {
    lr: f64,
    lr_wd: f64,
    b1: f64,
    b2: f64,
    bc1: f64,
    bc2: f64,
    eps: f64,
}

crate::multiversion! {
    /// One chunk of the update, in place.
    fn update(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], c: Coeffs) {
        let Coeffs { lr, lr_wd, b1, b2, bc1, bc2, eps } = c;
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            // The reference's expressions, in its order (see reference::step).
            let g = g as f64;
            let mut pi = *p as f64;
            pi -= lr_wd * pi;
            let mi = b1 * *m as f64 + (1.0 - b1) * g;
            let vi = b2 * *v as f64 + (1.0 - b2) * g * g;
            pi -= lr * (mi / bc1) / ((vi / bc2).sqrt() + eps);
            *p = pi as f32;
            *m = mi as f32;
            *v = vi as f32;
        }
    }
}

impl AdamKernels for CpuBackend {
    fn adam_update(
        &self,
        param: &mut Tensor,
        grad: &Tensor,
        m: &mut Tensor,
        v: &mut Tensor,
        cfg: &AdamConfig,
        (bc1, bc2): (f64, f64),
    ) -> Result<()> {
        let c = Coeffs {
            lr: cfg.lr,
            lr_wd: cfg.lr * cfg.weight_decay,
            b1: cfg.beta1,
            b2: cfg.beta2,
            bc1,
            bc2,
            eps: cfg.eps,
        };
        param
            .data_mut()
            .par_chunks_mut(CHUNK)
            .zip(grad.data().par_chunks(CHUNK))
            .zip(m.data_mut().par_chunks_mut(CHUNK))
            .zip(v.data_mut().par_chunks_mut(CHUNK))
            .for_each(|(((p, g), m), v)| update(p, g, m, v, c));
        Ok(())
    }
}
