//! Max pooling and global average pooling against the reference.
//!
//! Max-pool forward selects an input value and backward sums dy in double in the reference's
//! order, so both must equal the reference bit for bit (NaN, -inf and ties included). The
//! global-average-pool backward is one correctly rounded division, equal to the reference's
//! f64 division rounded to f32 (double rounding is harmless for division), so it is exact too.
//! Only the global-average-pool forward sums in f32; it is held to the summation bound.

use skinengine::backend::Backend;
use skinengine::backend::cuda::CudaBackend;
use skinengine::ops::pool::Pool2dParams;
use skinengine::{ReferenceBackend, Rng, Tensor};

use crate::common::{abs, within_bound};

pub fn all(be: &CudaBackend) {
    maxpool(be);
    maxpool_special_values(be);
    global_avg(be);
    errors(be);
}

/// Bit-for-bit equality (so NaN == NaN and -0 != +0), naming the first differing element.
fn assert_bits(what: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    for (i, (g, w)) in got.data().iter().zip(want.data()).enumerate() {
        assert_eq!(
            g.to_bits(),
            w.to_bits(),
            "{what}: element {i}: got {g}, reference {w}"
        );
    }
}

fn params(k: (usize, usize), s: (usize, usize), p: (usize, usize)) -> Pool2dParams {
    Pool2dParams {
        kernel: k,
        stride: s,
        padding: p,
    }
}

/// Forward and backward of one case, both bit-exact.
fn check_maxpool(be: &CudaBackend, what: &str, x: &Tensor, p: &Pool2dParams, rng: &mut Rng) {
    let r = ReferenceBackend;
    let xd = be.upload(x).unwrap();
    let want = r.maxpool2d(x, p).unwrap();
    let got = be.download(&be.maxpool2d(&xd, p).unwrap()).unwrap();
    assert_bits(&format!("maxpool2d {what}"), &got, &want);
    let dy = Tensor::randn(want.shape(), 1.0, rng);
    let want = r.maxpool2d_backward(&dy, x, p).unwrap();
    let dyd = be.upload(&dy).unwrap();
    let got = be
        .download(&be.maxpool2d_backward(&dyd, &xd, p).unwrap())
        .unwrap();
    assert_bits(&format!("maxpool2d_backward {what}"), &got, &want);
}

fn maxpool(be: &CudaBackend) {
    let mut rng = Rng::new(41);
    let cases: &[(&[usize], Pool2dParams)] = &[
        // ResNet50's stem pool, odd sizes.
        (&[2, 3, 7, 9], Pool2dParams::square(3, 2, 1)),
        // Many planes and more outputs than one block (2 * 5 * 19 * 21 > 256 * 15).
        (&[2, 5, 37, 41], Pool2dParams::square(3, 2, 1)),
        (&[1, 2, 8, 8], Pool2dParams::square(2, 2, 0)),
        // Stride 1 with padding: every input lies in up to 9 windows.
        (&[2, 2, 5, 6], Pool2dParams::square(3, 1, 1)),
        // Rectangular kernel, unequal strides and paddings.
        (&[1, 3, 6, 7], params((3, 2), (1, 2), (1, 1))),
        (&[1, 2, 9, 5], params((4, 3), (3, 1), (2, 0))),
        // Stride larger than the kernel: some inputs are in no window and get 0.
        (&[1, 2, 10, 11], params((2, 2), (3, 3), (0, 0))),
        (&[1, 1, 1, 1], Pool2dParams::square(1, 1, 0)),
        // Window as large as the padded input: one output per plane.
        (&[3, 1, 3, 4], params((5, 6), (1, 1), (1, 1))),
    ];
    for (shape, p) in cases {
        let x = Tensor::randn(shape, 1.0, &mut rng);
        check_maxpool(be, &format!("{shape:?} {p:?}"), &x, p, &mut rng);
        // Few distinct values: ties everywhere, so the first-in-window rule decides.
        let t = Tensor::from_fn(shape, |_| rng.below(3) as f32 - 1.0);
        check_maxpool(be, &format!("ties {shape:?} {p:?}"), &t, p, &mut rng);
    }
}

/// NaN (wins only as the first cell of a window, as the reference's `v > best`), infinities and
/// signed zeros (-0 and +0 tie, so the first one found is the output).
fn maxpool_special_values(be: &CudaBackend) {
    let mut rng = Rng::new(43);
    let specials = [f32::NAN, f32::NEG_INFINITY, f32::INFINITY, -0.0, 0.0];
    let shape = [2, 3, 9, 8];
    let x = Tensor::from_fn(&shape, |_| {
        if rng.below(4) == 0 {
            specials[rng.below(specials.len())]
        } else {
            rng.normal() as f32
        }
    });
    for p in [Pool2dParams::square(3, 2, 1), Pool2dParams::square(2, 1, 0)] {
        check_maxpool(be, &format!("specials {p:?}"), &x, &p, &mut rng);
    }
}

