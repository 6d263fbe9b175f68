//! Softmax and class-weighted cross-entropy on every backend: hand-worked answers (in f32 on
//! every backend, and in f64 on the reference functions), errors, agreement with the reference
//! on every element, and gradients by finite differences in f64.
//!
//! The reference computes in f64 and rounds to f32 once. The agreement bounds are per element,
//! derived from the CUDA kernels' f32 operations ([`row_bounds`]), not a blanket tolerance; the
//! `cpu` backend runs the reference's own code, so it meets them with zero error.

use super::{Reduction, reference as loss};
use crate::ops::prelude::*;
use crate::testing::{U, assert_close, check_grad, fails};
use crate::{ReferenceBackend, Rng, Tensor};

fn t<T: crate::Real>(shape: &[usize], v: &[f64]) -> Tensor<T> {
    Tensor::from_fn(shape, |i| T::from_f64(v[i]))
}

/// The hand cases of [`hand_cases`] in f64 on the reference functions, to f64 tolerances.
#[test]
fn hand_cases_f64() {
    let ln = f64::ln;
    // softmax(0, ln 2, ln 3) = (1, 2, 3) / 6.
    let p = loss::softmax(&t::<f64>(&[1, 3], &[0., ln(2.), ln(3.)])).unwrap();
    assert_close("softmax", &p, &[1. / 6., 2. / 6., 3. / 6.], 1e-15, 0.0);
    // Huge logits stay finite (max subtraction).
    let p = loss::softmax(&t::<f64>(&[1, 2], &[1000., 1000.])).unwrap();
    assert_close("softmax stable", &p, &[0.5, 0.5], 1e-15, 0.0);
    // Two samples: CE_0 = ln 2 (logits 0, 0, label 0), CE_1 = ln 4 - ln 3 (logits 0, ln 3, label 1).
    let z = t::<f64>(&[2, 2], &[0., 0., 0., ln(3.)]);
    let (labels, w) = ([0, 1], [1.0f32, 3.0]);
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
    let z = t::<f64>(&[1, 2], &[-2000., 0.]);
    let (l, _) = loss::weighted_cross_entropy(&z, &[0], &[1., 1.], Reduction::Normalized).unwrap();
    assert!((l - 2000.).abs() < 1e-9, "stable ce {l}");
}

/// The f64 hand cases in f32 through the entry points. Every value here is below 1 in
/// magnitude and [`row_bounds`] gives rel(p) <= 12.7u for these rows (|d| <= ln 3, sigma <= 6.6),
/// a cross-entropy error <= (3 ce + sigma) u <= 8.7u, and a gradient error <= 13u |f p| + 4u
/// |grad|; the rounding of ln 2 and ln 3 to f32 moves p and CE by under 1u, the results' own
/// rounding by 1u more: 16u (absolute, or relative for softmax) is allowed. The huge rows are
/// exact on every backend (exp(0) = 1, 1/2; CE = (0 - (-2000)) + log(1) = 2000), so they keep
/// the f64 tolerances.
fn hand_cases<B: Backend>(b: &B) {
    let ln = f64::ln;
    let up = |s: &[usize], v: &[f64]| b.upload(&t(s, v)).unwrap();
    let down = |x: &B::Tensor| b.download(x).unwrap();
    let p = down(&b.softmax(&up(&[1, 3], &[0., ln(2.), ln(3.)])).unwrap());
    assert_close("softmax", &p, &[1. / 6., 2. / 6., 3. / 6.], 0.0, 16.0 * U);
    let p = down(&b.softmax(&up(&[1, 2], &[1000., 1000.])).unwrap());
    assert_close("softmax stable", &p, &[0.5, 0.5], 1e-15, 0.0);
    let z = up(&[2, 2], &[0., 0., 0., ln(3.)]);
    let (labels, w) = ([0, 1], [1.0f32, 3.0]);
    let (l, g) = b
        .weighted_cross_entropy(&z, &labels, &w, Reduction::Normalized)
        .unwrap();
    let want = (ln(2.) + 3. * ln(4. / 3.)) / 4.;
    assert!((l - want).abs() <= 16.0 * U, "normalized {l} vs {want}");
    assert_close(
        "ce grad",
        &down(&g),
        &[-0.125, 0.125, 0.1875, -0.1875],
        16.0 * U,
        0.0,
    );
    let (l, g) = b
        .weighted_cross_entropy(&z, &labels, &w, Reduction::Seed)
        .unwrap();
    assert!((l - ln(8. / 3.)).abs() <= 16.0 * U, "seed {l}");
    assert_close(
        "ce seed grad",
        &down(&g),
        &[-0.5, 0.5, 0.25, -0.25],
        16.0 * U,
        0.0,
    );
    let z = up(&[1, 2], &[-2000., 0.]);
    let (l, _) = b
        .weighted_cross_entropy(&z, &[0], &[1., 1.], Reduction::Normalized)
        .unwrap();
    assert!((l - 2000.).abs() < 1e-9, "stable ce {l}");
}

