//! `Real`: the element types the reference ops are generic over.
//!
//! The engine stores f32. The reference ops are also instantiated with f64 so that gradient
//! checks by finite differences run in double precision, where a central difference is accurate
//! to ~1e-10 and tolerances can be tight enough to catch real mistakes.

use std::fmt::Debug;

pub trait Real: Copy + Default + PartialOrd + Debug + Send + Sync + 'static {
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
}

impl Real for f32 {
    #[inline]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl Real for f64 {
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline]
    fn from_f64(v: f64) -> Self {
        v
    }
}
