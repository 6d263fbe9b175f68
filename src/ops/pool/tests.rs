//! Max pooling and global average pooling on every backend: known answers, errors, agreement
//! with the reference, and gradients by finite differences in f64.
//!
//! Max-pool forward selects an input value and backward sums dy in double in the reference's
//! order, so both must equal the reference bit for bit (NaN, -inf and ties included). The
//! global-average-pool backward is one correctly rounded division, equal to the reference's
//! f64 division rounded to f32 (double rounding is harmless for division), so it is exact too.
//! Only the global-average-pool forward sums in f32; it is held to the summation bound.

use super::{Pool2dParams, reference as pool};
use crate::ops::prelude::*;
use crate::testing::{
    U, abs, assert_bits, assert_close, check_grad, distinct_values, dot, fails, randn, within_bound,
};
use crate::{ReferenceBackend, Rng, Tensor};

fn t(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::new(shape, v.to_vec()).unwrap()
}

fn hand_cases<B: Backend>(b: &B) {
    let run = |x: &Tensor, p: &Pool2dParams| {
        b.download(&b.maxpool2d(&b.upload(x).unwrap(), p).unwrap())
            .unwrap()
    };
    // 4x4 = 1..16; 3x3 stride 2 padding 1: windows rows/cols {-1..1, 1..3}.
    let x = Tensor::from_fn(&[1, 1, 4, 4], |i| (i + 1) as f32);
    let p = Pool2dParams::square(3, 2, 1);
    let y = run(&x, &p);
    assert_eq!(y.shape(), &[1, 1, 2, 2]);
    assert_close("maxpool", &y, &[6., 8., 14., 16.], 0.0, 0.0);
    // All negative: padding must never win the max; each window keeps its top-left value.
    let neg = Tensor::from_fn(&[1, 1, 4, 4], |i| -((i + 1) as f32));
    assert_close(
        "maxpool negative",
        &run(&neg, &p),
        &[-1., -2., -5., -6.],
        0.0,
        0.0,
    );
    // Backward: each gradient lands on its window's winner; overlapping winners accumulate.
    let x = t(&[1, 1, 1, 3], &[1., 5., 2.]);
    let p = Pool2dParams {
        kernel: (1, 2),
        stride: (1, 1),
        padding: (0, 0),
    };
    let dy = b.upload(&t(&[1, 1, 1, 2], &[10., 20.])).unwrap();
    let dx = b
        .maxpool2d_backward(&dy, &b.upload(&x).unwrap(), &p)
        .unwrap();
    assert_close(
        "maxpool backward",
        &b.download(&dx).unwrap(),
        &[0., 30., 0.],
        0.0,
        0.0,
    );

    // Small integers and halves: exact in f32 whatever the summation order.
    let x = t(&[1, 2, 2, 2], &[1., 2., 3., 4., -1., -1., -1., 3.]);
    let y = b.global_avg_pool(&b.upload(&x).unwrap()).unwrap();
    assert_close("gap", &b.download(&y).unwrap(), &[2.5, 0.], 0.0, 0.0);
    let dy = b.upload(&t(&[1, 2], &[4., 8.])).unwrap();
    let dx = b.global_avg_pool_backward(&dy, &[1, 2, 2, 2]).unwrap();
    assert_close(
        "gap backward",
        &b.download(&dx).unwrap(),
        &[1., 1., 1., 1., 2., 2., 2., 2.],
        0.0,
        0.0,
    );
}

