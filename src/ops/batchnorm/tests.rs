//! Batch norm (2d on [N, C, H, W], 1d on [N, C]) on every backend: hand-worked answers (in f32
//! on every backend, and in f64 on the reference functions), errors, agreement with the
//! reference on every output element, and gradients by finite differences in f64.
//!
//! Agreement tolerances are first-order worst-case error bounds for the CUDA kernels' f32
//! arithmetic (u = 2^-24), 1% wider for second-order terms; fused multiply-adds (a GPU's) only
//! remove roundings. The `cpu` backend sums and computes each element in f64 like the reference
//! (in another order, so f64 rounding apart: worst error below 0.001 of the bounds). The
//! reference works in f64 and rounds to f32 once, so each bound also carries u |want|. A sum
//! errs by at most D u sum|terms| (Higham), D the most additions one term goes through:
//! ceil(K/256) + 8 for the 256 per-thread partials and 8-level tree over a channel's K values,
//! at most K - 1.
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

use std::collections::BTreeMap;

use super::{
    BnBatchStats, BnDims, BnParams, DEFAULT_EPS, DEFAULT_MOMENTUM, reference as bn, reference::f64s,
};
use crate::ops::prelude::*;
use crate::testing::{U, assert_close, check_grad, dot, fails, randn};
use crate::{ReferenceBackend, Rng, Tensor};

/// A layer's parameters on the host.
type P = BnParams<Tensor>;

fn t<T: crate::Real>(shape: &[usize], v: &[f64]) -> Tensor<T> {
    Tensor::from_fn(shape, |i| T::from_f64(v[i]))
}

fn dims(shape: &[usize]) -> BnDims {
    super::dims("test", shape).unwrap()
}

fn bnp<T>(gamma: T, beta: T, running_mean: T, running_var: T, eps: f64) -> BnParams<T> {
    BnParams {
        gamma,
        beta,
        running_mean,
        running_var,
        eps,
    }
}

fn stats<T>(mean: T, var: T, count: usize) -> BnBatchStats<T> {
    BnBatchStats { mean, var, count }
}

fn upload_bn<B: Backend>(be: &B, p: &P) -> BnParams<B::Tensor> {
    let up = |x: &Tensor| be.upload(x).unwrap();
    let (rm, rv) = (up(&p.running_mean), up(&p.running_var));
    bnp(up(&p.gamma), up(&p.beta), rm, rv, p.eps)
}

fn upload_stats<B: Backend>(be: &B, s: &BnBatchStats<Tensor>) -> BnBatchStats<B::Tensor> {
    let up = |x: &Tensor| be.upload(x).unwrap();
    stats(up(&s.mean), up(&s.var), s.count)
}

/// Random gamma, beta, running var in [0.5, 2) and running mean around `offset`.
fn params(c: usize, offset: f64, rng: &mut Rng) -> P {
    let (gamma, beta) = (Tensor::randn(&[c], 1.0, rng), Tensor::randn(&[c], 1.0, rng));
    let rm = Tensor::from_fn(&[c], |_| (offset + rng.normal()) as f32);
    let rv = Tensor::uniform(&[c], 0.5, 2.0, rng);
    bnp(gamma, beta, rm, rv, DEFAULT_EPS)
}

/// 1d, one feature, x = 1..4, gamma 2, beta 1: mean 2.5, biased var 1.25.
fn bn1d_want() -> Vec<f64> {
    let s = 1.25f64.sqrt();
    [1., 2., 3., 4.].map(|v| 2. * (v - 2.5) / s + 1.).to_vec()
}

/// Running update, momentum 0.1 from (0, 1): mean 0.25; var 0.9 + 0.1 * 1.25 * 4/3.
const RUNNING_WANT: [f64; 2] = [0.25, 0.9 + 0.1 * 1.25 * 4. / 3.];

/// 2d training, x = (1, 3, 5, 7) in one channel over N and W: mean 4, var (9+1+1+9)/4 = 5.
fn bn2d_want() -> Vec<f64> {
    [-3., -1., 1., 3.].iter().map(|v| v / 5f64.sqrt()).collect()
}

