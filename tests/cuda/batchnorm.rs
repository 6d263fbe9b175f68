//! Batch norm (2d on [N, C, H, W], 1d on [N, C]) against the reference, every output element.
//!
//! Tolerances are first-order worst-case error bounds for the kernels' f32 arithmetic (unit
//! roundoff u = 2^-24), each taken 1% wider for second-order terms. The reference works in f64
//! and rounds its result to f32 once, so each bound also carries that rounding (u |want|). A sum
//! errs by at most D u sum|terms| (Higham), where D is the most additions any one term goes
//! through: D = ceil(K/256) + 8 for the kernels' 256 sequential per-thread partials and 8-level
//! tree over a channel's K values, and never more than K - 1 ([`Layout::depth`]).
//!
//! - mean (corrected two-pass: mu0 = sum(x)/K, d = x - mu0, mean = mu0 + sum(d)/K): the final
//!   add and the reference each round once (2u|mean|), and sum(d) errs by (D + 1) u sum|d|, where
//!   |d| <= |x - mean| + |mu0 - mean| and |mu0 - mean| <= delta = D u mean|x| + u|mean|. So the
//!   error scales with the spread of x, not its offset (mean 100, std 1 below).
//! - var = (sum(d^2) - sum(d)^2/K)/K: d^2 has 3 roundings, the sum D more, the division and the
//!   reference one each: (D + 4) u mean(d^2), and mean(d^2) <= var + delta^2, plus 2 delta
//!   sqrt(var) for the error of the correction term. A one-pass E[x^2] - E[x]^2 would err by
//!   about u mean(x^2) = 1e4 u at offset 100, far outside this.
//! - y = gamma (x - mean) / sigma + beta, sigma = sqrt(var + eps): a mean error moves y by
//!   |gamma|/sigma times it, a var error by |t| dvar / (2 (var + eps)) with t = y - beta; the
//!   element's own arithmetic (x - mean, the scale, eps in f32) adds 3u |t|, the last add and the
//!   reference 2u |y|. In inference mode mean and var are given: 3u|t| + 2u|y|.
//! - dbeta = sum(dy): D u sum|dy|. dgamma = sum(dy xhat): xhat = (x - mean) inv has 3.5
//!   roundings and the product one more, so (D + 4) u sum|dy xhat|.
//! - training dx = a (dy - mdy - (x - mean) k), a = gamma/sigma, mdy = sum(dy)/K,
//!   k = sum(dy xhat)/(K sigma): the errors of mdy and of sum(dy xhat) enter through the sums'
//!   own bounds above, the rest is a few roundings of each term (|dy|, |mdy|, |xhat mdyx|, |e|).
//! - frozen dx = (gamma/sigma) dy: 3u |gamma dy / sigma|.
//! - running update: double arithmetic on the exact f64 momentum, rounded once, is bit-identical
//!   to the reference under emulation; the bound 2u |want| (plus 2^-46 of the absolute terms)
//!   leaves room for a GPU's fused multiply-adds in double to break an exact f32 tie (common
//!   with momentum 0.1) the other way.
//!
//! Fused multiply-adds (the GPU contracts a*b + c) only remove roundings, so every bound holds
//! for the GPU as for the emulator.

use std::collections::BTreeMap;

use skinengine::backend::cuda::CudaBackend;
use skinengine::backend::{Backend, BnBatchStats, BnParams};
use skinengine::cuda::CudaTensor;
use skinengine::ops::batchnorm::{DEFAULT_EPS, DEFAULT_MOMENTUM};
use skinengine::{ReferenceBackend, Rng, Tensor};

use crate::common::U;

/// Worst |got - want| / bound seen per quantity, printed at the end (run with --nocapture).
/// Kept apart for channels of at most and of more than 256 values (one value per thread or
/// several before the tree).
#[derive(Default)]
struct Worst {
    seen: BTreeMap<String, (f64, String)>,
    many: bool,
}

impl Worst {
    fn check(&mut self, what: &str, got: &Tensor, want: &Tensor, tol: &[f64]) {
        assert_eq!(got.shape(), want.shape(), "{what}: shape");
        assert_eq!(tol.len(), want.len(), "{what}: bounds");
        let class = if self.many { "K > 256" } else { "K <= 256" };
        let quantity = format!("{} ({class})", what.split(' ').next().unwrap());
        let worst = self.seen.entry(quantity).or_insert((0.0, String::new()));
        for (i, ((&g, &w), &t)) in got.data().iter().zip(want.data()).zip(tol).enumerate() {
            let diff = (g as f64 - w as f64).abs();
            assert!(
                diff <= t,
                "{what}: element {i}: got {g} vs reference {w}, |diff| {diff:e} > bound {t:e}"
            );
            if diff / t > worst.0 {
                *worst = (
                    diff / t,
                    format!("{what} [{i}]: |diff| {diff:.2e}, bound {t:.2e}"),
                );
            }
        }
    }
}