/// Bad shapes and parameters are errors naming the op and the shapes, never panics.
fn shape_errors<B: Backend>(b: &B) {
    let z = |s: &[usize]| b.upload(&Tensor::full(s, 0.5)).unwrap();
    fails(
        b.maxpool2d(&z(&[1, 1, 2, 2]), &Pool2dParams::square(5, 1, 1)),
        &["maxpool2d", "larger"],
    );
    fails(
        b.maxpool2d(&z(&[1, 1, 8, 8]), &Pool2dParams::square(3, 2, 2)),
        &["maxpool2d", "padding"],
    );
    fails(
        b.maxpool2d(&z(&[8, 8]), &Pool2dParams::square(3, 2, 1)),
        &["maxpool2d", "[8, 8]"],
    );
    fails(
        b.maxpool2d_backward(
            &z(&[1, 1, 3, 3]),
            &z(&[1, 1, 8, 8]),
            &Pool2dParams::square(3, 2, 1),
        ),
        &["maxpool2d_backward", "[1, 1, 4, 4]", "[1, 1, 3, 3]"],
    );
    fails(
        b.global_avg_pool(&z(&[2, 3])),
        &["global_avg_pool", "[2, 3]"],
    );
    fails(
        b.global_avg_pool_backward(&z(&[2, 4]), &[2, 3, 5, 5]),
        &["global_avg_pool_backward", "[2, 4]", "[2, 3]"],
    );
}

fn params(k: (usize, usize), s: (usize, usize), p: (usize, usize)) -> Pool2dParams {
    Pool2dParams {
        kernel: k,
        stride: s,
        padding: p,
    }
}

/// Forward and backward of one case, both bit-exact.
fn check_maxpool<B: Backend>(be: &B, what: &str, x: &Tensor, p: &Pool2dParams, rng: &mut Rng) {
    let r = ReferenceBackend;
    let xd = be.upload(x).unwrap();
    let want = r.maxpool2d(x, p).unwrap();
    let got = be.download(&be.maxpool2d(&xd, p).unwrap()).unwrap();
    assert_bits(&format!("maxpool2d {what}"), &got, &want);
    let dy = Tensor::randn(want.shape(), 1.0, rng);
    let want = r.maxpool2d_backward(&dy, x, p).unwrap();
    let dyd = be.upload(&dy).unwrap();
    let got = be
        .download(&be.maxpool2d_backward(&dyd, &xd, p).unwrap())
        .unwrap();
    assert_bits(&format!("maxpool2d_backward {what}"), &got, &want);
}

fn maxpool_matches_reference<B: Backend>(be: &B) {
    let mut rng = Rng::new(41);
    let cases: &[(&[usize], Pool2dParams)] = &[
        // ResNet50's stem pool, odd sizes.
        (&[2, 3, 7, 9], Pool2dParams::square(3, 2, 1)),
        // Many planes and more outputs than one block (2 * 5 * 19 * 21 > 256 * 15).
        (&[2, 5, 37, 41], Pool2dParams::square(3, 2, 1)),
        (&[1, 2, 8, 8], Pool2dParams::square(2, 2, 0)),
        // Stride 1 with padding: every input lies in up to 9 windows.
        (&[2, 2, 5, 6], Pool2dParams::square(3, 1, 1)),
        // Rectangular kernel, unequal strides and paddings.
        (&[1, 3, 6, 7], params((3, 2), (1, 2), (1, 1))),
        (&[1, 2, 9, 5], params((4, 3), (3, 1), (2, 0))),
        // Stride larger than the kernel: some inputs are in no window and get 0.
        (&[1, 2, 10, 11], params((2, 2), (3, 3), (0, 0))),
        (&[1, 1, 1, 1], Pool2dParams::square(1, 1, 0)),
        // Window as large as the padded input: one output per plane.
        (&[3, 1, 3, 4], params((5, 6), (1, 1), (1, 1))),
    ];
    for (shape, p) in cases {
        let x = Tensor::randn(shape, 1.0, &mut rng);
        check_maxpool(be, &format!("{shape:?} {p:?}"), &x, p, &mut rng);
        // Few distinct values: ties everywhere, so the first-in-window rule decides.
        let t = Tensor::from_fn(shape, |_| rng.below(3) as f32 - 1.0);
        check_maxpool(be, &format!("ties {shape:?} {p:?}"), &t, p, &mut rng);
    }
}

