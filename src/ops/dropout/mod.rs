//! Inverted dropout with a counter-based mask: element i (flat index over the whole tensor, any
//! shape) is kept when its uniform u_i = [`uniform`]`(seed, i)` is >= p, and then scaled by
//! 1 / (1 - p); a dropped element is an exact +0 (not x * 0, which is NaN for an infinite x).
//! The backward is the same map applied to dy with the same (p, seed): the op is linear and
//! diagonal, so it is its own adjoint.
//!
//! The mask is a pure function of (seed, i), so nothing is stored between forward and backward
//! (the caller keeps the seed), and every backend draws the same mask bit for bit: the keep
//! decision is integer arithmetic only ([`mask_bits`] >= [`threshold`]), which the reference,
//! the CPU loop and the CUDA kernel (`dropout.cu`) each evaluate identically.
//!
//! The rule. u_i is the top 24 bits of the (i + 1)-th output of a SplitMix64 generator whose
//! state starts at mix64(seed), as a float in [0, 1) (k / 2^24, exact in f32):
//!   z = mix64(seed) + (i + 1) * 0x9E3779B97F4A7C15   (wrapping, 64-bit i)
//!   u_i = (mix64(z) >> 40) * 2^-24
//! Mixing the seed first keeps seeds that differ by a multiple of the increment from drawing
//! shifted copies of one stream. 24 bits make u exact in f32 and p resolvable to 2^-24, below
//! anything a dropout rate needs.
//!
//! p is used as f32 (`p as f32`, the precision the kernels compute in) and must be in [0, 1)
//! after that rounding too; the scale is computed once, in f32, as `1.0f32 / (1.0f32 - p)`, and
//! every backend multiplies by that same f32 value.

pub mod cpu;
pub mod cuda;
pub mod reference;
#[cfg(test)]
mod tests;

use crate::error::{Result, invalid};
use crate::ops::BackendBase;

/// SplitMix64's increment (2^64 / golden ratio).
pub const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function (Stafford's "Mix13" finaliser); the `.cu` kernel has the same
/// three xor-shift-multiplies.
#[inline(always)]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The 24 random bits of element `i` under a generator state `key` = mix64(seed) (see the
/// module doc); what the CPU loop and the kernel compute per element.
#[inline(always)]
pub fn bits_from_key(key: u64, i: u64) -> u32 {
    (mix64(key.wrapping_add(i.wrapping_add(1).wrapping_mul(GOLDEN))) >> 40) as u32
}

/// The 24 random bits of element `i` for `seed`, in [0, 2^24).
pub fn mask_bits(seed: u64, i: u64) -> u32 {
    bits_from_key(mix64(seed), i)
}

/// u_i in [0, 1): [`mask_bits`] / 2^24, exact in f32.
pub fn uniform(seed: u64, i: u64) -> f32 {
    mask_bits(seed, i) as f32 * (1.0 / (1u32 << 24) as f32)
}

/// The smallest 24-bit value that is kept: bits / 2^24 >= p iff bits >= ceil(p 2^24) (p 2^24 is
/// exact in f64, so this is exact for every f32 p in [0, 1)).
pub fn threshold(p: f32) -> u32 {
    (p as f64 * (1u32 << 24) as f64).ceil() as u32
}

/// Whether element `i` is kept for (seed, p): u_i >= p, evaluated as the backends do.
pub fn keep(seed: u64, i: u64, p: f32) -> bool {
    mask_bits(seed, i) >= threshold(p)
}

/// One dropout map, checked and ready for a kernel: the generator state, the keep threshold and
/// the f32 scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropoutMask {
    /// mix64(seed): the kernels add (i + 1) * GOLDEN to it.
    pub key: u64,
    /// Keep element i iff its 24 bits are >= this ([`threshold`] of p as f32).
    pub threshold: u32,
    /// 1.0f32 / (1.0f32 - p as f32).
    pub scale: f32,
}

impl DropoutMask {
    /// Checks p (finite, in [0, 1), and still < 1 as f32, or the scale would be infinite) for
    /// the op `op`, and derives the kernels' parameters.
    pub fn new(op: &'static str, p: f64, seed: u64) -> Result<DropoutMask> {
        let p32 = p as f32;
        if !(0.0..1.0).contains(&p) || p32 >= 1.0 {
            return Err(invalid(
                op,
                format!("drop probability p must be in [0, 1) (and below 1 as f32), got {p}"),
            ));
        }
        Ok(DropoutMask {
            key: mix64(seed),
            threshold: threshold(p32),
            scale: 1.0f32 / (1.0f32 - p32),
        })
    }

    /// Whether element `i` is kept.
    #[inline(always)]
    pub fn keeps(&self, i: u64) -> bool {
        bits_from_key(self.key, i) >= self.threshold
    }
}

/// What a backend implements: y_i = x_i * scale where the mask keeps i, else +0, over the flat
/// index; the same map serves forward (x) and backward (dy). The mask is already checked.
pub trait DropoutKernels: BackendBase {
    fn dropout_apply(&self, x: &Self::Tensor, mask: &DropoutMask) -> Result<Self::Tensor>;
}

/// The checked entry points, the same for every backend.
pub trait DropoutOps: DropoutKernels {
    /// Inverted dropout of `x` with drop probability `p` in [0, 1) and mask `seed`; p = 0 is
    /// the identity (a clone, bit for bit, NaN payloads included).
    fn dropout(&self, x: &Self::Tensor, p: f64, seed: u64) -> Result<Self::Tensor> {
        apply(self, "dropout", x, p, seed)
    }
    /// The gradient of [`DropoutOps::dropout`] with the same `p` and `seed`: dx = the same map
    /// applied to `dy`.
    fn dropout_backward(&self, dy: &Self::Tensor, p: f64, seed: u64) -> Result<Self::Tensor> {
        apply(self, "dropout_backward", dy, p, seed)
    }
}

impl<B: DropoutKernels + ?Sized> DropoutOps for B {}

fn apply<B: DropoutKernels + ?Sized>(
    b: &B,
    op: &'static str,
    x: &B::Tensor,
    p: f64,
    seed: u64,
) -> Result<B::Tensor> {
    let mask = DropoutMask::new(op, p, seed)?;
    if p == 0.0 {
        // Every element kept with scale 1: the map is the identity; a clone is exact and free
        // (tensors are values), where x * 1 on a GPU would canonicalise NaN payloads.
        return Ok(x.clone());
    }
    b.dropout_apply(x, &mask)
}
