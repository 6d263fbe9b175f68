//! skinengine: a from-scratch deep-learning engine for skin-lesion classification
//! (ISIC 2018 Task 3 / HAM10000) on ImageNet ResNet50 features.
//!
//! Data path: image -> tensor -> backbone -> features -> head -> metrics -> report.
//! Compute goes through one [`Backend`] trait, the sum of the ops' traits; ops live one folder
//! each under [`ops`] (reference, CPU and CUDA side by side). Every command is a library call
//! with a plain config struct ([`train`], [`pipeline`] for embed and infer, [`eval`],
//! [`ablate`], [`demo`], [`inspect`], [`bench`]); [`cli`] only parses arguments, resolves the
//! device once ([`backend::select`]) and calls them.

pub mod ablate;
pub mod backend;
pub mod bench;
pub mod classes;
pub mod cli;
pub mod convert;
pub mod cpu;
pub mod cuda;
pub mod data;
pub mod demo;
pub mod doctor;
pub mod error;
pub mod eval;
pub mod grads;
pub mod inspect;
pub mod io;
pub mod kernels;
pub mod metrics;
pub mod model;
pub mod ops;
pub mod pipeline;
pub mod real;
pub mod reference;
pub mod rng;
pub mod serve;
pub mod tensor;
#[doc(hidden)]
pub mod testing;
pub mod train;

pub use cpu::CpuBackend;
pub use cuda::CudaBackend;
pub use error::{Error, Result};
pub use ops::Backend;
pub use real::Real;
pub use reference::ReferenceBackend;
pub use rng::Rng;
pub use tensor::Tensor;
