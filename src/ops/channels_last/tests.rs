//! Channels-last inference against the NCHW ops: every convolution element within the
//! summation bound of [`within_bound`] of the reference backend's f64 sums (K terms in another
//! order), the poolings and layout changes bit for bit, results independent of the thread
//! count, and refusals where the backend has no channels-last path.

use super::ChannelsLastKernels;
use crate::cpu::nhwc::layout;
use crate::ops::conv2d::{Conv2dParams, geometry};
use crate::ops::pool::Pool2dParams;
use crate::ops::prelude::*;
use crate::testing::{abs, assert_bits, fails, within_bound};
use crate::{CpuBackend, ReferenceBackend, Rng, Tensor};

fn nhwc(t: &Tensor) -> Tensor {
    let s = t.shape();
    let d = [s[0], s[1], s[2], s[3]];
    Tensor::new(
        &[s[0], s[2], s[3], s[1]],
        layout::nchw_to_nhwc(t.data(), d, (0, 0)),
    )
    .unwrap()
}

fn cpu_has_it() -> bool {
    let on = CpuBackend.channels_last();
    if !on {
        eprintln!("no AVX-512 here (or SKINENGINE_CHANNELS_LAST=0): channels-last does not run");
    }
    on
}

/// (input NCHW, weight, params): the stem (C = 3, row taps over explicit padding), pointwise,
/// strided pointwise, 3x3 with padding at both strides, K over several blocks with a tap split
/// across two (C = 300), output channels not a multiple of 16 or 64, pixel counts not a
/// multiple of the 6-row tile, a 1x1 map, asymmetric stride and padding.
pub(super) fn cases() -> Vec<([usize; 4], [usize; 4], Conv2dParams)> {
    let asym = Conv2dParams {
        stride: (2, 1),
        padding: (0, 1),
    };
    vec![
        ([2, 3, 23, 19], [20, 3, 7, 7], Conv2dParams::square(2, 3)),
        ([3, 64, 7, 7], [70, 64, 1, 1], Conv2dParams::square(1, 0)),
        ([2, 40, 9, 9], [130, 40, 1, 1], Conv2dParams::square(2, 0)),
        ([2, 24, 8, 7], [64, 24, 3, 3], Conv2dParams::square(1, 1)),
        ([2, 16, 9, 10], [33, 16, 3, 3], Conv2dParams::square(2, 1)),
        ([1, 300, 5, 4], [17, 300, 3, 3], Conv2dParams::square(1, 1)),
        ([4, 32, 1, 1], [8, 32, 1, 1], Conv2dParams::square(1, 0)),
        ([1, 5, 6, 7], [9, 5, 3, 2], asym),
        ([2, 2, 5, 5], [3, 2, 1, 3], Conv2dParams::square(1, 0)),
        // A last tile of 1 pixel (ResNet50's 7x7 maps at batch 1: 49 = 8 x 6 + 1) and of 5:
        // with the cases above, every tile height the kernel has (1 to 6 rows) runs.
        ([1, 64, 7, 7], [40, 64, 3, 3], Conv2dParams::square(1, 1)),
        ([1, 8, 1, 11], [16, 8, 1, 1], Conv2dParams::square(1, 0)),
    ]
}

#[test]
fn convolution_matches_the_reference_with_every_epilogue() {
    if !cpu_has_it() {
        return;
    }
    let (r, c) = (ReferenceBackend, CpuBackend);
    let mut rng = Rng::new(21);
    for (xs, ws, p) in cases() {
        let g = geometry(&xs, &ws, &p).unwrap();
        let x = Tensor::randn(&xs, 1.0, &mut rng);
        let w = Tensor::randn(&ws, 0.3, &mut rng);
        let bias = Tensor::randn(&[ws[0]], 1.0, &mut rng);
        let res = Tensor::randn(&g.y_shape(), 1.0, &mut rng);
        for (with_bias, with_res, relu) in [
            (false, false, false),
            (true, false, true),
            (true, true, true),
            (false, true, false),
        ] {
            let (b, rs) = (with_bias.then_some(&bias), with_res.then_some(&res));
            let rs_cl = rs.map(nhwc);
            let got = c
                .conv2d_fused_cl(&nhwc(&x), &w, b, rs_cl.as_ref(), relu, &p)
                .unwrap();
            let want = r.conv2d_fused(&x, &w, b, rs, relu, &p).unwrap();
            let mut absref = r
                .conv2d(&abs(&x), &abs(&w), b.map(abs).as_ref(), &p)
                .unwrap();
            if with_res {
                absref = r.add(&absref, &abs(&res)).unwrap();
            }
            let k = g.c * g.kh * g.kw + 2;
            let what = format!("{xs:?} {ws:?} {p:?} bias {with_bias} res {with_res} relu {relu}");
            within_bound(&what, &got, &nhwc(&want), &nhwc(&absref), k);
        }
    }
}

/// Each output element is summed by one kernel call per K block in a fixed order, whatever the
/// split of the work: one thread and the default pool give the same bits.
#[test]
fn results_do_not_depend_on_the_thread_count() {
    if !cpu_has_it() {
        return;
    }
    let c = CpuBackend;
    let mut rng = Rng::new(3);
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let three = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    for (xs, ws, p) in cases() {
        let x = nhwc(&Tensor::randn(&xs, 1.0, &mut rng));
        let w = Tensor::randn(&ws, 0.3, &mut rng);
        let run = || c.conv2d_fused_cl(&x, &w, None, None, true, &p).unwrap();
        let a = one.install(run);
        let b = three.install(run);
        assert_bits(&format!("{xs:?} {ws:?}"), &a, &b);
    }
}

