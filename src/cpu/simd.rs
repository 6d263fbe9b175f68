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
