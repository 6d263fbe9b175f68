//! Runtime dispatch to AVX-512 for the plain loops of the CPU kernels. The crate is built for
//! baseline x86-64 (SSE2), where LLVM vectorises a loop over f64 two lanes at a time; the same
//! loop compiled with AVX-512 runs eight (sixteen for f32) and stops being the bottleneck of a
//! memory-bound kernel. [`multiversion!`](crate::multiversion) compiles a function body twice
//! and picks the AVX-512 copy when the CPU has it; the arithmetic is the same IEEE operations
//! in both (no fused multiply-add unless the body asks for one), so results do not depend on the
//! copy that ran.

/// Whether this CPU runs the AVX-512 copies (AVX-512 F/VL/DQ/BW with AVX2 and FMA); detected
/// once (std caches the CPUID query).
#[inline]
pub fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A function compiled twice, for baseline x86-64 and for AVX-512 ([`avx512`]), dispatched at
/// each call. The body is an ordinary safe function body; keep the function a leaf that does a
/// sizeable loop (a plane, a chunk), so the check is amortised and the body, with the closures
/// it is given, inlines into the AVX-512 copy. Arguments may be `impl Trait`; no generics.
#[macro_export]
macro_rules! multiversion {
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block
    ) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")]
                fn fast($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                if $crate::cpu::simd::avx512() {
                    // SAFETY: the CPU has every feature `fast` is compiled for.
                    return unsafe { fast($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

/// The sum of `x` in f64: 8 lanes (vector registers) of f32 values converted and added, then
/// the lanes and the tail. Explicit AVX-512 where the CPU has it: LLVM does not vectorise an f64
/// reduction it may not reorder, and its SLP vectoriser turns a hand-laned loop into scalar
/// conversions (measured compute-bound at a third of memory speed).
pub fn sum_f64(x: &[f32]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: the CPU has AVX-512F.
        return unsafe { x86::sum_f64(x) };
    }
    sum_f64_portable(x)
}

/// [`sum_f64`] without intrinsics, the same 8-lane structure.
pub fn sum_f64_portable(x: &[f32]) -> f64 {
    let mut acc = [0.0f64; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v as f64;
        }
    }
    let tail: f64 = chunks.remainder().iter().map(|&v| v as f64).sum();
    acc.iter().sum::<f64>() + tail
}

#[cfg(target_arch = "x86_64")]
pub mod x86 {
    use std::arch::x86_64::*;

    /// 8 values of `x` from `i` as f64.
    ///
    /// # Safety
    /// The CPU must have AVX-512F (a `target_feature` function; safe to call from one).
    #[target_feature(enable = "avx512f")]
    pub fn load8_f64(x: &[f32], i: usize) -> __m512d {
        let v: &[f32; 8] = x[i..i + 8].try_into().unwrap();
        // SAFETY: v is 8 readable f32 (an unaligned load).
        _mm512_cvtps_pd(unsafe { _mm256_loadu_ps(v.as_ptr()) })
    }

    /// [`super::sum_f64`] on AVX-512.
    ///
    /// # Safety
    /// The CPU must have AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub fn sum_f64(x: &[f32]) -> f64 {
        let full = x.len() / 8 * 8;
        let mut acc = _mm512_setzero_pd();
        for i in (0..full).step_by(8) {
            acc = _mm512_add_pd(acc, load8_f64(x, i));
        }
        _mm512_reduce_add_pd(acc) + x[full..].iter().map(|&v| v as f64).sum::<f64>()
    }
}

#[cfg(test)]
mod tests {
    use crate::{Rng, Tensor};

    /// Both copies of [`super::sum_f64`], every tail length: the same f64 sum in another order.
    #[test]
    fn sum_f64_copies_agree() {
        let mut rng = Rng::new(3);
        for len in (0..40).chain([1031, 3136]) {
            let x = Tensor::<f32>::from_fn(&[len], |_| (1.0 + rng.normal()) as f32);
            let want: f64 = x.data().iter().map(|&v| v as f64).sum();
            let scale = 1e-13 * (1.0 + len as f64);
            for got in [super::sum_f64(x.data()), super::sum_f64_portable(x.data())] {
                assert!((got - want).abs() <= scale, "len {len}: {got} vs {want}");
            }
        }
    }
}