/// The hand cases of [`hand_cases`] in f64 on the reference functions, to f64 tolerances;
/// eps 0 keeps the numbers exact.
#[test]
fn hand_cases_f64() {
    const EXACT: f64 = 1e-12; // small integers: only f64 rounding separates got from want
    let one = |v: f64| t::<f64>(&[1], &[v]);
    let x = t::<f64>(&[4, 1], &[1., 2., 3., 4.]);
    let (y, mean, var) = bn::forward_train(&x, dims(&[4, 1]), &one(2.), &one(1.), 0.0).unwrap();
    assert_close("bn1d train", &y, &bn1d_want(), 1e-12, 0.0);
    assert_close("bn mean", &mean, &[2.5], EXACT, 0.0);
    assert_close("bn var", &var, &[1.25], EXACT, 0.0);
    let (mut rm, mut rv) = (one(0.), one(1.));
    bn::update_running(&mut rm, &mut rv, &mean, &var, 4, 0.1).unwrap();
    assert_close("running mean", &rm, &RUNNING_WANT[..1], EXACT, 0.0);
    assert_close("running var", &rv, &RUNNING_WANT[1..], 1e-12, 0.0);
    // 2d inference: channel 0 (x - 1) / 2 * 0.5 - 1, channel 1 identity.
    let x = t::<f64>(&[1, 2, 1, 2], &[3., 5., 7., -7.]);
    let (g, b, m, v) = ([0.5, 1.], [-1., 0.], [1., 0.], [4., 1.]);
    let y = bn::normalise(&x, dims(x.shape()), &g, &b, &m, &v, 0.0).unwrap();
    assert_close("bn2d inference", &y, &[-0.5, 0., 7., -7.], EXACT, 0.0);
    // 2d training: channel statistics are taken over N, H and W together.
    let x = t::<f64>(&[2, 1, 1, 2], &[1., 3., 5., 7.]);
    let (y, _, var) = bn::forward_train(&x, dims(x.shape()), &one(1.), &one(0.), 0.0).unwrap();
    assert_close("bn2d var", &var, &[5.], EXACT, 0.0);
    assert_close("bn2d train", &y, &bn2d_want(), 1e-12, 0.0);
}

/// The f64 hand cases in f32 through the entry points. The statistics are exact in f32 (sums of
/// small integers and halves: mean 2.5, var 1.25; mean 4, var 5), as is the inference case
/// (scales 1/4 and 1, small integers). y then errs by at most 3u |t| + 2u |y| (module doc) with
/// |t| < 2.7, |y| < 3.7: 15.5u; 16u is allowed. The running update is within 2u |want| (+ 2^-46).
fn hand_cases<B: Backend>(b: &B) {
    let up = |s: &[usize], v: &[f64]| b.upload(&t(s, v)).unwrap();
    let down = |x: &B::Tensor| b.download(x).unwrap();
    let one = |v: f64| up(&[1], &[v]);
    let mut p = bnp(one(2.), one(1.), one(0.), one(1.), 0.0);
    let x = up(&[4, 1], &[1., 2., 3., 4.]);
    let (y, s) = b.batchnorm_train(&x, &p).unwrap();
    assert_close("bn1d train", &down(&y), &bn1d_want(), 16.0 * U, 0.0);
    assert_close("bn mean", &down(&s.mean), &[2.5], 0.0, 0.0);
    assert_close("bn var", &down(&s.var), &[1.25], 0.0, 0.0);
    assert_eq!(s.count, 4);
    b.batchnorm_update_running(&mut p, &s, 0.1).unwrap();
    let (rm, rv, tiny) = (down(&p.running_mean), down(&p.running_var), 2f64.powi(-46));
    assert_close("running mean", &rm, &RUNNING_WANT[..1], tiny, 2.0 * U);
    assert_close("running var", &rv, &RUNNING_WANT[1..], tiny, 2.0 * U);
    let (g, be, m, v) = (&[0.5, 1.], &[-1., 0.], &[1., 0.], &[4., 1.]);
    let p = bnp(up(&[2], g), up(&[2], be), up(&[2], m), up(&[2], v), 0.0);
    let x = up(&[1, 2, 1, 2], &[3., 5., 7., -7.]);
    let y = down(&b.batchnorm_inference(&x, &p).unwrap());
    assert_close("bn2d inference", &y, &[-0.5, 0., 7., -7.], 0.0, 0.0);
    let p = bnp(one(1.), one(0.), one(0.), one(1.), 0.0);
    let x = up(&[2, 1, 1, 2], &[1., 3., 5., 7.]);
    let (y, s) = b.batchnorm_train(&x, &p).unwrap();
    assert_close("bn2d var", &down(&s.var), &[5.], 0.0, 0.0);
    assert_close("bn2d train", &down(&y), &bn2d_want(), 16.0 * U, 0.0);
}

