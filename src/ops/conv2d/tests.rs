//! Convolution on every backend: hand-worked answers, errors, agreement with the reference on
//! every element (forward with every epilogue, backward data / weight / bias) within the
//! summation bound of [`within_bound`] (Higham: any order of K f32 products is within
//! 1.01 K u sum|terms|), the CUDA split-K paths, and gradients by finite differences in f64.

use super::{Conv2dParams, Epilogue, geometry, reference as conv};
use crate::ops::dense::{DenseDims, reference as dense};
use crate::ops::prelude::*;
use crate::testing::{abs, assert_close, check_grad, dot, fails, randn, within_bound};
use crate::{CudaBackend, ReferenceBackend, Rng, Tensor};

fn up<B: Backend>(b: &B, shape: &[usize], v: &[f32]) -> B::Tensor {
    b.upload(&Tensor::new(shape, v.to_vec()).unwrap()).unwrap()
}

/// Small integers: every product and sum is exact in f32, whatever the order.
fn hand_cases<B: Backend>(b: &B) {
    // x = [[1,2,3],[4,5,6],[7,8,9]], w = [[1,2],[3,4]].
    let x = up(b, &[1, 1, 3, 3], &[1., 2., 3., 4., 5., 6., 7., 8., 9.]);
    let w = up(b, &[1, 1, 2, 2], &[1., 2., 3., 4.]);
    let bias = up(b, &[1], &[0.5]);
    let run =
        |x, w, bias: Option<&B::Tensor>, p| b.download(&b.conv2d(x, w, bias, &p).unwrap()).unwrap();
    // Stride 1, no padding: y00 = 1+4+12+20 = 37, y01 = 2+6+15+24 = 47, y10 = 67, y11 = 77.
    let y = run(&x, &w, Some(&bias), Conv2dParams::square(1, 0));
    assert_eq!(y.shape(), &[1, 1, 2, 2]);
    assert_close("conv s1 p0", &y, &[37.5, 47.5, 67.5, 77.5], 0.0, 0.0);
    // Stride 2, padding 1: windows start at -1 and 1; y00 = x00*w11 = 4,
    // y01 = x01*w10 + x02*w11 = 6 + 12, y10 = x10*w01 + x20*w11 = 8 + 28, y11 = 5+12+24+36.
    let y = run(&x, &w, None, Conv2dParams::square(2, 1));
    assert_close("conv s2 p1", &y, &[4., 18., 36., 77.], 0.0, 0.0);
    // Two input channels sum; two output channels are independent.
    let x2 = up(b, &[1, 2, 1, 1], &[2., 3.]);
    let w2 = up(b, &[2, 2, 1, 1], &[1., 10., -1., 1.]);
    let y = run(&x2, &w2, None, Conv2dParams::square(1, 0));
    assert_close("conv channels", &y, &[32., 1.], 0.0, 0.0);
}

/// A kernel as large as the input, no padding, is a dense layer on the flattened input: an
/// independent check of the index arithmetic (reference, in f64).
#[test]
fn conv2d_equals_dense_when_kernel_covers_input() {
    let mut rng = Rng::new(11);
    let x = Tensor::<f64>::randn(&[3, 2, 4, 5], 1.0, &mut rng);
    let w = Tensor::<f64>::randn(&[6, 2, 4, 5], 1.0, &mut rng);
    let b = Tensor::<f64>::randn(&[6], 1.0, &mut rng);
    let g = geometry(x.shape(), w.shape(), &Conv2dParams::square(1, 0)).unwrap();
    let y = conv::forward(&x, &w, Some(&b), &g).unwrap();
    let yd = dense::forward(
        &x.clone().reshape(&[3, 40]).unwrap(),
        &w.clone().reshape(&[6, 40]).unwrap(),
        Some(&b),
        DenseDims { n: 3, i: 40, o: 6 },
    )
    .unwrap();
    assert_close("conv as dense", &y, yd.data(), 1e-12, 1e-12);
}

