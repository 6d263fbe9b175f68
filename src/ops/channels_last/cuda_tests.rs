//! The CUDA backend's channels-last inference on the emulator, at TF32, BF16 and FP16.
//!
//! Convolutions, unsplit and with K forced into 3 splits: every case of the CPU's
//! channels-last tests (stem-like C = 3, pointwise,
//! strided, 3x3 at both strides, K over many tiles with taps straddling k-tiles (C = 24, 40,
//! 300), output channels and pixel counts off the tile sizes, C not a multiple of a 16-byte
//! chunk, which takes the NCHW kernel) against the f64 convolution of the inputs as the kernel
//! sees them: x and the residual as stored (FP32 at TF32; rounded to nearest even at BF16 /
//! FP16), x and the weights rounded to the format. Bound per element:
//!   |err| <= B + u_s (|want| + B),  B = (k + 2 ceil(k / kk) + kk + 9) 2^-23 S
//! where B is the tensor-core GEMM's derived bound (src/ops/conv2d/tc_tests.rs; S =
//! conv(|x~|, |w~|) + |bias| + |residual|) and the second term is the output's own rounding
//! when it is stored in 16 bits (u_s = 2^-8 bf16, 2^-11 f16, 0 FP32; f16 adds 2^-25 absolute
//! for results below its normal range).
//!
//! Poolings and layout changes move stored values without arithmetic (the average pool sums in
//! FP32 in the CPU channels-last order): bit for bit against the NCHW ops on the stored values.

use half::{bf16, f16};

use super::tests::cases;
use super::{ChannelsLastKernels, ChannelsLastOps};
use crate::cpu::nhwc::layout;
use crate::cuda::{CudaBackend, Elem, Precision, Precisions};
use crate::ops::conv2d::{geometry, reference as conv};
use crate::ops::pool::Pool2dParams;
use crate::ops::prelude::*;
use crate::testing::fails;
use crate::{ReferenceBackend, Rng, Tensor};

/// `base` (the emulator or the GPU) with its convolutions at `p`.
fn at(base: &CudaBackend, p: Precision) -> CudaBackend {
    base.clone()
        .with_precisions(Precisions {
            conv: p,
            matmul: Precision::Fp32,
        })
        .unwrap()
}

const FORMATS: [Precision; 3] = [Precision::Tf32, Precision::Bf16, Precision::Fp16];

/// x as the kernel's operand: cvt.rna.tf32 (ties away) or round to nearest even.
fn operand(p: Precision, x: f32) -> f32 {
    match p {
        Precision::Tf32 => f32::from_bits((x.to_bits() + 0x1000) & !0x1fff),
        _ => stored(p, x),
    }
}

/// x as a channels-last tensor stores it.
fn stored(p: Precision, x: f32) -> f32 {
    match p {
        Precision::Bf16 => bf16::from_f32(x).to_f32(),
        Precision::Fp16 => f16::from_f32(x).to_f32(),
        _ => x,
    }
}

fn map(t: &Tensor, f: impl Fn(f32) -> f32) -> Tensor {
    Tensor::from_fn(t.shape(), |i| f(t.data()[i]))
}

fn abs(t: &Tensor<f64>) -> Tensor<f64> {
    Tensor::new(t.shape(), t.data().iter().map(|v| v.abs()).collect()).unwrap()
}

fn to64(t: &Tensor) -> Tensor<f64> {
    Tensor::new(t.shape(), t.data().iter().map(|&v| v as f64).collect()).unwrap()
}

/// NaN where the reference has NaN, the same bits everywhere else.
fn same_values(what: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    for (i, (g, w)) in got.data().iter().zip(want.data()).enumerate() {
        let ok = if w.is_nan() {
            g.is_nan()
        } else {
            g.to_bits() == w.to_bits()
        };
        assert!(ok, "{what}: element {i}: got {g}, want {w}");
    }
}

