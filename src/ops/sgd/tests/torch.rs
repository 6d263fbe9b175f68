//! sgd against PyTorch: `torch.optim.SGD` trajectories from a committed fixture, each element
//! held to the first-order rounding bound of one step ([`step_error`]) propagated through the
//! steps. Split from `tests.rs` (hand cases, reference agreement, buffer rules, errors).

use super::*;

/// First-order worst-case bounds on the errors of one step's new p and buffer, for an
/// implementation rounding each operation with unit `rho`, starting from a state whose p and b
/// err by at most `e_p`, `e_b`; (p, g, b) are the state's values (the exact ones up to
/// first-order terms). The costliest implementation of each line is counted:
///   G = g + wd p (wd != 0): the rounding of wd, the product's, the add's (or one fma):
///       e_G = wd e_p + rho (|wd p| + |G|)
///   B = G at step 1, stored rounded:      e_B = e_G + rho |B|
///     = mu b + (1 - damp) G after it: the roundings of mu, of 1 - damp, of (1 - damp) G and of
///       the sum (fma): e_B = mu e_b + (1 - damp) e_G + rho (|mu b| + 2 |(1 - damp) G| + |B|)
///   D = G + mu B (Nesterov), the rounding of mu and the fma: e_D = e_G + mu e_B
///       + rho (|mu B| + |D|);  D = B: e_D = e_B;  without momentum D = G: e_D = e_G
///   P = p - lr D, the rounding of lr and the fma:  e_P = e_p + lr e_D + rho (|lr D| + |P|)
/// This covers the CUDA kernel in f32 (every scalar rounded to float, one fma per line), the
/// reference and `cpu` in f32 (f64 arithmetic, whose errors the f32 terms dwarf, then p and b
/// rounded to f32 once) and torch in f64 (`add` with `alpha`, `mul_` then `add_`: at most two
/// roundings per line) alike. Without momentum the buffer is untouched: e_b passes through.
pub(super) fn step_error(
    c: &SgdConfig,
    mode: Mode,
    (p, g, b): (f64, f64, f64),
    (e_p, e_b): (f64, f64),
    rho: f64,
) -> (f64, f64) {
    let (lr, mu, wd, omd) = (c.lr, c.momentum, c.weight_decay, 1.0 - c.dampening);
    let gg = g + wd * p;
    let e_g = if wd != 0.0 {
        wd * e_p + rho * ((wd * p).abs() + gg.abs())
    } else {
        0.0
    };
    let (d, e_d, e_b) = match mode {
        Mode::Plain => (gg, e_g, e_b),
        Mode::FirstMomentum | Mode::Momentum => {
            let (bb, e_bb) = if mode == Mode::FirstMomentum {
                (gg, e_g + rho * gg.abs())
            } else {
                let bb = mu * b + omd * gg;
                let e = mu * e_b
                    + omd * e_g
                    + rho * ((mu * b).abs() + 2.0 * (omd * gg).abs() + bb.abs());
                (bb, e)
            };
            if c.nesterov {
                let d = gg + mu * bb;
                (d, e_g + mu * e_bb + rho * ((mu * bb).abs() + d.abs()), e_bb)
            } else {
                (bb, e_bb, e_bb)
            }
        }
    };
    let pp = p - lr * d;
    (e_p + lr * e_d + rho * ((lr * d).abs() + pp.abs()), e_b)
}

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/sgd_torch.safetensors"
);
const FIXTURE_CONFIGS: [&str; 7] = [
    "plain",
    "weight_decay",
    "momentum",
    "dampening",
    "nesterov",
    "momentum_wd",
    "nesterov_wd",
];

/// One configuration's torch trajectory: the configuration, p0, the gradients, and p and the
/// buffer after each step.
struct TorchRun {
    name: &'static str,
    cfg: SgdConfig,
    shape: Vec<usize>,
    p0: Vec<f64>,
    grads: Vec<Vec<f64>>,
    params: Vec<Vec<f64>>,
    bufs: Option<Vec<Vec<f64>>>,
}

fn torch_runs() -> Vec<TorchRun> {
    let mut f = fixture_file_f64(std::path::Path::new(FIXTURE));
    let mut take = |name: &str| {
        f.remove(name)
            .unwrap_or_else(|| panic!("{name} not in {FIXTURE}"))
    };
    let (shape, p0) = take("p0");
    let grads: Vec<Vec<f64>> = (1..=5).map(|s| take(&format!("grad{s}")).1).collect();
    let runs = FIXTURE_CONFIGS
        .iter()
        .map(|&name| {
            let c = take(&format!("{name}/config")).1;
            let cfg = cfg(c[0], c[1], c[2], c[3], c[4] != 0.0);
            let params = (1..=5)
                .map(|s| take(&format!("{name}/param{s}")).1)
                .collect();
            let bufs = (cfg.momentum != 0.0)
                .then(|| (1..=5).map(|s| take(&format!("{name}/buf{s}")).1).collect());
            TorchRun {
                name,
                cfg,
                shape: shape.clone(),
                p0: p0.clone(),
                grads: grads.clone(),
                params,
                bufs,
            }
        })
        .collect();
    // Every tensor of the fixture is checked: a configuration added to the tool must be added
    // here too.
    assert!(
        f.is_empty(),
        "{FIXTURE}: tensors no test reads: {:?}",
        f.keys()
    );
    runs
}

