//! Unscaling on every backend: the values against the public rule (one f32 multiply) bit for
//! bit, on tensors of many lengths (below, at and past the CPU's chunk and the kernel's grid),
//! subnormals, signed zeros and the extremes of f32; the overflow flag for inf and NaN in any
//! tensor, before or after the multiply; argument errors.
//!
//! Tolerances: none. The product of two f32 values is exact in f64, so the reference's rounded
//! f64 product, the CPU's f32 multiply and the kernel's are the same correctly rounded value.

use crate::ops::prelude::*;
use crate::testing::{assert_bits, fails};
use crate::{Rng, Tensor};

fn up<B: Backend>(b: &B, t: &Tensor) -> B::Tensor {
    b.upload(t).unwrap()
}

/// Values spread over f32's range: normals of random exponent and sign, subnormals, zeros.
fn spread(n: usize, rng: &mut Rng) -> Vec<f32> {
    (0..n)
        .map(|i| match i % 9 {
            0 => f32::from_bits(rng.next_u64() as u32 & 0x807f_ffff), // subnormal or signed 0
            1 => -0.0,
            _ => {
                let e = (rng.next_u64() % 200) as i32 - 120;
                (rng.normal() as f32) * 2f32.powi(e)
            }
        })
        .collect()
}

fn unscale_all<B: Backend>(b: &B, ts: &[Tensor], inv: f32) -> (Vec<Tensor>, bool) {
    let dev: Vec<B::Tensor> = ts.iter().map(|t| up(b, t)).collect();
    let refs: Vec<&B::Tensor> = dev.iter().collect();
    let (out, found) = b.unscale_grads(&refs, inv).unwrap();
    (out.iter().map(|t| b.download(t).unwrap()).collect(), found)
}

fn values<B: Backend>(b: &B) {
    let mut rng = Rng::new(5);
    let shapes: [&[usize]; 6] = [&[1], &[7, 3], &[64, 3, 3, 3], &[16_385], &[40_000], &[0]];
    let ts: Vec<Tensor> = shapes
        .iter()
        .map(|s| Tensor::new(s, spread(s.iter().product(), &mut rng)).unwrap())
        .collect();
    // A power of two (what dynamic scaling uses) and a value whose products round.
    for inv in [2f32.powi(-16), 0.1, 1.0, 3.0] {
        let (got, found) = unscale_all(b, &ts, inv);
        assert!(!found, "finite gradients flagged at inv_scale {inv}");
        for (g, t) in got.iter().zip(&ts) {
            let want = Tensor::new(t.shape(), t.data().iter().map(|v| v * inv).collect()).unwrap();
            assert_bits(&format!("unscale {:?} by {inv}", t.shape()), g, &want);
        }
    }
}

fn flags_non_finite<B: Backend>(b: &B) {
    let mut rng = Rng::new(6);
    for (bad, at) in [
        (f32::INFINITY, 0),
        (f32::NEG_INFINITY, 39_999),
        (f32::NAN, 20_001),
        (-f32::NAN, 3),
    ] {
        let a = Tensor::new(&[5, 5], spread(25, &mut rng)).unwrap();
        let mut v = spread(40_000, &mut rng);
        v[at] = bad;
        let c = Tensor::new(&[40_000], v).unwrap();
        let (got, found) = unscale_all(b, &[a.clone(), c.clone()], 0.5);
        assert!(found, "{bad} at {at} of the second tensor not flagged");
        // Everything is still multiplied (the caller skips the step; the values are unused).
        assert_bits(
            "first tensor",
            &got[0],
            &Tensor::new(&[5, 5], a.data().iter().map(|x| x * 0.5).collect()).unwrap(),
        );
        assert_eq!(got[1].data()[at].to_bits() & 0x7f80_0000, 0x7f80_0000);
    }
    // A finite gradient that the multiply overflows (scale below 1) is flagged too.
    let big = Tensor::new(&[3], vec![1.0, f32::MAX, -2.0]).unwrap();
    let (got, found) = unscale_all(b, std::slice::from_ref(&big), 4.0);
    assert!(found, "overflow to inf by inv_scale > 1 not flagged");
    assert_eq!(got[0].data()[1], f32::INFINITY);
    // The largest finite values that stay finite are not.
    let (_, found) = unscale_all(b, &[big], 1.0);
    assert!(!found, "f32::MAX flagged");
}

fn errors<B: Backend>(b: &B) {
    let t = up(b, &Tensor::new(&[2], vec![1.0, 2.0]).unwrap());
    for inv in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        fails(
            b.unscale_grads(&[&t], inv),
            &["unscale_grads", "inverse loss scale"],
        );
    }
    let (out, found) = b.unscale_grads(&[], 0.5).unwrap();
    assert!(out.is_empty() && !found);
}

crate::backend_suite! {
    every: [values, flags_non_finite, errors],
    fast: [],
    cuda: [],
}
