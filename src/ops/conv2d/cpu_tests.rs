//! The AVX-512 forward's image groups (small maps: several images' columns in one GEMM): every
//! group size, with a short last group, gives bit for bit the one-image result with every
//! epilogue, and the grouped result agrees with the reference backend (f64 sums) within the
//! summation bound of [`within_bound`].

use super::Conv2dParams;
use super::cpu::HostEpilogue;
use super::cpu_groups::forward_in_groups;
use super::geometry;
use crate::ops::prelude::*;
use crate::testing::{abs, within_bound};
use crate::{ReferenceBackend, Rng, Tensor};

#[test]
fn image_groups_do_not_change_any_bit() {
    if !crate::cpu::conv_gemm::available() {
        eprintln!("no AVX-512 here: the grouped path does not run");
        return;
    }
    let r = ReferenceBackend;
    let mut rng = Rng::new(5);
    // 7x7 3x3 (padding taps), 1x1 with K over two K blocks, a stride-2 layer, a 1-pixel map.
    let shapes: [([usize; 4], [usize; 4], Conv2dParams); 4] = [
        ([5, 24, 7, 7], [20, 24, 3, 3], Conv2dParams::square(1, 1)),
        ([5, 300, 5, 6], [17, 300, 1, 1], Conv2dParams::square(1, 0)),
        ([5, 8, 9, 9], [16, 8, 3, 3], Conv2dParams::square(2, 1)),
        ([5, 16, 1, 1], [8, 16, 1, 1], Conv2dParams::square(1, 0)),
    ];
    for (xs, ws, p) in shapes {
        let g = geometry(&xs, &ws, &p).unwrap();
        let x = Tensor::randn(&xs, 1.0, &mut rng);
        let w = Tensor::randn(&ws, 0.2, &mut rng);
        let bias = Tensor::randn(&[ws[0]], 1.0, &mut rng);
        let res = Tensor::randn(&g.y_shape(), 1.0, &mut rng);
        for (with_bias, with_res, relu) in [
            (false, false, false),
            (true, true, true),
            (true, false, true),
        ] {
            let e = HostEpilogue {
                bias: with_bias.then(|| bias.data()),
                residual: with_res.then(|| res.data()),
                relu,
            };
            let one = forward_in_groups(&x, &w, &g, e, 1);
            for group in 2..=5 {
                let y = forward_in_groups(&x, &w, &g, e, group);
                let same = y
                    .data()
                    .iter()
                    .zip(one.data())
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(
                    same,
                    "{xs:?} {ws:?} group {group} differs from one image at a time"
                );
            }
            let (b, rs) = (with_bias.then_some(&bias), with_res.then_some(&res));
            let want = r.conv2d_fused(&x, &w, b, rs, relu, &p).unwrap();
            let mut absref = r
                .conv2d(&abs(&x), &abs(&w), b.map(abs).as_ref(), &p)
                .unwrap();
            if with_res {
                absref = r.add(&absref, &abs(&res)).unwrap();
            }
            let k = g.c * g.kh * g.kw + 2;
            within_bound(&format!("grouped {xs:?} {ws:?}"), &one, &want, &absref, k);
        }
    }
}
