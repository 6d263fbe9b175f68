//! The self-test kernels (`kernels/selftest.cu`) against results computed here.

use skinengine::Rng;
use skinengine::backend::cuda::CudaBackend;
use skinengine::cuda::{Arg, Dims};

pub fn block_reverse(be: &CudaBackend) {
    let dev = be.device();
    let n = 300; // 3 blocks of 128, the last one partial
    let x: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let xb = dev.upload_f32(&x).unwrap();
    let yb = dev.upload_f32(&vec![-1.0; n]).unwrap();
    let mut dims = Dims::linear(n, 128);
    dims.shared_bytes = 128 * 4;
    dev.launch(
        "selftest_block_reverse",
        dims,
        &[Arg::Buf(&xb), Arg::Buf(&yb), Arg::I32(n as i32)],
    )
    .unwrap();
    let y = dev.download_f32(&yb).unwrap();
    for (j, &got) in y.iter().enumerate() {
        let (blk, t) = (j / 128, j % 128);
        let src = blk * 128 + (127 - t);
        let want = if src < n { src as f32 } else { 0.0 };
        assert_eq!(got, want, "block_reverse y[{j}]");
    }
}

pub fn warp_ops(be: &CudaBackend) {
    let dev = be.device();
    let mut rng = Rng::new(5);
    let n = 128; // 2 blocks of 64 threads = 4 warps
    let x: Vec<i32> = (0..n).map(|_| (rng.uniform(-50.0, 50.0)) as i32).collect();
    let xb = dev.upload_i32(&x).unwrap();
    let yb = dev.upload_i32(&vec![0; 6 * n]).unwrap();
    dev.launch(
        "selftest_warp_ops",
        Dims::linear(n, 64),
        &[Arg::Buf(&xb), Arg::Buf(&yb)],
    )
    .unwrap();
    let y = dev.download_i32(&yb).unwrap();
    for w in 0..n / 32 {
        let lanes = &x[w * 32..w * 32 + 32];
        let sum: i32 = lanes.iter().sum();
        let ballot = lanes
            .iter()
            .enumerate()
            .fold(0u32, |b, (l, &v)| if v > 0 { b | 1 << l } else { b });
        let votes =
            lanes.iter().any(|&v| v > 100) as i32 + 2 * lanes.iter().all(|&v| v > -100) as i32;
        for l in 0..32 {
            let i = w * 32 + l;
            let r = &y[6 * i..6 * i + 6];
            // The shfl_down tree: lane l ends with the sum of lanes l.. within reach; lane 0
            // holds the full sum.
            if l == 0 {
                assert_eq!(r[0], sum, "warp {w} shfl_down sum");
            }
            assert_eq!(r[1], sum, "warp {w} lane {l} butterfly sum");
            assert_eq!(r[2], lanes[0], "warp {w} lane {l} shfl from lane 0");
            let prev = if l == 0 { lanes[0] } else { lanes[l - 1] };
            assert_eq!(r[3], prev, "warp {w} lane {l} shfl_up");
            assert_eq!(r[4] as u32, ballot, "warp {w} lane {l} ballot");
            assert_eq!(r[5], votes, "warp {w} lane {l} any/all");
        }
    }
}

pub fn atomic_sum(be: &CudaBackend) {
    let dev = be.device();
    let mut rng = Rng::new(6);
    let n: usize = 10_000;
    let x: Vec<f32> = (0..n).map(|_| rng.uniform(0.0, 1.0) as f32).collect();
    let xb = dev.upload_f32(&x).unwrap();
    let tb = dev.upload_f32(&[0.0]).unwrap();
    dev.launch(
        "selftest_atomic_sum",
        Dims::new([8, 1, 1], [256, 1, 1]),
        &[Arg::Buf(&xb), Arg::Buf(&tb), Arg::I32(n as i32)],
    )
    .unwrap();
    let got = dev.download_f32(&tb).unwrap()[0] as f64;
    let want: f64 = x.iter().map(|&v| v as f64).sum();
    // n positive terms summed in f32 in any order: |error| <= n u sum.
    assert!(
        (got - want).abs() <= n as f64 * 6e-8 * want,
        "atomic sum {got} vs {want}"
    );
}

/// A launch whose arguments do not match the kernel's signature is refused, not run.
pub fn signature_checked(be: &CudaBackend) {
    let dev = be.device();
    let xb = dev.upload_f32(&[1.0; 4]).unwrap();
    let e = dev
        .launch(
            "selftest_block_reverse",
            Dims::linear(4, 4),
            &[Arg::Buf(&xb), Arg::I32(4)],
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("passes arguments 'Fi'") && e.contains("takes 'FFi'"),
        "{e}"
    );
    let e = dev
        .launch("no_such_kernel", Dims::linear(4, 4), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("no kernel named no_such_kernel"), "{e}");
}

pub fn all(be: &CudaBackend) {
    block_reverse(be);
    warp_ops(be);
    atomic_sum(be);
    signature_checked(be);
}
