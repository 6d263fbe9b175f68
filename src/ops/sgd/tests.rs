//! SGD on every backend: hand-worked 3-step trajectories (exact), PyTorch's own trajectories
//! (`tests/fixtures/sgd_torch.safetensors`, written by `tools/make_sgd_fixture.py`), the buffer
//! left alone where torch has none or overwrites it, errors, agreement with the reference on
//! every element of p and the buffer, value semantics of the in-place update; and the hand and
//! torch cases in f64 on the reference function.
//!
//! Tolerances. The hand cases use dyadic values (lr, momentum, dampening, decay 0.5 or 0.25,
//! gradients with a few bits): every intermediate has under 12 significant bits, so every f32
//! and f64 operation of every backend is exact and the results must be equal, bit for bit.
//! Elsewhere the bound is [`step_error`]'s first-order worst case, propagated through the
//! trajectory; the `cpu` backend evaluates the reference's f64 expressions operation for
//! operation, so against the reference it must agree exactly (checked). Fused multiply-adds
//! only remove roundings, so the bounds hold on a GPU as under emulation.

use super::{Mode, SgdConfig, reference as sgd};
use crate::ops::prelude::*;
use crate::testing::{U, assert_bits, fails, fixture_file_f64};
use crate::{ReferenceBackend, Rng, Tensor};

mod torch;
use torch::{matches_torch, step_error};

/// f64 unit roundoff.
const U64: f64 = f64::EPSILON / 2.0;

/// Slack for results in f32's subnormal range, where relative bounds fail (4 subnormal ulps).
const TINY: f64 = 4.0 * 1.401_298_464_324_817e-45;

fn t<T: crate::Real>(shape: &[usize], v: &[f64]) -> Tensor<T> {
    Tensor::from_fn(shape, |i| T::from_f64(v[i]))
}

fn cfg(lr: f64, momentum: f64, dampening: f64, weight_decay: f64, nesterov: bool) -> SgdConfig {
    SgdConfig {
        lr,
        momentum,
        dampening,
        weight_decay,
        nesterov,
    }
}

/// A hand case: configuration, then p and (where there is momentum) the buffer after each of
/// the three steps from p0 = [1, -2] with gradients [0.5, 1], [-1, 0.25], [2, -0.5].
struct Hand {
    name: &'static str,
    cfg: SgdConfig,
    p: [[f64; 2]; 3],
    b: Option<[[f64; 2]; 3]>,
}

const P0: [f64; 2] = [1.0, -2.0];
const GRADS: [[f64; 2]; 3] = [[0.5, 1.0], [-1.0, 0.25], [2.0, -0.5]];

