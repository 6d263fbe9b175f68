//! Small hand-computed cases for every forward op (the numbers in comments are worked by hand),
//! plus independent cross-checks (convolution against dense, Adam's known constant-step property).

mod common;

use common::assert_close;
use skinengine::ops::adam::{AdamConfig, reference as adam};
use skinengine::ops::batchnorm::reference as bn;
use skinengine::ops::conv2d::{Conv2dParams, reference as conv};
use skinengine::ops::dense::reference as dense;
use skinengine::ops::elementwise::reference as ew;
use skinengine::ops::loss::{Reduction, reference as loss};
use skinengine::ops::pool::{Pool2dParams, reference as pool};
use skinengine::{Rng, Tensor};

fn t(shape: &[usize], v: &[f64]) -> Tensor<f64> {
    Tensor::new(shape, v.to_vec()).unwrap()
}

/// Exact arithmetic on small integers: only f64 rounding separates got from want.
const EXACT: f64 = 1e-12;

#[test]
fn conv2d_hand_cases() {
    // x = [[1,2,3],[4,5,6],[7,8,9]], w = [[1,2],[3,4]].
    let x = t(&[1, 1, 3, 3], &[1., 2., 3., 4., 5., 6., 7., 8., 9.]);
    let w = t(&[1, 1, 2, 2], &[1., 2., 3., 4.]);
    let b = t(&[1], &[0.5]);
    // Stride 1, no padding: y00 = 1+4+12+20 = 37, y01 = 2+6+15+24 = 47, y10 = 67, y11 = 77.
    let y = conv::forward(&x, &w, Some(&b), &Conv2dParams::square(1, 0)).unwrap();
    assert_eq!(y.shape(), &[1, 1, 2, 2]);
    assert_close("conv s1 p0", &y, &[37.5, 47.5, 67.5, 77.5], EXACT, 0.0);
    // Stride 2, padding 1: windows start at -1 and 1; y00 = x00*w11 = 4,
    // y01 = x01*w10 + x02*w11 = 6 + 12, y10 = x10*w01 + x20*w11 = 8 + 28, y11 = 5+12+24+36.
    let y = conv::forward(&x, &w, None, &Conv2dParams::square(2, 1)).unwrap();
    assert_close("conv s2 p1", &y, &[4., 18., 36., 77.], EXACT, 0.0);
    // Two input channels sum; two output channels are independent.
    let x2 = t(&[1, 2, 1, 1], &[2., 3.]);
    let w2 = t(&[2, 2, 1, 1], &[1., 10., -1., 1.]);
    let y = conv::forward(&x2, &w2, None, &Conv2dParams::square(1, 0)).unwrap();
    assert_close("conv channels", &y, &[32., 1.], EXACT, 0.0);
}

#[test]
fn conv2d_equals_dense_when_kernel_covers_input() {
    // A kernel as large as the input, no padding, is a dense layer on the flattened input:
    // an independent check of the index arithmetic.
    let mut rng = Rng::new(11);
    let x = Tensor::<f64>::randn(&[3, 2, 4, 5], 1.0, &mut rng);
    let w = Tensor::<f64>::randn(&[6, 2, 4, 5], 1.0, &mut rng);
    let b = Tensor::<f64>::randn(&[6], 1.0, &mut rng);
    let y = conv::forward(&x, &w, Some(&b), &Conv2dParams::square(1, 0)).unwrap();
    let yd = dense::forward(
        &x.clone().reshape(&[3, 40]).unwrap(),
        &w.clone().reshape(&[6, 40]).unwrap(),
        Some(&b),
    )
    .unwrap();
    assert_close("conv as dense", &y, yd.data(), 1e-12, 1e-12);
}

