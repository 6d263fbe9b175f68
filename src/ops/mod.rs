//! The ops, one folder each. Every folder holds the op's parameters and shape rules (`mod.rs`,
//! shared by all backends) and its `reference` implementation: plain loops with f64
//! accumulation, generic over [`Real`](crate::real::Real) so gradient checks can run in f64.
//! Fast implementations live beside them (`cpu.rs`) and in `kernels/*.cu` for CUDA.

pub mod adam;
pub mod batchnorm;
pub mod conv2d;
pub mod dense;
pub mod elementwise;
pub mod loss;
pub mod pool;