/// Worked by hand (lr 0.5 throughout; mu 0.5; dampening 0.5; wd 0.25), step by step:
fn hand_cases_table() -> Vec<Hand> {
    vec![
        // p <- p - g/2: [0.75, -2.5], [1.25, -2.625], [0.25, -2.375].
        Hand {
            name: "plain",
            cfg: cfg(0.5, 0.0, 0.0, 0.0, false),
            p: [[0.75, -2.5], [1.25, -2.625], [0.25, -2.375]],
            b: None,
        },
        // b1 = g1 = [0.5, 1] (torch's undamped start), p1 = [0.75, -2.5];
        // b2 = b1/2 + g2 = [-0.75, 0.75], p2 = p1 - b2/2 = [1.125, -2.875];
        // b3 = b2/2 + g3 = [1.625, -0.125], p3 = [0.3125, -2.8125].
        Hand {
            name: "momentum",
            cfg: cfg(0.5, 0.5, 0.0, 0.0, false),
            p: [[0.75, -2.5], [1.125, -2.875], [0.3125, -2.8125]],
            b: Some([[0.5, 1.0], [-0.75, 0.75], [1.625, -0.125]]),
        },
        // b1 = g1 undamped = [0.5, 1], p1 = [0.75, -2.5];
        // b2 = b1/2 + g2/2 = [-0.25, 0.625], p2 = [0.875, -2.8125];
        // b3 = b2/2 + g3/2 = [0.875, 0.0625], p3 = [0.4375, -2.84375].
        Hand {
            name: "dampening",
            cfg: cfg(0.5, 0.5, 0.5, 0.0, false),
            p: [[0.75, -2.5], [0.875, -2.8125], [0.4375, -2.84375]],
            b: Some([[0.5, 1.0], [-0.25, 0.625], [0.875, 0.0625]]),
        },
        // Buffers as "momentum"; the step is g + b/2:
        // d1 = [0.75, 1.5], p1 = [0.625, -2.75];
        // d2 = [-1.375, 0.625], p2 = [1.3125, -3.0625];
        // d3 = [2.8125, -0.5625], p3 = [-0.09375, -2.78125].
        Hand {
            name: "nesterov",
            cfg: cfg(0.5, 0.5, 0.0, 0.0, true),
            p: [[0.625, -2.75], [1.3125, -3.0625], [-0.09375, -2.78125]],
            b: Some([[0.5, 1.0], [-0.75, 0.75], [1.625, -0.125]]),
        },
        // G = g + p/4: G1 = [0.75, 0.5], p1 = [0.625, -2.25];
        // G2 = [-0.84375, -0.3125], p2 = [1.046875, -2.09375];
        // G3 = [2.26171875, -1.0234375], p3 = [-0.083984375, -1.58203125].
        Hand {
            name: "weight decay",
            cfg: cfg(0.5, 0.0, 0.0, 0.25, false),
            p: [
                [0.625, -2.25],
                [1.046875, -2.09375],
                [-0.083984375, -1.58203125],
            ],
            b: None,
        },
        // The decayed gradient enters the buffer: b1 = G1 = [0.75, 0.5], p1 = [0.625, -2.25];
        // G2 = g2 + p1/4 = [-0.84375, -0.3125], b2 = b1/2 + G2 = [-0.46875, -0.0625],
        // p2 = [0.859375, -2.21875]; G3 = g3 + p2/4 = [2.21484375, -1.0546875],
        // b3 = b2/2 + G3 = [1.98046875, -1.0859375], p3 = [-0.130859375, -1.67578125].
        Hand {
            name: "weight decay + momentum",
            cfg: cfg(0.5, 0.5, 0.0, 0.25, false),
            p: [
                [0.625, -2.25],
                [0.859375, -2.21875],
                [-0.130859375, -1.67578125],
            ],
            b: Some([[0.75, 0.5], [-0.46875, -0.0625], [1.98046875, -1.0859375]]),
        },
    ]
}

/// The hand cases in f32 through the entry point, bit for bit (all arithmetic exact, see the
/// module doc). The buffer starts as NaN: step 1 must overwrite it unread, and without momentum
/// it must stay as it was.
fn hand_cases<B: Backend>(b: &B) {
    for h in hand_cases_table() {
        let up = |v: &[f64]| b.upload(&t(&[2], v)).unwrap();
        let mut p = up(&P0);
        let mut buf = up(&[f64::NAN, f64::NAN]);
        for (s, g) in GRADS.iter().enumerate() {
            b.sgd_step(&mut p, &up(g), &mut buf, &h.cfg, s as u64 + 1)
                .unwrap();
            let what = format!("{} step {}", h.name, s + 1);
            assert_bits(&what, &b.download(&p).unwrap(), &t(&[2], &h.p[s]));
            let want_b = h.b.map_or([f64::NAN; 2], |bs| bs[s]);
            assert_bits(
                &format!("{what} buffer"),
                &b.download(&buf).unwrap(),
                &t(&[2], &want_b),
            );
        }
    }
}

/// The hand cases in f64 on the reference function, exactly.
#[test]
fn hand_cases_f64() {
    for h in hand_cases_table() {
        let mut p = t::<f64>(&[2], &P0);
        let mut buf = t::<f64>(&[2], &[0.0, 0.0]);
        for (s, g) in GRADS.iter().enumerate() {
            let g = t::<f64>(&[2], g);
            let mode = h.cfg.check_step(s as u64 + 1, &[2], &[2], &[2]).unwrap();
            sgd::step(&mut p, &g, &mut buf, &h.cfg, mode).unwrap();
            assert_eq!(p.data(), &h.p[s], "{} step {}", h.name, s + 1);
            if let Some(bs) = h.b {
                assert_eq!(buf.data(), &bs[s], "{} step {} buffer", h.name, s + 1);
            }
        }
    }
}

/// The state one step starts from: p, g and the buffer.
type State<'a> = (&'a Tensor, &'a Tensor, &'a Tensor);