/// Per-channel view of a tensor laid out [n, c, s].
#[derive(Clone, Copy)]
struct Layout {
    c: usize,
    s: usize,
    k: usize,
}

impl Layout {
    fn of(shape: &[usize]) -> Layout {
        let (n, c) = (shape[0], shape[1]);
        let s: usize = shape[2..].iter().product();
        Layout { c, s, k: n * s }
    }
    /// The most roundings any one value meets in the kernels' sum of a channel's K values:
    /// 256 threads each add ceil(K/256) values in sequence (ceil(K/256) - 1 additions), then a
    /// tree of 8 levels (5 shuffle levels within a warp, 3 over the 8 warp sums), and never more
    /// than any order of summing K values can give (K - 1). Higham's bound for a sum, with this
    /// depth in place of K, is what the bounds below use: |error| <= depth u sum|terms|.
    fn depth(&self) -> usize {
        const THREADS: usize = 256; // the block size of the batch-norm kernels
        (self.k.div_ceil(THREADS) + 8).min(self.k)
    }
    fn channel(&self, i: usize) -> usize {
        (i / self.s) % self.c
    }
    /// Per-channel mean of f(i) over the channel's values.
    fn mean_of(&self, len: usize, f: impl Fn(usize) -> f64) -> Vec<f64> {
        let mut acc = vec![0.0; self.c];
        for i in 0..len {
            acc[self.channel(i)] += f(i);
        }
        acc.iter().map(|a| a / self.k as f64).collect()
    }
}

fn f64s(t: &Tensor) -> Vec<f64> {
    t.data().iter().map(|&v| v as f64).collect()
}

fn up(be: &CudaBackend, t: &Tensor) -> CudaTensor {
    be.upload(t).unwrap()
}

fn down(be: &CudaBackend, t: &CudaTensor) -> Tensor {
    be.download(t).unwrap()
}

fn upload_bn(be: &CudaBackend, bn: &BnParams<Tensor>) -> BnParams<CudaTensor> {
    BnParams {
        gamma: up(be, &bn.gamma),
        beta: up(be, &bn.beta),
        running_mean: up(be, &bn.running_mean),
        running_var: up(be, &bn.running_var),
        eps: bn.eps,
    }
}

fn params(c: usize, offset: f64, rng: &mut Rng) -> BnParams<Tensor> {
    BnParams {
        gamma: Tensor::randn(&[c], 1.0, rng),
        beta: Tensor::randn(&[c], 1.0, rng),
        running_mean: Tensor::from_fn(&[c], |_| (offset + rng.normal()) as f32),
        running_var: Tensor::uniform(&[c], 0.5, 2.0, rng),
        eps: DEFAULT_EPS,
    }
}

/// Bounds on y for given per-channel (mean, var) and extra per-channel errors in them.
fn y_bounds(
    lay: Layout,
    x: &Tensor,
    y: &Tensor,
    bn: &BnParams<Tensor>,
    (mean, var): (&[f64], &[f64]),
    (dmean, dvar): (&[f64], &[f64]),
) -> Vec<f64> {
    let gamma = f64s(&bn.gamma);
    (0..x.len())
        .map(|i| {
            let ci = lay.channel(i);
            let ve = var[ci] + bn.eps;
            let a = gamma[ci].abs() / ve.sqrt();
            let t = (x.data()[i] as f64 - mean[ci]) * a;
            1.01 * (a * dmean[ci] + t.abs() * (dvar[ci] / (2.0 * ve) + 3.0 * U))
                + 2.0 * U * (y.data()[i] as f64).abs()
        })
        .collect()
}