/// The entry points, for the error checks.
#[derive(Clone, Copy, Debug)]
enum Op {
    Inference,
    Train,
    TrainBackward,
    InferenceBackward,
    Update(f64),
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Inference => "batchnorm_inference",
            Op::Train => "batchnorm_train",
            Op::Update(_) => "batchnorm_update_running",
            _ => "batchnorm_backward",
        }
    }
}

/// Host inputs of one entry point: x, dy, the layer and the batch statistics.
type Args<'a> = (&'a Tensor, &'a Tensor, &'a P, &'a BnBatchStats<Tensor>);

/// Runs one entry point on `be`, inputs uploaded; only whether and how it fails matters here.
fn run<B: Backend>(be: &B, op: Op, (x, dy, p, s): Args) -> crate::Result<()> {
    let (x, dy) = (be.upload(x)?, be.upload(dy)?);
    let (mut p, s) = (upload_bn(be, p), upload_stats(be, s));
    match op {
        Op::Inference => be.batchnorm_inference(&x, &p).map(drop),
        Op::Train => be.batchnorm_train(&x, &p).map(drop),
        Op::TrainBackward => be.batchnorm_train_backward(&dy, &x, &p, &s).map(drop),
        Op::InferenceBackward => be.batchnorm_inference_backward(&dy, &x, &p).map(drop),
        Op::Update(momentum) => be.batchnorm_update_running(&mut p, &s, momentum),
    }
}

/// Bad shapes and arguments are errors naming the op and the shapes, never panics.
fn shape_errors<B: Backend>(b: &B) {
    use Op::*;
    let z = |s: &[usize]| Tensor::full(s, 0.5);
    let p = |g: usize, m: usize| bnp(z(&[g]), z(&[3]), z(&[m]), z(&[3]), 1e-5);
    let (p3, s) = (p(3, 3), stats(z(&[3]), z(&[3]), 8));
    let x = z(&[2, 3, 4, 4]);
    let frags = ["batchnorm_train", "gamma", "[4]", "[2, 3, 4, 4]"];
    fails(run(b, Train, (&x, &x, &p(4, 3), &s)), &frags);
    let (x, frags) = (z(&[2, 3, 4]), ["batchnorm_train", "[2, 3, 4]"]);
    fails(run(b, Train, (&x, &x, &p3, &s)), &frags);
    let (x, frags) = (z(&[1, 3]), ["batchnorm_train", "at least 2 values"]);
    fails(run(b, Train, (&x, &x, &p3, &s)), &frags);
    let x = z(&[2, 3]);
    let frags = ["batchnorm_inference", "running_mean", "[2]"];
    fails(run(b, Inference, (&x, &x, &p(3, 2), &s)), &frags);
    let frags = ["batchnorm_backward", "[2, 4]", "[2, 3]"];
    fails(run(b, TrainBackward, (&x, &z(&[2, 4]), &p3, &s)), &frags);
    fails(run(b, Update(1.5), (&x, &x, &p3, &s)), &["momentum"]);
}

/// The backend's error is the reference's word for word, compared as `Debug` (variant and all):
/// it holds by construction, every backend sharing the entry points of [`BatchNormOps`], and
/// stays as a guard. The message names the op and every fragment.
fn same<B: Backend>(be: &B, op: Op, args: Args, fragments: &[&str]) {
    let want = run(&ReferenceBackend, op, args).unwrap_err();
    let got = run(be, op, args).unwrap_err();
    assert_eq!(format!("{got:?}"), format!("{want:?}"), "{op:?}");
    fails::<()>(Err(got), &[&[op.name()], fragments].concat());
}