fn convolution_at(base: &CudaBackend, p: Precision) {
    let be = at(base, p);
    assert!(be.channels_last());
    let kk = if p == Precision::Tf32 { 8 } else { 16 };
    let (u_s, tiny) = match p {
        Precision::Bf16 => (2f64.powi(-8), 0.0),
        Precision::Fp16 => (2f64.powi(-11), 2f64.powi(-25)),
        _ => (0.0, 0.0),
    };
    let mut rng = Rng::new(61);
    for (xs, ws, cp) in cases() {
        let g = geometry(&xs, &ws, &cp).unwrap();
        let x = Tensor::randn(&xs, 1.0, &mut rng);
        let w = Tensor::randn(&ws, 1.0, &mut rng);
        let b = Tensor::randn(&[ws[0]], 1.0, &mut rng);
        let res = Tensor::randn(&g.y_shape(), 1.0, &mut rng);
        let (xd, wd, bd) = (
            be.to_channels_last(&be.upload(&x).unwrap()).unwrap(),
            be.upload(&w).unwrap(),
            be.upload(&b).unwrap(),
        );
        let rd = be.to_channels_last(&be.upload(&res).unwrap()).unwrap();
        let (xr, wr) = (
            to64(&map(&x, |v| operand(p, v))),
            to64(&map(&w, |v| operand(p, v))),
        );
        let rs = map(&res, |v| stored(p, v));
        let plain = conv::forward(&xr, &wr, None, &g).unwrap();
        let mag = conv::forward(&abs(&xr), &abs(&wr), None, &g).unwrap();
        let k = g.c * g.kh * g.kw;
        let ops = (k + 2 * k.div_ceil(kk) + kk + 9) as f64;
        for (fused, splits) in [
            (false, None),
            (true, None),
            (false, Some(3)),
            (true, Some(3)),
        ] {
            let y = match splits {
                None => be.conv2d_fused_cl(
                    &xd,
                    &wd,
                    fused.then_some(&bd),
                    fused.then_some(&rd),
                    fused,
                    &cp,
                ),
                Some(n) => {
                    let e = super::ClEpilogue {
                        bias: fused.then_some(&bd),
                        residual: fused.then_some(&rd),
                        relu: fused,
                    };
                    be.cl_conv2d_split(&xd, &wd, &g, e, Some(n))
                }
            }
            .unwrap();
            assert_eq!(y.shape(), &[g.n, g.ho, g.wo, g.o]);
            let got = be.download(&be.to_nchw(&y).unwrap()).unwrap();
            let o_of = |i: usize| (i / (g.ho * g.wo)) % g.o;
            for (i, &gv) in got.data().iter().enumerate() {
                let (mut want, mut s) = (plain.data()[i], mag.data()[i]);
                if fused {
                    let (bv, rv) = (b.data()[o_of(i)] as f64, rs.data()[i] as f64);
                    want = (want + bv + rv).max(0.0);
                    s += bv.abs() + rv.abs();
                }
                let gemm = ops * 2f64.powi(-23) * s;
                let bound = gemm + u_s * (want.abs() + gemm) + tiny;
                let err = (gv as f64 - want).abs();
                assert!(
                    err <= bound,
                    "conv {p} x{xs:?} w{ws:?} {cp:?} fused {fused} splits {splits:?} [{i}] = \
                     {gv}, reference {want}: err {err:e} > {bound:e}"
                );
            }
        }
    }
}

fn storage_poolings_and_layout_changes(base: &CudaBackend) {
    let r = ReferenceBackend;
    let mut rng = Rng::new(9);
    // The CPU test's edge cases, and a value past FP16's range.
    let mut x = super::tests::pooling_input(&mut rng);
    x.data_mut()[14] = 1e6;
    let xf = Tensor::randn(&[3, 21, 5, 7], 1.0, &mut rng);
    for p in FORMATS {
        let be = at(base, p);
        let xs = map(&x, |v| stored(p, v));
        let xc = be.to_channels_last(&be.upload(&x).unwrap()).unwrap();
        let elem = match p {
            Precision::Bf16 => Elem::Bf16,
            Precision::Fp16 => Elem::F16,
            _ => Elem::F32,
        };
        assert_eq!(xc.elem(), elem, "{p}: storage");
        assert_eq!(xc.shape(), &[2, 9, 8, 19]);
        let back = be.download(&be.to_nchw(&xc).unwrap()).unwrap();
        same_values(&format!("{p} round trip"), &back, &xs);
        if p == Precision::Fp16 {
            assert_eq!(back.data()[14], f32::INFINITY, "1e6 overflows FP16");
        }
        for pp in [
            Pool2dParams::square(3, 2, 1),
            Pool2dParams::square(2, 2, 0),
            Pool2dParams::square(3, 1, 1),
        ] {
            let want = r.maxpool2d(&xs, &pp).unwrap();
            let got = be.maxpool2d_cl(&xc, &pp).unwrap();
            assert_eq!(got.elem(), elem);
            let got = be.download(&be.to_nchw(&got).unwrap()).unwrap();
            same_values(&format!("{p} maxpool {pp:?}"), &got, &want);
        }
        // The CPU's channels-last order: pixels in order from -0.0, then times 1/(h w).
        let xfc = be.to_channels_last(&be.upload(&xf).unwrap()).unwrap();
        let sums = layout::global_avg_pool(be.download(&xfc).unwrap().data(), [3, 21, 5, 7]);
        let want = Tensor::new(&[3, 21], sums).unwrap();
        let got = be.download(&be.global_avg_pool_cl(&xfc).unwrap()).unwrap();
        same_values(&format!("{p} global average pool"), &got, &want);
    }
}

