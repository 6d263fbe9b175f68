//! One op suite, every backend: [`backend_suite!`](crate::backend_suite) instantiates generic
//! check functions (`fn check<B: Backend>(b: &B)`) as `#[test]`s for each backend they apply to:
//! - `every`: reference, cpu, cuda-emulator and the GPU (known answers, errors, determinism);
//! - `fast`: the backends checked *against* the reference (cpu, cuda-emulator, GPU);
//! - `cuda`: CUDA-only checks taking `&CudaBackend` (split paths, memory reuse), emulator + GPU.
//!
//! GPU tests are `#[ignore]`d (CI has no GPU); `tools/gpu_check.sh` runs them with `--ignored`,
//! where a missing GPU is a failure, not a skip.

use crate::CudaBackend;

/// The CUDA kernels on the CPU emulator, with all cores.
#[cfg(skinengine_emu)]
pub fn emulator() -> CudaBackend {
    CudaBackend::emulator(0)
}

/// The first GPU; panics with the reason when there is none (GPU tests are opt-in).
pub fn gpu() -> CudaBackend {
    CudaBackend::gpu().unwrap_or_else(|e| panic!("the GPU tests need a GPU: {e}"))
}

#[doc(hidden)]
#[macro_export]
macro_rules! __suite_module {
    (gpu, [$($name:ident),* $(,)?]) => {
        mod gpu {
            $(
                #[test]
                #[ignore = "needs a GPU: run by tools/gpu_check.sh"]
                fn $name() {
                    super::$name(&$crate::testing::suite::gpu())
                }
            )*
        }
    };
    ($mod:ident, $backend:expr, [$($name:ident),* $(,)?]) => {
        mod $mod {
            $(
                #[test]
                fn $name() {
                    super::$name(&$backend)
                }
            )*
        }
    };
}

/// Runs check functions on the backends they apply to (see the module doc).
#[macro_export]
macro_rules! backend_suite {
    (
        every: [$($every:ident),* $(,)?],
        fast: [$($fast:ident),* $(,)?],
        cuda: [$($cuda:ident),* $(,)?] $(,)?
    ) => {
        $crate::__suite_module!(reference, $crate::ReferenceBackend, [$($every),*]);
        $crate::__suite_module!(cpu, $crate::CpuBackend, [$($every,)* $($fast),*]);
        #[cfg(skinengine_emu)]
        $crate::__suite_module!(
            cuda_emulator,
            $crate::testing::suite::emulator(),
            [$($every,)* $($fast,)* $($cuda),*]
        );
        $crate::__suite_module!(gpu, [$($every,)* $($fast,)* $($cuda),*]);
    };
}
