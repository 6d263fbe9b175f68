//! The `cpu` backend against the `reference` backend on random inputs, every output element.
//!
//! Tolerance for GEMM-based ops: any summation order of K f32 products satisfies
//! |fl(sum) - sum| <= gamma_K * sum|terms| with gamma_K = K u / (1 - K u), u = 2^-24 (Higham,
//! Accuracy and Stability, 3.1). The reference sums exactly in f64 and rounds once (u |y|).
//! So each element must satisfy |cpu - ref| <= 1.01 K u * ref(|x|, |w|) + u |ref| + tiny,
//! where ref(|x|, |w|) is the same op on absolute values: a bound, not a guess, and it scales
//! with each element's own conditioning.

mod common;

use common::{abs, within_bound};
use skinengine::backend::Backend;
use skinengine::ops::conv2d::{Conv2dParams, geometry};
use skinengine::ops::pool::Pool2dParams;
use skinengine::{CpuBackend, ReferenceBackend, Rng, Tensor};

fn conv_cases() -> Vec<([usize; 4], [usize; 4], Conv2dParams)> {
    vec![
        ([2, 3, 23, 19], [8, 3, 7, 7], Conv2dParams::square(2, 3)), // stem-like
        ([3, 16, 9, 9], [8, 16, 1, 1], Conv2dParams::square(1, 0)), // 1x1, pointwise path
        ([2, 8, 11, 13], [12, 8, 3, 3], Conv2dParams::square(1, 1)),
        ([2, 8, 11, 13], [12, 8, 3, 3], Conv2dParams::square(2, 1)), // strided 3x3
        ([1, 16, 10, 10], [32, 16, 1, 1], Conv2dParams::square(2, 0)), // downsample projection
        (
            [1, 4, 6, 9],
            [5, 4, 2, 3],
            Conv2dParams {
                stride: (1, 2),
                padding: (1, 0),
            },
        ),
        ([4, 5, 7, 7], [6, 5, 3, 3], Conv2dParams::square(3, 2)), // stride > kernel overlap
        // K = 360 spans two K blocks of the AVX-512 kernel; 20 rows and 81 columns leave edges.
        ([1, 40, 9, 9], [20, 40, 3, 3], Conv2dParams::square(1, 1)),
        ([3, 40, 9, 9], [20, 40, 3, 3], Conv2dParams::square(2, 1)),
    ]
}

#[test]
fn conv2d_forward_fused_and_backward_match_reference() {
    let (cpu, r) = (CpuBackend, ReferenceBackend);
    let mut rng = Rng::new(21);
    for (xs, ws, p) in conv_cases() {
        let g = geometry(&xs, &ws, &p).unwrap();
        let x = Tensor::randn(&xs, 1.0, &mut rng);
        let w = Tensor::randn(&ws, 1.0, &mut rng);
        let b = Tensor::randn(&[ws[0]], 1.0, &mut rng);
        let res = Tensor::randn(&g.y_shape(), 1.0, &mut rng);
        let k = g.c * g.kh * g.kw + 2; // products plus bias and residual
        let tag = format!("x{xs:?} w{ws:?} {p:?}");

        let want = r.conv2d(&x, &w, Some(&b), &p).unwrap();
        let absref = r.conv2d(&abs(&x), &abs(&w), Some(&abs(&b)), &p).unwrap();
        within_bound(
            &format!("conv fwd {tag}"),
            &cpu.conv2d(&x, &w, Some(&b), &p).unwrap(),
            &want,
            &absref,
            k,
        );

        // Fused: relu(conv + b + residual); the bound carries over since relu is 1-Lipschitz.
        let want_f = r
            .conv2d_fused(&x, &w, Some(&b), Some(&res), true, &p)
            .unwrap();
        let abs_f = r.add(&absref, &abs(&res)).unwrap();
        let got_f = cpu
            .conv2d_fused(&x, &w, Some(&b), Some(&res), true, &p)
            .unwrap();
        within_bound(&format!("conv fused {tag}"), &got_f, &want_f, &abs_f, k);
        assert!(got_f.data().contains(&0.0) && got_f.data().iter().any(|&v| v > 0.0));

        let dy = Tensor::randn(&g.y_shape(), 1.0, &mut rng);
        let want = r.conv2d_backward_data(&dy, &w, &xs, &p).unwrap();
        let absref = r
            .conv2d_backward_data(&abs(&dy), &abs(&w), &xs, &p)
            .unwrap();
        let got = cpu.conv2d_backward_data(&dy, &w, &xs, &p).unwrap();
        within_bound(
            &format!("conv dx {tag}"),
            &got,
            &want,
            &absref,
            g.o * g.kh * g.kw,
        );

        let want = r.conv2d_backward_weight(&dy, &x, &ws, &p).unwrap();
        let absref = r
            .conv2d_backward_weight(&abs(&dy), &abs(&x), &ws, &p)
            .unwrap();
        let got = cpu.conv2d_backward_weight(&dy, &x, &ws, &p).unwrap();
        within_bound(
            &format!("conv dw {tag}"),
            &got,
            &want,
            &absref,
            g.n * g.ho * g.wo,
        );
    }
}

