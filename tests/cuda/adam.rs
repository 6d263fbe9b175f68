//! Adam / AdamW against the reference (f64 per element, rounded to f32), with per-element bounds
//! derived from the kernel's f32 operations (see `check_step`).

use skinengine::backend::Backend;
use skinengine::backend::cuda::CudaBackend;
use skinengine::ops::adam::AdamConfig;
use skinengine::{ReferenceBackend, Rng, Tensor};

use crate::common::U;

pub fn all(be: &CudaBackend) {
    steps(be);
    shared_buffers(be);
    errors(be);
}

/// Worst errors seen, as fractions of their bounds.
#[derive(Default)]
struct Worst {
    p: f64,
    m: f64,
    v: f64,
}

/// One step on the device and in the reference from the same state; every element of p, m, v
/// within its bound. The kernel (host-rounded scalars lrwd, b1, 1-b1, b2, 1-b2, S = lr/bc1,
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
#[allow(clippy::too_many_arguments)]
fn check_step(
    be: &CudaBackend,
    what: &str,
    p: &Tensor,
    g: &Tensor,
    m: &Tensor,
    v: &Tensor,
    cfg: &AdamConfig,
    step: u64,
    worst: &mut Worst,
) {
    const TINY: f64 = 4.0 * 1.401_298_464_324_817e-45;
    let r = ReferenceBackend;
    let (mut pd, gd, mut md, mut vd) = (
        be.upload(p).unwrap(),
        be.upload(g).unwrap(),
        be.upload(m).unwrap(),
        be.upload(v).unwrap(),
    );
    be.adam_step(&mut pd, &gd, &mut md, &mut vd, cfg, step)
        .unwrap();
    let (gp, gm, gv) = (
        be.download(&pd).unwrap(),
        be.download(&md).unwrap(),
        be.download(&vd).unwrap(),
    );
    let (mut wp, mut wm, mut wv) = (p.clone(), m.clone(), v.clone());
    r.adam_step(&mut wp, g, &mut wm, &mut wv, cfg, step)
        .unwrap();
    let (b1, b2) = (cfg.beta1, cfg.beta2);
    let bc1 = 1.0 - b1.powf(step as f64);
    let bc2 = 1.0 - b2.powf(step as f64);
    let s = cfg.lr / bc1;
    let lrwd = cfg.lr * cfg.weight_decay;
    for i in 0..p.len() {
        let (p0, g0, m0, v0) = (
            p.data()[i] as f64,
            g.data()[i] as f64,
            m.data()[i] as f64,
            v.data()[i] as f64,
        );
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
                "adam {what} step {step}: {name}[{i}] got {got:e}, reference {want:e}, \
                 |diff| {err:e} > bound {tol:e}"
            );
            let e = err / tol;
            match name {
                "m" => worst.m = worst.m.max(e),
                "v" => worst.v = worst.v.max(e),
                _ => worst.p = worst.p.max(e),
            }
        }
    }
}

fn steps(be: &CudaBackend) {
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
            check_step(be, &what, &p, &g, &m0, &v0, &cfg, 1, &mut worst);
            // Later steps from random moments (v >= 0), bias corrections from large to none.
            let m = Tensor::randn(&shape, 0.05, &mut rng);
            let v = Tensor::uniform(&shape, 0.0, 0.02, &mut rng);
            for step in [2, 7, 1000, 100_000] {
                check_step(be, &what, &p, &g, &m, &v, &cfg, step, &mut worst);
            }
            // Zero gradients (m decays, v decays) and huge gradients.
            let z = Tensor::zeros(&shape);
            check_step(be, &what, &p, &z, &m, &v, &cfg, 3, &mut worst);
            let big = Tensor::randn(&shape, 1e3, &mut rng);
            check_step(be, &what, &p, &big, &m, &v, &cfg, 3, &mut worst);
        }
    }
    eprintln!(
        "adam: max |err| / bound: p {:.3}, m {:.3}, v {:.3}",
        worst.p, worst.m, worst.v
    );
}

/// Updating in place must not change a clone that shares the buffer (value semantics), and a
/// gradient that is a clone of the parameter itself still reads the old values.
fn shared_buffers(be: &CudaBackend) {
    let mut rng = Rng::new(67);
    let p = Tensor::randn(&[5, 9], 1.0, &mut rng);
    let mut pd = be.upload(&p).unwrap();
    let keep = pd.clone();
    let g = pd.clone();
    let mut md = be.upload(&Tensor::zeros(&[5, 9])).unwrap();
    let mut vd = be.upload(&Tensor::zeros(&[5, 9])).unwrap();
    let m_keep = md.clone();
    be.adam_step(&mut pd, &g, &mut md, &mut vd, &AdamConfig::default(), 1)
        .unwrap();
    assert_eq!(be.download(&keep).unwrap(), p, "clone of param changed");
    assert_eq!(be.download(&g).unwrap(), p, "gradient changed");
    assert_eq!(
        be.download(&m_keep).unwrap(),
        Tensor::zeros(&[5, 9]),
        "clone of m changed"
    );
    let (mut wp, mut wm, mut wv) = (p.clone(), Tensor::zeros(&[5, 9]), Tensor::zeros(&[5, 9]));
    ReferenceBackend
        .adam_step(&mut wp, &p, &mut wm, &mut wv, &AdamConfig::default(), 1)
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

/// Every bad configuration or shape is the reference's error, word for word.
fn errors(be: &CudaBackend) {
    let r = ReferenceBackend;
    let t = |s: &[usize]| Tensor::full(s, 0.5);
    let ok = AdamConfig::default();
    let cases: Vec<(&str, [Vec<usize>; 4], AdamConfig, u64)> = vec![
        (
            "beta1 = 1",
            [vec![3], vec![3], vec![3], vec![3]],
            AdamConfig { beta1: 1.0, ..ok },
            1,
        ),
        (
            "negative lr",
            [vec![3], vec![3], vec![3], vec![3]],
            AdamConfig { lr: -1.0, ..ok },
            1,
        ),
        (
            "eps 0",
            [vec![3], vec![3], vec![3], vec![3]],
            AdamConfig { eps: 0.0, ..ok },
            1,
        ),
        ("step 0", [vec![3], vec![3], vec![3], vec![3]], ok, 0),
        ("grad shape", [vec![3], vec![4], vec![3], vec![3]], ok, 1),
        (
            "m shape",
            [vec![2, 3], vec![2, 3], vec![3, 2], vec![2, 3]],
            ok,
            1,
        ),
        ("v shape", [vec![3], vec![3], vec![3], vec![1, 3]], ok, 1),
    ];
    for (what, [ps, gs, ms, vs], cfg, step) in cases {
        let (mut p, g, mut m, mut v) = (t(&ps), t(&gs), t(&ms), t(&vs));
        let (mut pd, gd, mut md, mut vd) = (
            be.upload(&p).unwrap(),
            be.upload(&g).unwrap(),
            be.upload(&m).unwrap(),
            be.upload(&v).unwrap(),
        );
        let got = be
            .adam_step(&mut pd, &gd, &mut md, &mut vd, &cfg, step)
            .unwrap_err();
        let want = r
            .adam_step(&mut p, &g, &mut m, &mut v, &cfg, step)
            .unwrap_err();
        assert_eq!(got.to_string(), want.to_string(), "{what}");
        // A refused step leaves the state untouched.
        assert_eq!(be.download(&pd).unwrap(), t(&ps), "{what}: param changed");
    }
}
