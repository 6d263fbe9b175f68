//! Helpers for tests: finite-difference gradient checks, random inputs shaped for them, the f32
//! summation bound every fast kernel is checked with, the torchvision parity fixture, and the
//! macro that runs one op suite on every backend. Used by the op suites (`src/ops/*/tests.rs`)
//! and the integration tests alike; not part of the engine's API.

pub mod suite;
pub mod tiny_model;

use crate::{Rng, Tensor};

/// Central-difference step. In f64, truncation error is ~h^2 |f'''| / 6 ~ 1e-12 and rounding
/// error ~ eps_machine |L| / h ~ 2e-16 * 100 / 1e-6 = 2e-8 for |L| <= 100, so the tolerances
/// below (1e-7 absolute + 1e-6 relative) sit above both but far below any real mistake, which
/// shows as errors of order the gradient itself.
pub const FD_STEP: f64 = 1e-6;
pub const FD_ATOL: f64 = 1e-7;
pub const FD_RTOL: f64 = 1e-6;

/// Checks every element of an analytic gradient `grad` of the scalar `f` at `x` against a
/// central finite difference. Also refuses a gradient that is (nearly) all zero, so a backward
/// that returns zeros cannot pass.
pub fn check_grad(
    what: &str,
    x: &Tensor<f64>,
    grad: &Tensor<f64>,
    f: impl Fn(&Tensor<f64>) -> f64,
) {
    assert_eq!(x.shape(), grad.shape(), "{what}: gradient shape");
    let max_g = grad.data().iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(
        max_g > 1e-3,
        "{what}: gradient is (nearly) zero everywhere: {max_g}"
    );
    for i in 0..x.len() {
        let mut xp = x.clone();
        xp.data_mut()[i] += FD_STEP;
        let mut xm = x.clone();
        xm.data_mut()[i] -= FD_STEP;
        let num = (f(&xp) - f(&xm)) / (2.0 * FD_STEP);
        let ana = grad.data()[i];
        let tol = FD_ATOL + FD_RTOL * num.abs().max(ana.abs());
        assert!(
            (num - ana).abs() <= tol,
            "{what}: element {i} of {:?}: analytic {ana:e} vs numeric {num:e} (tol {tol:e})",
            x.shape()
        );
    }
}

/// sum(y * r): a scalar whose gradient with respect to y is r.
pub fn dot(y: &Tensor<f64>, r: &Tensor<f64>) -> f64 {
    assert_eq!(y.shape(), r.shape());
    y.data().iter().zip(r.data()).map(|(a, b)| a * b).sum()
}

/// Standard-normal tensor.
pub fn randn(shape: &[usize], rng: &mut Rng) -> Tensor<f64> {
    Tensor::randn(shape, 1.0, rng)
}

/// Random values whose magnitude is at least `gap`: keeps ReLU inputs away from the kink at 0,
/// where a finite difference straddling the kink would be meaningless.
pub fn randn_away_from_zero(shape: &[usize], gap: f64, rng: &mut Rng) -> Tensor<f64> {
    Tensor::from_fn(shape, |_| {
        let v = rng.normal();
        if v.abs() < gap {
            gap.copysign(v) + v
        } else {
            v
        }
    })
}

/// A random permutation of well-separated values (spacing 0.01 >> FD_STEP), so that no max-pool
/// window has a tie or a near-tie that a finite-difference step could flip.
pub fn distinct_values(shape: &[usize], rng: &mut Rng) -> Tensor<f64> {
    let n: usize = shape.iter().product();
    let mut v: Vec<f64> = (0..n).map(|i| (i as f64 - n as f64 / 2.0) * 0.01).collect();
    rng.shuffle(&mut v);
    Tensor::new(shape, v).unwrap()
}

/// Asserts every element of `got` is within `atol + rtol |want|` of `want`.
pub fn assert_close<T: crate::Real>(
    what: &str,
    got: &Tensor<T>,
    want: &[f64],
    atol: f64,
    rtol: f64,
) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.data().iter().zip(want).enumerate() {
        let g = g.to_f64();
        assert!(
            (g - w).abs() <= atol + rtol * w.abs(),
            "{what}: element {i}: got {g}, want {w}"
        );
    }
}

/// f32 unit roundoff.
pub const U: f64 = 1.0 / (1u64 << 24) as f64;

pub fn abs(t: &Tensor) -> Tensor {
    Tensor::from_fn(t.shape(), |i| t.data()[i].abs())
}

/// Checks `got` against `want` with the summation bound for `k` terms (`absref` from |inputs|).
pub fn within_bound(what: &str, got: &Tensor, want: &Tensor, absref: &Tensor, k: usize) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let gamma = 1.01 * k as f64 * U;
    for i in 0..got.len() {
        let (g, w, a) = (
            got.data()[i] as f64,
            want.data()[i] as f64,
            absref.data()[i] as f64,
        );
        let tol = gamma * a + U * w.abs() + 1e-30;
        assert!(
            (g - w).abs() <= tol,
            "{what}: element {i}: got {g} vs reference {w}, |diff| {:e} > bound {tol:e}",
            (g - w).abs()
        );
    }
}

/// The torchvision parity fixture (see tests/resnet50_parity.rs) and its comparisons.
pub const PARITY_FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/resnet50_parity.safetensors"
);

pub fn fixture_f64(name: &str) -> (Vec<usize>, Vec<f64>) {
    fixture_file_f64(std::path::Path::new(PARITY_FIXTURE))
        .remove(name)
        .unwrap_or_else(|| panic!("{name} not in {PARITY_FIXTURE}"))
}

/// Every tensor of a safetensors fixture (f64 or f32) as (shape, f64 values), by name.
pub fn fixture_file_f64(
    path: &std::path::Path,
) -> std::collections::BTreeMap<String, (Vec<usize>, Vec<f64>)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, t)| {
            let v = match t.dtype() {
                safetensors::Dtype::F64 => t
                    .data()
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
                safetensors::Dtype::F32 => t
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
                    .collect(),
                d => panic!("unexpected dtype {d:?}"),
            };
            (name, (t.shape().to_vec(), v))
        })
        .collect()
}

/// max |got - want| / max |want|
pub fn rel_err(got: &Tensor, want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(scale > 1e-3, "reference output is (nearly) zero");
    got.data()
        .iter()
        .zip(want)
        .map(|(g, w)| (*g as f64 - w).abs())
        .fold(0.0, f64::max)
        / scale
}

/// The call failed and its message contains every fragment.
pub fn fails<T: std::fmt::Debug>(r: crate::Result<T>, fragments: &[&str]) {
    let msg = match r {
        Ok(v) => panic!("expected an error containing {fragments:?}, got Ok({v:?})"),
        Err(e) => e.to_string(),
    };
    for f in fragments {
        assert!(msg.contains(f), "message {msg:?} lacks {f:?}");
    }
}

/// Bit-for-bit equality (so NaN == NaN and -0 != +0), naming the first differing element.
pub fn assert_bits(what: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    for (i, (g, w)) in got.data().iter().zip(want.data()).enumerate() {
        assert_eq!(
            g.to_bits(),
            w.to_bits(),
            "{what}: element {i}: got {g}, reference {w}"
        );
    }
}
