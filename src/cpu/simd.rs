//! Runtime dispatch to AVX-512 for the plain loops of the CPU kernels. The crate is built for
//! baseline x86-64 (SSE2), where LLVM vectorises a loop over f64 two lanes at a time; the same
//! loop compiled with AVX-512 runs eight (sixteen for f32) and stops being the bottleneck of a
//! memory-bound kernel. [`multiversion!`](crate::multiversion) compiles a function body twice
//! and picks the AVX-512 copy when the CPU has it; the arithmetic is the same IEEE operations
//! in both (no fused multiply-add unless the body asks for one), so results do not depend on the
//! copy that ran.
//!
//! [`level`] is the one answer every dispatch point asks ([`avx512`], the convolution kernels,
//! the resizer's extensions): what this CPU has, capped by `SKINENGINE_CPU_LEVEL` (`avx512`,
//! `avx2`, `baseline`) so one machine can run what a CPU without AVX-512 (or AVX2) runs, to
//! reproduce and test the results such a CPU gives (README, "Results across CPUs").

use std::sync::OnceLock;

/// The instruction sets the CPU code dispatches on, in increasing order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// x86-64 baseline (SSE2) or a non-x86 CPU: the portable copies.
    Baseline,
    /// AVX2 with FMA (x86-64-v3): portable copies of our kernels; the libraries' AVX2 paths.
    Avx2,
    /// AVX-512 F/VL/DQ/BW with AVX2 and FMA (x86-64-v4): our AVX-512 kernels.
    Avx512,
}

/// The environment variable that caps [`level`] (a knob for reproducing other CPUs).
pub const LEVEL_VAR: &str = "SKINENGINE_CPU_LEVEL";

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Baseline => "baseline",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
        }
    }

    /// A level by name (`scalar` and `sse2` are accepted for `baseline`).
    pub fn parse(s: &str) -> Option<Level> {
        match s.trim().to_ascii_lowercase().as_str() {
            "avx512" | "avx-512" => Some(Level::Avx512),
            "avx2" => Some(Level::Avx2),
            "baseline" | "scalar" | "sse2" => Some(Level::Baseline),
            _ => None,
        }
    }
}

/// What this CPU has (CPUID, cached by std).
pub fn detected() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let v3 = has!("avx2") && has!("fma");
        if v3 && has!("avx512f") && has!("avx512vl") && has!("avx512dq") && has!("avx512bw") {
            return Level::Avx512;
        }
        if v3 {
            return Level::Avx2;
        }
    }
    Level::Baseline
}

/// The level a run uses: [`detected`], lowered to `cap` (never raised: a CPU cannot run what it
/// lacks); an unknown `cap` is reported and ignored.
pub fn capped(detected: Level, cap: Option<&str>) -> (Level, Option<String>) {
    match cap {
        None => (detected, None),
        Some(c) => match Level::parse(c) {
            Some(l) => (detected.min(l), None),
            None => (
                detected,
                Some(format!(
                    "warning: {LEVEL_VAR}={c:?} ignored (expected avx512, avx2 or baseline); \
                     using {}",
                    detected.name()
                )),
            ),
        },
    }
}

/// The level every CPU dispatch point uses, decided once per process.
pub fn level() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let cap = std::env::var(LEVEL_VAR).ok();
        let (l, warning) = capped(detected(), cap.as_deref());
        if let Some(w) = warning {
            eprintln!("{w}");
        }
        l
    })
}

/// The lane mask of 16-lane vector `v` (lanes 16v..16v+16) over the first `width` elements:
/// what the AVX-512 kernels pass to their masked loads and stores at ragged edges.
#[inline(always)]
pub fn lane_mask(width: usize, v: usize) -> u16 {
    let live = width.saturating_sub(16 * v).min(16);
    if live == 16 {
        0xFFFF
    } else {
        ((1u32 << live) - 1) as u16
    }
}

/// Whether the AVX-512 copies and kernels run: the CPU has AVX-512 F/VL/DQ/BW with AVX2 and
/// FMA, and [`level`] is not capped below it.
#[inline]
pub fn avx512() -> bool {
    level() == Level::Avx512
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

    /// `SKINENGINE_CPU_LEVEL` lowers the detected level, never raises it, and an unknown name
    /// leaves it alone with a warning.
    #[test]
    fn level_cap() {
        use super::{Level, capped};
        let all = [Level::Baseline, Level::Avx2, Level::Avx512];
        for d in all {
            assert_eq!(capped(d, None), (d, None));
            for c in all {
                assert_eq!(
                    capped(d, Some(c.name())),
                    (d.min(c), None),
                    "{d:?} cap {c:?}"
                );
            }
            assert_eq!(capped(d, Some("scalar")).0, Level::Baseline);
            let (l, w) = capped(d, Some("avx9000"));
            assert_eq!(l, d);
            assert!(
                w.unwrap()
                    .contains("SKINENGINE_CPU_LEVEL=\"avx9000\" ignored")
            );
        }
        assert!(Level::Baseline < Level::Avx2 && Level::Avx2 < Level::Avx512);
    }
}