#[test]
fn dense_matches_reference() {
    let (cpu, r) = (CpuBackend, ReferenceBackend);
    let mut rng = Rng::new(22);
    for (n, i, o) in [(32, 2048, 120), (5, 120, 84), (1, 84, 7), (13, 33, 17)] {
        let x = Tensor::randn(&[n, i], 1.0, &mut rng);
        let w = Tensor::randn(&[o, i], 1.0, &mut rng);
        let b = Tensor::randn(&[o], 1.0, &mut rng);
        let tag = format!("{n}x{i}->{o}");
        let absref = r.dense(&abs(&x), &abs(&w), Some(&abs(&b))).unwrap();
        within_bound(
            &format!("dense {tag}"),
            &cpu.dense(&x, &w, Some(&b)).unwrap(),
            &r.dense(&x, &w, Some(&b)).unwrap(),
            &absref,
            i + 1,
        );
        let dy = Tensor::randn(&[n, o], 1.0, &mut rng);
        let (gc, gr) = (
            cpu.dense_backward(&dy, &x, &w).unwrap(),
            r.dense_backward(&dy, &x, &w).unwrap(),
        );
        let ga = r.dense_backward(&abs(&dy), &abs(&x), &abs(&w)).unwrap();
        within_bound(&format!("dense dx {tag}"), &gc.dx, &gr.dx, &ga.dx, o);
        within_bound(&format!("dense dw {tag}"), &gc.dw, &gr.dw, &ga.dw, n);
        within_bound(&format!("dense db {tag}"), &gc.db, &gr.db, &ga.db, n);
    }
}

#[test]
fn pooling_and_elementwise_match_reference() {
    let (cpu, r) = (CpuBackend, ReferenceBackend);
    let mut rng = Rng::new(23);
    for (xs, p) in [
        ([2, 3, 17, 15], Pool2dParams::square(3, 2, 1)),
        ([1, 2, 8, 8], Pool2dParams::square(2, 2, 0)),
        (
            [1, 2, 7, 9],
            Pool2dParams {
                kernel: (3, 2),
                stride: (1, 2),
                padding: (1, 1),
            },
        ),
    ] {
        let x = Tensor::randn(&xs, 1.0, &mut rng);
        // Max is exact: the same value is selected.
        assert_eq!(
            cpu.maxpool2d(&x, &p).unwrap(),
            r.maxpool2d(&x, &p).unwrap(),
            "maxpool {xs:?} {p:?}"
        );
        let plane = xs[2] * xs[3];
        let absref = r.global_avg_pool(&abs(&x)).unwrap();
        within_bound(
            "gap",
            &cpu.global_avg_pool(&x).unwrap(),
            &r.global_avg_pool(&x).unwrap(),
            &absref,
            plane + 1,
        );
        let y = Tensor::randn(&xs, 1.0, &mut rng);
        assert_eq!(cpu.relu(&x).unwrap(), r.relu(&x).unwrap());
        assert_eq!(
            cpu.relu_backward(&y, &x).unwrap(),
            r.relu_backward(&y, &x).unwrap()
        );
        // One f32 addition: both round the exact sum once, identically.
        assert_eq!(cpu.add(&x, &y).unwrap(), r.add(&x, &y).unwrap());
    }
}