fn forward(be: &CudaBackend, w: &mut Worst, x: &Tensor, bn: &BnParams<Tensor>, tag: &str) {
    let r = ReferenceBackend;
    let lay = Layout::of(x.shape());
    let (xd, bnd) = (up(be, x), upload_bn(be, bn));
    let zeros = vec![0.0; lay.c];

    // Inference: running statistics are given, so only the element's own roundings count.
    let want = r.batchnorm_inference(x, bn).unwrap();
    let got = down(be, &be.batchnorm_inference(&xd, &bnd).unwrap());
    let (rm, rv) = (f64s(&bn.running_mean), f64s(&bn.running_var));
    let tol = y_bounds(lay, x, &want, bn, (&rm, &rv), (&zeros, &zeros));
    w.check(&format!("y_inference {tag}"), &got, &want, &tol);

    // Training: batch statistics, then y through them.
    let (want_y, want_s) = r.batchnorm_train(x, bn).unwrap();
    let (got_y, got_s) = be.batchnorm_train(&xd, &bnd).unwrap();
    assert_eq!(got_s.count, want_s.count, "count {tag}");
    let (mean, var) = (f64s(&want_s.mean), f64s(&want_s.var));
    let ks = lay.depth() as f64;
    let mean_abs_x = lay.mean_of(x.len(), |i| (x.data()[i] as f64).abs());
    let mean_abs_dev = lay.mean_of(x.len(), |i| {
        (x.data()[i] as f64 - mean[lay.channel(i)]).abs()
    });
    let delta: Vec<f64> = (0..lay.c)
        .map(|ci| 1.01 * ks * U * mean_abs_x[ci] + U * mean[ci].abs())
        .collect();
    let tol_mean: Vec<f64> = (0..lay.c)
        .map(|ci| 2.0 * U * mean[ci].abs() + 1.01 * (ks + 1.0) * U * (mean_abs_dev[ci] + delta[ci]))
        .collect();
    let tol_var: Vec<f64> = (0..lay.c)
        .map(|ci| {
            let (v, d) = (var[ci], delta[ci]);
            1.01 * (ks + 4.0) * U * (v + 2.0 * d * v.sqrt() + 3.0 * d * d) + U * v
        })
        .collect();
    w.check(
        &format!("mean {tag}"),
        &down(be, &got_s.mean),
        &want_s.mean,
        &tol_mean,
    );
    w.check(
        &format!("var {tag}"),
        &down(be, &got_s.var),
        &want_s.var,
        &tol_var,
    );
    let tol = y_bounds(lay, x, &want_y, bn, (&mean, &var), (&tol_mean, &tol_var));
    w.check(&format!("y_train {tag}"), &down(be, &got_y), &want_y, &tol);
}

/// Bounds on (dx, dgamma, dbeta) given the statistics both sides use.
fn backward_bounds(
    lay: Layout,
    x: &Tensor,
    dy: &Tensor,
    bn: &BnParams<Tensor>,
    (mean, var): (&Tensor, &Tensor),
    train: bool,
    want: (&Tensor, &Tensor, &Tensor),
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (mean, var, gamma) = (f64s(mean), f64s(var), f64s(&bn.gamma));
    let (k, ks) = (lay.k as f64, lay.depth() as f64);
    let inv: Vec<f64> = var.iter().map(|v| 1.0 / (v + bn.eps).sqrt()).collect();
    let xh = |i: usize| {
        let ci = lay.channel(i);
        (x.data()[i] as f64 - mean[ci]) * inv[ci]
    };
    let dyv = |i: usize| dy.data()[i] as f64;
    let mdy = lay.mean_of(x.len(), dyv);
    let mdyx = lay.mean_of(x.len(), |i| dyv(i) * xh(i));
    let mabs_dy = lay.mean_of(x.len(), |i| dyv(i).abs());
    let mabs_dyx = lay.mean_of(x.len(), |i| (dyv(i) * xh(i)).abs());
    let (want_dx, want_dg, want_db) = want;
    let tol_db = (0..lay.c)
        .map(|ci| 1.01 * ks * U * k * mabs_dy[ci] + U * (want_db.data()[ci] as f64).abs())
        .collect();
    let tol_dg = (0..lay.c)
        .map(|ci| 1.01 * (ks + 4.0) * U * k * mabs_dyx[ci] + U * (want_dg.data()[ci] as f64).abs())
        .collect();
    let tol_dx = (0..x.len())
        .map(|i| {
            let ci = lay.channel(i);
            let a = (gamma[ci] * inv[ci]).abs();
            let own = U * (want_dx.data()[i] as f64).abs();
            if !train {
                return 1.01 * 3.0 * U * a * dyv(i).abs() + own;
            }
            let e = dyv(i) - mdy[ci] - xh(i) * mdyx[ci];
            1.01 * a
                * ((ks + 1.0) * U * mabs_dy[ci]
                    + 2.0 * U * (dyv(i).abs() + mdy[ci].abs())
                    + xh(i).abs() * ((ks + 5.0) * U * mabs_dyx[ci] + 4.0 * U * mdyx[ci].abs())
                    + 4.0 * U * e.abs())
                + own
        })
        .collect();
    (tol_dx, tol_dg, tol_db)
}