fn shape_errors<B: Backend>(b: &B) {
    let z = |s: &[usize]| b.upload(&Tensor::full(s, 0.5)).unwrap();
    let p = Conv2dParams::square(1, 0);
    fails(
        b.conv2d(&z(&[1, 3, 5, 5]), &z(&[4, 2, 3, 3]), None, &p),
        &["conv2d", "[1, 3, 5, 5]", "[4, 2, 3, 3]", "3 channels"],
    );
    fails(
        b.conv2d(&z(&[3, 5, 5]), &z(&[4, 3, 3, 3]), None, &p),
        &["conv2d", "[3, 5, 5]", "4-d"],
    );
    fails(
        b.conv2d(&z(&[1, 3, 5, 5]), &z(&[4, 3, 3, 3]), Some(&z(&[3])), &p),
        &["conv2d", "bias", "[3]", "[4]"],
    );
    fails(
        b.conv2d_fused(
            &z(&[1, 3, 5, 5]),
            &z(&[4, 3, 3, 3]),
            None,
            Some(&z(&[1, 4, 3, 4])),
            true,
            &p,
        ),
        &["conv2d", "residual", "[1, 4, 3, 4]", "[1, 4, 3, 3]"],
    );
    fails(
        b.conv2d(&z(&[1, 1, 2, 2]), &z(&[1, 1, 3, 3]), None, &p),
        &["conv2d", "larger than padded input"],
    );
    fails(
        b.conv2d(
            &z(&[1, 1, 4, 4]),
            &z(&[1, 1, 3, 3]),
            None,
            &Conv2dParams::square(0, 0),
        ),
        &["conv2d", "stride"],
    );
    fails(
        b.conv2d_backward_data(&z(&[1, 4, 2, 2]), &z(&[4, 3, 3, 3]), &[1, 3, 5, 5], &p),
        &["conv2d_backward_data", "[1, 4, 2, 2]", "[1, 4, 3, 3]"],
    );
    fails(
        b.conv2d_backward_weight(&z(&[1, 4, 3, 3]), &z(&[1, 3, 5, 5]), &[4, 2, 3, 3], &p),
        &["conv2d", "3 channels"],
    );
    fails(
        b.conv2d_backward_bias(&z(&[4, 3])),
        &["conv2d_backward_bias", "4-d", "[4, 3]"],
    );
}

/// Shapes that reach every path of every backend: the stem's 7x7/s2/p3 (K = 147, not a multiple
/// of 4), pointwise with odd and float4-able pixel counts, O on both sides of the CUDA 64-row
/// tile and across two 128-row tiles, strided 3x3 and 1x1 projections, unequal strides and
/// paddings, stride > kernel, K spanning several K blocks of the AVX-512 and CUDA kernels.
pub(super) fn cases() -> Vec<([usize; 4], [usize; 4], Conv2dParams)> {
    let rect = Conv2dParams {
        stride: (1, 2),
        padding: (1, 0),
    };
    vec![
        ([2, 3, 23, 19], [8, 3, 7, 7], Conv2dParams::square(2, 3)),
        ([3, 16, 9, 9], [8, 16, 1, 1], Conv2dParams::square(1, 0)),
        ([3, 20, 8, 8], [72, 20, 1, 1], Conv2dParams::square(1, 0)),
        ([2, 8, 11, 13], [12, 8, 3, 3], Conv2dParams::square(1, 1)),
        ([2, 8, 11, 13], [12, 8, 3, 3], Conv2dParams::square(2, 1)),
        ([1, 16, 10, 10], [32, 16, 1, 1], Conv2dParams::square(2, 0)),
        ([1, 4, 6, 9], [5, 4, 2, 3], rect),
        ([4, 5, 7, 7], [6, 5, 3, 3], Conv2dParams::square(3, 2)),
        ([2, 32, 8, 8], [24, 32, 3, 3], Conv2dParams::square(1, 1)),
        ([1, 40, 9, 9], [20, 40, 3, 3], Conv2dParams::square(1, 1)),
        ([3, 40, 9, 9], [20, 40, 3, 3], Conv2dParams::square(2, 1)),
        ([1, 40, 9, 9], [130, 40, 3, 3], Conv2dParams::square(1, 1)),
        // Stride 1 with padding >= kernel: the CUDA data gradient cannot be a forward
        // convolution (negative padding), so it takes the strided gather.
        ([2, 3, 5, 6], [4, 3, 1, 1], Conv2dParams::square(1, 1)),
    ]
}

