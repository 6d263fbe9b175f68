//! Every backward of the reference ops against central finite differences in f64, on random
//! inputs (never zeros) and shapes that include odd sizes, stride 2 and padding.
//! Tolerances and their reasons: tests/common/mod.rs.

mod common;

use common::*;
use skinengine::ops::batchnorm::reference as bn;
use skinengine::ops::conv2d::{self, Conv2dParams, reference as conv};
use skinengine::ops::dense::reference as dense;
use skinengine::ops::elementwise::reference as ew;
use skinengine::ops::loss::{Reduction, reference as loss};
use skinengine::ops::pool::{Pool2dParams, reference as pool};
use skinengine::{Rng, Tensor};

/// (x shape, weight shape, params): odd sizes, non-square kernels, stride 2, padding,
/// ResNet's 7x7/s2/p3 stem and 1x1 projections.
fn conv_cases() -> Vec<([usize; 4], [usize; 4], Conv2dParams)> {
    vec![
        ([2, 3, 7, 5], [4, 3, 3, 3], Conv2dParams::square(2, 1)),
        ([1, 2, 6, 6], [3, 2, 1, 1], Conv2dParams::square(1, 0)),
        ([2, 3, 5, 4], [2, 3, 1, 1], Conv2dParams::square(2, 0)),
        ([1, 3, 9, 8], [2, 3, 7, 7], Conv2dParams::square(2, 3)),
        (
            [2, 2, 5, 7],
            [3, 2, 2, 3],
            Conv2dParams {
                stride: (2, 1),
                padding: (0, 1),
            },
        ),
        ([3, 1, 4, 4], [2, 1, 3, 3], Conv2dParams::square(1, 1)),
    ]
}

#[test]
fn conv2d_backward_data_weight_bias() {
    let mut rng = Rng::new(1);
    for (xs, ws, p) in conv_cases() {
        let x = randn(&xs, &mut rng);
        let w = randn(&ws, &mut rng);
        let b = randn(&[ws[0]], &mut rng);
        let y = conv::forward(&x, &w, Some(&b), &p).unwrap();
        let r = randn(y.shape(), &mut rng);
        let tag = format!("conv x{xs:?} w{ws:?} {p:?}");

        let dx = conv::backward_data(&r, &w, &xs, &p).unwrap();
        check_grad(&format!("{tag} dx"), &x, &dx, |x| {
            dot(&conv::forward(x, &w, Some(&b), &p).unwrap(), &r)
        });
        let dw = conv::backward_weight(&r, &x, &ws, &p).unwrap();
        check_grad(&format!("{tag} dw"), &w, &dw, |w| {
            dot(&conv::forward(&x, w, Some(&b), &p).unwrap(), &r)
        });
        let db = conv::backward_bias(&r).unwrap();
        check_grad(&format!("{tag} db"), &b, &db, |b| {
            dot(&conv::forward(&x, &w, Some(b), &p).unwrap(), &r)
        });
        let g = conv2d::geometry(&xs, &ws, &p).unwrap();
        assert_eq!(y.shape(), g.y_shape());
    }
}

/// At least 3 values per channel: with 2, training-mode outputs are exactly +-gamma whatever x
/// is, so dx is zero and the check would test nothing.
fn bn_shapes() -> Vec<Vec<usize>> {
    vec![vec![3, 4, 5, 3], vec![3, 3, 1, 1], vec![5, 6], vec![3, 7]]
}

#[test]
fn batchnorm_train_backward() {
    let mut rng = Rng::new(2);
    let eps = 1e-5;
    for xs in bn_shapes() {
        let c = xs[1];
        // Offset and scale so the statistics are not trivially 0 and 1.
        let x = Tensor::from_fn(&xs, |_| 0.7 + 1.9 * rng.normal());
        let gamma = Tensor::uniform(&[c], 0.5, 1.5, &mut rng);
        let beta = randn(&[c], &mut rng);
        let (y, mean, var) = bn::forward_train(&x, &gamma, &beta, eps).unwrap();
        let r = randn(y.shape(), &mut rng);
        let (dx, dg, db) = bn::backward(&r, &x, &gamma, &mean, &var, eps, true).unwrap();
        let f = |x: &Tensor<f64>, g: &Tensor<f64>, b: &Tensor<f64>| {
            dot(&bn::forward_train(x, g, b, eps).unwrap().0, &r)
        };
        check_grad(&format!("bn train {xs:?} dx"), &x, &dx, |x| {
            f(x, &gamma, &beta)
        });
        check_grad(&format!("bn train {xs:?} dgamma"), &gamma, &dg, |g| {
            f(&x, g, &beta)
        });
        check_grad(&format!("bn train {xs:?} dbeta"), &beta, &db, |b| {
            f(&x, &gamma, b)
        });
    }
}