/// One step's p and buffer on a backend against the reference's, element by element: the
/// backend's [`step_error`] bound from an exact state, plus the reference's own rounding of p
/// and b to f32 (its f64 arithmetic is far below), 1% wider for second-order terms; on `cpu`
/// exactly equal. Without momentum only p is compared. Returns the worst |err| / bound of each.
fn check_vs_reference<B: Backend>(
    be: &B,
    what: &str,
    c: &SgdConfig,
    step: u64,
    (p, g, b): State,
    (got_p, got_b): (&Tensor, &Tensor),
    (want_p, want_b): (&Tensor, &Tensor),
) -> (f64, f64) {
    let mode = c.check_step(step, p.shape(), g.shape(), b.shape()).unwrap();
    let mut worst = (0.0f64, 0.0f64);
    for i in 0..p.len() {
        let x = [p, g, b].map(|x| x.data()[i] as f64);
        let (e_p, e_b) = step_error(c, mode, (x[0], x[1], x[2]), (0.0, 0.0), U);
        let mut checks = vec![("p", got_p, want_p, e_p, &mut worst.0)];
        if mode != Mode::Plain {
            checks.push(("buffer", got_b, want_b, e_b, &mut worst.1));
        }
        for (name, got, want, e, w) in checks {
            let (got, want) = (got.data()[i], want.data()[i]);
            let tol = 1.01 * (e + U * (want as f64).abs()) + TINY;
            let err = (got as f64 - want as f64).abs();
            let exact = be.name() != "cpu" || got.to_bits() == want.to_bits();
            assert!(
                err <= tol && exact,
                "{} sgd {what} step {step}: {name}[{i}] got {got:e}, reference {want:e}, \
                 |diff| {err:e} > bound {tol:e}{}",
                be.name(),
                if exact {
                    ""
                } else {
                    " (cpu must equal the reference)"
                }
            );
            *w = w.max(err / tol);
        }
    }
    worst
}

/// Step 1 with momentum overwrites the buffer without reading it; without momentum the buffer
/// is neither read nor written (NaN contents; a buffer that is the gradient's clone).
fn buffer_semantics<B: Backend>(be: &B) {
    let mut rng = Rng::new(71);
    let shape = [7, 13];
    let p = Tensor::randn(&shape, 1.0, &mut rng);
    let g = Tensor::randn(&shape, 0.1, &mut rng);
    let nan = Tensor::full(&shape, f32::NAN);
    let zeros = Tensor::zeros(&shape);
    let configs = [
        cfg(0.1, 0.0, 0.0, 0.0, false),
        cfg(0.1, 0.0, 0.0, 0.01, false),
        cfg(0.1, 0.9, 0.0, 0.0, false),
        cfg(0.1, 0.9, 0.5, 0.01, false),
        cfg(0.1, 0.9, 0.0, 0.01, true),
    ];
    for c in &configs {
        // Step 1 (and, without momentum, any step) from a NaN buffer, against the reference
        // from a zero one.
        let steps: &[u64] = if c.momentum == 0.0 { &[1, 2] } else { &[1] };
        for &step in steps {
            let up = |x: &Tensor| be.upload(x).unwrap();
            let (mut pd, gd, mut bd) = (up(&p), up(&g), up(&nan));
            be.sgd_step(&mut pd, &gd, &mut bd, c, step).unwrap();
            let (gp, gb) = (be.download(&pd).unwrap(), be.download(&bd).unwrap());
            let (mut wp, mut wb) = (p.clone(), zeros.clone());
            ReferenceBackend
                .sgd_step(&mut wp, &g, &mut wb, c, step)
                .unwrap();
            let what = format!("{c:?} from a NaN buffer");
            check_vs_reference(be, &what, c, step, (&p, &g, &zeros), (&gp, &gb), (&wp, &wb));
            if c.momentum == 0.0 {
                assert_bits(&format!("{what}: buffer"), &gb, &nan);
            } else if c.weight_decay == 0.0 {
                // Without decay the new buffer is the gradient itself.
                assert_bits(&format!("{what}: buffer"), &gb, &g);
            }
        }
    }
    // Without momentum, a buffer that is a clone of the gradient is left alone.
    let c = cfg(0.1, 0.0, 0.0, 0.0, false);
    let (mut pd, gd) = (be.upload(&p).unwrap(), be.upload(&g).unwrap());
    let mut bd = gd.clone();
    be.sgd_step(&mut pd, &gd, &mut bd, &c, 3).unwrap();
    assert_eq!(be.download(&gd).unwrap(), g, "gradient changed");
    assert_eq!(be.download(&bd).unwrap(), g, "buffer changed");
}

