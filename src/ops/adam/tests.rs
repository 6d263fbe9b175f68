//! Adam / AdamW on every backend: hand-worked steps, errors, agreement with the reference on
//! every element of p, m and v, value semantics of the in-place update, and the hand cases in
//! f64 on the reference functions.
//!
//! The reference computes each element in f64 and rounds p, m, v to f32 once. The bounds of
//! [`check_step`] are first-order worst cases for the CUDA kernel's f32 arithmetic (derived
//! there), 1% wider for second-order terms; the `cpu` backend evaluates the reference's f64
//! expressions operation for operation (vectorised, in parallel), so it meets them with zero
//! error. Fused multiply-adds only remove roundings, so the bounds hold
//! on a GPU as under emulation.

use super::{AdamConfig, reference as adam};
use crate::ops::prelude::*;
use crate::testing::{U, assert_close, fails};
use crate::{ReferenceBackend, Rng, Tensor};

/// Slack for results in f32's subnormal range, where relative bounds fail (4 subnormal ulps).
const TINY: f64 = 4.0 * 1.401_298_464_324_817e-45;

fn t<T: crate::Real>(shape: &[usize], v: &[f64]) -> Tensor<T> {
    Tensor::from_fn(shape, |i| T::from_f64(v[i]))
}

const LR01: AdamConfig = AdamConfig {
    lr: 0.1,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weight_decay: 0.0,
};

/// One step of the reference function in f64, with the bias corrections of `check_step`.
fn step64(
    p: &mut Tensor<f64>,
    g: &Tensor<f64>,
    m: &mut Tensor<f64>,
    v: &mut Tensor<f64>,
    cfg: &AdamConfig,
    step: u64,
) {
    let bc = cfg
        .check_step(step, p.shape(), g.shape(), m.shape(), v.shape())
        .unwrap();
    adam::step(p, g, m, v, cfg, bc).unwrap();
}

/// The hand cases of [`hand_cases`] in f64 on the reference function, to f64 tolerances.
#[test]
fn hand_cases_f64() {
    // With a constant gradient the bias-corrected step is exactly lr * g / (|g| + eps) per step.
    let mut p = t(&[2], &[1., -2.]);
    let (mut m, mut v) = (t(&[2], &[0., 0.]), t(&[2], &[0., 0.]));
    let g = t(&[2], &[0.5, -4.]);
    for step in 1..=3 {
        step64(&mut p, &g, &mut m, &mut v, &LR01, step);
    }
    assert_close("adam constant grad", &p, &[0.7, -1.7], 1e-7, 0.0);
    // First step by hand: m = 0.05, v = 0.00025 for g = 0.5.
    let mut p = t(&[1], &[1.]);
    let (mut m, mut v) = (t(&[1], &[0.]), t(&[1], &[0.]));
    let wd = AdamConfig {
        weight_decay: 0.1,
        ..LR01
    };
    step64(&mut p, &t(&[1], &[0.5]), &mut m, &mut v, &wd, 1);
    assert_close("adam m", &m, &[0.05], 1e-15, 0.0);
    assert_close("adam v", &v, &[0.00025], 1e-15, 0.0);
    // Decoupled decay first: 1 - 0.1*0.1*1 = 0.99, then the Adam step of 0.1.
    assert_close("adamw", &p, &[0.89], 1e-7, 0.0);
}

/// The f64 hand cases in f32 through the entry point. Tolerances from [`check_step`]'s bounds:
/// one step errs by at most u (3|p'| + 8|update| + (S/D)(2A + 3B)) <= 7.1u here (|p| <= 2,
/// update 0.1, (S/D)(2A + 3B) <= 0.3), and m, v carry a few u of relative error into the next
/// updates (<= 1u each): three steps stay under 24u, 32u is allowed (the f32 rounding of the
/// exact answers is within it). The first step: m within 4u |m|, v within 5u |v|, p within
/// 3.8u + the eps term (2e-9): 8u is allowed.
fn hand_cases<B: Backend>(b: &B) {
    let up = |s: &[usize], v: &[f64]| b.upload(&t(s, v)).unwrap();
    let down = |x: &B::Tensor| b.download(x).unwrap();
    let mut p = up(&[2], &[1., -2.]);
    let (mut m, mut v) = (up(&[2], &[0., 0.]), up(&[2], &[0., 0.]));
    let g = up(&[2], &[0.5, -4.]);
    for step in 1..=3 {
        b.adam_step(&mut p, &g, &mut m, &mut v, &LR01, step)
            .unwrap();
    }
    assert_close("adam constant grad", &down(&p), &[0.7, -1.7], 32.0 * U, 0.0);
    let mut p = up(&[1], &[1.]);
    let (mut m, mut v) = (up(&[1], &[0.]), up(&[1], &[0.]));
    let wd = AdamConfig {
        weight_decay: 0.1,
        ..LR01
    };
    b.adam_step(&mut p, &up(&[1], &[0.5]), &mut m, &mut v, &wd, 1)
        .unwrap();
    assert_close("adam m", &down(&m), &[0.05], 0.0, 4.0 * U);
    assert_close("adam v", &down(&v), &[0.00025], 0.0, 5.0 * U);
    assert_close("adamw", &down(&p), &[0.89], 8.0 * U, 0.0);
}

