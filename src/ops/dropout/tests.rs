//! Dropout on every backend: the hash against SplitMix64's published outputs, the keep rule
//! (integer threshold) against its definition u >= p, hand-worked masks (pinned literals, so a
//! change of the rule cannot pass silently), the p = 0 identity, the kept fraction, backward =
//! forward, errors, and bit-for-bit agreement with the reference; the gradient by finite
//! differences in f64 on the reference function.
//!
//! Tolerances. None but the statistical ones: the keep test is integer arithmetic and a kept
//! value is one f32 multiply by the same f32 scale (the reference's f64 product of two f32s is
//! exact, then rounded once), so every backend must equal the reference bit for bit. The kept
//! fraction of n elements is checked within 5 binomial sigmas, sqrt(n p (1 - p)), of n (1 - p):
//! a truly random mask fails that with probability ~6e-7, a biased hash fails it for sure.

use super::{
    DropoutMask, GOLDEN, keep, mask_bits, mix64, reference as dropout, threshold, uniform,
};
use crate::ops::prelude::*;
use crate::testing::{FD_ATOL, FD_RTOL, assert_bits, check_grad, dot, fails, randn};
use crate::{ReferenceBackend, Rng, Tensor};

fn up<B: Backend>(b: &B, shape: &[usize], v: &[f32]) -> B::Tensor {
    b.upload(&Tensor::new(shape, v.to_vec()).unwrap()).unwrap()
}

fn down<B: Backend>(b: &B, t: &B::Tensor) -> Tensor {
    b.download(t).unwrap()
}

/// What every backend must return, bit for bit: x_i * scale (one f32 multiply) where [`keep`]
/// says so, else +0; computed here from the public rule, not from the kernels.
fn expected(x: &Tensor, p: f64, seed: u64) -> Tensor {
    let scale = 1.0f32 / (1.0f32 - p as f32);
    Tensor::from_fn(x.shape(), |i| {
        if keep(seed, i as u64, p as f32) {
            x.data()[i] * scale
        } else {
            0.0
        }
    })
}

/// SplitMix64 from state 0 gives 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, 0x06c45d188009454f
/// (Vigna's splitmix64.c); our element i is output i + 1 from state mix64(seed). The 24-bit
/// values for seed 42 are pinned: masks must not change between versions (a resumed run redraws
/// them from the seed).
#[test]
fn hash_is_splitmix64() {
    let want = [
        0xe220_a839_7b1d_cdaf,
        0x6e78_9e6a_a1b9_65f4,
        0x06c4_5d18_8009_454f,
    ];
    for (k, w) in want.into_iter().enumerate() {
        assert_eq!(mix64((k as u64 + 1).wrapping_mul(GOLDEN)), w, "output {k}");
        // mix64(0) = 0, so seed 0 is SplitMix64 from state 0.
        assert_eq!(mask_bits(0, k as u64), (w >> 40) as u32);
    }
    let bits: Vec<u32> = (0..4).map(|i| mask_bits(42, i)).collect();
    assert_eq!(bits, [10_001_215, 2_690_484, 2_791_691, 805_739]);
    // Distinct seeds, including ones a multiple of the increment apart, draw distinct streams.
    assert_ne!(mask_bits(1, 0), mask_bits(0, 0));
    assert_ne!(mask_bits(GOLDEN, 0), mask_bits(0, 1));
}

/// The integer test bits >= threshold(p) is u >= p, for p at and one ulp either side of the
/// drawn values, the range's ends and usual rates.
#[test]
fn keep_is_uniform_ge_p() {
    let largest_below_one = f32::from_bits(1.0f32.to_bits() - 1);
    assert_eq!(threshold(0.0), 0);
    assert_eq!(threshold(f32::from_bits(1)), 1);
    assert_eq!(threshold(0.5), 1 << 23);
    assert_eq!(threshold(largest_below_one), (1 << 24) - 1);
    for seed in [0, 3, u64::MAX] {
        for i in 0..2000u64 {
            let u = uniform(seed, i);
            let mut ps = vec![0.0, 0.1, 0.5, 0.9, largest_below_one, u];
            if u > 0.0 {
                ps.push(f32::from_bits(u.to_bits() - 1));
            }
            ps.push(f32::from_bits(u.to_bits() + 1));
            for p in ps.into_iter().filter(|&p| p < 1.0) {
                assert_eq!(
                    keep(seed, i, p),
                    u >= p,
                    "seed {seed} i {i} u {u:e} p {p:e}"
                );
            }
        }
    }
}

