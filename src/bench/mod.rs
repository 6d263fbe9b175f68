//! Throughput measurements on one backend: [`forward`] (ResNet50 forward passes, images/s and
//! GFLOP/s, `skinengine bench`) and [`kernels`] (each ResNet50 convolution and dense layer
//! alone, with its GEMM size, `skinengine bench-kernels`) and [`train`] (full training steps,
//! `skinengine bench --train`).

pub mod forward;
pub mod kernels;
pub mod train;

pub use forward::{BenchResult, bench_backend};
pub use kernels::{KernelBenchConfig, KernelTiming, bench_kernels};
pub use train::bench_train;