fn shape_errors<B: Backend>(b: &B) {
    let z = |s: &[usize]| b.upload(&Tensor::full(s, 0.5)).unwrap();
    let (w7, norm, seed) = ([1.0f32; 7], Reduction::Normalized, Reduction::Seed);
    let ce = |z: &B::Tensor, labels: &[usize], w: &[f32], red| {
        b.weighted_cross_entropy(z, labels, w, red)
    };
    fails(
        ce(&z(&[2, 7]), &[0, 7], &w7, norm),
        &["cross_entropy", "label 7"],
    );
    fails(
        ce(&z(&[2, 7]), &[0], &w7, norm),
        &["cross_entropy", "[2, 7]", "2 labels"],
    );
    fails(
        ce(&z(&[2, 7]), &[0, 1], &[1.0; 6], seed),
        &["cross_entropy", "7 classes", "6 class weights"],
    );
    fails(
        ce(&z(&[2, 2]), &[0, 1], &[1.0, f32::NAN], seed),
        &["class weight 1"],
    );
    fails(ce(&z(&[2, 2]), &[0, 0], &[0.0, 1.0], norm), &["weight 0"]);
    fails(b.softmax(&z(&[7])), &["softmax", "[7]"]);
}

/// Slack for results in f32's subnormal range, where relative bounds fail: expf is within
/// 2 ulp there too, and the division by s >= 1 and the reference's rounding add half an ulp
/// each, so 3 subnormal ulps (2^-149 each) cover the absolute error; 4 are allowed.
const TINY: f64 = 4.0 * 1.401_298_464_324_817e-45;

/// Exact (f64) softmax quantities of one row and the kernel's error terms, in units of u:
/// the kernel computes d_i = fl(z_i - m) (relative error u, which exp turns into |d_i| u),
/// e_i = expf(d_i) (CUDA's expf is within 2 ulp <= 4u), s = sequential sum of K terms
/// ((K - 1) u), then p_c = e_c / s (u).
///   rel(e_c) = |d_c| + 4,  rel(s) = sigma = sum_i p_i rel(e_i) + (K - 1),
///   rel(p_c) = rel(e_c) + sigma + 1.
struct Row {
    /// Exact softmax.
    p: Vec<f64>,
    /// rel(p_c) in units of u, before the reference's own rounding to f32.
    rel_p: Vec<f64>,
    /// rel(s) in units of u.
    sigma: f64,
    /// Exact cross-entropy of the label (if any).
    ce: f64,
}

fn row_bounds(z: &[f32], label: usize) -> Row {
    let z: Vec<f64> = z.iter().map(|&v| v as f64).collect();
    let k = z.len();
    let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let d: Vec<f64> = z.iter().map(|&v| m - v).collect();
    let e: Vec<f64> = d.iter().map(|&v| (-v).exp()).collect();
    let s: f64 = e.iter().sum();
    let p: Vec<f64> = e.iter().map(|&v| v / s).collect();
    let sigma = p
        .iter()
        .zip(&d)
        .map(|(pi, di)| pi * (di + 4.0))
        .sum::<f64>()
        + (k - 1) as f64;
    let rel_p = d.iter().map(|di| di + 4.0 + sigma + 1.0).collect();
    Row {
        p,
        rel_p,
        sigma,
        ce: d[label] + s.ln(),
    }
}