fn backward(be: &CudaBackend, w: &mut Worst, x: &Tensor, bn: &BnParams<Tensor>, tag: &str) {
    let r = ReferenceBackend;
    let lay = Layout::of(x.shape());
    let mut rng = Rng::new(x.len() as u64);
    let dy = Tensor::randn(x.shape(), 1.0, &mut rng);
    let (xd, dyd, bnd) = (up(be, x), up(be, &dy), upload_bn(be, bn));
    let mut cases = vec![("frozen", bn.running_mean.clone(), bn.running_var.clone())];
    if lay.k >= 2 {
        let (_, s) = r.batchnorm_train(x, bn).unwrap();
        cases.push(("train", s.mean, s.var));
    }
    for (mode, mean, var) in cases {
        let train = mode == "train";
        // Both sides get the same statistics, so only the backward kernels' errors count.
        let (want, got) = if train {
            let stats = BnBatchStats {
                mean: mean.clone(),
                var: var.clone(),
                count: lay.k,
            };
            let dstats = BnBatchStats {
                mean: up(be, &mean),
                var: up(be, &var),
                count: lay.k,
            };
            (
                r.batchnorm_train_backward(&dy, x, bn, &stats).unwrap(),
                be.batchnorm_train_backward(&dyd, &xd, &bnd, &dstats)
                    .unwrap(),
            )
        } else {
            (
                r.batchnorm_inference_backward(&dy, x, bn).unwrap(),
                be.batchnorm_inference_backward(&dyd, &xd, &bnd).unwrap(),
            )
        };
        let (tol_dx, tol_dg, tol_db) = backward_bounds(
            lay,
            x,
            &dy,
            bn,
            (&mean, &var),
            train,
            (&want.0, &want.1, &want.2),
        );
        w.check(
            &format!("dx_{mode} {tag}"),
            &down(be, &got.0),
            &want.0,
            &tol_dx,
        );
        w.check(
            &format!("dgamma_{mode} {tag}"),
            &down(be, &got.1),
            &want.1,
            &tol_dg,
        );
        w.check(
            &format!("dbeta_{mode} {tag}"),
            &down(be, &got.2),
            &want.2,
            &tol_db,
        );
    }
}

fn update_running(be: &CudaBackend, w: &mut Worst, x: &Tensor, bn: &BnParams<Tensor>, tag: &str) {
    let r = ReferenceBackend;
    let (_, stats) = r.batchnorm_train(x, bn).unwrap();
    let dstats = BnBatchStats {
        mean: up(be, &stats.mean),
        var: up(be, &stats.var),
        count: stats.count,
    };
    for momentum in [DEFAULT_MOMENTUM, 0.01, 1.0 / 3.0] {
        let mut want = bn.clone();
        r.batchnorm_update_running(&mut want, &stats, momentum)
            .unwrap();
        let mut got = upload_bn(be, bn);
        let before = got.clone(); // shares the buffers: the update must not show through it
        be.batchnorm_update_running(&mut got, &dstats, momentum)
            .unwrap();
        assert_eq!(
            down(be, &before.running_mean),
            bn.running_mean,
            "clone changed {tag}"
        );
        assert_eq!(
            down(be, &before.running_var),
            bn.running_var,
            "clone changed {tag}"
        );
        let unbias = stats.count as f64 / (stats.count as f64 - 1.0);
        for (what, old, batch, scale, want, got) in [
            (
                "running_mean",
                &bn.running_mean,
                &stats.mean,
                1.0,
                &want.running_mean,
                &got.running_mean,
            ),
            (
                "running_var",
                &bn.running_var,
                &stats.var,
                unbias,
                &want.running_var,
                &got.running_var,
            ),
        ] {
            let tol: Vec<f64> = (0..old.len())
                .map(|ci| {
                    let terms = (1.0 - momentum) * (old.data()[ci] as f64).abs()
                        + momentum * scale * (batch.data()[ci] as f64).abs();
                    2.0 * U * (want.data()[ci] as f64).abs() + terms * 2f64.powi(-46)
                })
                .collect();
            w.check(
                &format!("{what} {tag} momentum {momentum}"),
                &down(be, got),
                want,
                &tol,
            );
        }
    }
}

