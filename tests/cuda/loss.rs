//! Softmax and weighted cross-entropy against the reference (f64), with per-element bounds
//! derived from the kernel's f32 operations (see `row_bounds`), not a blanket tolerance.

use skinengine::backend::Backend;
use skinengine::backend::cuda::CudaBackend;
use skinengine::ops::loss::Reduction;
use skinengine::{ReferenceBackend, Rng, Tensor};

use crate::common::U;

pub fn all(be: &CudaBackend) {
    softmax(be);
    cross_entropy(be);
    errors(be);
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

fn softmax(be: &CudaBackend) {
    let r = ReferenceBackend;
    let mut rng = Rng::new(53);
    // (rows, classes, logit scale, special row 0)
    let cases: &[(usize, usize, f64, Option<&[f32]>)] = &[
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
                    "softmax [{n}, {k}] row {j} class {c}: got {g:e}, reference {w:e}, \
                     |diff| {err:e} > bound {tol:e}"
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
    eprintln!("softmax: max |err| = {worst:.2} u * p, {worst_ratio:.3} of its bound");
}

fn cross_entropy(be: &CudaBackend) {
    let r = ReferenceBackend;
    let mut rng = Rng::new(59);
    // (rows, classes, logit scale, special row 0)
    let cases: &[(usize, usize, f64, Option<&[f32]>)] = &[
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
            let what = format!("cross_entropy [{n}, {k}] {red:?}");
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
        "cross_entropy: max |err| loss {worst_loss:.2} u * L, grad {worst_grad:.3} of its bound"
    );
}

/// Every bad shape, label or weight is the reference's error, word for word.
fn errors(be: &CudaBackend) {
    let r = ReferenceBackend;
    let z = Tensor::full(&[3, 4], 0.5);
    let zd = be.upload(&z).unwrap();
    let w4 = [1.0f32, 2.0, 0.5, 1.0];
    let cases: Vec<(&str, Tensor, Vec<usize>, Vec<f32>)> = vec![
        (
            "3-d logits",
            Tensor::full(&[3, 4, 1], 0.5),
            vec![0, 1, 2],
            w4.to_vec(),
        ),
        (
            "empty logits",
            Tensor::full(&[0, 4], 0.5),
            vec![],
            w4.to_vec(),
        ),
        ("label count", z.clone(), vec![0, 1], w4.to_vec()),
        ("label out of range", z.clone(), vec![0, 4, 1], w4.to_vec()),
        ("class weight count", z.clone(), vec![0, 1, 2], vec![1.0; 7]),
        (
            "negative weight",
            z.clone(),
            vec![0, 1, 2],
            vec![1.0, -1.0, 1.0, 1.0],
        ),
        (
            "NaN weight",
            z.clone(),
            vec![0, 1, 2],
            vec![1.0, 1.0, f32::NAN, 1.0],
        ),
        (
            "all weights 0",
            z.clone(),
            vec![0, 0, 2],
            vec![0.0, 1.0, 0.0, 1.0],
        ),
    ];
    for (what, z, labels, weights) in cases {
        let zd = be.upload(&z).unwrap();
        for red in [Reduction::Normalized, Reduction::Seed] {
            let got = be
                .weighted_cross_entropy(&zd, &labels, &weights, red)
                .unwrap_err();
            let want = r
                .weighted_cross_entropy(&z, &labels, &weights, red)
                .unwrap_err();
            assert_eq!(got.to_string(), want.to_string(), "{what}");
        }
    }
    let z1 = Tensor::full(&[12], 0.5);
    assert_eq!(
        be.softmax(&be.upload(&z1).unwrap())
            .unwrap_err()
            .to_string(),
        r.softmax(&z1).unwrap_err().to_string()
    );
    // A valid call on the same device still works after the failures.
    assert!(
        be.weighted_cross_entropy(&zd, &[0, 1, 2], &w4, Reduction::Normalized)
            .is_ok()
    );
}