/// Standard-normal logits times `scale`, with row 0 replaced by `special` when given.
fn logits(n: usize, k: usize, scale: f64, special: Option<&[f32]>, rng: &mut Rng) -> Tensor {
    let mut z = Tensor::randn(&[n, k], scale, rng);
    if let Some(row) = special {
        z.data_mut()[..k].copy_from_slice(&row[..k]);
    }
    z
}

/// Rows with huge logits: without the max-subtraction exp(1000) overflows to inf (NaN out).
const HUGE: [f32; 7] = [1000.0, 999.0, 0.0, -1000.0, 1000.0, 998.5, 1e-3];
const HUGE_NEG: [f32; 7] = [-1000.0, -1001.0, -1000.5, -3000.0, -999.0, -1000.0, -1002.0];

/// (rows, classes, logit scale, special row 0)
type Case = (usize, usize, f64, Option<&'static [f32]>);

fn softmax_matches_reference<B: Backend>(be: &B) {
    let r = ReferenceBackend;
    let mut rng = Rng::new(53);
    let cases: &[Case] = &[
        (1, 7, 3.0, Some(&HUGE)),
        (5, 7, 3.0, Some(&HUGE_NEG)),
        (64, 7, 1.0, None),
        // More rows than one block of the grid-stride launch (256).
        (300, 7, 3.0, Some(&HUGE)),
        (3, 1, 1.0, None),
        (4, 50, 5.0, None),
        (2, 1000, 2.0, None),
    ];
    let (mut worst, mut worst_ratio): (f64, f64) = (0.0, 0.0);
    for &(n, k, scale, special) in cases {
        let z = logits(n, k, scale, special, &mut rng);
        let got = be
            .download(&be.softmax(&be.upload(&z).unwrap()).unwrap())
            .unwrap();
        let want = r.softmax(&z).unwrap();
        assert_eq!(got.shape(), want.shape());
        for j in 0..n {
            let row = row_bounds(&z.data()[j * k..(j + 1) * k], 0);
            for c in 0..k {
                let i = j * k + c;
                let (g, w) = (got.data()[i] as f64, want.data()[i] as f64);
                assert!(g.is_finite(), "softmax [{n}, {k}] ({j}, {c}) is {g}");
                // rel(p_c) + 1 for the reference's own rounding to f32; 1.01 covers second
                // order terms.
                let tol = 1.01 * (row.rel_p[c] + 1.0) * U * row.p[c] + TINY;
                let err = (g - w).abs();
                assert!(
                    err <= tol,
                    "{} softmax [{n}, {k}] row {j} class {c}: got {g:e}, reference {w:e}, \
                     |diff| {err:e} > bound {tol:e}",
                    be.name()
                );
                worst_ratio = worst_ratio.max(err / tol);
                if row.p[c] > 1e-30 {
                    worst = worst.max(err / (U * row.p[c]));
                }
            }
        }
        // The huge rows: the two 1000s share almost all the mass, exactly as in f64.
        if special == Some(&HUGE[..]) {
            assert!((got.data()[0] - got.data()[4]).abs() == 0.0 && got.data()[0] > 0.3);
        }
    }
    eprintln!(
        "{}: softmax max |err| = {worst:.2} u * p, {worst_ratio:.3} of its bound",
        be.name()
    );
}

fn cross_entropy_matches_reference<B: Backend>(be: &B) {
    let r = ReferenceBackend;
    let mut rng = Rng::new(59);
    let cases: &[Case] = &[
        (1, 7, 2.0, None),
        (5, 7, 3.0, Some(&HUGE)),
        (64, 7, 2.0, None),
        // More rows than the block's 256 threads: several rows per thread, and two partial warps.
        (1000, 7, 3.0, Some(&HUGE_NEG)),
        (4, 1, 1.0, None),
        (6, 50, 4.0, None),
    ];
    let (mut worst_loss, mut worst_grad): (f64, f64) = (0.0, 0.0);
    for &(n, k, scale, special) in cases {
        let z = logits(n, k, scale, special, &mut rng);
        let mut labels: Vec<usize> = (0..n).map(|_| rng.below(k)).collect();
        if special.is_some() {
            // The label on the smallest logit: CE of about 2000 (huge) or 3 (huge negative).
            labels[0] = 3;
        }
        // Positive weights with one class weighted 0 (its samples drop out of the normalised
        // loss), unless that would leave every sample at weight 0.
        let mut weights: Vec<f32> = (0..k).map(|_| rng.uniform(0.2, 3.0) as f32).collect();
        if k > 1 {
            weights[k - 1] = 0.0;
            if labels.iter().all(|&y| y == k - 1) {
                weights[k - 1] = 1.0;
            }
        }
        let zd = be.upload(&z).unwrap();
        let rows: Vec<Row> = (0..n)
            .map(|j| row_bounds(&z.data()[j * k..(j + 1) * k], labels[j]))
            .collect();
        for red in [Reduction::Normalized, Reduction::Seed] {
            let what = format!("{} cross_entropy [{n}, {k}] {red:?}", be.name());
            let (loss, grad) = be
                .weighted_cross_entropy(&zd, &labels, &weights, red)
                .unwrap();
            let grad = be.download(&grad).unwrap();
            let (want_loss, want_grad) = r
                .weighted_cross_entropy(&z, &labels, &weights, red)
                .unwrap();
            let w = |j: usize| weights[labels[j]] as f64;
            let sum_w: f64 = (0..n).map(w).sum();
            // Per row, ce = fl(fl(m - z_y) + logf(s)): u d_y, then log of s(1 + sigma) is
            // log s + sigma, logf within 1 ulp (2u |log s|), the add u ce; with d_y, log s <= ce
            // that is |err ce_j| <= 3u ce_j + sigma_j u. The batch sums run in double
            // ((n + 4) 2^-53 relative) and L is rounded to f32 once (u L).
            let err_ce = |j: usize| (3.0 * rows[j].ce + rows[j].sigma) * U;
            let (err_sum, factor): (f64, Box<dyn Fn(usize) -> f64>) = match red {
                Reduction::Normalized => (
                    (0..n).map(|j| w(j) * err_ce(j)).sum::<f64>() / sum_w,
                    Box::new(|j| w(j) / sum_w),
                ),
                Reduction::Seed => {
                    let mean_w = sum_w / n as f64;
                    (
                        (0..n).map(err_ce).sum::<f64>() / n as f64 * mean_w,
                        Box::new(move |_| mean_w / n as f64),
                    )
                }
            };
            let tol = 1.01 * (err_sum + U * want_loss.abs())
                + (n + 4) as f64 * f64::EPSILON * want_loss.abs();
            let err = (loss - want_loss).abs();
            assert!(
                err <= tol,
                "{what}: loss {loss} vs reference {want_loss}, |diff| {err:e} > bound {tol:e}"
            );
            worst_loss = worst_loss.max(err / (U * want_loss.abs()));
            // grad = f (p - onehot): f rounded from double (u), p with rel_p, the subtraction
            // and the product (u each) and the reference's rounding (u):
            // |err| <= f p rel_p u + 4u |grad|.
            assert_eq!(grad.shape(), want_grad.shape(), "{what}: grad shape");
            for (j, row) in rows.iter().enumerate() {
                for c in 0..k {
                    let i = j * k + c;
                    let (g, wg) = (grad.data()[i] as f64, want_grad.data()[i] as f64);
                    let exact = factor(j) * row.p[c];
                    let tol = 1.01 * (exact * row.rel_p[c] * U + 4.0 * U * wg.abs()) + TINY;
                    let err = (g - wg).abs();
                    assert!(
                        err <= tol,
                        "{what}: grad row {j} class {c}: got {g:e}, reference {wg:e}, \
                         |diff| {err:e} > bound {tol:e}"
                    );
                    worst_grad = worst_grad.max(err / tol);
                }
            }
        }
    }
    eprintln!(
        "{}: cross_entropy max |err| loss {worst_loss:.2} u * L, grad {worst_grad:.3} of its bound",
        be.name()
    );
}

/// Every bad shape, label or weight is the reference's error, word for word (it holds by
/// construction, all backends sharing the entry points of [`LossOps`]; kept as a guard), with
/// the fragments a user needs.
fn errors_equal_the_reference<B: Backend>(be: &B) {
    let r = ReferenceBackend;
    let z = Tensor::full(&[3, 4], 0.5);
    let zd = be.upload(&z).unwrap();
    let w4 = vec![1.0f32, 2.0, 0.5, 1.0];
    let l3 = vec![0, 1, 2];
    type ErrCase<'a> = (&'a str, Tensor, Vec<usize>, Vec<f32>, &'a [&'a str]);
    let cases: Vec<ErrCase> = vec![
        (
            "3-d logits",
            Tensor::full(&[3, 4, 1], 0.5),
            l3.clone(),
            w4.clone(),
            &["cross_entropy", "[3, 4, 1]"],
        ),
        (
            "empty logits",
            Tensor::full(&[0, 4], 0.5),
            vec![],
            w4.clone(),
            &["cross_entropy", "[0, 4]", "empty"],
        ),
        (
            "label count",
            z.clone(),
            vec![0, 1],
            w4.clone(),
            &["cross_entropy", "[3, 4]", "3 labels", "got 2"],
        ),
        (
            "label out of range",
            z.clone(),
            vec![0, 4, 1],
            w4.clone(),
            &["cross_entropy", "label 4", "sample 1"],
        ),
        (
            "class weight count",
            z.clone(),
            l3.clone(),
            vec![1.0; 7],
            &["cross_entropy", "4 classes", "7 class weights"],
        ),
        (
            "negative weight",
            z.clone(),
            l3.clone(),
            vec![1.0, -1.0, 1.0, 1.0],
            &["cross_entropy", "class weight 1 is -1"],
        ),
        (
            "NaN weight",
            z.clone(),
            l3.clone(),
            vec![1.0, 1.0, f32::NAN, 1.0],
            &["cross_entropy", "class weight 2 is NaN"],
        ),
        (
            "all weights 0",
            z.clone(),
            vec![0, 0, 2],
            vec![0.0, 1.0, 0.0, 1.0],
            &["cross_entropy", "class weight 0"],
        ),
    ];
    for (what, z, labels, weights, fragments) in cases {
        let zd = be.upload(&z).unwrap();
        for red in [Reduction::Normalized, Reduction::Seed] {
            let got = be
                .weighted_cross_entropy(&zd, &labels, &weights, red)
                .unwrap_err();
            let want = r
                .weighted_cross_entropy(&z, &labels, &weights, red)
                .unwrap_err();
            assert_eq!(got.to_string(), want.to_string(), "{what}");
            fails::<()>(Err(got), fragments);
        }
    }
    let z1 = Tensor::full(&[12], 0.5);
    let got = be.softmax(&be.upload(&z1).unwrap()).unwrap_err();
    assert_eq!(got.to_string(), r.softmax(&z1).unwrap_err().to_string());
    fails::<()>(Err(got), &["softmax", "[12]"]);
    // A valid call on the same device still works after the failures.
    assert!(
        be.weighted_cross_entropy(&zd, &[0, 1, 2], &w4, Reduction::Normalized)
            .is_ok()
    );
}

/// Analytic gradients of the reference in f64 against central differences.
#[test]
fn weighted_cross_entropy_gradients_by_finite_differences() {
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

crate::backend_suite! {
    every: [hand_cases, shape_errors],
    fast: [softmax_matches_reference, cross_entropy_matches_reference, errors_equal_the_reference],
    cuda: [],
}
