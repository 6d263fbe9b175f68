//! Fast CPU activations and add: parallel chunks of a loop the compiler vectorises (the match on
//! the activation is loop-invariant, so each activation gets its own loop).

use super::{Activation, ElementwiseKernels};
use crate::cpu::CpuBackend;
use crate::error::Result;
use crate::tensor::Tensor;
use rayon::prelude::*;

const CHUNK: usize = 1 << 14;

impl ElementwiseKernels for CpuBackend {
    fn activation_forward(&self, act: Activation, x: &Tensor) -> Result<Tensor> {
        let mut y = x.clone();
        y.data_mut()
            .par_chunks_mut(CHUNK)
            .for_each(|c| c.iter_mut().for_each(|v| *v = act.f32(*v)));
        Ok(y)
    }
    fn activation_backward(&self, act: Activation, dy: &Tensor, x: &Tensor) -> Result<Tensor> {
        let mut dx = dy.clone();
        dx.data_mut()
            .par_chunks_mut(CHUNK)
            .zip(x.data().par_chunks(CHUNK))
            .for_each(|(d, x)| {
                d.iter_mut()
                    .zip(x)
                    .for_each(|(d, &x)| *d = act.backward_f32(*d, x))
            });
        Ok(dx)
    }
    fn add_forward(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let mut y = a.clone();
        y.data_mut()
            .par_chunks_mut(CHUNK)
            .zip(b.data().par_chunks(CHUNK))
            .for_each(|(y, b)| y.iter_mut().zip(b).for_each(|(y, b)| *y += b));
        Ok(y)
    }
}
