//! Activations and add on every backend: known answers, errors, exact agreement with the
//! reference (one f32 operation per element for ReLU and add: the result must be bit-equal), and
//! gradients by finite differences in f64.

use super::{Activation, reference as ew};
use crate::ops::prelude::*;
use crate::testing::{assert_close, check_grad, dot, randn, randn_away_from_zero};
use crate::{ReferenceBackend, Rng, Tensor};

fn up<B: Backend>(b: &B, shape: &[usize], v: &[f32]) -> B::Tensor {
    b.upload(&Tensor::new(shape, v.to_vec()).unwrap()).unwrap()
}

fn down<B: Backend>(b: &B, t: &B::Tensor) -> Tensor {
    b.download(t).unwrap()
}

fn hand_cases<B: Backend>(b: &B) {
    let x = up(b, &[1, 4], &[-1., 0., 2., -0.5]);
    assert_close(
        "relu",
        &down(b, &b.relu(&x).unwrap()),
        &[0., 0., 2., 0.],
        0.0,
        0.0,
    );
    let dy = up(b, &[1, 4], &[1., 2., 3., 4.]);
    let dx = b.relu_backward(&dy, &x).unwrap();
    assert_close("relu backward", &down(b, &dx), &[0., 0., 3., 0.], 0.0, 0.0);
    let s = b.add(&x, &up(b, &[1, 4], &[1., 1., 1., 1.])).unwrap();
    assert_close("add", &down(b, &s), &[0., 1., 3., 0.5], 0.0, 0.0);
}

fn shape_errors<B: Backend>(b: &B) {
    let z = |s: &[usize]| b.upload(&Tensor::full(s, 0.5)).unwrap();
    let e = b.add(&z(&[2, 3]), &z(&[3, 2])).unwrap_err().to_string();
    assert!(
        e.contains("add") && e.contains("[2, 3]") && e.contains("[3, 2]"),
        "{e}"
    );
    for &act in Activation::ALL {
        let e = b
            .activation_grad(act, &z(&[2, 3]), &z(&[2, 4]))
            .unwrap_err()
            .to_string();
        let op = format!("{}_backward", act.name());
        assert!(
            e.contains(&op) && e.contains("[2, 3]") && e.contains("[2, 4]"),
            "{e}"
        );
    }
}

/// Every activation and add against the reference on random inputs: 1 element, a partial
/// block, and more than one block per grid-stride pass. ReLU and add are exact, so bit-equal;
/// other activations evaluate a transcendental function in f32, checked to a few ulps of the
/// f64 value (`ulps_bound`).
fn matches_reference<B: Backend>(b: &B) {
    let r = ReferenceBackend;
    let mut rng = Rng::new(31);
    for shape in [vec![1], vec![3, 5, 7], vec![2, 64, 33, 17]] {
        let x = Tensor::randn(&shape, 2.0, &mut rng);
        let y = Tensor::randn(&shape, 1.0, &mut rng);
        let (xd, yd) = (b.upload(&x).unwrap(), b.upload(&y).unwrap());
        for &act in Activation::ALL {
            let name = act.name();
            let got = down(b, &b.activation(act, &xd).unwrap());
            let want = r.activation(act, &x).unwrap();
            close_ulps(&format!("{name} {shape:?}"), &got, &want, ulps_bound(act));
            let got = down(b, &b.activation_grad(act, &yd, &xd).unwrap());
            let want = r.activation_grad(act, &y, &x).unwrap();
            let what = format!("{name}_backward {shape:?}");
            match backward_bound(act) {
                None => close_ulps(&what, &got, &want, 0.0),
                Some(c) => {
                    for i in 0..got.len() {
                        let (g, w) = (got.data()[i] as f64, want.data()[i] as f64);
                        let (dy, xv) = (y.data()[i] as f64, x.data()[i] as f64);
                        let tol = c * f32::EPSILON as f64 * dy.abs() * (1.0 + xv.abs()) + 1e-30;
                        assert!(
                            (g - w).abs() <= tol,
                            "{what}: element {i} (x {xv}, dy {dy}): got {g} vs reference {w}, \
                             bound {tol:e}"
                        );
                    }
                }
            }
        }
        assert_eq!(
            down(b, &b.add(&xd, &yd).unwrap()),
            r.add(&x, &y).unwrap(),
            "add {shape:?}"
        );
    }
}

/// Allowed error in f32 ulps of the reference value (which is the f64 result rounded once).
/// ReLU selects or zeroes: exact. Others compose a few f32 operations (exp, add, divide,
/// multiply), each within 1 ulp on the GPU and on the CPU (libm), so errors compound to a
/// handful of ulps; 8 leaves room without admitting a wrong formula, whose errors are of the
/// order of the value itself.
fn ulps_bound(act: Activation) -> f64 {
    match act {
        Activation::Relu => 0.0,
        // exp (<= 2 ulps on the GPU), 1 + e (no cancellation: both positive), one division.
        Activation::Silu => 8.0,
    }
}

/// Backward bounds: `None` = exact (bit-equal); `Some(c)`: |got - want| <= c eps |dy| (1 + |x|).
/// Near a zero of f' (SiLU's at x = -1.28) a relative bound is meaningless, so the bound is
/// absolute in the scale of the terms: s carries a few ulps of error, 1 - s an absolute error
/// of a few eps (cancellation when s ~ 1), multiplied by |x|, then added to 1 and multiplied by
/// s and dy: the total stays below ~10 eps |dy| (1 + |x|); 16 leaves room, while a wrong formula
/// is off by O(|dy|).
fn backward_bound(act: Activation) -> Option<f64> {
    match act {
        Activation::Relu => None,
        Activation::Silu => Some(16.0),
    }
}

/// |got - want| <= ulps * ulp(want) + a tiny absolute floor for values near 0, every element.
fn close_ulps(what: &str, got: &Tensor, want: &Tensor, ulps: f64) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    for (i, (&g, &w)) in got.data().iter().zip(want.data()).enumerate() {
        if ulps == 0.0 {
            assert_eq!(
                g.to_bits(),
                w.to_bits(),
                "{what}: element {i}: got {g} vs reference {w}"
            );
            continue;
        }
        let ulp = (w.abs().max(f32::MIN_POSITIVE)) as f64 * f32::EPSILON as f64;
        let tol = ulps * ulp + 1e-30;
        assert!(
            ((g - w) as f64).abs() <= tol,
            "{what}: element {i}: got {g} vs reference {w} (bound {tol:e})"
        );
    }
}

/// Analytic gradients of the reference in f64 against central differences.
#[test]
fn gradients_by_finite_differences() {
    let mut rng = Rng::new(4);
    for xs in [vec![2, 3, 5, 7], vec![9, 4]] {
        // Away from 0: ReLU's kink there would make a finite difference meaningless.
        let x = randn_away_from_zero(&xs, 0.01, &mut rng);
        let r = randn(&xs, &mut rng);
        for &act in Activation::ALL {
            let dx = ew::activation_backward(act, &r, &x);
            check_grad(&format!("{} {xs:?}", act.name()), &x, &dx, |x| {
                dot(&ew::activation(act, x), &r)
            });
        }
        // add: the gradient for each operand is dy itself.
        let b = randn(&xs, &mut rng);
        check_grad(&format!("add {xs:?} da"), &x, &r, |a| {
            dot(&ew::add(a, &b), &r)
        });
        check_grad(&format!("add {xs:?} db"), &b, &r, |b| {
            dot(&ew::add(&x, b), &r)
        });
    }
}

crate::backend_suite! {
    every: [hand_cases, shape_errors],
    fast: [matches_reference],
    cuda: [],
}