/// Masks worked out from the rule above (seed 7: 24-bit values 8797065, 5069051, 15787297, ...;
/// p = 0.5 keeps those >= 2^23, p = 0.75 those >= 3 2^22), with dyadic scales 2 and 4 so the
/// values are exact: forward and backward, bit for bit, the input unchanged, the same result
/// under any shape (the index is flat), -0 kept as -0 and dropped as +0.
fn hand_cases<B: Backend>(b: &B) {
    let x = [1., -2., 3., -4., 0.5, 6., -7., 8., 9.25, -10., -0.0, 12.];
    // seed 7, p = 0.5: mask 1 0 1 1 1 0 0 1 1 0 1 0, scale 2.
    let half = [2., 0., 6., -8., 1., 0., 0., 16., 18.5, 0., -0.0, 0.];
    // seed 7, p = 0.75: mask 0 0 1 1 0 0 0 0 1 0 1 0, scale 4.
    let quarter = [0., 0., 12., -16., 0., 0., 0., 0., 37., 0., -0.0, 0.];
    for shape in [vec![3, 4], vec![12], vec![2, 1, 6]] {
        let xd = up(b, &shape, &x);
        let t = |v: &[f32]| Tensor::new(&shape, v.to_vec()).unwrap();
        for (p, want) in [(0.5, &half), (0.75, &quarter)] {
            let what = format!("{} dropout p {p} {shape:?}", b.name());
            assert_bits(&what, &down(b, &b.dropout(&xd, p, 7).unwrap()), &t(want));
            let back = down(b, &b.dropout_backward(&xd, p, 7).unwrap());
            assert_bits(&format!("{what} backward"), &back, &t(want));
            assert_bits(
                &format!("{what}: the rule"),
                &t(want),
                &expected(&t(&x), p, 7),
            );
        }
        assert_bits("input unchanged", &down(b, &xd), &t(&x));
    }
    // p = 0 is the identity, bit for bit, NaN payloads included (a clone, no arithmetic).
    let odd = [
        f32::from_bits(0x7fc0_1234),
        f32::INFINITY,
        -0.0,
        f32::from_bits(1),
        -3.5,
    ];
    let xd = up(b, &[5], &odd);
    let want = Tensor::new(&[5], odd.to_vec()).unwrap();
    for p in [0.0, -0.0] {
        assert_bits("p = 0", &down(b, &b.dropout(&xd, p, 1).unwrap()), &want);
        let back = down(b, &b.dropout_backward(&xd, p, 1).unwrap());
        assert_bits("p = 0 backward", &back, &want);
    }
    // A p that rounds to 0 in f32 runs the kernel: everything kept, times exactly 1.
    let finite = up(b, &[4], &[f32::INFINITY, -0.0, f32::from_bits(1), -3.5]);
    let got = down(b, &b.dropout(&finite, 1e-50, 1).unwrap());
    assert_bits("p = 1e-50", &got, &down(b, &finite));
    // NaN: dropped -> +0 (not NaN * 0); kept -> NaN (payload free: GPUs canonicalise it).
    let nans = up(b, &[12], &[f32::NAN; 12]);
    let got = down(b, &b.dropout(&nans, 0.5, 7).unwrap());
    for (i, (&g, &w)) in got.data().iter().zip(&half).enumerate() {
        let ok = if i == 10 || w != 0.0 {
            g.is_nan()
        } else {
            g.to_bits() == 0
        };
        assert!(ok, "{} NaN input: element {i} = {g}", b.name());
    }
}

/// Over 100,003 elements (several CPU chunks, several grid-stride passes): every element is
/// [`expected`] bit for bit, the kept fraction is within 5 sigma of 1 - p, and the masks of
/// adjacent seeds agree where independent ones would (p^2 + (1 - p)^2 of the time, 5 sigma).
fn kept_fraction<B: Backend>(b: &B) {
    let n = 100_003;
    let mut rng = Rng::new(5);
    // Values away from 0 (and from overflow when scaled), so y != 0 exactly where kept.
    let x = Tensor::from_fn(&[n], |_| (1.0 + rng.next_f64()) as f32);
    let xd = b.upload(&x).unwrap();
    let nf = n as f64;
    for p in [0.1, 0.5, 0.9] {
        let mut masks = vec![];
        for seed in [11, 12] {
            let y = down(b, &b.dropout(&xd, p, seed).unwrap());
            assert_bits(
                &format!("{} p {p} seed {seed}", b.name()),
                &y,
                &expected(&x, p, seed),
            );
            let mask: Vec<bool> = y.data().iter().map(|&v| v != 0.0).collect();
            let kept = mask.iter().filter(|&&k| k).count() as f64;
            let sigma = (nf * p * (1.0 - p)).sqrt();
            assert!(
                (kept - nf * (1.0 - p)).abs() <= 5.0 * sigma,
                "p {p} seed {seed}: kept {kept} of {n}, expected {} +- 5 x {sigma:.1}",
                nf * (1.0 - p)
            );
            masks.push(mask);
        }
        let same = masks[0]
            .iter()
            .zip(&masks[1])
            .filter(|(a, b)| a == b)
            .count() as f64;
        let q = p * p + (1.0 - p) * (1.0 - p);
        let sigma = (nf * q * (1.0 - q)).sqrt();
        assert!(
            (same - nf * q).abs() <= 5.0 * sigma,
            "p {p}: seeds 11 and 12 agree on {same} of {n}, independent: {} +- 5 x {sigma:.1}",
            nf * q
        );
    }
}