/// NaN (wins only as the first cell of a window, as the reference's `v > best`), infinities and
/// signed zeros (-0 and +0 tie, so the first one found is the output).
fn maxpool_special_values<B: Backend>(be: &B) {
    let mut rng = Rng::new(43);
    let specials = [f32::NAN, f32::NEG_INFINITY, f32::INFINITY, -0.0, 0.0];
    let shape = [2, 3, 9, 8];
    let x = Tensor::from_fn(&shape, |_| {
        if rng.below(4) == 0 {
            specials[rng.below(specials.len())]
        } else {
            rng.normal() as f32
        }
    });
    for p in [Pool2dParams::square(3, 2, 1), Pool2dParams::square(2, 1, 0)] {
        check_maxpool(be, &format!("specials {p:?}"), &x, &p, &mut rng);
    }
}

fn global_avg_pool_matches_reference<B: Backend>(be: &B) {
    let r = ReferenceBackend;
    let mut rng = Rng::new(47);
    // ResNet50's final 7x7 (with its 2048 channels), a 1x1 plane, plane counts that are not
    // a multiple of the block's 8 warps, and planes larger than a whole block (1155, 5120).
    let shapes: &[&[usize]] = &[
        &[2, 3, 7, 7],
        &[2, 2048, 7, 7],
        &[1, 5, 1, 1],
        &[3, 2, 33, 35],
        &[1, 1, 64, 80],
        &[1, 3, 2, 16],
    ];
    let mut worst: f64 = 0.0;
    for shape in shapes {
        // Offset mean: sums with cancellation-free growth and sign changes both occur.
        let x = Tensor::from_fn(shape, |_| (rng.normal() + 0.5) as f32);
        let xd = be.upload(&x).unwrap();
        let got = be.download(&be.global_avg_pool(&xd).unwrap()).unwrap();
        let want = r.global_avg_pool(&x).unwrap();
        let hw = shape[2] * shape[3];
        // Each lane adds ceil(hw / 32) values in order (the first onto 0, exactly), then 5
        // shuffle levels: every term passes through at most ceil(hw/32) - 1 + 5 roundings; the
        // division by hw is one more, at most u * mean|x|. So k = ceil(hw/32) + 5 against
        // mean|x| (the reference pool of |x|), plus u |want| for the reference's own rounding.
        // The CPU backend adds a plane's values in order: k = hw + 1.
        let absref = r.global_avg_pool(&abs(&x)).unwrap();
        let k = if be.name() == "cpu" {
            hw + 1
        } else {
            hw.div_ceil(32) + 5
        };
        within_bound(
            &format!("global_avg_pool {shape:?}"),
            &got,
            &want,
            &absref,
            k,
        );
        for i in 0..got.len() {
            let err = (got.data()[i] as f64 - want.data()[i] as f64).abs();
            worst = worst.max(err / (absref.data()[i] as f64 * U));
        }

        let dy = Tensor::randn(&[shape[0], shape[1]], 1.0, &mut rng);
        let got = be
            .download(
                &be.global_avg_pool_backward(&be.upload(&dy).unwrap(), shape)
                    .unwrap(),
            )
            .unwrap();
        let want = r.global_avg_pool_backward(&dy, shape).unwrap();
        assert_bits(&format!("global_avg_pool_backward {shape:?}"), &got, &want);
    }
    eprintln!(
        "{}: global_avg_pool max |err| = {worst:.2} u * mean|x|",
        be.name()
    );
}