fn errors_equal_the_reference<B: Backend>(be: &B) {
    use Op::*;
    let mut rng = Rng::new(5);
    let p = params(3, 0.0, &mut rng);
    let s1 = stats(p.running_mean.clone(), p.running_var.clone(), 1);
    for shape in [&[2, 3, 4][..], &[6], &[2, 4], &[2, 2, 3, 3]] {
        let x = Tensor::zeros(shape);
        for op in [Inference, Train, InferenceBackward] {
            same(be, op, (&x, &x, &p, &s1), &[&format!("{shape:?}")]);
        }
    }
    // One value per channel: inference is fine, training is not.
    for shape in [&[1, 3][..], &[1, 3, 1, 1]] {
        let x = Tensor::zeros(shape);
        for op in [Train, TrainBackward] {
            same(be, op, (&x, &x, &p, &s1), &["at least 2 values", "got 1"]);
        }
        same(be, Update(0.1), (&x, &x, &p, &s1), &["count 1"]);
    }
    // A parameter of the wrong length, each in turn.
    let x = Tensor::randn(&[4, 3, 2, 2], 1.0, &mut rng);
    let (_, s) = ReferenceBackend.batchnorm_train(&x, &p).unwrap();
    let short = Tensor::zeros(&[2]);
    let names = ["gamma", "beta", "running_mean", "running_var"];
    for (which, name) in names.into_iter().enumerate() {
        let mut v = [&p.gamma, &p.beta, &p.running_mean, &p.running_var].map(Tensor::clone);
        v[which] = short.clone();
        let [g, b, m, v] = v;
        let q = bnp(g, b, m, v, p.eps);
        same(be, Inference, (&x, &x, &q, &s), &[name, "[2]"]);
        if which < 2 {
            same(be, Train, (&x, &x, &q, &s), &[name, "[2]"]);
        }
        if which != 1 {
            let name = name.trim_start_matches("running_");
            same(be, InferenceBackward, (&x, &x, &q, &s), &[name, "[2]"]);
        }
    }
    // dy of another shape; batch statistics of the wrong length; momentum outside [0, 1].
    let dy = Tensor::zeros(&[4, 3, 2, 3]);
    for op in [TrainBackward, InferenceBackward] {
        let frags = ["output gradient", "[4, 3, 2, 3]", "[4, 3, 2, 2]"];
        same(be, op, (&x, &dy, &p, &s), &frags);
    }
    let bad = stats(s.mean.clone(), short.clone(), s.count);
    same(be, TrainBackward, (&x, &x, &p, &bad), &["var [2]"]);
    same(be, Update(0.1), (&x, &x, &p, &bad), &["batch_var [2]"]);
    for m in [-0.1, 1.5, f64::NAN] {
        let ms = format!("{m}");
        same(be, Update(m), (&x, &x, &p, &s), &["momentum", &ms]);
    }
}

/// Tensors without values: outputs are empty, gradient sums zero.
fn empty_tensors<B: Backend>(be: &B) {
    let r = ReferenceBackend;
    let mut rng = Rng::new(9);
    let p = params(3, 0.0, &mut rng);
    let pd = upload_bn(be, &p);
    let down = |x: &B::Tensor| be.download(x).unwrap();
    for shape in [&[0usize, 3][..], &[2, 3, 0, 5]] {
        let x = Tensor::zeros(shape);
        let xd = be.upload(&x).unwrap();
        let got = down(&be.batchnorm_inference(&xd, &pd).unwrap());
        assert_eq!(got, r.batchnorm_inference(&x, &p).unwrap(), "{shape:?}");
        let (g0, g1, g2) = be.batchnorm_inference_backward(&xd, &xd, &pd).unwrap();
        let w = r.batchnorm_inference_backward(&x, &x, &p).unwrap();
        let g = [g0, g1, g2].map(|t| down(&t));
        assert_eq!(g, [w.0, w.1, w.2], "{shape:?}");
    }
}

/// Worst |got - want| / bound per quantity, printed at the end (run with --nocapture), apart for
/// channels of at most and of more than 256 values (one per thread or several before the tree).
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
                let at = format!("{what} [{i}]: |diff| {diff:.2e}, bound {t:.2e}");
                *worst = (diff / t, at);
            }
        }
    }
}

