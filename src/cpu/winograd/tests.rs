//! Winograd F(4x4, 3x3) against the f64 reference convolution, element by element, within the
//! bound derived in mod.rs: |y - exact| <= 1.01 (C + 22) u (Yabs + |bias| + |residual|) +
//! u |exact| (22 = the 20 transform and product roundings plus the bias and residual adds;
//! u |exact| for the final rounding, as in `testing::within_bound`), Yabs computed here in f64
//! from the absolute values of the transforms and data. Shapes cover the edge cases of the
//! tiling: maps not divisible by 4, 1x1 and 2x2 maps, paddings 0, 1, 2 and unequal ones, batch
//! 1 and several, odd channel counts, output channels not a multiple of the 8-row panels,
//! blocks and output-channel splits of every kind, every epilogue.

use super::weights::{ALPHA, AT, BT, G, POINTS, TILE, filter_tile};
use super::{Epilogue, forward_split, plan, supported};
use crate::ops::conv2d::{Conv2dParams, ConvGeom, geometry, reference as conv};
use crate::{Rng, Tensor};

const U: f64 = 1.0 / (1u64 << 24) as f64;

fn f64t(t: &Tensor, abs: bool) -> Tensor<f64> {
    Tensor::from_fn(t.shape(), |i| {
        let v = t.data()[i] as f64;
        if abs { v.abs() } else { v }
    })
}

/// Yabs of mod.rs: sum over c of |A|^T ((|G| |g| |G|^T) . (|B|^T |d| |B|)) |A| per output.
pub(crate) fn winograd_abs(x: &Tensor, w: &Tensor, g: &ConvGeom) -> Vec<f64> {
    let abs_g: Vec<[f64; 3]> = G.iter().map(|r| r.map(f64::abs)).collect();
    let abs_b: Vec<[f64; ALPHA]> = BT.iter().map(|r| r.map(|v| v.abs() as f64)).collect();
    let abs_a: Vec<[f64; ALPHA]> = AT.iter().map(|r| r.map(|v| v.abs() as f64)).collect();
    // |G| |g| |G|^T per (o, c).
    let uabs: Vec<[f64; POINTS]> = (0..g.o * g.c)
        .map(|oc| {
            let f = &w.data()[oc * 9..][..9];
            let mut u = [0.0; POINTS];
            for xi in 0..ALPHA {
                for nu in 0..ALPHA {
                    for a in 0..3 {
                        for b in 0..3 {
                            u[xi * ALPHA + nu] +=
                                abs_g[xi][a] * (f[a * 3 + b] as f64).abs() * abs_g[nu][b];
                        }
                    }
                }
            }
            u
        })
        .collect();
    let mut y = vec![0.0; g.n * g.o * g.ho * g.wo];
    for n in 0..g.n {
        for ty in (0..g.ho).step_by(TILE) {
            for tx in (0..g.wo).step_by(TILE) {
                let vabs: Vec<[f64; POINTS]> = (0..g.c)
                    .map(|c| {
                        let d = |p: usize, q: usize| {
                            let (iy, ix) = (
                                (ty + p) as isize - g.ph as isize,
                                (tx + q) as isize - g.pw as isize,
                            );
                            if iy < 0 || ix < 0 || iy as usize >= g.h || ix as usize >= g.w {
                                0.0
                            } else {
                                let i = ((n * g.c + c) * g.h + iy as usize) * g.w + ix as usize;
                                (x.data()[i] as f64).abs()
                            }
                        };
                        let mut v = [0.0; POINTS];
                        for xi in 0..ALPHA {
                            for nu in 0..ALPHA {
                                for p in 0..ALPHA {
                                    for q in 0..ALPHA {
                                        v[xi * ALPHA + nu] += abs_b[xi][p] * d(p, q) * abs_b[nu][q];
                                    }
                                }
                            }
                        }
                        v
                    })
                    .collect();
                for o in 0..g.o {
                    let mut m = [0.0; POINTS];
                    for (c, v) in vabs.iter().enumerate() {
                        for (k, mk) in m.iter_mut().enumerate() {
                            *mk += uabs[o * g.c + c][k] * v[k];
                        }
                    }
                    for i in 0..TILE.min(g.ho - ty) {
                        for j in 0..TILE.min(g.wo - tx) {
                            let mut s = 0.0;
                            for xi in 0..ALPHA {
                                for nu in 0..ALPHA {
                                    s += abs_a[i][xi] * m[xi * ALPHA + nu] * abs_a[j][nu];
                                }
                            }
                            y[((n * g.o + o) * g.ho + ty + i) * g.wo + tx + j] = s;
                        }
                    }
                }
            }
        }
    }
    y
}

