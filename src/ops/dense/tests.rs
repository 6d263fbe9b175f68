//! Dense layers on every backend: a known answer, errors, agreement with the reference on every
//! element within the summation bound of [`within_bound`] (Higham: any order of K f32 products
//! is within 1.01 K u sum|terms|), and gradients by finite differences in f64.

use super::{DenseDims, reference as dense};
use crate::ops::prelude::*;
use crate::testing::{abs, assert_close, check_grad, dot, fails, randn, within_bound};
use crate::{ReferenceBackend, Rng, Tensor};

fn hand_case<B: Backend>(b: &B) {
    // y = x W^T + b with x = [1, 2], W rows (1,0), (0,1), (1,1), b = (0, 1, 2): small integers,
    // exact in f32 in any order.
    let up = |s: &[usize], v: &[f32]| b.upload(&Tensor::new(s, v.to_vec()).unwrap()).unwrap();
    let y = b
        .dense(
            &up(&[1, 2], &[1., 2.]),
            &up(&[3, 2], &[1., 0., 0., 1., 1., 1.]),
            Some(&up(&[3], &[0., 1., 2.])),
        )
        .unwrap();
    assert_close("dense", &b.download(&y).unwrap(), &[1., 3., 5.], 0.0, 0.0);
}

fn shape_errors<B: Backend>(b: &B) {
    let z = |s: &[usize]| b.upload(&Tensor::full(s, 0.5)).unwrap();
    fails(
        b.dense(&z(&[4, 2048]), &z(&[120, 2047]), None),
        &["dense", "[4, 2048]", "[120, 2047]"],
    );
    fails(
        b.dense(&z(&[4, 8]), &z(&[3, 8]), Some(&z(&[4]))),
        &["dense", "bias", "[4]", "[3]"],
    );
    fails(
        b.dense_backward(&z(&[4, 2]), &z(&[4, 8]), &z(&[3, 8])),
        &["dense_backward", "[4, 2]", "[4, 3]"],
    );
    fails(
        b.dense(&z(&[2, 5]), &z(&[3, 4]), None),
        &["dense", "[2, 5]", "[3, 4]"],
    );
}

/// The head's shapes (2048 -> 120 -> 84 -> 7), odd sizes, and sizes spanning several GEMM tiles.
fn matches_reference<B: Backend>(be: &B) {
    let r = ReferenceBackend;
    let mut rng = Rng::new(42);
    for (n, i, o) in [
        (32, 2048, 120),
        (5, 120, 84),
        (1, 84, 7),
        (13, 33, 17),
        (70, 33, 130),
    ] {
        let x = Tensor::randn(&[n, i], 1.0, &mut rng);
        let w = Tensor::randn(&[o, i], 1.0, &mut rng);
        let b = Tensor::randn(&[o], 1.0, &mut rng);
        let (xd, wd, bd) = (
            be.upload(&x).unwrap(),
            be.upload(&w).unwrap(),
            be.upload(&b).unwrap(),
        );
        let tag = format!("{} {n}x{i}->{o}", be.name());
        let absref = r.dense(&abs(&x), &abs(&w), Some(&abs(&b))).unwrap();
        within_bound(
            &format!("dense {tag}"),
            &be.download(&be.dense(&xd, &wd, Some(&bd)).unwrap())
                .unwrap(),
            &r.dense(&x, &w, Some(&b)).unwrap(),
            &absref,
            i + 1,
        );
        let dy = Tensor::randn(&[n, o], 1.0, &mut rng);
        let dyd = be.upload(&dy).unwrap();
        let gc = be.dense_backward(&dyd, &xd, &wd).unwrap();
        let gr = r.dense_backward(&dy, &x, &w).unwrap();
        let ga = r.dense_backward(&abs(&dy), &abs(&x), &abs(&w)).unwrap();
        let dl = |t| be.download(t).unwrap();
        within_bound(&format!("dense dx {tag}"), &dl(&gc.dx), &gr.dx, &ga.dx, o);
        within_bound(&format!("dense dw {tag}"), &dl(&gc.dw), &gr.dw, &ga.dw, n);
        within_bound(&format!("dense db {tag}"), &dl(&gc.db), &gr.db, &ga.db, n);
    }
}

/// Analytic gradients of the reference in f64 against central differences.
#[test]
fn gradients_by_finite_differences() {
    let mut rng = Rng::new(7);
    for (n, i, o) in [(3, 5, 4), (1, 7, 3), (8, 2, 7)] {
        let d = DenseDims { n, i, o };
        let x = randn(&[n, i], &mut rng);
        let w = randn(&[o, i], &mut rng);
        let b = randn(&[o], &mut rng);
        let r = randn(&[n, o], &mut rng);
        let g = dense::backward(&r, &x, &w, d).unwrap();
        let f = |x: &Tensor<f64>, w: &Tensor<f64>, b: &Tensor<f64>| {
            dot(&dense::forward(x, w, Some(b), d).unwrap(), &r)
        };
        check_grad(&format!("dense {n}x{i}->{o} dx"), &x, &g.dx, |x| {
            f(x, &w, &b)
        });
        check_grad(&format!("dense {n}x{i}->{o} dw"), &w, &g.dw, |w| {
            f(&x, w, &b)
        });
        check_grad(&format!("dense {n}x{i}->{o} db"), &b, &g.db, |b| {
            f(&x, &w, b)
        });
    }
}

crate::backend_suite! {
    every: [hand_case, shape_errors],
    fast: [matches_reference],
    cuda: [],
}
