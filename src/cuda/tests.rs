//! Checks of the CUDA plumbing itself, on the emulator and (ignored unless run by the GPU check)
//! the GPU: the self-test kernels (`selftest.cu`) against results computed here, so if both
//! pass, the emulator means what the GPU means; and the launch checks every op relies on
//! (signatures, integer ranges, structs and doubles by value).

use super::device::MAX_KERNEL_INT;
use super::kernel_args::{Window, WindowSizes};
use super::{Arg, CudaBackend, Dims};
use crate::Rng;

fn block_reverse(be: &CudaBackend) {
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
        &[Arg::Buf(&xb), Arg::Buf(&yb), Arg::Int(n)],
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

fn warp_ops(be: &CudaBackend) {
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

fn atomic_sum(be: &CudaBackend) {
    let dev = be.device();
    let mut rng = Rng::new(6);
    let n: usize = 10_000;
    let x: Vec<f32> = (0..n).map(|_| rng.uniform(0.0, 1.0) as f32).collect();
    let xb = dev.upload_f32(&x).unwrap();
    let tb = dev.upload_f32(&[0.0]).unwrap();
    dev.launch(
        "selftest_atomic_sum",
        Dims::new([8, 1, 1], [256, 1, 1]),
        &[Arg::Buf(&xb), Arg::Buf(&tb), Arg::Int(n)],
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
fn signature_checked(be: &CudaBackend) {
    let dev = be.device();
    let xb = dev.upload_f32(&[1.0; 4]).unwrap();
    let e = dev
        .launch(
            "selftest_block_reverse",
            Dims::linear(4, 4),
            &[Arg::Buf(&xb), Arg::Int(4)],
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

/// Integers past a kernel `int` are refused at launch (no call site can truncate one), and
/// structs are checked by name.
fn ranges_and_structs_checked(be: &CudaBackend) {
    let dev = be.device();
    let xb = dev.upload_f32(&[1.0; 4]).unwrap();
    let yb = dev.upload_f32(&[0.0; 4]).unwrap();
    let e = dev
        .launch(
            "selftest_block_reverse",
            Dims::linear(4, 4),
            &[Arg::Buf(&xb), Arg::Buf(&yb), Arg::Int(MAX_KERNEL_INT + 1)],
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("selftest_block_reverse") && e.contains("32-bit") && e.contains("argument 2"),
        "{e}"
    );
    let e = crate::cuda::KInt::new("conv2d", "batch", MAX_KERNEL_INT + 1)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("conv2d") && e.contains("batch") && e.contains("32-bit"),
        "{e}"
    );
    #[repr(C)]
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    struct Other {
        a: i32,
    }
    impl super::KernelStruct for Other {
        const NAME: &'static str = "Other";
    }
    let out = dev.upload_i32(&[0; 15]).unwrap();
    let e = dev
        .launch(
            "selftest_struct_args",
            Dims::linear(1, 1),
            &[
                Arg::by_value(&Other { a: 1 }),
                Arg::F64(0.5),
                Arg::Buf(&out),
            ],
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("{Other}") && e.contains("{Window}"), "{e}");
}

/// A struct and a double arrive field for field and bit for bit.
fn struct_and_double_by_value(be: &CudaBackend) {
    let dev = be.device();
    let win = Window::new(
        "selftest",
        WindowSizes {
            input: [1, 2, 3, 4],
            out: [5, 6, 7],
            kernel: (8, 9),
            stride: (10, 11),
            padding: (12, 13),
        },
    )
    .unwrap();
    let d = 0.1f64; // not a float: a split or truncated double would show
    let out = dev.upload_i32(&[0; 15]).unwrap();
    dev.launch(
        "selftest_struct_args",
        Dims::linear(1, 1),
        &[Arg::by_value(&win), Arg::F64(d), Arg::Buf(&out)],
    )
    .unwrap();
    let got = dev.download_i32(&out).unwrap();
    assert_eq!(
        &got[..13],
        &(1..=13).collect::<Vec<i32>>()[..],
        "Window fields in order"
    );
    let bits = ((got[13] as u32 as u64) << 32) | got[14] as u32 as u64;
    assert_eq!(f64::from_bits(bits), d, "double by value");
}

#[cfg(skinengine_emu)]
mod emulator {
    fn be() -> super::CudaBackend {
        crate::testing::suite::emulator()
    }
    #[test]
    fn block_reverse() {
        super::block_reverse(&be());
    }
    #[test]
    fn warp_ops() {
        super::warp_ops(&be());
    }
    #[test]
    fn atomic_sum() {
        super::atomic_sum(&be());
    }
    #[test]
    fn signature_checked() {
        super::signature_checked(&be());
    }
    #[test]
    fn ranges_and_structs_checked() {
        super::ranges_and_structs_checked(&be());
    }
    #[test]
    fn struct_and_double_by_value() {
        super::struct_and_double_by_value(&be());
    }
}

mod gpu {
    fn be() -> super::CudaBackend {
        crate::testing::suite::gpu()
    }
    #[test]
    #[ignore = "needs a GPU: run by tools/gpu_check.sh"]
    fn selftest_kernels() {
        let be = be();
        super::block_reverse(&be);
        super::warp_ops(&be);
        super::atomic_sum(&be);
        super::signature_checked(&be);
        super::ranges_and_structs_checked(&be);
        super::struct_and_double_by_value(&be);
    }
}