/// Every bad shape or parameter is the reference's error, word for word.
fn errors_equal_the_reference<B: Backend>(be: &B) {
    let r = ReferenceBackend;
    let same = |what: &str, got: crate::Error, want: crate::Error| {
        assert_eq!(got.to_string(), want.to_string(), "{what}");
    };
    let x = Tensor::full(&[1, 2, 5, 5], 0.5);
    let xd = be.upload(&x).unwrap();
    let x3 = Tensor::full(&[2, 5, 5], 0.5);
    let x3d = be.upload(&x3).unwrap();
    let bad_params = [
        Pool2dParams::square(0, 1, 0),
        Pool2dParams::square(3, 0, 1),
        Pool2dParams::square(3, 2, 2),
        Pool2dParams::square(7, 1, 0),
    ];
    for p in &bad_params {
        same(
            &format!("maxpool2d {p:?}"),
            be.maxpool2d(&xd, p).unwrap_err(),
            r.maxpool2d(&x, p).unwrap_err(),
        );
        let dy = Tensor::full(&[1, 2, 3, 3], 0.5);
        same(
            &format!("maxpool2d_backward {p:?}"),
            be.maxpool2d_backward(&be.upload(&dy).unwrap(), &xd, p)
                .unwrap_err(),
            r.maxpool2d_backward(&dy, &x, p).unwrap_err(),
        );
    }
    let p = Pool2dParams::square(3, 2, 1);
    same(
        "maxpool2d 3-d",
        be.maxpool2d(&x3d, &p).unwrap_err(),
        r.maxpool2d(&x3, &p).unwrap_err(),
    );
    // Output is [1, 2, 3, 3]; a gradient of another shape is refused.
    let dy = Tensor::full(&[1, 2, 3, 4], 0.5);
    same(
        "maxpool2d_backward dy shape",
        be.maxpool2d_backward(&be.upload(&dy).unwrap(), &xd, &p)
            .unwrap_err(),
        r.maxpool2d_backward(&dy, &x, &p).unwrap_err(),
    );
    same(
        "global_avg_pool 3-d",
        be.global_avg_pool(&x3d).unwrap_err(),
        r.global_avg_pool(&x3).unwrap_err(),
    );
    let empty = Tensor::full(&[2, 3, 0, 4], 0.5);
    same(
        "global_avg_pool empty plane",
        be.global_avg_pool(&be.upload(&empty).unwrap()).unwrap_err(),
        r.global_avg_pool(&empty).unwrap_err(),
    );
    let dy = Tensor::full(&[1, 3], 0.5);
    let dyd = be.upload(&dy).unwrap();
    for shape in [&[1, 2, 5, 5][..], &[2, 5, 5][..]] {
        same(
            &format!("global_avg_pool_backward {shape:?}"),
            be.global_avg_pool_backward(&dyd, shape).unwrap_err(),
            r.global_avg_pool_backward(&dy, shape).unwrap_err(),
        );
    }
}

/// Analytic gradients of the reference in f64 against central differences.
#[test]
fn maxpool_gradients_by_finite_differences() {
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
        // Well-separated values: no window has a tie a finite-difference step could flip.
        let x = distinct_values(&xs, &mut rng);
        let g = p.geometry(&xs).unwrap();
        let y = pool::maxpool2d(&x, &g).unwrap();
        let r = randn(y.shape(), &mut rng);
        let dx = pool::maxpool2d_backward(&r, &x, &g).unwrap();
        check_grad(&format!("maxpool {xs:?} {p:?}"), &x, &dx, |x| {
            dot(&pool::maxpool2d(x, &g).unwrap(), &r)
        });
    }
}

#[test]
fn global_avg_pool_gradients_by_finite_differences() {
    let mut rng = Rng::new(6);
    for xs in [[2, 3, 5, 7], [1, 4, 1, 1], [3, 2, 7, 7]] {
        let x = randn(&xs, &mut rng);
        let r = randn(&[xs[0], xs[1]], &mut rng);
        let dx = pool::global_avg_pool_backward(&r, xs).unwrap();
        check_grad(&format!("gap {xs:?}"), &x, &dx, |x| {
            dot(&pool::global_avg_pool(x).unwrap(), &r)
        });
    }
}

crate::backend_suite! {
    every: [hand_cases, shape_errors],
    fast: [
        maxpool_matches_reference,
        maxpool_special_values,
        global_avg_pool_matches_reference,
        errors_equal_the_reference,
    ],
    cuda: [],
}