/// The transforms compute the correlation exactly (f64, random 6x6 input tiles and filters).
#[test]
fn transforms_are_a_correlation() {
    let mut rng = Rng::new(5);
    for _ in 0..20 {
        let d: Vec<f64> = (0..POINTS).map(|_| rng.normal()).collect();
        let f: Vec<f64> = (0..9).map(|_| rng.normal()).collect();
        let u = filter_tile(&f);
        let mut v = [0.0; POINTS];
        for xi in 0..ALPHA {
            for nu in 0..ALPHA {
                for p in 0..ALPHA {
                    for q in 0..ALPHA {
                        v[xi * ALPHA + nu] +=
                            BT[xi][p] as f64 * d[p * ALPHA + q] * BT[nu][q] as f64;
                    }
                }
            }
        }
        for i in 0..TILE {
            for j in 0..TILE {
                let mut got = 0.0;
                for xi in 0..ALPHA {
                    for nu in 0..ALPHA {
                        let m = u[xi * ALPHA + nu] * v[xi * ALPHA + nu];
                        got += AT[i][xi] as f64 * m * AT[j][nu] as f64;
                    }
                }
                let want: f64 = (0..3)
                    .flat_map(|a| (0..3).map(move |b| (a, b)))
                    .map(|(a, b)| f[a * 3 + b] * d[(i + a) * ALPHA + j + b])
                    .sum();
                assert!((got - want).abs() < 1e-12, "({i}, {j}): {got} vs {want}");
            }
        }
    }
}

/// The worst-case amplification stated in mod.rs: per dimension, sum over taps and pixels of
/// |A^T[i, .]| |G[., a]| |B^T[., p]|, divided by the 3 terms of the direct sum.
#[test]
fn transforms_amplification() {
    let per_row: Vec<f64> = (0..TILE)
        .map(|i| {
            let s: f64 = (0..ALPHA)
                .map(|xi| {
                    let g: f64 = G[xi].iter().map(|v| v.abs()).sum();
                    let b: f64 = BT[xi].iter().map(|v| v.abs() as f64).sum();
                    (AT[i][xi] as f64).abs() * g * b
                })
                .sum();
            s / 3.0
        })
        .collect();
    let want = [16.0 / 3.0, 17.0 / 3.0, 8.0, 16.0];
    for (got, want) in per_row.iter().zip(want) {
        assert!((got - want).abs() < 1e-12, "{per_row:?}");
    }
}

struct Case {
    x: [usize; 4],
    o: usize,
    pad: (usize, usize),
}

/// Runs one case with every epilogue and the given splits; returns the largest
/// |error| / (u D) over the outputs without epilogue, D = sum |w| |x| (the direct
/// convolution's scale), for Winograd and for the direct kernel. `relu_input`: inputs
/// max(0, N(0, 1)) and weights N(0, 2 / 9C) as in a ResNet's layers after a ReLU (He init);
/// otherwise both N(0, 1).
fn check(case: &Case, splits: &[(usize, usize)], rng: &mut Rng, relu_input: bool) -> (f64, f64) {
    let c = case.x[1];
    let p = Conv2dParams {
        stride: (1, 1),
        padding: case.pad,
    };
    let g = geometry(&case.x, &[case.o, c, 3, 3], &p).unwrap();
    let mut x: Tensor = Tensor::randn(&case.x, 1.0, rng);
    if relu_input {
        x = Tensor::from_fn(x.shape(), |i| x.data()[i].max(0.0));
    }
    let wstd = if relu_input {
        (2.0 / (9 * c) as f64).sqrt()
    } else {
        1.0
    };
    let wt: Tensor = Tensor::randn(&[case.o, c, 3, 3], wstd, rng);
    let bias = Tensor::randn(&[case.o], 1.0, rng);
    let res = Tensor::randn(&g.y_shape(), 1.0, rng);
    let exact = conv::forward(&f64t(&x, false), &f64t(&wt, false), None, &g).unwrap();
    let direct_abs = conv::forward(&f64t(&x, true), &f64t(&wt, true), None, &g).unwrap();
    let yabs = winograd_abs(&x, &wt, &g);
    let k = (c + 22) as f64 * 1.01 * U;
    let ratio = |i: usize, v: f32| {
        (v as f64 - exact.data()[i]).abs() / (U * direct_abs.data()[i]).max(1e-300)
    };
    let direct = crate::cpu::winograd::with_winograd(false, || {
        use crate::ops::prelude::*;
        crate::CpuBackend.conv2d(&x, &wt, None, &p).unwrap()
    });
    let direct_worst = direct
        .data()
        .iter()
        .enumerate()
        .map(|(i, &v)| ratio(i, v))
        .fold(0.0, f64::max);
    let mut worst: f64 = 0.0;
    for &(threads, tb) in splits {
        for (use_bias, use_res, relu) in [
            (false, false, false),
            (true, false, false),
            (false, true, false),
            (false, false, true),
            (true, true, true),
        ] {
            let e = Epilogue {
                bias: use_bias.then_some(bias.data()),
                residual: use_res.then_some(res.data()),
                relu,
            };
            let got = forward_split(&x, &wt, &g, e, threads, tb);
            assert_eq!(got.shape(), g.y_shape());
            let plane = g.ho * g.wo;
            for (i, &v) in got.data().iter().enumerate() {
                let o = (i / plane) % g.o;
                let (b, r) = (
                    if use_bias { bias.data()[o] as f64 } else { 0.0 },
                    if use_res { res.data()[i] as f64 } else { 0.0 },
                );
                let mut want = exact.data()[i] + b + r;
                let pre_relu = want;
                if relu {
                    want = want.max(0.0);
                }
                let tol = k * (yabs[i] + b.abs() + r.abs()) + U * pre_relu.abs() + 1e-30;
                let err = (v as f64 - want).abs();
                assert!(
                    err <= tol,
                    "x{:?} o {} pad {:?} threads {threads} tb {tb} bias {use_bias} residual \
                     {use_res} relu {relu}: element {i}: {v} vs {want}, |diff| {err:e} > {tol:e}",
                    case.x,
                    case.o,
                    case.pad
                );
                if !use_bias && !use_res && !relu {
                    worst = worst.max(ratio(i, v));
                }
            }
        }
    }
    (worst, direct_worst)
}