fn matches_reference<B: Backend>(be: &B) {
    let r = ReferenceBackend;
    let mut rng = Rng::new(41);
    for (xs, ws, p) in cases() {
        let g = geometry(&xs, &ws, &p).unwrap();
        let x = Tensor::randn(&xs, 1.0, &mut rng);
        let w = Tensor::randn(&ws, 1.0, &mut rng);
        let b = Tensor::randn(&[ws[0]], 1.0, &mut rng);
        let res = Tensor::randn(&g.y_shape(), 1.0, &mut rng);
        let up = |t: &Tensor| be.upload(t).unwrap();
        let (xd, wd, bd, rd) = (up(&x), up(&w), up(&b), up(&res));
        let k = g.c * g.kh * g.kw + 2; // products plus bias and residual
        let tag = format!("{} x{xs:?} w{ws:?} {p:?}", be.name());

        let want = r.conv2d(&x, &w, None, &p).unwrap();
        let absref = r.conv2d(&abs(&x), &abs(&w), None, &p).unwrap();
        let got = be
            .download(&be.conv2d(&xd, &wd, None, &p).unwrap())
            .unwrap();
        within_bound(&format!("conv fwd {tag}"), &got, &want, &absref, k);

        let want = r.conv2d(&x, &w, Some(&b), &p).unwrap();
        let absref = r.conv2d(&abs(&x), &abs(&w), Some(&abs(&b)), &p).unwrap();
        let got = be
            .download(&be.conv2d(&xd, &wd, Some(&bd), &p).unwrap())
            .unwrap();
        within_bound(&format!("conv fwd + bias {tag}"), &got, &want, &absref, k);

        // Fused: relu(conv + b + residual); relu is 1-Lipschitz, so the bound carries over.
        let want_f = r
            .conv2d_fused(&x, &w, Some(&b), Some(&res), true, &p)
            .unwrap();
        let abs_f = r.add(&absref, &abs(&res)).unwrap();
        let got_f = be
            .download(
                &be.conv2d_fused(&xd, &wd, Some(&bd), Some(&rd), true, &p)
                    .unwrap(),
            )
            .unwrap();
        within_bound(&format!("conv fused {tag}"), &got_f, &want_f, &abs_f, k);
        assert!(got_f.data().contains(&0.0) && got_f.data().iter().any(|&v| v > 0.0));

        let dy = Tensor::randn(&g.y_shape(), 1.0, &mut rng);
        let dyd = be.upload(&dy).unwrap();
        let want = r.conv2d_backward_data(&dy, &w, &xs, &p).unwrap();
        let absref = r
            .conv2d_backward_data(&abs(&dy), &abs(&w), &xs, &p)
            .unwrap();
        let got = be
            .download(&be.conv2d_backward_data(&dyd, &wd, &xs, &p).unwrap())
            .unwrap();
        // One sum over (o, kh, kw) (CUDA, reference); the CPU's GEMM over O then col2im's
        // KH*KW taps is a split of the same sum, within the same bound.
        let kdx = g.o * g.kh * g.kw;
        within_bound(&format!("conv dx {tag}"), &got, &want, &absref, kdx);

        let want = r.conv2d_backward_weight(&dy, &x, &ws, &p).unwrap();
        let absref = r
            .conv2d_backward_weight(&abs(&dy), &abs(&x), &ws, &p)
            .unwrap();
        let got = be
            .download(&be.conv2d_backward_weight(&dyd, &xd, &ws, &p).unwrap())
            .unwrap();
        within_bound(
            &format!("conv dw {tag}"),
            &got,
            &want,
            &absref,
            g.n * g.ho * g.wo,
        );

        let want = r.conv2d_backward_bias(&dy).unwrap();
        let absref = r.conv2d_backward_bias(&abs(&dy)).unwrap();
        let got = be
            .download(&be.conv2d_backward_bias(&dyd).unwrap())
            .unwrap();
        within_bound(
            &format!("conv db {tag}"),
            &got,
            &want,
            &absref,
            g.n * g.ho * g.wo,
        );
    }
}

/// The CUDA forward with K split 1 (one pass) and 3 ways (partial sums + reduce kernel): test
/// shapes are small, so the automatic choice may take either path.
fn cuda_split_k_paths(be: &CudaBackend) {
    let r = ReferenceBackend;
    let mut rng = Rng::new(43);
    for (xs, ws, p) in cases() {
        let g = geometry(&xs, &ws, &p).unwrap();
        let x = Tensor::randn(&xs, 1.0, &mut rng);
        let w = Tensor::randn(&ws, 1.0, &mut rng);
        let b = Tensor::randn(&[ws[0]], 1.0, &mut rng);
        let res = Tensor::randn(&g.y_shape(), 1.0, &mut rng);
        let up = |t: &Tensor| be.upload(t).unwrap();
        let (xd, wd, bd, rd) = (up(&x), up(&w), up(&b), up(&res));
        let want = r
            .conv2d_fused(&x, &w, Some(&b), Some(&res), true, &p)
            .unwrap();
        let absref = r.conv2d(&abs(&x), &abs(&w), Some(&abs(&b)), &p).unwrap();
        let abs_f = r.add(&absref, &abs(&res)).unwrap();
        for splits in [1, 3] {
            let e = Epilogue {
                bias: Some(&bd),
                residual: Some(&rd),
                relu: true,
            };
            let y = super::cuda::forward_split(be.device(), &xd, &wd, &g, e, Some(splits)).unwrap();
            within_bound(
                &format!("conv fused, {splits} K splits, x{xs:?} w{ws:?} {p:?}"),
                &be.download(&y).unwrap(),
                &want,
                &abs_f,
                g.c * g.kh * g.kw + 2,
            );
        }
    }
}