#[test]
fn batchnorm_inference_backward() {
    let mut rng = Rng::new(3);
    let eps = 1e-5;
    for xs in bn_shapes() {
        let c = xs[1];
        let x = randn(&xs, &mut rng);
        let gamma = Tensor::uniform(&[c], 0.5, 1.5, &mut rng);
        let beta = randn(&[c], &mut rng);
        let rm = randn(&[c], &mut rng);
        let rv = Tensor::uniform(&[c], 0.3, 2.0, &mut rng);
        let f = |x: &Tensor<f64>, g: &Tensor<f64>, b: &Tensor<f64>| {
            dot(
                &bn::forward_inference(x, g, b, &rm, &rv, eps).unwrap(),
                &r_for(x),
            )
        };
        // r must not depend on the point; build it once from the shape.
        fn r_for(x: &Tensor<f64>) -> Tensor<f64> {
            let mut rng = Rng::new(99);
            randn(x.shape(), &mut rng)
        }
        let r = r_for(&x);
        let (dx, dg, db) = bn::backward(&r, &x, &gamma, &rm, &rv, eps, false).unwrap();
        check_grad(&format!("bn inference {xs:?} dx"), &x, &dx, |x| {
            f(x, &gamma, &beta)
        });
        check_grad(&format!("bn inference {xs:?} dgamma"), &gamma, &dg, |g| {
            f(&x, g, &beta)
        });
        check_grad(&format!("bn inference {xs:?} dbeta"), &beta, &db, |b| {
            f(&x, &gamma, b)
        });
    }
}

#[test]
fn relu_and_add_backward() {
    let mut rng = Rng::new(4);
    for xs in [vec![2, 3, 5, 7], vec![9, 4]] {
        let x = randn_away_from_zero(&xs, 0.01, &mut rng);
        let r = randn(&xs, &mut rng);
        let dx = ew::relu_backward(&r, &x).unwrap();
        check_grad(&format!("relu {xs:?}"), &x, &dx, |x| dot(&ew::relu(x), &r));

        // add: the gradient for each operand is dy itself.
        let b = randn(&xs, &mut rng);
        check_grad(&format!("add {xs:?} da"), &x, &r, |a| {
            dot(&ew::add(a, &b).unwrap(), &r)
        });
        check_grad(&format!("add {xs:?} db"), &b, &r, |b| {
            dot(&ew::add(&x, b).unwrap(), &r)
        });
    }
}

#[test]
fn maxpool_backward() {
    let mut rng = Rng::new(5);
    let cases = [
        ([2, 3, 7, 9], Pool2dParams::square(3, 2, 1)), // ResNet stem pool, odd sizes
        ([1, 2, 6, 6], Pool2dParams::square(2, 2, 0)),
        ([2, 1, 5, 4], Pool2dParams::square(3, 1, 1)), // overlapping windows
        (
            [1, 2, 5, 8],
            Pool2dParams {
                kernel: (2, 3),
                stride: (1, 2),
                padding: (1, 1),
            },
        ),
    ];
    for (xs, p) in cases {
        let x = distinct_values(&xs, &mut rng);
        let y = pool::maxpool2d(&x, &p).unwrap();
        let r = randn(y.shape(), &mut rng);
        let dx = pool::maxpool2d_backward(&r, &x, &p).unwrap();
        check_grad(&format!("maxpool {xs:?} {p:?}"), &x, &dx, |x| {
            dot(&pool::maxpool2d(x, &p).unwrap(), &r)
        });
    }
}

#[test]
fn global_avg_pool_backward() {
    let mut rng = Rng::new(6);
    for xs in [[2, 3, 5, 7], [1, 4, 1, 1], [3, 2, 7, 7]] {
        let x = randn(&xs, &mut rng);
        let r = randn(&[xs[0], xs[1]], &mut rng);
        let dx = pool::global_avg_pool_backward(&r, &xs).unwrap();
        check_grad(&format!("gap {xs:?}"), &x, &dx, |x| {
            dot(&pool::global_avg_pool(x).unwrap(), &r)
        });
    }
}

#[test]
fn dense_backward() {
    let mut rng = Rng::new(7);
    for (n, i, o) in [(3, 5, 4), (1, 7, 3), (8, 2, 7)] {
        let x = randn(&[n, i], &mut rng);
        let w = randn(&[o, i], &mut rng);
        let b = randn(&[o], &mut rng);
        let r = randn(&[n, o], &mut rng);
        let g = dense::backward(&r, &x, &w).unwrap();
        let f = |x: &Tensor<f64>, w: &Tensor<f64>, b: &Tensor<f64>| {
            dot(&dense::forward(x, w, Some(b)).unwrap(), &r)
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

#[test]
fn weighted_cross_entropy_backward() {
    let mut rng = Rng::new(8);
    // The seed's class frequencies, and uneven random weights.
    let freq = [0.111f32, 0.669, 0.051, 0.033, 0.109, 0.011, 0.014];
    let random: Vec<f32> = (0..7).map(|_| rng.uniform(0.1, 3.0) as f32).collect();
    for n in [1usize, 5, 13] {
        let logits = Tensor::from_fn(&[n, 7], |_| 3.0 * rng.normal());
        let labels: Vec<usize> = (0..n).map(|_| rng.below(7)).collect();
        for weights in [&freq[..], &random[..], &[1.0; 7][..]] {
            for red in [Reduction::Normalized, Reduction::Seed] {
                let (_, grad) =
                    loss::weighted_cross_entropy(&logits, &labels, weights, red).unwrap();
                check_grad(
                    &format!("ce n={n} {red:?} w={weights:?}"),
                    &logits,
                    &grad,
                    |z| {
                        loss::weighted_cross_entropy(z, &labels, weights, red)
                            .unwrap()
                            .0
                    },
                );
            }
        }
    }
}
