//! The reference's analytic batch-norm gradients in f64 against central differences (split from
//! `tests.rs`, which checks the backends against the reference).

use super::*;

/// At least 3 values per channel: with 2, training-mode outputs are exactly +-gamma whatever x
/// is, so dx is zero and the check would test nothing.
const GRAD_SHAPES: [&[usize]; 4] = [&[3, 4, 5, 3], &[3, 3, 1, 1], &[5, 6], &[3, 7]];
const GRAD_EPS: f64 = 1e-5;

type T64 = Tensor<f64>;
type Loss<'a> = dyn Fn(&T64, &T64, &T64) -> f64 + 'a;

/// check_grad of (dx, dgamma, dbeta) for the scalar f(x, gamma, beta).
fn check_grads(tag: &str, [x, g, b]: [&T64; 3], d: (T64, T64, T64), f: &Loss) {
    check_grad(&format!("{tag} dx"), x, &d.0, |x| f(x, g, b));
    check_grad(&format!("{tag} dgamma"), g, &d.1, |g| f(x, g, b));
    check_grad(&format!("{tag} dbeta"), b, &d.2, |b| f(x, g, b));
}

/// Analytic gradients of the reference in f64 against central differences, training mode
/// (seed 2) and inference mode (seed 3).
#[test]
fn gradients_by_finite_differences() {
    let (mut rng, mut rng3) = (Rng::new(2), Rng::new(3));
    for xs in GRAD_SHAPES {
        let (c, d, eps) = (xs[1], dims(xs), GRAD_EPS);
        // Offset and scale so the statistics are not trivially 0 and 1.
        let x = Tensor::from_fn(xs, |_| 0.7 + 1.9 * rng.normal());
        let gamma = Tensor::uniform(&[c], 0.5, 1.5, &mut rng);
        let beta = randn(&[c], &mut rng);
        let (y, mean, var) = bn::forward_train(&x, d, &gamma, &beta, eps).unwrap();
        let r = randn(y.shape(), &mut rng);
        let grads = bn::backward(&r, &x, d, &gamma, &mean, &var, eps, true).unwrap();
        let f = |x: &T64, g: &T64, b: &T64| dot(&bn::forward_train(x, d, g, b, eps).unwrap().0, &r);
        let tag = format!("bn train {xs:?}");
        check_grads(&tag, [&x, &gamma, &beta], grads, &f);

        let rng = &mut rng3;
        let x = randn(xs, rng);
        let gamma = Tensor::uniform(&[c], 0.5, 1.5, rng);
        let (beta, rm) = (randn(&[c], rng), randn(&[c], rng));
        let rv = Tensor::uniform(&[c], 0.3, 2.0, rng);
        // r must not depend on the point: built once from the shape, with its own seed.
        let r = randn(xs, &mut Rng::new(99));
        let (m, v) = (rm.data(), rv.data());
        let f = |x: &T64, g: &T64, b: &T64| {
            let y = bn::normalise(x, d, g.data(), b.data(), m, v, eps).unwrap();
            dot(&y, &r)
        };
        let grads = bn::backward(&r, &x, d, &gamma, &rm, &rv, eps, false).unwrap();
        let tag = format!("bn inference {xs:?}");
        check_grads(&tag, [&x, &gamma, &beta], grads, &f);
    }
}