/// One step on the backend and in the reference from the same random state, for every mode,
/// with Nesterov, dampening and decay, small, zero and huge gradients ([`check_vs_reference`]).
fn steps_match_reference<B: Backend>(be: &B) {
    let mut rng = Rng::new(73);
    let configs = [
        cfg(0.1, 0.0, 0.0, 0.0, false),
        cfg(0.1, 0.0, 0.0, 0.05, false),
        cfg(0.01, 0.9, 0.0, 1e-4, false),
        cfg(0.05, 0.9, 0.3, 5e-3, false),
        cfg(0.01, 0.9, 0.0, 1e-4, true),
        // A large step: the update is comparable to the parameter, so its error matters.
        cfg(1.0, 0.99, 0.0, 0.1, true),
    ];
    let mut worst = (0.0f64, 0.0f64);
    // [1], the head's 120x84 weights, an odd length, and more than two parallel chunks.
    for shape in [vec![1], vec![120, 84], vec![3, 337], vec![70_001]] {
        let p = Tensor::randn(&shape, 1.0, &mut rng);
        let b = Tensor::randn(&shape, 0.1, &mut rng);
        let grads = [
            Tensor::randn(&shape, 0.1, &mut rng),
            Tensor::zeros(&shape),
            Tensor::randn(&shape, 1e3, &mut rng),
        ];
        for c in &configs {
            for g in &grads {
                for step in [1, 2, 100] {
                    let up = |x: &Tensor| be.upload(x).unwrap();
                    let (mut pd, gd, mut bd) = (up(&p), up(g), up(&b));
                    be.sgd_step(&mut pd, &gd, &mut bd, c, step).unwrap();
                    let (gp, gb) = (be.download(&pd).unwrap(), be.download(&bd).unwrap());
                    let (mut wp, mut wb) = (p.clone(), b.clone());
                    ReferenceBackend
                        .sgd_step(&mut wp, g, &mut wb, c, step)
                        .unwrap();
                    let what = format!("{c:?} {shape:?}");
                    let w =
                        check_vs_reference(be, &what, c, step, (&p, g, &b), (&gp, &gb), (&wp, &wb));
                    worst = (worst.0.max(w.0), worst.1.max(w.1));
                }
            }
        }
    }
    eprintln!(
        "{}: sgd vs reference max |err| / bound: p {:.3}, buffer {:.3}",
        be.name(),
        worst.0,
        worst.1
    );
}

/// Updating in place must not change a clone that shares the buffer (value semantics), and a
/// gradient that is a clone of the parameter itself still reads the old values.
fn shared_buffers<B: Backend>(be: &B) {
    let mut rng = Rng::new(79);
    let p = Tensor::randn(&[5, 9], 1.0, &mut rng);
    let b = Tensor::randn(&[5, 9], 0.1, &mut rng);
    let c = cfg(0.1, 0.9, 0.0, 0.01, true);
    let mut pd = be.upload(&p).unwrap();
    let keep = pd.clone();
    let g = pd.clone();
    let mut bd = be.upload(&b).unwrap();
    let b_keep = bd.clone();
    be.sgd_step(&mut pd, &g, &mut bd, &c, 2).unwrap();
    assert_eq!(be.download(&keep).unwrap(), p, "clone of param changed");
    assert_eq!(be.download(&g).unwrap(), p, "gradient changed");
    assert_eq!(
        be.download(&b_keep).unwrap(),
        b,
        "clone of the buffer changed"
    );
    let (mut wp, mut wb) = (p.clone(), b.clone());
    ReferenceBackend
        .sgd_step(&mut wp, &p, &mut wb, &c, 2)
        .unwrap();
    let (gp, gb) = (be.download(&pd).unwrap(), be.download(&bd).unwrap());
    check_vs_reference(
        be,
        "shared buffers",
        &c,
        2,
        (&p, &p, &b),
        (&gp, &gb),
        (&wp, &wb),
    );
}