fn shape_errors<B: Backend>(b: &B) {
    let z = |s: &[usize]| b.upload(&Tensor::full(s, 0.5)).unwrap();
    let (mut p, mut m, mut v) = (z(&[3]), z(&[3]), z(&[3]));
    let cfg = AdamConfig::default();
    fails(
        b.adam_step(&mut p, &z(&[4]), &mut m, &mut v, &cfg, 1),
        &["adam", "gradient", "[3]", "[4]"],
    );
    fails(
        b.adam_step(&mut p, &z(&[3]), &mut m, &mut v, &cfg, 0),
        &["adam", "step"],
    );
}

/// Worst errors seen, as fractions of their bounds.
#[derive(Default)]
struct Worst {
    p: f64,
    m: f64,
    v: f64,
}

/// One step on the backend and in the reference from the same state; every element of p, m, v
/// within its bound. The CUDA kernel (host-rounded scalars lrwd, b1, 1-b1, b2, 1-b2, S = lr/bc1,
/// 1/sqrt(bc2), eps: u each):
///   m' = fma(b1, m, (1-b1) g)       A = |b1 m|, B = |(1-b1) g|:
///        b1: uA; 1-b1 and the product: 2uB; fma: u(A+B); reference rounding: u(A+B)
///        -> 3uA + 4uB  (and |err M| before the reference's rounding <= (2A + 3B)u)
///   v' = fma(b2, v, (1-b2)(g g))    Av, Bv likewise, g*g one more: 3uAv + 5uBv
///        (relative error of V <= 4u, all terms being >= 0)
///   D' = fma(sqrtf(v'), 1/sqrt(bc2), eps): sqrt halves 4u and adds u, the factor u, eps u,
///        fma u -> rel(D) <= 5u
///   p1 = fma(-lrwd, p, p): u lrwd |p| + u |p1|
///   p' = fma(-S, m'/D', p1): U = S M / D; S, the division: 2u |U|, rel(D) 5u |U|, err M
///        scaled by S / D, the fma u |P|, the reference's rounding u |P|
///        -> u (lrwd |p| + |p1| + 7|U| + (S/D)(2A + 3B) + 2|P|), with |p1| <= |P| + |U|.
/// 1.01 covers second-order terms; TINY the subnormal range.
fn check_step<B: Backend>(
    be: &B,
    what: &str,
    (p, g, m, v): (&Tensor, &Tensor, &Tensor, &Tensor),
    cfg: &AdamConfig,
    step: u64,
    worst: &mut Worst,
) {
    let up = |x: &Tensor| be.upload(x).unwrap();
    let (mut pd, gd, mut md, mut vd) = (up(p), up(g), up(m), up(v));
    be.adam_step(&mut pd, &gd, &mut md, &mut vd, cfg, step)
        .unwrap();
    let down = |x: &B::Tensor| be.download(x).unwrap();
    let (gp, gm, gv) = (down(&pd), down(&md), down(&vd));
    let (mut wp, mut wm, mut wv) = (p.clone(), m.clone(), v.clone());
    ReferenceBackend
        .adam_step(&mut wp, g, &mut wm, &mut wv, cfg, step)
        .unwrap();
    let (b1, b2) = (cfg.beta1, cfg.beta2);
    let (bc1, bc2) = cfg
        .check_step(step, p.shape(), g.shape(), m.shape(), v.shape())
        .unwrap();
    let s = cfg.lr / bc1;
    let lrwd = cfg.lr * cfg.weight_decay;
    for i in 0..p.len() {
        let [p0, g0, m0, v0] = [p, g, m, v].map(|x| x.data()[i] as f64);
        let (a, b) = ((b1 * m0).abs(), ((1.0 - b1) * g0).abs());
        let (av, bv) = (b2 * v0, (1.0 - b2) * g0 * g0);
        let mm = b1 * m0 + (1.0 - b1) * g0;
        let vv = av + bv;
        let d = (vv / bc2).sqrt() + cfg.eps;
        let upd = (s * mm / d).abs();
        let pp = (p0 - lrwd * p0 - s * mm / d).abs();
        let checks = [
            ("m", gm.data()[i], wm.data()[i], (3.0 * a + 4.0 * b) * U),
            ("v", gv.data()[i], wv.data()[i], (3.0 * av + 5.0 * bv) * U),
            (
                "p",
                gp.data()[i],
                wp.data()[i],
                (lrwd * p0.abs() + 3.0 * pp + 8.0 * upd + s / d * (2.0 * a + 3.0 * b)) * U,
            ),
        ];
        for (name, got, want, bound) in checks {
            let tol = 1.01 * bound + TINY;
            let err = (got as f64 - want as f64).abs();
            assert!(
                err <= tol,
                "{} adam {what} step {step}: {name}[{i}] got {got:e}, reference {want:e}, \
                 |diff| {err:e} > bound {tol:e}",
                be.name()
            );
            let w = match name {
                "m" => &mut worst.m,
                "v" => &mut worst.v,
                _ => &mut worst.p,
            };
            *w = w.max(err / tol);
        }
    }
}