/// The backward is the forward applied to dy (the map is linear and diagonal: its own
/// adjoint), bit for bit, for random dy.
fn backward_is_forward<B: Backend>(b: &B) {
    let mut rng = Rng::new(13);
    let dy = b
        .upload(&Tensor::randn(&[4, 5, 33], 1.0, &mut rng))
        .unwrap();
    for (p, seed) in [(0.2, 3), (0.5, u64::MAX), (0.9, 1 << 63)] {
        let f = down(b, &b.dropout(&dy, p, seed).unwrap());
        let g = down(b, &b.dropout_backward(&dy, p, seed).unwrap());
        assert_bits(&format!("{} p {p} seed {seed}", b.name()), &g, &f);
    }
}

/// Every backend equals the reference bit for bit: odd sizes (1, a partial block, more than one
/// CPU chunk and one grid-stride pass), seeds with the top bit set (the kernel gets the key as
/// a signed long long), p down to one that rounds to 0 and up to the largest f32 below 1 (scale
/// 2^24), and values that overflow to infinity, underflow or are infinite once scaled.
fn matches_reference<B: Backend>(b: &B) {
    let r = ReferenceBackend;
    let mut rng = Rng::new(17);
    let largest_below_one = f32::from_bits(1.0f32.to_bits() - 1) as f64;
    for shape in [vec![1], vec![3, 337], vec![70_001], vec![2, 3, 5, 7]] {
        let mut x = Tensor::randn(&shape, 1.0, &mut rng);
        let specials = [
            f32::INFINITY,
            -f32::INFINITY,
            -0.0,
            3e38,
            f32::from_bits(3),
            -1e-38,
        ];
        for (v, s) in x.data_mut().iter_mut().zip(specials) {
            *v = s;
        }
        let xd = b.upload(&x).unwrap();
        for seed in [0, 1, 42, u64::MAX, 1 << 63, 0x8000_0000_dead_beef] {
            for p in [1e-50, 0.1, 0.5, 0.999, largest_below_one] {
                let got = down(b, &b.dropout(&xd, p, seed).unwrap());
                let want = r.dropout(&x, p, seed).unwrap();
                let what = format!("{} {shape:?} seed {seed} p {p}", b.name());
                assert_bits(&what, &got, &want);
                assert_bits(
                    &format!("{what} vs the rule"),
                    &want,
                    &expected(&x, p, seed),
                );
            }
        }
    }
}

/// A p outside [0, 1) (or equal to 1 once rounded to f32) is refused by both entry points with
/// the op's name and the value; the edges of the range are accepted.
fn errors<B: Backend>(b: &B) {
    let x = up(b, &[2, 3], &[1.0; 6]);
    for p in [
        1.0,
        1.5,
        -0.1,
        -1e-300,
        f64::NAN,
        f64::INFINITY,
        -f64::INFINITY,
        1.0 - 1e-9,
    ] {
        let shown = format!("got {p}");
        for (op, r) in [
            ("dropout", b.dropout(&x, p, 0)),
            ("dropout_backward", b.dropout_backward(&x, p, 0)),
        ] {
            let frags = [
                op,
                "invalid argument",
                "p must be in [0, 1)",
                shown.as_str(),
            ];
            fails(r.map(|t| down(b, &t)), &frags);
        }
    }
    let largest_below_one = f32::from_bits(1.0f32.to_bits() - 1) as f64;
    for p in [0.0, -0.0, 1e-300, largest_below_one] {
        b.dropout(&x, p, 0).unwrap();
        let m = DropoutMask::new("dropout", p, 0).unwrap();
        assert!(
            m.scale.is_finite() && m.scale >= 1.0,
            "p {p}: scale {}",
            m.scale
        );
    }
}

/// The backward against central differences of L(x) = sum(dropout(x) r) in f64, every element
/// (dropped elements have an exact 0 gradient, kept ones the scale times r), and the adjoint
/// identity <dropout(x), r> = <x, dropout_backward(r)> to rounding.
#[test]
fn gradient_by_finite_differences() {
    let mut rng = Rng::new(19);
    for (shape, p, seed) in [(vec![3, 5, 7], 0.3, 9), (vec![2, 17], 0.75, u64::MAX)] {
        let m = DropoutMask::new("dropout", p, seed).unwrap();
        let x = randn(&shape, &mut rng);
        let r = randn(&shape, &mut rng);
        let grad = dropout::apply(&r, &m);
        let what = format!("dropout {shape:?} p {p}");
        check_grad(&what, &x, &grad, |x| dot(&dropout::apply(x, &m), &r));
        let (lhs, rhs) = (dot(&dropout::apply(&x, &m), &r), dot(&x, &grad));
        let tol = FD_ATOL + FD_RTOL * lhs.abs();
        assert!((lhs - rhs).abs() <= tol, "{what}: adjoint {lhs} vs {rhs}");
    }
}

crate::backend_suite! {
    every: [hand_cases, kept_fraction, backward_is_forward, errors],
    fast: [matches_reference],
    cuda: [],
}