/// Every bad configuration or shape is the reference's error, word for word (it holds by
/// construction, all backends sharing [`SgdOps::sgd_step`]; kept as a guard), with the
/// fragments a user needs; a refused step changes nothing.
fn errors<B: Backend>(be: &B) {
    let r = ReferenceBackend;
    let t = |s: &[usize]| Tensor::full(s, 0.5);
    let ok = cfg(0.1, 0.9, 0.0, 1e-4, false);
    let s3 = || [vec![3], vec![3], vec![3]];
    type ErrCase<'a> = (&'a str, [Vec<usize>; 3], SgdConfig, u64, &'a [&'a str]);
    let cases: Vec<ErrCase> = vec![
        (
            "negative lr",
            s3(),
            SgdConfig { lr: -1.0, ..ok },
            1,
            &["sgd", "invalid configuration", "lr: -1.0"],
        ),
        (
            "NaN lr",
            s3(),
            SgdConfig { lr: f64::NAN, ..ok },
            1,
            &["sgd", "lr: NaN"],
        ),
        (
            "negative momentum",
            s3(),
            SgdConfig {
                momentum: -0.5,
                ..ok
            },
            1,
            &["sgd", "momentum: -0.5"],
        ),
        (
            "dampening > 1",
            s3(),
            SgdConfig {
                dampening: 1.5,
                ..ok
            },
            1,
            &["sgd", "dampening: 1.5"],
        ),
        (
            "negative weight decay",
            s3(),
            SgdConfig {
                weight_decay: -1e-4,
                ..ok
            },
            1,
            &["sgd", "weight_decay: -0.0001"],
        ),
        (
            "infinite weight decay",
            s3(),
            SgdConfig {
                weight_decay: f64::INFINITY,
                ..ok
            },
            1,
            &["sgd", "weight_decay: inf"],
        ),
        (
            "nesterov without momentum",
            s3(),
            SgdConfig {
                momentum: 0.0,
                nesterov: true,
                ..ok
            },
            1,
            &[
                "sgd",
                "Nesterov momentum requires a momentum and zero dampening",
            ],
        ),
        (
            "nesterov with dampening",
            s3(),
            SgdConfig {
                dampening: 0.1,
                nesterov: true,
                ..ok
            },
            1,
            &["sgd", "Nesterov", "dampening: 0.1"],
        ),
        ("step 0", s3(), ok, 0, &["sgd", "step counts from 1"]),
        (
            "grad shape",
            [vec![3], vec![4], vec![3]],
            ok,
            1,
            &["sgd", "gradient", "[4]", "[3]"],
        ),
        (
            "buffer shape",
            [vec![2, 3], vec![2, 3], vec![3, 2]],
            ok,
            2,
            &["sgd", "momentum buffer", "[3, 2]", "[2, 3]"],
        ),
        (
            "buffer shape without momentum",
            [vec![3], vec![3], vec![1, 3]],
            SgdConfig {
                momentum: 0.0,
                ..ok
            },
            1,
            &["sgd", "momentum buffer", "[1, 3]", "[3]"],
        ),
    ];
    for (what, [ps, gs, bs], c, step, fragments) in cases {
        let (mut p, g, mut b) = (t(&ps), t(&gs), t(&bs));
        let up = |x: &Tensor| be.upload(x).unwrap();
        let (mut pd, gd, mut bd) = (up(&p), up(&g), up(&b));
        let got = be.sgd_step(&mut pd, &gd, &mut bd, &c, step).unwrap_err();
        let want = r.sgd_step(&mut p, &g, &mut b, &c, step).unwrap_err();
        assert_eq!(got.to_string(), want.to_string(), "{what}");
        fails::<()>(Err(got), fragments);
        assert_eq!(be.download(&pd).unwrap(), t(&ps), "{what}: param changed");
        assert_eq!(be.download(&bd).unwrap(), t(&bs), "{what}: buffer changed");
    }
    // torch's defaults and the edges of the valid ranges are accepted.
    for c in [
        SgdConfig::default(),
        cfg(0.0, 0.0, 1.0, 0.0, false),
        cfg(0.1, 0.9, 0.0, 0.0, true),
    ] {
        c.validate(1).unwrap();
    }
}

crate::backend_suite! {
    every: [hand_cases, matches_torch, buffer_semantics, errors],
    fast: [steps_match_reference, shared_buffers],
    cuda: [],
}