/// The CUDA data and weight gradients with the reduction unsplit and split 3 ways (raw sums +
/// the fixed-order reduce): small test shapes may take either path automatically. The data
/// gradient of stride-1 layers runs the forward kernel, so this also covers its split there.
fn cuda_grad_split_paths(be: &CudaBackend) {
    let r = ReferenceBackend;
    let mut rng = Rng::new(47);
    for (xs, ws, p) in cases() {
        let g = geometry(&xs, &ws, &p).unwrap();
        let x = Tensor::randn(&xs, 1.0, &mut rng);
        let w = Tensor::randn(&ws, 1.0, &mut rng);
        let dy = Tensor::randn(&g.y_shape(), 1.0, &mut rng);
        let up = |t: &Tensor| be.upload(t).unwrap();
        let (xd, wd, dyd) = (up(&x), up(&w), up(&dy));
        let want_dx = r.conv2d_backward_data(&dy, &w, &xs, &p).unwrap();
        let abs_dx = r
            .conv2d_backward_data(&abs(&dy), &abs(&w), &xs, &p)
            .unwrap();
        let want_dw = r.conv2d_backward_weight(&dy, &x, &ws, &p).unwrap();
        let abs_dw = r
            .conv2d_backward_weight(&abs(&dy), &abs(&x), &ws, &p)
            .unwrap();
        for splits in [1, 3] {
            let tag = format!("{splits} splits, x{xs:?} w{ws:?} {p:?}");
            let dx =
                super::cuda::backward_data_split(be.device(), &dyd, &wd, &g, Some(splits)).unwrap();
            let kdx = g.o * g.kh * g.kw;
            within_bound(
                &format!("conv dx {tag}"),
                &be.download(&dx).unwrap(),
                &want_dx,
                &abs_dx,
                kdx,
            );
            let dw = super::cuda::backward_weight_split(be.device(), &dyd, &xd, &g, Some(splits))
                .unwrap();
            let kdw = g.n * g.ho * g.wo;
            within_bound(
                &format!("conv dw {tag}"),
                &be.download(&dw).unwrap(),
                &want_dw,
                &abs_dw,
                kdw,
            );
        }
    }
}

/// (x shape, weight shape, params) for the gradient checks: odd sizes, non-square kernels,
/// stride 2, padding, ResNet's 7x7/s2/p3 stem and 1x1 projections.
fn grad_cases() -> Vec<([usize; 4], [usize; 4], Conv2dParams)> {
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

/// Analytic gradients of the reference in f64 against central differences.
#[test]
fn gradients_by_finite_differences() {
    let mut rng = Rng::new(1);
    for (xs, ws, p) in grad_cases() {
        let g = geometry(&xs, &ws, &p).unwrap();
        let x = randn(&xs, &mut rng);
        let w = randn(&ws, &mut rng);
        let b = randn(&[ws[0]], &mut rng);
        let y = conv::forward(&x, &w, Some(&b), &g).unwrap();
        assert_eq!(y.shape(), g.y_shape());
        let r = randn(y.shape(), &mut rng);
        let tag = format!("conv x{xs:?} w{ws:?} {p:?}");

        let dx = conv::backward_data(&r, &w, &g).unwrap();
        check_grad(&format!("{tag} dx"), &x, &dx, |x| {
            dot(&conv::forward(x, &w, Some(&b), &g).unwrap(), &r)
        });
        let dw = conv::backward_weight(&r, &x, &g).unwrap();
        check_grad(&format!("{tag} dw"), &w, &dw, |w| {
            dot(&conv::forward(&x, w, Some(&b), &g).unwrap(), &r)
        });
        let db = conv::backward_bias(&r).unwrap();
        check_grad(&format!("{tag} db"), &b, &db, |b| {
            dot(&conv::forward(&x, &w, Some(b), &g).unwrap(), &r)
        });
    }
}

crate::backend_suite! {
    every: [hand_cases, shape_errors],
    fast: [matches_reference],
    cuda: [cuda_split_k_paths, cuda_grad_split_paths],
}