/// Every edge case of the tiling and the work split, against the f64 reference.
#[test]
fn matches_reference_on_edge_cases() {
    if !supported(&geometry(&[1, 1, 3, 3], &[1, 1, 3, 3], &Conv2dParams::square(1, 1)).unwrap()) {
        eprintln!("no AVX-512F: the Winograd path is never taken on this CPU");
        return;
    }
    let mut rng = Rng::new(29);
    let cases = [
        Case {
            x: [1, 3, 1, 1],
            o: 5,
            pad: (1, 1),
        },
        Case {
            x: [2, 5, 2, 2],
            o: 9,
            pad: (1, 1),
        },
        Case {
            x: [1, 7, 5, 7],
            o: 8,
            pad: (1, 1),
        },
        Case {
            x: [3, 5, 9, 9],
            o: 17,
            pad: (1, 1),
        },
        Case {
            x: [2, 4, 13, 11],
            o: 16,
            pad: (1, 1),
        },
        Case {
            x: [1, 6, 8, 10],
            o: 7,
            pad: (0, 0),
        },
        Case {
            x: [2, 3, 6, 7],
            o: 4,
            pad: (2, 2),
        },
        Case {
            x: [1, 5, 7, 6],
            o: 11,
            pad: (1, 0),
        },
        Case {
            x: [2, 9, 3, 12],
            o: 12,
            pad: (0, 2),
        },
        Case {
            x: [4, 33, 7, 7],
            o: 40,
            pad: (1, 1),
        },
        Case {
            x: [1, 16, 23, 17],
            o: 24,
            pad: (1, 1),
        },
    ];
    // (threads, largest block): one task; blocks of 16 tiles; output channels split in 2 and 5.
    let splits = [(1, 256), (2, 16), (3, 16), (2, 256), (5, 256)];
    for case in &cases {
        let (wino, direct) = check(case, &splits, &mut rng, false);
        eprintln!(
            "x{:?} o {}: max |err| / (u D) {wino:.1} (direct {direct:.1})",
            case.x, case.o
        );
    }
}

/// Every ResNet50 3x3 stride-1 shape (batch 1, and 2 for 7x7 maps: tiles of two images in one
/// block), random N(0, 1) data and ResNet-like data (post-ReLU inputs, He-initialised weights):
/// within the derived bound per element, and the measured max |err| / (u D) (D = sum |w| |x|,
/// the direct convolution's scale) at most 100 (measured: up to 60, README), while the direct
/// kernel's is printed alongside for scale.
#[test]
fn resnet_shapes_error() {
    if !supported(&geometry(&[1, 1, 3, 3], &[1, 1, 3, 3], &Conv2dParams::square(1, 1)).unwrap()) {
        return;
    }
    let mut rng = Rng::new(31);
    for (n, c, h) in [
        (1, 64, 56),
        (1, 128, 28),
        (1, 256, 14),
        (1, 512, 7),
        (2, 512, 7),
    ] {
        for relu_input in [false, true] {
            let case = Case {
                x: [n, c, h, h],
                o: c,
                pad: (1, 1),
            };
            let (wino, direct) = check(&case, &[(2, 256)], &mut rng, relu_input);
            eprintln!(
                "n {n} c {c} {h}x{h} relu-like {relu_input}: max |err| / (u D): winograd \
                 {wino:.1}, direct {direct:.1}"
            );
            assert!(wino <= 100.0, "{wino}");
        }
    }
}

/// The work split covers every tile and channel once, in blocks of multiples of 16 tiles.
#[test]
fn plan_covers_everything() {
    let g = geometry(&[3, 8, 23, 17], &[20, 8, 3, 3], &Conv2dParams::square(1, 1)).unwrap();
    let count: usize = 3 * 6 * 5;
    for threads in 1..6 {
        for tb in [16, 32, 48, 256] {
            let mut seen = vec![0u8; count.div_ceil(16) * 16 * g.o];
            for (t0, len, o0, o1) in plan(&g, count, threads, tb) {
                assert!(len.is_multiple_of(16) && len <= tb && o0.is_multiple_of(8) && o1 <= g.o);
                for t in t0..t0 + len {
                    for o in o0..o1 {
                        seen[t * g.o + o] += 1;
                    }
                }
            }
            assert!(
                seen[..count * g.o].iter().all(|&s| s == 1),
                "{threads} {tb}"
            );
        }
    }
}