fn steps_match_reference<B: Backend>(be: &B) {
    let mut rng = Rng::new(61);
    let adamw = AdamConfig {
        lr: 1e-2,
        weight_decay: 0.05,
        ..AdamConfig::default()
    };
    // A large step size: the update is comparable to the parameter, so its error matters.
    let large = AdamConfig {
        lr: 0.5,
        beta1: 0.8,
        beta2: 0.99,
        eps: 1e-6,
        weight_decay: 0.0,
    };
    let mut worst = Worst::default();
    // [1], the head's 120x84 weights (10080: many blocks), an odd length.
    for shape in [vec![1], vec![120, 84], vec![3, 337]] {
        for (cfg, name) in [
            (AdamConfig::default(), "adam"),
            (adamw, "adamw"),
            (large, "large"),
        ] {
            let p = Tensor::randn(&shape, 1.0, &mut rng);
            let g = Tensor::randn(&shape, 0.1, &mut rng);
            // The first step from zero moments, as training starts.
            let (m0, v0) = (Tensor::zeros(&shape), Tensor::zeros(&shape));
            let what = format!("{name} {shape:?}");
            check_step(be, &what, (&p, &g, &m0, &v0), &cfg, 1, &mut worst);
            // Later steps from random moments (v >= 0), bias corrections from large to none.
            let m = Tensor::randn(&shape, 0.05, &mut rng);
            let v = Tensor::uniform(&shape, 0.0, 0.02, &mut rng);
            for step in [2, 7, 1000, 100_000] {
                check_step(be, &what, (&p, &g, &m, &v), &cfg, step, &mut worst);
            }
            // Zero gradients (m decays, v decays) and huge gradients.
            let z = Tensor::zeros(&shape);
            check_step(be, &what, (&p, &z, &m, &v), &cfg, 3, &mut worst);
            let big = Tensor::randn(&shape, 1e3, &mut rng);
            check_step(be, &what, (&p, &big, &m, &v), &cfg, 3, &mut worst);
        }
    }
    eprintln!(
        "{}: adam max |err| / bound: p {:.3}, m {:.3}, v {:.3}",
        be.name(),
        worst.p,
        worst.m,
        worst.v
    );
}