/// Worst error of a trajectory check, as a fraction of its bound.
#[derive(Default)]
struct Worst {
    p: f64,
    b: f64,
}

/// Runs `run` through `step` (one update of p and the buffer, as f64 vectors, for a step
/// number) and compares p and the buffer after every step with torch's. The bound of each
/// element is [`step_error`] propagated through the steps, once with `rho` (the implementation
/// under test) and once with f64's unit (torch), 1% wider for second-order terms, plus TINY.
fn check_trajectory(
    what: &str,
    run: &TorchRun,
    rho: f64,
    mut step: impl FnMut(&[f64], u64) -> (Vec<f64>, Vec<f64>),
    worst: &mut Worst,
) {
    let n = run.p0.len();
    let (mut e_ours, mut e_torch) = (vec![(0.0, 0.0); n], vec![(0.0, 0.0); n]);
    let (mut p, mut b) = (run.p0.clone(), vec![0.0; n]);
    for (s, g) in run.grads.iter().enumerate() {
        let step_no = s as u64 + 1;
        let mode = run.cfg.check_step(step_no, &[n], &[n], &[n]).unwrap();
        for i in 0..n {
            let x = (p[i], g[i], b[i]);
            e_ours[i] = step_error(&run.cfg, mode, x, e_ours[i], rho);
            e_torch[i] = step_error(&run.cfg, mode, x, e_torch[i], U64);
        }
        let (gp, gb) = step(g, step_no);
        p.clone_from(&run.params[s]);
        if let Some(bufs) = &run.bufs {
            b.clone_from(&bufs[s]);
        }
        for i in 0..n {
            let tol_p = 1.01 * (e_ours[i].0 + e_torch[i].0) + TINY;
            let tol_b = 1.01 * (e_ours[i].1 + e_torch[i].1) + TINY;
            let mut checks = vec![("p", gp[i], p[i], tol_p, &mut worst.p)];
            if run.bufs.is_some() {
                checks.push(("buffer", gb[i], b[i], tol_b, &mut worst.b));
            }
            for (name, got, want, tol, w) in checks {
                let err = (got - want).abs();
                assert!(
                    err <= tol,
                    "{what} {} step {step_no}: {name}[{i}] got {got:e}, torch {want:e}, \
                     |diff| {err:e} > bound {tol:e}",
                    run.name
                );
                *w = w.max(err / tol);
            }
        }
    }
}

/// torch's trajectories through the entry point, in f32, from torch's (f32-exact) p0 and
/// gradients; the buffer starts as NaN, unread by step 1 and untouched without momentum.
pub(super) fn matches_torch<B: Backend>(be: &B) {
    let mut worst = Worst::default();
    for run in torch_runs() {
        let up = |v: &[f64]| be.upload(&t(&run.shape, v)).unwrap();
        let mut p = up(&run.p0);
        let nan = vec![f64::NAN; run.p0.len()];
        let mut buf = up(&nan);
        let to_f64 = |x: &B::Tensor| -> Vec<f64> {
            let x = be.download(x).unwrap();
            x.data().iter().map(|&v| v as f64).collect()
        };
        check_trajectory(
            be.name(),
            &run,
            U,
            |g, s| {
                be.sgd_step(&mut p, &up(g), &mut buf, &run.cfg, s).unwrap();
                (to_f64(&p), to_f64(&buf))
            },
            &mut worst,
        );
        if run.bufs.is_none() {
            let nan = t(&run.shape, &nan);
            assert_bits(run.name, &be.download(&buf).unwrap(), &nan);
        }
    }
    eprintln!(
        "{}: sgd vs torch max |err| / bound: p {:.3}, buffer {:.3}",
        be.name(),
        worst.p,
        worst.b
    );
}

/// torch's trajectories on the reference function in f64: both sides round in f64.
#[test]
fn matches_torch_f64() {
    let mut worst = Worst::default();
    for run in torch_runs() {
        let mut p = t::<f64>(&run.shape, &run.p0);
        let mut buf = Tensor::<f64>::zeros(&run.shape);
        check_trajectory(
            "reference f64",
            &run,
            U64,
            |g, s| {
                let g = t::<f64>(&run.shape, g);
                let mode = run
                    .cfg
                    .check_step(s, p.shape(), g.shape(), buf.shape())
                    .unwrap();
                sgd::step(&mut p, &g, &mut buf, &run.cfg, mode).unwrap();
                (p.data().to_vec(), buf.data().to_vec())
            },
            &mut worst,
        );
    }
    eprintln!(
        "reference f64: sgd vs torch max |err| / bound: p {:.3}, buffer {:.3}",
        worst.p, worst.b
    );
}