/// D of the module doc: the most additions one of a channel's K values goes through in the
/// kernels' sums (ceil(K/256) - 1 per thread, 5 shuffle levels in a warp, 3 over the 8 warps).
fn depth(d: BnDims) -> usize {
    const THREADS: usize = 256; // the block size of the batch-norm kernels
    (d.m().div_ceil(THREADS) + 8).min(d.m())
}

fn chan(d: BnDims, i: usize) -> usize {
    (i / d.s) % d.c
}

/// Per-channel mean of f(i) over the channel's values.
fn mean_of(d: BnDims, f: impl Fn(usize) -> f64) -> Vec<f64> {
    let mut acc = vec![0.0; d.c];
    for i in 0..d.n * d.c * d.s {
        acc[chan(d, i)] += f(i);
    }
    acc.iter().map(|a| a / d.m() as f64).collect()
}

/// Bounds on y for given per-channel (mean, var) and extra per-channel errors in them.
fn y_bounds(x: &Tensor, y: &Tensor, p: &P, [mean, var]: [&[f64]; 2], e: [&[f64]; 2]) -> Vec<f64> {
    let [dmean, dvar] = e;
    let (d, gamma) = (dims(x.shape()), f64s(&p.gamma));
    (0..x.len())
        .map(|i| {
            let ci = chan(d, i);
            let ve = var[ci] + p.eps;
            let a = gamma[ci].abs() / ve.sqrt();
            let t = (x.data()[i] as f64 - mean[ci]) * a;
            let own = 2.0 * U * (y.data()[i] as f64).abs();
            1.01 * (a * dmean[ci] + t.abs() * (dvar[ci] / (2.0 * ve) + 3.0 * U)) + own
        })
        .collect()
}

fn forward<B: Backend>(be: &B, w: &mut Worst, x: &Tensor, p: &P, tag: &str) {
    let r = ReferenceBackend;
    let d = dims(x.shape());
    let (xd, pd) = (be.upload(x).unwrap(), upload_bn(be, p));
    let down = |x: &B::Tensor| be.download(x).unwrap();
    let zeros = vec![0.0; d.c];
    // Inference: running statistics are given, so only the element's own roundings count.
    let want = r.batchnorm_inference(x, p).unwrap();
    let got = down(&be.batchnorm_inference(&xd, &pd).unwrap());
    let (rm, rv) = (f64s(&p.running_mean), f64s(&p.running_var));
    let tol = y_bounds(x, &want, p, [&rm, &rv], [&zeros, &zeros]);
    w.check(&format!("y_inference {tag}"), &got, &want, &tol);
    // Training: batch statistics, then y through them.
    let (want_y, want_s) = r.batchnorm_train(x, p).unwrap();
    let (got_y, got_s) = be.batchnorm_train(&xd, &pd).unwrap();
    assert_eq!(got_s.count, want_s.count, "count {tag}");
    let (mean, var) = (f64s(&want_s.mean), f64s(&want_s.var));
    let ks = depth(d) as f64;
    let xv = |i: usize| x.data()[i] as f64;
    let mean_abs_x = mean_of(d, |i| xv(i).abs());
    let mean_abs_dev = mean_of(d, |i| (xv(i) - mean[chan(d, i)]).abs());
    let delta: Vec<f64> = (0..d.c)
        .map(|ci| 1.01 * ks * U * mean_abs_x[ci] + U * mean[ci].abs())
        .collect();
    let tol_mean: Vec<f64> = (0..d.c)
        .map(|ci| 2.0 * U * mean[ci].abs() + 1.01 * (ks + 1.0) * U * (mean_abs_dev[ci] + delta[ci]))
        .collect();
    let tol_var: Vec<f64> = (0..d.c)
        .map(|ci| {
            let (v, dl) = (var[ci], delta[ci]);
            1.01 * (ks + 4.0) * U * (v + 2.0 * dl * v.sqrt() + 3.0 * dl * dl) + U * v
        })
        .collect();
    let (gm, gv) = (down(&got_s.mean), down(&got_s.var));
    w.check(&format!("mean {tag}"), &gm, &want_s.mean, &tol_mean);
    w.check(&format!("var {tag}"), &gv, &want_s.var, &tol_var);
    let tol = y_bounds(x, &want_y, p, [&mean, &var], [&tol_mean, &tol_var]);
    w.check(&format!("y_train {tag}"), &down(&got_y), &want_y, &tol);
}