/// Updating in place must not change a clone that shares the buffer (value semantics), and a
/// gradient that is a clone of the parameter itself still reads the old values.
fn shared_buffers<B: Backend>(be: &B) {
    let mut rng = Rng::new(67);
    let p = Tensor::randn(&[5, 9], 1.0, &mut rng);
    let zeros = Tensor::zeros(&[5, 9]);
    let mut pd = be.upload(&p).unwrap();
    let keep = pd.clone();
    let g = pd.clone();
    let mut md = be.upload(&zeros).unwrap();
    let mut vd = be.upload(&zeros).unwrap();
    let m_keep = md.clone();
    let cfg = AdamConfig::default();
    be.adam_step(&mut pd, &g, &mut md, &mut vd, &cfg, 1)
        .unwrap();
    assert_eq!(be.download(&keep).unwrap(), p, "clone of param changed");
    assert_eq!(be.download(&g).unwrap(), p, "gradient changed");
    assert_eq!(be.download(&m_keep).unwrap(), zeros, "clone of m changed");
    let (mut wp, mut wm, mut wv) = (p.clone(), zeros.clone(), zeros.clone());
    ReferenceBackend
        .adam_step(&mut wp, &p, &mut wm, &mut wv, &cfg, 1)
        .unwrap();
    // Step 1 from zero moments moves each parameter by lr * g / (|g| + eps) = lr sign(g).
    let got = be.download(&pd).unwrap();
    for i in 0..p.len() {
        let tol = 1.01 * (3.0 * wp.data()[i].abs() as f64 + 8.0 * 1e-3 + 3.0 * 1e-3) * U;
        assert!(
            (got.data()[i] as f64 - wp.data()[i] as f64).abs() <= tol,
            "shared-buffer step p[{i}]"
        );
    }
}

/// Every bad configuration or shape is the reference's error, word for word (it holds by
/// construction, all backends sharing [`AdamOps::adam_step`]; kept as a guard), with the
/// fragments a user needs.
fn errors_equal_the_reference<B: Backend>(be: &B) {
    let r = ReferenceBackend;
    let t = |s: &[usize]| Tensor::full(s, 0.5);
    let ok = AdamConfig::default();
    let s3 = || [vec![3], vec![3], vec![3], vec![3]];
    type ErrCase<'a> = (&'a str, [Vec<usize>; 4], AdamConfig, u64, &'a [&'a str]);
    let cases: Vec<ErrCase> = vec![
        (
            "beta1 = 1",
            s3(),
            AdamConfig { beta1: 1.0, ..ok },
            1,
            &["adam", "beta1: 1.0"],
        ),
        (
            "negative lr",
            s3(),
            AdamConfig { lr: -1.0, ..ok },
            1,
            &["adam", "lr: -1.0"],
        ),
        (
            "eps 0",
            s3(),
            AdamConfig { eps: 0.0, ..ok },
            1,
            &["adam", "eps: 0.0"],
        ),
        ("step 0", s3(), ok, 0, &["adam", "step counts from 1"]),
        (
            "grad shape",
            [vec![3], vec![4], vec![3], vec![3]],
            ok,
            1,
            &["adam", "gradient", "[4]", "[3]"],
        ),
        (
            "m shape",
            [vec![2, 3], vec![2, 3], vec![3, 2], vec![2, 3]],
            ok,
            1,
            &["adam", "first moment", "[3, 2]", "[2, 3]"],
        ),
        (
            "v shape",
            [vec![3], vec![3], vec![3], vec![1, 3]],
            ok,
            1,
            &["adam", "second moment", "[1, 3]", "[3]"],
        ),
    ];
    for (what, [ps, gs, ms, vs], cfg, step, fragments) in cases {
        let (mut p, g, mut m, mut v) = (t(&ps), t(&gs), t(&ms), t(&vs));
        let up = |x: &Tensor| be.upload(x).unwrap();
        let (mut pd, gd, mut md, mut vd) = (up(&p), up(&g), up(&m), up(&v));
        let got = be
            .adam_step(&mut pd, &gd, &mut md, &mut vd, &cfg, step)
            .unwrap_err();
        let want = r
            .adam_step(&mut p, &g, &mut m, &mut v, &cfg, step)
            .unwrap_err();
        assert_eq!(got.to_string(), want.to_string(), "{what}");
        fails::<()>(Err(got), fragments);
        // A refused step leaves the state untouched.
        assert_eq!(be.download(&pd).unwrap(), t(&ps), "{what}: param changed");
    }
}

crate::backend_suite! {
    every: [hand_cases, shape_errors],
    fast: [steps_match_reference, shared_buffers, errors_equal_the_reference],
    cuda: [],
}
