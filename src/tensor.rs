//! A dense, row-major tensor on the host. Images are NCHW, dense layers [batch, features].
//!
//! Deliberately small: a shape and a `Vec`. Ops live in `ops/`, not here.

use crate::error::{Result, invalid, shape_err};
use crate::real::Real;
use crate::rng::Rng;
use std::fmt;

#[derive(Clone)]
pub struct Tensor<T = f32> {
    shape: Vec<usize>,
    data: Vec<T>,
    /// Identifies these contents: fresh for every new tensor and on every mutable borrow of the
    /// data, never reused, kept by clones (same contents). Lets the CPU backend cache work
    /// derived from a tensor (packed convolution weights) without ever serving stale results.
    version: u64,
}

/// Equality is shape and values; the version is bookkeeping.
impl<T: PartialEq> PartialEq for Tensor<T> {
    fn eq(&self, other: &Self) -> bool {
        self.shape == other.shape && self.data == other.data
    }
}

fn next_version() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// `[2, 3, 7, 5]`-style formatting used in every shape error.
pub struct ShapeFmt<'a>(pub &'a [usize]);

impl fmt::Display for ShapeFmt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

impl<T: Real> fmt::Debug for Tensor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor{} ", ShapeFmt(&self.shape))?;
        let show = self.data.len().min(8);
        f.debug_list().entries(&self.data[..show]).finish()?;
        if self.data.len() > show {
            write!(f, " ...")?;
        }
        Ok(())
    }
}

impl<T: Real> Tensor<T> {
    /// A tensor from a shape and row-major data; the lengths must agree.
    pub fn new(shape: &[usize], data: Vec<T>) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(shape_err(
                "tensor",
                format!(
                    "shape {} holds {n} elements but {} values were given",
                    ShapeFmt(shape),
                    data.len()
                ),
            ));
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            data,
            version: next_version(),
        })
    }

    pub fn zeros(shape: &[usize]) -> Self {
        Self::full(shape, T::default())
    }

    pub fn full(shape: &[usize], v: T) -> Self {
        Tensor {
            shape: shape.to_vec(),
            data: vec![v; shape.iter().product()],
            version: next_version(),
        }
    }

    /// Element i of a 1-d tensor, or any element by flat index.
    pub fn from_fn(shape: &[usize], mut f: impl FnMut(usize) -> T) -> Self {
        let n: usize = shape.iter().product();
        Tensor {
            shape: shape.to_vec(),
            data: (0..n).map(&mut f).collect(),
            version: next_version(),
        }
    }

    /// Standard normal entries times `std`.
    pub fn randn(shape: &[usize], std: f64, rng: &mut Rng) -> Self {
        Self::from_fn(shape, |_| T::from_f64(rng.normal() * std))
    }

    /// Uniform entries in [lo, hi).
    pub fn uniform(shape: &[usize], lo: f64, hi: f64, rng: &mut Rng) -> Self {
        Self::from_fn(shape, |_| T::from_f64(rng.uniform(lo, hi)))
    }

    /// Kaiming (He) normal init for a layer followed by ReLU: std = sqrt(2 / fan_in), where
    /// fan_in is the product of all dimensions but the first (conv [O,C,KH,KW] or dense [O,I]).
    pub fn kaiming_normal(shape: &[usize], rng: &mut Rng) -> Self {
        let fan_in: usize = shape.iter().skip(1).product::<usize>().max(1);
        Self::randn(shape, (2.0 / fan_in as f64).sqrt(), rng)
    }

    /// Kaiming uniform with bound sqrt(6 / fan_in) (same variance as `kaiming_normal`).
    pub fn kaiming_uniform(shape: &[usize], rng: &mut Rng) -> Self {
        let fan_in: usize = shape.iter().skip(1).product::<usize>().max(1);
        let b = (6.0 / fan_in as f64).sqrt();
        Self::uniform(shape, -b, b, rng)
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    pub fn len(&self) -> usize {
        self.data.len()
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    pub fn data(&self) -> &[T] {
        &self.data
    }
    /// The contents identifier (see the field); changes whenever the data may change.
    pub fn version(&self) -> u64 {
        self.version
    }
    pub fn data_mut(&mut self) -> &mut [T] {
        self.version = next_version();
        &mut self.data
    }
    pub fn into_data(self) -> Vec<T> {
        self.data
    }

    /// The same data under another shape with the same number of elements.
    pub fn reshape(self, shape: &[usize]) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != self.data.len() {
            return Err(shape_err(
                "reshape",
                format!(
                    "cannot reshape {} to {}",
                    ShapeFmt(&self.shape),
                    ShapeFmt(shape)
                ),
            ));
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            data: self.data,
            version: next_version(),
        })
    }

    /// Element-wise conversion to another element type.
    pub fn cast<U: Real>(&self) -> Tensor<U> {
        Tensor {
            shape: self.shape.clone(),
            data: self.data.iter().map(|&v| U::from_f64(v.to_f64())).collect(),
            version: next_version(),
        }
    }

    /// The four dimensions of an NCHW tensor, or an error naming `op`.
    pub fn dims4(&self, op: &'static str, what: &str) -> Result<[usize; 4]> {
        match self.shape[..] {
            [n, c, h, w] => Ok([n, c, h, w]),
            _ => Err(shape_err(
                op,
                format!(
                    "{what} must be 4-d [N, C, H, W], got {}",
                    ShapeFmt(&self.shape)
                ),
            )),
        }
    }

    /// The two dimensions of a matrix, or an error naming `op`.
    pub fn dims2(&self, op: &'static str, what: &str) -> Result<[usize; 2]> {
        match self.shape[..] {
            [a, b] => Ok([a, b]),
            _ => Err(shape_err(
                op,
                format!("{what} must be 2-d, got {}", ShapeFmt(&self.shape)),
            )),
        }
    }

    /// Errors unless `self` has exactly `shape`.
    pub fn expect_shape(&self, op: &'static str, what: &str, shape: &[usize]) -> Result<()> {
        expect_shape(op, what, &self.shape, shape)
    }

    /// Errors unless every element is finite; names `what` and the first bad index.
    pub fn expect_finite(&self, op: &'static str, what: &str) -> Result<()> {
        if let Some(i) = self.data.iter().position(|v| !v.to_f64().is_finite()) {
            return Err(invalid(
                op,
                format!("{what} has a non-finite value at flat index {i}"),
            ));
        }
        Ok(())
    }

    /// Largest absolute element-wise difference (shapes must match).
    pub fn max_abs_diff(&self, other: &Tensor<T>) -> Result<f64> {
        if self.shape != other.shape {
            return Err(shape_err(
                "max_abs_diff",
                format!("{} vs {}", ShapeFmt(&self.shape), ShapeFmt(&other.shape)),
            ));
        }
        Ok(self
            .data
            .iter()
            .zip(&other.data)
            .map(|(a, b)| (a.to_f64() - b.to_f64()).abs())
            .fold(0.0, f64::max))
    }
}

/// Errors unless `got == want`, naming the op, the operand and both shapes. Shared by every
/// backend's tensor type so messages are the same everywhere.
pub fn expect_shape(op: &'static str, what: &str, got: &[usize], want: &[usize]) -> Result<()> {
    if got != want {
        return Err(shape_err(
            op,
            format!(
                "{what} must have shape {}, got {}",
                ShapeFmt(want),
                ShapeFmt(got)
            ),
        ));
    }
    Ok(())
}
