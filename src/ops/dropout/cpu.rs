//! Dropout on the `cpu` backend: the reference's per-element rule (integer keep test, one f32
//! multiply) over chunks in parallel, written straight into a new buffer ([`par_new`]). The hash
//! is 64-bit multiplies, which vectorise with AVX-512DQ ([`multiversion!`](crate::multiversion));
//! a mask costs a few integer operations per element, under the memory traffic on wide CPUs.

use super::{DropoutKernels, DropoutMask};
use crate::cpu::CpuBackend;
use crate::cpu::par::par_new;
use crate::error::Result;
use crate::tensor::Tensor;
use std::mem::MaybeUninit;

/// Values per parallel task: big enough to amortise a task, small enough to balance.
const CHUNK: usize = 1 << 14;

crate::multiversion! {
    /// One chunk: `x` holds the elements from flat index `start` on.
    fn chunk(out: &mut [MaybeUninit<f32>], x: &[f32], start: u64, mask: DropoutMask) {
        for (j, (o, &v)) in out.iter_mut().zip(x).enumerate() {
            // +0 where dropped, not v * 0 (NaN for an infinite v), as the reference.
            o.write(if mask.keeps(start + j as u64) { v * mask.scale } else { 0.0 });
        }
    }
}

impl DropoutKernels for CpuBackend {
    fn dropout_apply(&self, x: &Tensor, mask: &DropoutMask) -> Result<Tensor> {
        let y = par_new(x.len(), CHUNK, |c, out| {
            let start = c * CHUNK;
            chunk(
                out,
                &x.data()[start..start + out.len()],
                start as u64,
                *mask,
            );
        });
        Tensor::new(x.shape(), y)
    }
}