fn sixteen_bit_tensors_refused_elsewhere(base: &CudaBackend) {
    let bf = at(base, Precision::Bf16);
    let x = bf.upload(&Tensor::full(&[1, 8, 4, 4], 0.5)).unwrap();
    let xc = bf.to_channels_last(&x).unwrap();
    // A kernel that reads only FP32 (dropout, the head's) refuses it; element-wise kernels
    // read the storage (act.cuh) and keep it; the host download path widens it.
    fails(bf.dropout(&xc, 0.5, 1), &["dropout_apply", "H"]);
    let r = bf.relu(&xc).unwrap();
    assert_eq!(r.elem(), xc.elem());
    assert_eq!(bf.download(&r).unwrap().data()[0], 0.5);
    assert_eq!(bf.download(&xc).unwrap().data()[0], 0.5);
    // Another precision's backend does not misread it.
    let fp16 = at(base, Precision::Fp16);
    fails(fp16.global_avg_pool_cl(&xc), &["stored as Bf16", "fp16"]);
    // FP32 convolutions: NCHW only.
    let fp32 = at(base, Precision::Fp32);
    assert!(!fp32.channels_last());
    fails(
        fp32.to_channels_last(&x),
        &["channels_last", "tensor cores"],
    );
}

/// The packed weights are made once per weight tensor and format, and never outlive the
/// contents they were made from: a new tensor at a freed one's address, or one written in
/// place, gets its own.
fn packed_weights_follow_their_source(base: &CudaBackend) {
    let be = at(base, Precision::Bf16);
    let dev = be.device().clone();
    let mut rng = Rng::new(12);
    let p = crate::ops::conv2d::Conv2dParams::square(1, 1);
    let xs = [1, 16, 5, 5];
    let x = Tensor::randn(&xs, 1.0, &mut rng);
    let xd = be.to_channels_last(&be.upload(&x).unwrap()).unwrap();
    let conv = |w: &crate::cuda::CudaTensor| {
        let y = be.conv2d_fused_cl(&xd, w, None, None, false, &p).unwrap();
        be.download(&be.to_nchw(&y).unwrap()).unwrap()
    };
    let want = |w: &Tensor| {
        let xr = to64(&map(&x, |v| operand(Precision::Bf16, v)));
        let wr = to64(&map(w, |v| operand(Precision::Bf16, v)));
        let g = geometry(&xs, w.shape(), &p).unwrap();
        conv::forward(&xr, &wr, None, &g).unwrap()
    };
    let close = |what: &str, got: &Tensor, want: &Tensor<f64>| {
        for (g, w) in got.data().iter().zip(want.data()) {
            assert!(
                (*g as f64 - w).abs() <= 0.05 * (1.0 + w.abs()),
                "{what}: {g} vs {w}"
            );
        }
    };
    let before = dev.derived_count();
    let w1 = Tensor::randn(&[8, 16, 3, 3], 1.0, &mut rng);
    let w1d = be.upload(&w1).unwrap();
    close("first", &conv(&w1d), &want(&w1));
    assert_eq!(dev.derived_count(), before + 1, "packed once");
    close("again", &conv(&w1d), &want(&w1));
    assert_eq!(dev.derived_count(), before + 1, "reused, not packed again");
    let addr = w1d.buf().ptr();
    drop(w1d);
    assert_eq!(dev.derived_count(), before, "released with its source");
    let w2 = map(&w1, |v| -2.0 * v);
    let mut w2d = be.upload(&w2).unwrap();
    assert_eq!(
        w2d.buf().ptr(),
        addr,
        "the free list hands the address out again"
    );
    close("new tensor, same address", &conv(&w2d), &want(&w2));
    w2d.buf_mut().unwrap();
    assert_eq!(
        dev.derived_count(),
        before,
        "released when written in place"
    );
}

#[cfg(skinengine_emu)]
mod emulator {
    use super::*;
    fn emu() -> CudaBackend {
        crate::testing::suite::emulator()
    }
    #[test]
    fn convolution_matches_the_rounded_reference_at_tf32() {
        convolution_at(&emu(), Precision::Tf32);
    }
    #[test]
    fn convolution_matches_the_rounded_reference_at_bf16() {
        convolution_at(&emu(), Precision::Bf16);
    }
    #[test]
    fn convolution_matches_the_rounded_reference_at_fp16() {
        convolution_at(&emu(), Precision::Fp16);
    }
    #[test]
    fn storage_poolings_and_layout_changes_move_stored_values_bit_for_bit() {
        storage_poolings_and_layout_changes(&emu());
    }
    #[test]
    fn sixteen_bit_tensors_are_refused_where_they_do_not_belong() {
        sixteen_bit_tensors_refused_elsewhere(&emu());
    }
    #[test]
    fn packed_weights_are_cached_and_follow_their_source() {
        // A device of its own: other tests' buffers would share the free list.
        packed_weights_follow_their_source(&crate::cuda::CudaBackend::emulator(1));
    }
}

mod gpu {
    use super::*;
    #[test]
    #[ignore = "needs a GPU: run by tools/gpu_check.sh"]
    fn channels_last_tensor_cores() {
        let be = crate::testing::suite::gpu();
        for p in FORMATS {
            convolution_at(&be, p);
        }
        storage_poolings_and_layout_changes(&be);
        sixteen_bit_tensors_refused_elsewhere(&be);
        packed_weights_follow_their_source(&be);
    }
}