/// Every error the reference reports comes back the same from the CUDA backend.
fn errors(be: &CudaBackend) {
    let r = ReferenceBackend;
    let mut rng = Rng::new(5);
    let bn = params(3, 0.0, &mut rng);
    let bnd = upload_bn(be, &bn);
    let same = |what: &str, want: skinengine::Error, got: skinengine::Error| {
        assert_eq!(format!("{got:?}"), format!("{want:?}"), "{what}");
    };
    let t = |shape: &[usize]| Tensor::zeros(shape);
    let bad_shapes: [&[usize]; 4] = [&[2, 3, 4], &[6], &[2, 4], &[2, 2, 3, 3]];
    for shape in bad_shapes {
        let (x, xd) = (t(shape), up(be, &t(shape)));
        same(
            "inference",
            r.batchnorm_inference(&x, &bn).unwrap_err(),
            be.batchnorm_inference(&xd, &bnd).unwrap_err(),
        );
        same(
            "train",
            r.batchnorm_train(&x, &bn).unwrap_err(),
            be.batchnorm_train(&xd, &bnd).unwrap_err(),
        );
        same(
            "inference_backward",
            r.batchnorm_inference_backward(&x, &x, &bn).unwrap_err(),
            be.batchnorm_inference_backward(&xd, &xd, &bnd).unwrap_err(),
        );
    }
    // One value per channel: inference is fine, training is not.
    for shape in [&[1usize, 3][..], &[1, 3, 1, 1]] {
        let (x, xd) = (t(shape), up(be, &t(shape)));
        same(
            "train m=1",
            r.batchnorm_train(&x, &bn).unwrap_err(),
            be.batchnorm_train(&xd, &bnd).unwrap_err(),
        );
        let stats = BnBatchStats {
            mean: bn.running_mean.clone(),
            var: bn.running_var.clone(),
            count: 1,
        };
        let dstats = BnBatchStats {
            mean: bnd.running_mean.clone(),
            var: bnd.running_var.clone(),
            count: 1,
        };
        same(
            "train_backward m=1",
            r.batchnorm_train_backward(&x, &x, &bn, &stats).unwrap_err(),
            be.batchnorm_train_backward(&xd, &xd, &bnd, &dstats)
                .unwrap_err(),
        );
        let (mut b1, mut b2) = (bn.clone(), bnd.clone());
        same(
            "update_running count=1",
            r.batchnorm_update_running(&mut b1, &stats, 0.1)
                .unwrap_err(),
            be.batchnorm_update_running(&mut b2, &dstats, 0.1)
                .unwrap_err(),
        );
    }
    // A parameter of the wrong length, each in turn.
    let x = Tensor::randn(&[4, 3, 2, 2], 1.0, &mut rng);
    let xd = up(be, &x);
    let short = Tensor::zeros(&[2]);
    for which in 0..4 {
        let (mut b, mut bd) = (bn.clone(), bnd.clone());
        let set = |p: &mut BnParams<Tensor>, v: Tensor| match which {
            0 => p.gamma = v,
            1 => p.beta = v,
            2 => p.running_mean = v,
            _ => p.running_var = v,
        };
        let setd = |p: &mut BnParams<CudaTensor>, v: CudaTensor| match which {
            0 => p.gamma = v,
            1 => p.beta = v,
            2 => p.running_mean = v,
            _ => p.running_var = v,
        };
        set(&mut b, short.clone());
        setd(&mut bd, up(be, &short));
        same(
            "inference param",
            r.batchnorm_inference(&x, &b).unwrap_err(),
            be.batchnorm_inference(&xd, &bd).unwrap_err(),
        );
        if which < 2 {
            same(
                "train param",
                r.batchnorm_train(&x, &b).unwrap_err(),
                be.batchnorm_train(&xd, &bd).unwrap_err(),
            );
        }
        if which != 1 {
            same(
                "inference_backward param",
                r.batchnorm_inference_backward(&x, &x, &b).unwrap_err(),
                be.batchnorm_inference_backward(&xd, &xd, &bd).unwrap_err(),
            );
        }
    }
    // dy of another shape; batch statistics of the wrong length.
    let (_, stats) = r.batchnorm_train(&x, &bn).unwrap();
    let dstats = BnBatchStats {
        mean: up(be, &stats.mean),
        var: up(be, &stats.var),
        count: stats.count,
    };
    let dy = Tensor::zeros(&[4, 3, 2, 3]);
    let dyd = up(be, &dy);
    same(
        "train_backward dy",
        r.batchnorm_train_backward(&dy, &x, &bn, &stats)
            .unwrap_err(),
        be.batchnorm_train_backward(&dyd, &xd, &bnd, &dstats)
            .unwrap_err(),
    );
    same(
        "inference_backward dy",
        r.batchnorm_inference_backward(&dy, &x, &bn).unwrap_err(),
        be.batchnorm_inference_backward(&dyd, &xd, &bnd)
            .unwrap_err(),
    );
    let bad = BnBatchStats {
        mean: stats.mean.clone(),
        var: short.clone(),
        count: stats.count,
    };
    let badd = BnBatchStats {
        mean: dstats.mean.clone(),
        var: up(be, &short),
        count: stats.count,
    };
    same(
        "train_backward var",
        r.batchnorm_train_backward(&x, &x, &bn, &bad).unwrap_err(),
        be.batchnorm_train_backward(&xd, &xd, &bnd, &badd)
            .unwrap_err(),
    );
    let (mut b1, mut b2) = (bn.clone(), bnd.clone());
    same(
        "update_running var",
        r.batchnorm_update_running(&mut b1, &bad, 0.1).unwrap_err(),
        be.batchnorm_update_running(&mut b2, &badd, 0.1)
            .unwrap_err(),
    );
    for momentum in [-0.1, 1.5, f64::NAN] {
        same(
            "update_running momentum",
            r.batchnorm_update_running(&mut b1, &stats, momentum)
                .unwrap_err(),
            be.batchnorm_update_running(&mut b2, &dstats, momentum)
                .unwrap_err(),
        );
    }
}