fn global_avg(be: &CudaBackend) {
    let r = ReferenceBackend;
    let mut rng = Rng::new(47);
    // ResNet50's final 7x7 (with its 2048 channels), a 1x1 plane, plane counts that are not
    // a multiple of the block's 8 warps, and planes larger than a whole block (1155, 5120).
    let shapes: &[&[usize]] = &[
        &[2, 3, 7, 7],
        &[2, 2048, 7, 7],
        &[1, 5, 1, 1],
        &[3, 2, 33, 35],
        &[1, 1, 64, 80],
        &[1, 3, 2, 16],
    ];
    let mut worst: f64 = 0.0;
    for shape in shapes {
        // Offset mean: sums with cancellation-free growth and sign changes both occur.
        let x = Tensor::from_fn(shape, |_| (rng.normal() + 0.5) as f32);
        let xd = be.upload(&x).unwrap();
        let got = be.download(&be.global_avg_pool(&xd).unwrap()).unwrap();
        let want = r.global_avg_pool(&x).unwrap();
        let hw = shape[2] * shape[3];
        // Each lane adds ceil(hw / 32) values in order (the first onto 0, exactly), then 5
        // shuffle levels: every term passes through at most ceil(hw/32) - 1 + 5 roundings; the
        // division by hw is one more, at most u * mean|x|. So k = ceil(hw/32) + 5 against
        // mean|x| (the reference pool of |x|), plus u |want| for the reference's own rounding.
        let absref = r.global_avg_pool(&abs(&x)).unwrap();
        let k = hw.div_ceil(32) + 5;
        within_bound(
            &format!("global_avg_pool {shape:?}"),
            &got,
            &want,
            &absref,
            k,
        );
        for i in 0..got.len() {
            let err = (got.data()[i] as f64 - want.data()[i] as f64).abs();
            worst = worst.max(err / (absref.data()[i] as f64 * crate::common::U));
        }

        let dy = Tensor::randn(&[shape[0], shape[1]], 1.0, &mut rng);
        let got = be
            .download(
                &be.global_avg_pool_backward(&be.upload(&dy).unwrap(), shape)
                    .unwrap(),
            )
            .unwrap();
        let want = r.global_avg_pool_backward(&dy, shape).unwrap();
        assert_bits(&format!("global_avg_pool_backward {shape:?}"), &got, &want);
    }
    eprintln!("global_avg_pool: max |err| = {worst:.2} u * mean|x|");
}

/// Every bad shape or parameter is the reference's error, word for word.
fn errors(be: &CudaBackend) {
    let r = ReferenceBackend;
    let same = |what: &str, got: skinengine::Error, want: skinengine::Error| {
        assert_eq!(got.to_string(), want.to_string(), "{what}");
    };
    let x = Tensor::full(&[1, 2, 5, 5], 0.5);
    let xd = be.upload(&x).unwrap();
    let x3 = Tensor::full(&[2, 5, 5], 0.5);
    let x3d = be.upload(&x3).unwrap();
    let bad_params = [
        Pool2dParams::square(0, 1, 0),
        Pool2dParams::square(3, 0, 1),
        Pool2dParams::square(3, 2, 2),
        Pool2dParams::square(7, 1, 0),
    ];
    for p in &bad_params {
        same(
            &format!("maxpool2d {p:?}"),
            be.maxpool2d(&xd, p).unwrap_err(),
            r.maxpool2d(&x, p).unwrap_err(),
        );
        let dy = Tensor::full(&[1, 2, 3, 3], 0.5);
        same(
            &format!("maxpool2d_backward {p:?}"),
            be.maxpool2d_backward(&be.upload(&dy).unwrap(), &xd, p)
                .unwrap_err(),
            r.maxpool2d_backward(&dy, &x, p).unwrap_err(),
        );
    }
    let p = Pool2dParams::square(3, 2, 1);
    same(
        "maxpool2d 3-d",
        be.maxpool2d(&x3d, &p).unwrap_err(),
        r.maxpool2d(&x3, &p).unwrap_err(),
    );
    // Output is [1, 2, 3, 3]; a gradient of another shape is refused.
    let dy = Tensor::full(&[1, 2, 3, 4], 0.5);
    same(
        "maxpool2d_backward dy shape",
        be.maxpool2d_backward(&be.upload(&dy).unwrap(), &xd, &p)
            .unwrap_err(),
        r.maxpool2d_backward(&dy, &x, &p).unwrap_err(),
    );
    same(
        "global_avg_pool 3-d",
        be.global_avg_pool(&x3d).unwrap_err(),
        r.global_avg_pool(&x3).unwrap_err(),
    );
    let empty = Tensor::full(&[2, 3, 0, 4], 0.5);
    same(
        "global_avg_pool empty plane",
        be.global_avg_pool(&be.upload(&empty).unwrap()).unwrap_err(),
        r.global_avg_pool(&empty).unwrap_err(),
    );
    let dy = Tensor::full(&[1, 3], 0.5);
    let dyd = be.upload(&dy).unwrap();
    for shape in [&[1, 2, 5, 5][..], &[2, 5, 5][..]] {
        same(
            &format!("global_avg_pool_backward {shape:?}"),
            be.global_avg_pool_backward(&dyd, shape).unwrap_err(),
            r.global_avg_pool_backward(&dy, shape).unwrap_err(),
        );
    }
}