/// Bounds on (dx, dgamma, dbeta) for [x, dy, mean, var], the statistics both sides use.
fn backward_bounds(t: [&Tensor; 4], p: &P, train: bool, want: &[Tensor; 3]) -> [Vec<f64>; 3] {
    let [x, dy, mean, var] = t;
    let (mean, var, gamma) = (f64s(mean), f64s(var), f64s(&p.gamma));
    let d = dims(x.shape());
    let (k, ks) = (d.m() as f64, depth(d) as f64);
    let inv: Vec<f64> = var.iter().map(|v| 1.0 / (v + p.eps).sqrt()).collect();
    let xh = |i: usize| (x.data()[i] as f64 - mean[chan(d, i)]) * inv[chan(d, i)];
    let dyv = |i: usize| dy.data()[i] as f64;
    let mdy = mean_of(d, dyv);
    let mdyx = mean_of(d, |i| dyv(i) * xh(i));
    let mabs_dy = mean_of(d, |i| dyv(i).abs());
    let mabs_dyx = mean_of(d, |i| (dyv(i) * xh(i)).abs());
    let [want_dx, want_dg, want_db] = want;
    let own = |t: &Tensor, i: usize| U * (t.data()[i] as f64).abs();
    let tol_db = (0..d.c).map(|ci| 1.01 * ks * U * k * mabs_dy[ci] + own(want_db, ci));
    let tol_dg = (0..d.c).map(|ci| 1.01 * (ks + 4.0) * U * k * mabs_dyx[ci] + own(want_dg, ci));
    let tol_dx = (0..x.len()).map(|i| {
        let ci = chan(d, i);
        let a = (gamma[ci] * inv[ci]).abs();
        if !train {
            return 1.01 * 3.0 * U * a * dyv(i).abs() + own(want_dx, i);
        }
        let e = dyv(i) - mdy[ci] - xh(i) * mdyx[ci];
        1.01 * a
            * ((ks + 1.0) * U * mabs_dy[ci]
                + 2.0 * U * (dyv(i).abs() + mdy[ci].abs())
                + xh(i).abs() * ((ks + 5.0) * U * mabs_dyx[ci] + 4.0 * U * mdyx[ci].abs())
                + 4.0 * U * e.abs())
            + own(want_dx, i)
    });
    [tol_dx.collect(), tol_dg.collect(), tol_db.collect()]
}

fn backward<B: Backend>(be: &B, w: &mut Worst, x: &Tensor, p: &P, tag: &str) {
    let r = ReferenceBackend;
    let d = dims(x.shape());
    let mut rng = Rng::new(x.len() as u64);
    let dy = Tensor::randn(x.shape(), 1.0, &mut rng);
    let (xd, dyd) = (be.upload(x).unwrap(), be.upload(&dy).unwrap());
    let pd = upload_bn(be, p);
    let mut cases = vec![("frozen", p.running_mean.clone(), p.running_var.clone())];
    if d.m() >= 2 {
        let (_, s) = r.batchnorm_train(x, p).unwrap();
        cases.push(("train", s.mean, s.var));
    }
    for (mode, mean, var) in cases {
        let train = mode == "train";
        // Both sides get the same statistics, so only the backward kernels' errors count.
        let s = stats(mean.clone(), var.clone(), d.m());
        let sd = upload_stats(be, &s);
        let (want, got) = if train {
            let w = r.batchnorm_train_backward(&dy, x, p, &s);
            (w, be.batchnorm_train_backward(&dyd, &xd, &pd, &sd))
        } else {
            let w = r.batchnorm_inference_backward(&dy, x, p);
            (w, be.batchnorm_inference_backward(&dyd, &xd, &pd))
        };
        let (want, got) = (want.unwrap(), got.unwrap());
        let want = [want.0, want.1, want.2];
        let tols = backward_bounds([x, &dy, &mean, &var], p, train, &want);
        let got = [got.0, got.1, got.2].map(|g| be.download(&g).unwrap());
        for (i, name) in ["dx", "dgamma", "dbeta"].into_iter().enumerate() {
            w.check(&format!("{name}_{mode} {tag}"), &got[i], &want[i], &tols[i]);
        }
    }
}

