//! Channels-last Winograd against the f64 reference convolution, element by element, within
//! the bound of `cpu::winograd` (mod.rs): |y - exact| <= 1.01 (C + 22) u (Yabs + |bias| +
//! |residual|) + u |exact|, Yabs from that module's tests. The tiling's edge cases (maps not
//! divisible by 4, 1x1 and 2x2 maps, paddings 0-2 and unequal ones, several images), channels
//! not a multiple of 16 or of the 64-channel panels, C over one K block, every epilogue, and
//! work splits of one task, several tile blocks and split panels.

use super::Epi;
use super::layout::{nchw_to_nhwc, nhwc_to_nchw};
use super::winograd::{Transformed, forward_split};
use crate::cpu::winograd::tests::winograd_abs;
use crate::ops::conv2d::{Conv2dParams, geometry, reference as conv};
use crate::{Rng, Tensor};

const U: f64 = 1.0 / (1u64 << 24) as f64;

#[test]
fn matches_reference_on_edge_cases() {
    if !crate::cpu::simd::avx512() {
        eprintln!("no AVX-512F: the channels-last Winograd path never runs here");
        return;
    }
    let mut rng = Rng::new(31);
    // (x NCHW, o, padding)
    let cases: [([usize; 4], usize, (usize, usize)); 10] = [
        ([1, 3, 1, 1], 5, (1, 1)),
        ([2, 5, 2, 2], 9, (1, 1)),
        ([3, 17, 9, 9], 70, (1, 1)),
        ([2, 4, 13, 11], 16, (1, 1)),
        ([1, 6, 8, 10], 7, (0, 0)),
        ([2, 3, 6, 7], 4, (2, 2)),
        ([1, 5, 7, 6], 11, (1, 0)),
        ([2, 9, 3, 12], 12, (0, 2)),
        ([4, 33, 7, 7], 130, (1, 1)),
        ([1, 300, 5, 6], 20, (1, 1)),
    ];
    for (xs, o, pad) in cases {
        let c = xs[1];
        let p = Conv2dParams {
            stride: (1, 1),
            padding: pad,
        };
        let g = geometry(&xs, &[o, c, 3, 3], &p).unwrap();
        let x: Tensor = Tensor::randn(&xs, 1.0, &mut rng);
        let w: Tensor = Tensor::randn(&[o, c, 3, 3], 1.0, &mut rng);
        let bias = Tensor::randn(&[o], 1.0, &mut rng);
        let res = Tensor::randn(&g.y_shape(), 1.0, &mut rng);
        let f64t = |t: &Tensor| Tensor::<f64>::from_fn(t.shape(), |i| t.data()[i] as f64);
        let exact = conv::forward(&f64t(&x), &f64t(&w), None, &g).unwrap();
        let yabs = winograd_abs(&x, &w, &g);
        let u = Transformed::new(w.data(), o, c);
        let xc = nchw_to_nhwc(x.data(), xs, (0, 0));
        let res_c = nchw_to_nhwc(res.data(), g.y_shape(), (0, 0));
        let k = (c + 22) as f64 * 1.01 * U;
        // (threads the split is made for, tiles per block at most)
        for (threads, tb) in [(1, 1 << 20), (1, 6), (2, 12), (4, 1 << 20), (3, 18)] {
            for (use_bias, use_res, relu) in [
                (false, false, false),
                (true, false, true),
                (false, true, false),
                (true, true, true),
            ] {
                let e = Epi {
                    bias: use_bias.then_some(bias.data()),
                    residual: use_res.then_some(&res_c[..]),
                    relu,
                };
                let got = nhwc_to_nchw(&forward_split(&xc, &g, &u, e, threads, tb), g.y_shape());
                let plane = g.ho * g.wo;
                for (i, &v) in got.iter().enumerate() {
                    let oi = (i / plane) % o;
                    let b = if use_bias {
                        bias.data()[oi] as f64
                    } else {
                        0.0
                    };
                    let r = if use_res { res.data()[i] as f64 } else { 0.0 };
                    let pre = exact.data()[i] + b + r;
                    let want_v = if relu { pre.max(0.0) } else { pre };
                    let tol = k * (yabs[i] + b.abs() + r.abs()) + U * pre.abs() + 1e-30;
                    let err = (v as f64 - want_v).abs();
                    assert!(
                        err <= tol,
                        "x{xs:?} o {o} pad {pad:?} threads {threads} tb {tb} bias {use_bias} res \
                         {use_res} relu {relu}: element {i}: {v} vs {want_v}, |diff| {err:e} > \
                         {tol:e}"
                    );
                }
            }
        }
    }
}