#[test]
fn batchnorm_hand_cases() {
    // 1d, one feature, x = 1..4: mean 2.5, biased var 1.25; eps 0 keeps the numbers exact.
    let x = t(&[4, 1], &[1., 2., 3., 4.]);
    let (y, mean, var) = bn::forward_train(&x, &t(&[1], &[2.]), &t(&[1], &[1.]), 0.0).unwrap();
    let s = 1.25f64.sqrt();
    let want: Vec<f64> = [1., 2., 3., 4.]
        .iter()
        .map(|v| 2. * (v - 2.5) / s + 1.)
        .collect();
    assert_close("bn1d train", &y, &want, 1e-12, 0.0);
    assert_close("bn mean", &mean, &[2.5], EXACT, 0.0);
    assert_close("bn var", &var, &[1.25], EXACT, 0.0);
    // Running update, momentum 0.1 from (0, 1): mean 0.25; var 0.9 + 0.1 * 1.25 * 4/3.
    let (mut rm, mut rv) = (t(&[1], &[0.]), t(&[1], &[1.]));
    bn::update_running(&mut rm, &mut rv, &mean, &var, 4, 0.1).unwrap();
    assert_close("running mean", &rm, &[0.25], EXACT, 0.0);
    assert_close(
        "running var",
        &rv,
        &[0.9 + 0.1 * 1.25 * 4. / 3.],
        1e-12,
        0.0,
    );

    // 2d inference: channel 0 (x - 1) / 2 * 0.5 - 1, channel 1 identity.
    let x = t(&[1, 2, 1, 2], &[3., 5., 7., -7.]);
    let y = bn::forward_inference(
        &x,
        &t(&[2], &[0.5, 1.]),
        &t(&[2], &[-1., 0.]),
        &t(&[2], &[1., 0.]),
        &t(&[2], &[4., 1.]),
        0.0,
    )
    .unwrap();
    assert_close("bn2d inference", &y, &[-0.5, 0., 7., -7.], EXACT, 0.0);
    // 2d training: channel statistics are taken over N, H and W together.
    let x = t(&[2, 1, 1, 2], &[1., 3., 5., 7.]); // mean 4, var (9+1+1+9)/4 = 5
    let (y, _, var) = bn::forward_train(&x, &t(&[1], &[1.]), &t(&[1], &[0.]), 0.0).unwrap();
    assert_close("bn2d var", &var, &[5.], EXACT, 0.0);
    let s5 = 5f64.sqrt();
    assert_close(
        "bn2d train",
        &y,
        &[-3. / s5, -1. / s5, 1. / s5, 3. / s5],
        1e-12,
        0.0,
    );
}

#[test]
fn relu_add_hand_cases() {
    let x = t(&[1, 4], &[-1., 0., 2., -0.5]);
    assert_close("relu", &ew::relu(&x), &[0., 0., 2., 0.], 0.0, 0.0);
    let dx = ew::relu_backward(&t(&[1, 4], &[1., 2., 3., 4.]), &x).unwrap();
    assert_close("relu backward", &dx, &[0., 0., 3., 0.], 0.0, 0.0);
    let s = ew::add(&x, &t(&[1, 4], &[1., 1., 1., 1.])).unwrap();
    assert_close("add", &s, &[0., 1., 3., 0.5], EXACT, 0.0);
}