fn update_running<B: Backend>(be: &B, w: &mut Worst, x: &Tensor, p: &P, tag: &str) {
    let r = ReferenceBackend;
    let down = |x: &B::Tensor| be.download(x).unwrap();
    let (_, s) = r.batchnorm_train(x, p).unwrap();
    let sd = upload_stats(be, &s);
    let unbias = s.count as f64 / (s.count as f64 - 1.0);
    for momentum in [DEFAULT_MOMENTUM, 0.01, 1.0 / 3.0] {
        let mut want = p.clone();
        r.batchnorm_update_running(&mut want, &s, momentum).unwrap();
        let mut got = upload_bn(be, p);
        let before = got.clone(); // shares the buffers: the update must not show through it
        be.batchnorm_update_running(&mut got, &sd, momentum)
            .unwrap();
        let kept = [down(&before.running_mean), down(&before.running_var)];
        let orig = [&p.running_mean, &p.running_var].map(Tensor::clone);
        assert_eq!(kept, orig, "clone changed {tag}");
        let old = [&p.running_mean, &p.running_var];
        let batch = [(&s.mean, 1.0), (&s.var, unbias)];
        let want = [&want.running_mean, &want.running_var];
        let got = [down(&got.running_mean), down(&got.running_var)];
        for (j, what) in ["running_mean", "running_var"].into_iter().enumerate() {
            let tol: Vec<f64> = (0..old[j].len())
                .map(|ci| {
                    let (b, scale) = batch[j];
                    let terms = (1.0 - momentum) * (old[j].data()[ci] as f64).abs()
                        + momentum * scale * (b.data()[ci] as f64).abs();
                    2.0 * U * (want[j].data()[ci] as f64).abs() + terms * 2f64.powi(-46)
                })
                .collect();
            let what = format!("{what} {tag} momentum {momentum}");
            w.check(&what, &got[j], want[j], &tol);
        }
    }
}

fn matches_reference<B: Backend>(be: &B) {
    let mut rng = Rng::new(41);
    let mut worst = Worst::default();
    // 1d and 2d; K = 3 (fewer values than threads), odd sizes, s < 256 (the walk wraps across
    // images), s > 256, and K = 3000 (about 12 values per thread before the tree).
    let small: [&[usize]; 4] = [&[3, 5], &[4, 3], &[1000, 3], &[3, 2, 1, 1]];
    let large: [&[usize]; 4] = [
        &[2, 3, 5, 7],
        &[16, 3, 7, 7],
        &[5, 2, 24, 25],
        &[2, 2, 1, 1031],
    ];
    for shape in small.into_iter().chain(large) {
        // A large common offset (mean 100, std 1) is where one-pass variance would fail.
        for offset in [0.0, 100.0] {
            let tag = format!("{shape:?} offset {offset}");
            worst.many = dims(shape).m() > 256;
            let x = Tensor::from_fn(shape, |_| (offset + rng.normal()) as f32);
            let p = params(shape[1], offset, &mut rng);
            forward(be, &mut worst, &x, &p, &tag);
            backward(be, &mut worst, &x, &p, &tag);
            update_running(be, &mut worst, &x, &p, &tag);
        }
    }
    // Inference backward allows one value per channel.
    let x = Tensor::randn(&[1, 4], 1.0, &mut rng);
    let p = params(4, 0.0, &mut rng);
    worst.many = false;
    backward(be, &mut worst, &x, &p, "[1, 4]");
    for (what, (ratio, at)) in &worst.seen {
        let name = be.name();
        eprintln!("{name} batchnorm: {what:<26} worst |error| / bound {ratio:.3} at {at}");
    }
}

mod finite_differences;
mod fused;
use fused::fused_relu_matches_unfused;

crate::backend_suite! {
    every: [hand_cases, shape_errors, fused_relu_matches_unfused],
    fast: [matches_reference, errors_equal_the_reference, empty_tensors],
    cuda: [],
}