/// Tensors without values: outputs are empty, gradient sums zero.
fn empty(be: &CudaBackend) {
    let r = ReferenceBackend;
    let mut rng = Rng::new(9);
    let bn = params(3, 0.0, &mut rng);
    let bnd = upload_bn(be, &bn);
    for shape in [&[0usize, 3][..], &[2, 3, 0, 5]] {
        let x = Tensor::zeros(shape);
        let xd = up(be, &x);
        let got = down(be, &be.batchnorm_inference(&xd, &bnd).unwrap());
        assert_eq!(got, r.batchnorm_inference(&x, &bn).unwrap(), "{shape:?}");
        let (dx, dg, db) = be.batchnorm_inference_backward(&xd, &xd, &bnd).unwrap();
        let want = r.batchnorm_inference_backward(&x, &x, &bn).unwrap();
        assert_eq!(down(be, &dx), want.0, "{shape:?}");
        assert_eq!(down(be, &dg), want.1, "{shape:?}");
        assert_eq!(down(be, &db), want.2, "{shape:?}");
    }
}

pub fn all(be: &CudaBackend) {
    let mut rng = Rng::new(41);
    let mut worst = Worst::default();
    // 1d and 2d; K = 3 (fewer values than threads), odd sizes, s < 256 (the walk wraps across
    // images), s > 256, and K = 3000 (about 12 values per thread before the tree).
    let shapes: [&[usize]; 8] = [
        &[3, 5],
        &[4, 3],
        &[1000, 3],
        &[3, 2, 1, 1],
        &[2, 3, 5, 7],
        &[16, 3, 7, 7],
        &[5, 2, 24, 25],
        &[2, 2, 1, 1031],
    ];
    for shape in shapes {
        // A large common offset (mean 100, std 1) is where one-pass variance would fail.
        for offset in [0.0, 100.0] {
            let tag = format!("{shape:?} offset {offset}");
            worst.many = Layout::of(shape).k > 256;
            let x = Tensor::from_fn(shape, |_| (offset + rng.normal()) as f32);
            let bn = params(shape[1], offset, &mut rng);
            forward(be, &mut worst, &x, &bn, &tag);
            backward(be, &mut worst, &x, &bn, &tag);
            update_running(be, &mut worst, &x, &bn, &tag);
        }
    }
    // Inference backward allows one value per channel.
    let x = Tensor::randn(&[1, 4], 1.0, &mut rng);
    let bn = params(4, 0.0, &mut rng);
    worst.many = false;
    backward(be, &mut worst, &x, &bn, "[1, 4]");
    errors(be);
    empty(be);
    for (what, (ratio, at)) in &worst.seen {
        eprintln!("batchnorm: {what:<26} worst |error| / bound {ratio:.3} at {at}");
    }
}
