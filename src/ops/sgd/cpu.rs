//! SGD on the `cpu` backend: the reference's per-element f64 expressions, unchanged operation
//! for operation (so p and the buffer equal the reference's bit for bit), over chunks in
//! parallel (rayon) with the loops vectorised: 8 f64 lanes where the CPU has AVX-512
//! ([`multiversion!`](crate::multiversion)). The configuration's branches are loop-invariant
//! selects, so they cost no vectorisation. Memory-bound, as Adam: a momentum step over
//! ResNet50's 25.6M parameters reads three and writes two f32 arrays (0.5 GB).

use super::{Mode, SgdConfig, SgdKernels};
use crate::cpu::CpuBackend;
use crate::error::Result;
use crate::tensor::Tensor;
use rayon::prelude::*;

/// Values per parallel task: big enough to amortise a task, small enough to balance.
const CHUNK: usize = 1 << 15;

/// The step's scalars and flags, as the reference uses them.
#[derive(Clone, Copy)]
struct Coeffs {
    lr: f64,
    wd: f64,
    mu: f64,
    /// 1 - dampening, computed as the reference does.
    one_minus_damp: f64,
    nesterov: bool,
    first: bool,
}

crate::multiversion! {
    /// One chunk of a step without momentum, in place.
    fn plain(p: &mut [f32], g: &[f32], c: Coeffs) {
        for (p, &g) in p.iter_mut().zip(g) {
            // The reference's expressions, in its order (see reference::step).
            let pi = *p as f64;
            let mut gi = g as f64;
            if c.wd != 0.0 {
                gi += c.wd * pi;
            }
            *p = (pi - c.lr * gi) as f32;
        }
    }
}

crate::multiversion! {
    /// One chunk of a step with momentum, in place.
    fn momentum(p: &mut [f32], g: &[f32], b: &mut [f32], c: Coeffs) {
        for ((p, &g), b) in p.iter_mut().zip(g).zip(b.iter_mut()) {
            // The reference's expressions, in its order (see reference::step).
            let pi = *p as f64;
            let mut gi = g as f64;
            if c.wd != 0.0 {
                gi += c.wd * pi;
            }
            let bi = if c.first {
                gi
            } else {
                c.mu * *b as f64 + c.one_minus_damp * gi
            };
            *b = bi as f32;
            gi = if c.nesterov { gi + c.mu * bi } else { bi };
            *p = (pi - c.lr * gi) as f32;
        }
    }
}

impl SgdKernels for CpuBackend {
    fn sgd_update(
        &self,
        param: &mut Tensor,
        grad: &Tensor,
        buf: &mut Tensor,
        cfg: &SgdConfig,
        mode: Mode,
    ) -> Result<()> {
        let c = Coeffs {
            lr: cfg.lr,
            wd: cfg.weight_decay,
            mu: cfg.momentum,
            one_minus_damp: 1.0 - cfg.dampening,
            nesterov: cfg.nesterov,
            first: mode == Mode::FirstMomentum,
        };
        let pg = param
            .data_mut()
            .par_chunks_mut(CHUNK)
            .zip(grad.data().par_chunks(CHUNK));
        if mode == Mode::Plain {
            pg.for_each(|(p, g)| plain(p, g, c));
        } else {
            pg.zip(buf.data_mut().par_chunks_mut(CHUNK))
                .for_each(|((p, g), b)| momentum(p, g, b, c));
        }
        Ok(())
    }
}