#[test]
fn pool_hand_cases() {
    // 4x4 = 1..16; 3x3 stride 2 padding 1: windows rows/cols {-1..1, 1..3}.
    let x = Tensor::<f64>::from_fn(&[1, 1, 4, 4], |i| (i + 1) as f64);
    let p = Pool2dParams::square(3, 2, 1);
    let y = pool::maxpool2d(&x, &p).unwrap();
    assert_eq!(y.shape(), &[1, 1, 2, 2]);
    assert_close("maxpool", &y, &[6., 8., 14., 16.], 0.0, 0.0);
    // All negative: padding must never win the max; each window keeps its top-left value.
    let neg = Tensor::<f64>::from_fn(&[1, 1, 4, 4], |i| -((i + 1) as f64));
    assert_close(
        "maxpool negative",
        &pool::maxpool2d(&neg, &p).unwrap(),
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
    let dx = pool::maxpool2d_backward(&t(&[1, 1, 1, 2], &[10., 20.]), &x, &p).unwrap();
    assert_close("maxpool backward", &dx, &[0., 30., 0.], 0.0, 0.0);

    let x = t(&[1, 2, 2, 2], &[1., 2., 3., 4., -1., -1., -1., 3.]);
    assert_close(
        "gap",
        &pool::global_avg_pool(&x).unwrap(),
        &[2.5, 0.],
        EXACT,
        0.0,
    );
    let dx = pool::global_avg_pool_backward(&t(&[1, 2], &[4., 8.]), &[1, 2, 2, 2]).unwrap();
    assert_close(
        "gap backward",
        &dx,
        &[1., 1., 1., 1., 2., 2., 2., 2.],
        EXACT,
        0.0,
    );
}

#[test]
fn dense_hand_case() {
    // y = x W^T + b with x = [1, 2], W rows (1,0), (0,1), (1,1), b = (0, 1, 2).
    let y = dense::forward(
        &t(&[1, 2], &[1., 2.]),
        &t(&[3, 2], &[1., 0., 0., 1., 1., 1.]),
        Some(&t(&[3], &[0., 1., 2.])),
    )
    .unwrap();
    assert_close("dense", &y, &[1., 3., 5.], EXACT, 0.0);
}

#[test]
fn softmax_and_cross_entropy_hand_cases() {
    let ln = f64::ln;
    // softmax(0, ln 2, ln 3) = (1, 2, 3) / 6.
    let p = loss::softmax(&t(&[1, 3], &[0., ln(2.), ln(3.)])).unwrap();
    assert_close("softmax", &p, &[1. / 6., 2. / 6., 3. / 6.], 1e-15, 0.0);
    // Huge logits stay finite (max subtraction).
    let p = loss::softmax(&t(&[1, 2], &[1000., 1000.])).unwrap();
    assert_close("softmax stable", &p, &[0.5, 0.5], 1e-15, 0.0);

    // Two samples: CE_0 = ln 2 (logits 0, 0, label 0), CE_1 = ln 4 - ln 3 (logits 0, ln 3, label 1).
    let z = t(&[2, 2], &[0., 0., 0., ln(3.)]);
    let labels = [0, 1];
    let w = [1.0f32, 3.0];
    let (l, g) = loss::weighted_cross_entropy(&z, &labels, &w, Reduction::Normalized).unwrap();
    assert!(
        (l - (ln(2.) + 3. * ln(4. / 3.)) / 4.).abs() < 1e-15,
        "normalized {l}"
    );
    // Gradient rows: w_j / sum w * (p - onehot): (1/4)(-0.5, 0.5), (3/4)(0.25, -0.25).
    assert_close("ce grad", &g, &[-0.125, 0.125, 0.1875, -0.1875], 1e-15, 0.0);
    let (l, g) = loss::weighted_cross_entropy(&z, &labels, &w, Reduction::Seed).unwrap();
    // mean CE * mean w = (ln 2 + ln 4/3) / 2 * 2 = ln 8/3.
    assert!((l - ln(8. / 3.)).abs() < 1e-15, "seed {l}");
    // Factor mean w / N = 1 for both rows.
    assert_close("ce seed grad", &g, &[-0.5, 0.5, 0.25, -0.25], 1e-15, 0.0);
    // Logits so negative that softmax underflows still give a finite, exact loss.
    let (l, _) = loss::weighted_cross_entropy(
        &t(&[1, 2], &[-2000., 0.]),
        &[0],
        &[1., 1.],
        Reduction::Normalized,
    )
    .unwrap();
    assert!((l - 2000.).abs() < 1e-9, "stable ce {l}");
}

#[test]
fn adam_hand_cases() {
    let cfg = AdamConfig {
        lr: 0.1,
        ..AdamConfig::default()
    };
    // With a constant gradient the bias-corrected step is exactly lr * g / (|g| + eps) per step.
    let mut p = t(&[2], &[1., -2.]);
    let (mut m, mut v) = (t(&[2], &[0., 0.]), t(&[2], &[0., 0.]));
    let g = t(&[2], &[0.5, -4.]);
    for step in 1..=3 {
        adam::step(&mut p, &g, &mut m, &mut v, &cfg, step).unwrap();
    }
    assert_close("adam constant grad", &p, &[0.7, -1.7], 1e-7, 0.0);
    // First step by hand: m = 0.05, v = 0.00025 for g = 0.5.
    let mut p = t(&[1], &[1.]);
    let (mut m, mut v) = (t(&[1], &[0.]), t(&[1], &[0.]));
    let wd = AdamConfig {
        weight_decay: 0.1,
        ..cfg
    };
    adam::step(&mut p, &t(&[1], &[0.5]), &mut m, &mut v, &wd, 1).unwrap();
    assert_close("adam m", &m, &[0.05], 1e-15, 0.0);
    assert_close("adam v", &v, &[0.00025], 1e-15, 0.0);
    // Decoupled decay first: 1 - 0.1*0.1*1 = 0.99, then the Adam step of 0.1.
    assert_close("adamw", &p, &[0.89], 1e-7, 0.0);
}