/// [2, 19, 9, 8] random values with a NaN first in its window and one later, -0 beside +0,
/// and a tie: the poolings' edge cases.
pub(super) fn pooling_input(rng: &mut Rng) -> Tensor {
    let mut x = Tensor::randn(&[2, 19, 9, 8], 1.0, rng);
    x.data_mut()[0] = f32::NAN;
    x.data_mut()[40] = f32::NAN;
    x.data_mut()[10] = -0.0;
    x.data_mut()[11] = 0.0;
    x.data_mut()[12] = x.data()[13];
    x
}

#[test]
fn poolings_and_layout_changes_equal_the_nchw_ops_bit_for_bit() {
    if !cpu_has_it() {
        return;
    }
    let c = CpuBackend;
    let mut rng = Rng::new(8);
    let x = pooling_input(&mut rng);
    let xc = c.to_channels_last(&x).unwrap();
    assert_eq!(xc.shape(), &[2, 9, 8, 19]);
    assert_bits("round trip", &c.to_nchw(&xc).unwrap(), &x);
    // 83 channels: a whole 64-channel block of the AVX-512 path and a partial one. In
    // channels 5 and 70 every value is negative but the first two of row 0, -0 then +0: the
    // windows over them keep -0 (the first of equals). In channels 6 and 71 row 0 starts with
    // NaN, NaN then a value: the first cell's NaN stays, a later one never enters.
    let mut wide = Tensor::randn(&[1, 83, 6, 5], 1.0, &mut rng);
    for ch in [5, 70] {
        let plane: &mut [f32] = &mut wide.data_mut()[ch * 30..][..30];
        plane.iter_mut().for_each(|v| *v = -1.0 - v.abs());
        (plane[0], plane[1]) = (-0.0, 0.0);
    }
    for ch in [6, 71] {
        let plane: &mut [f32] = &mut wide.data_mut()[ch * 30..][..30];
        (plane[0], plane[1], plane[2]) = (f32::NAN, f32::NAN, 5.0);
    }
    for x in [&x, &wide] {
        let xc = c.to_channels_last(x).unwrap();
        for p in [
            Pool2dParams::square(3, 2, 1),
            Pool2dParams::square(2, 2, 0),
            Pool2dParams::square(3, 1, 1),
        ] {
            let want = c.maxpool2d(x, &p).unwrap();
            let got = c.maxpool2d_cl(&xc, &p).unwrap();
            let what = format!("maxpool {p:?} of {:?}", x.shape());
            assert_bits(&what, &c.to_nchw(&got).unwrap(), &want);
        }
    }
    // 21 channels: one partial vector; 147: two whole 64-channel blocks and a partial one.
    for shape in [[3, 21, 5, 7], [2, 147, 7, 7]] {
        let xf = Tensor::randn(&shape, 1.0, &mut rng);
        let want = c.global_avg_pool(&xf).unwrap();
        let got = c
            .global_avg_pool_cl(&c.to_channels_last(&xf).unwrap())
            .unwrap();
        assert_bits(&format!("global average pool {shape:?}"), &got, &want);
    }
    // Explicit padding for row taps: zeros around, the input inside.
    let padded = layout::pad_nhwc(xc.data(), [2, 9, 8, 19], (2, 1));
    let from_nchw = layout::nchw_to_nhwc(x.data(), [2, 19, 9, 8], (2, 1));
    assert_bits(
        "padding",
        &Tensor::new(&[padded.len()], padded).unwrap(),
        &Tensor::new(&[from_nchw.len()], from_nchw).unwrap(),
    );
}

#[test]
fn shapes_are_checked_and_other_backends_refuse() {
    let c = CpuBackend;
    let z = |s: &[usize]| Tensor::full(s, 0.5);
    let p = Conv2dParams::square(1, 0);
    if c.channels_last() {
        // [N, H, W, C] = [1, 5, 5, 3] against a weight for 2 channels.
        fails(
            c.conv2d_fused_cl(&z(&[1, 5, 5, 3]), &z(&[4, 2, 1, 1]), None, None, false, &p),
            &["conv2d", "3 channels"],
        );
        fails(
            c.conv2d_fused_cl(
                &z(&[1, 5, 5, 3]),
                &z(&[4, 3, 1, 1]),
                None,
                Some(&z(&[1, 4, 5, 5])),
                true,
                &p,
            ),
            &["conv2d", "residual", "[1, 4, 5, 5]", "[1, 5, 5, 4]"],
        );
        fails(
            c.global_avg_pool_cl(&z(&[2, 3])),
            &["global_avg_pool", "4-d"],
        );
    }
    let r = ReferenceBackend;
    assert!(!r.channels_last());
    fails(
        r.conv2d_fused_cl(&z(&[1, 5, 5, 3]), &z(&[4, 3, 1, 1]), None, None, false, &p),
        &["channels", "reference"],
    );
    fails(
        r.to_channels_last(&z(&[1, 3, 5, 5])),
        &["channels", "reference"],
    );
}
