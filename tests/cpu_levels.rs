//! Results across CPUs (issue 13, README "Results across CPUs"): which parts of the pipeline give
//! the same bits whatever SIMD level a CPU has, checked by running each level's code path here.

use fast_image_resize::CpuExtensions;
use skinengine::data::image::{ResizeMode, Rgb, resize_with};

/// The pipeline's resize (`data::image::resize`: squash and torchvision's crop window, down
/// and up) run with each SIMD extension fast_image_resize can pick on an x86-64 CPU:
/// portable, SSE4.1, AVX2. The bilinear convolution on 8-bit pixels is integer arithmetic with
/// the same fixed-point coefficients in every extension, so the pixels must be identical; a
/// CPU's extension then cannot change a model input. (Augmentation crops by copying pixels and
/// then squashes, so these two modes are every resize the pipeline does.)
#[test]
#[cfg(target_arch = "x86_64")]
fn resize_is_identical_with_every_cpu_extension() {
    let exts: Vec<CpuExtensions> = [
        CpuExtensions::None,
        CpuExtensions::Sse4_1,
        CpuExtensions::Avx2,
    ]
    .into_iter()
    .filter(|e| e.is_supported())
    .collect();
    let mut compared = 0;
    for (class, (w, h)) in [
        (0, (600, 450)),
        (3, (450, 600)),
        (5, (97, 61)),
        (6, (640, 480)),
    ] {
        let pixels =
            skinengine::data::synth::render_example(class, 11 + class as u64, w, h).unwrap();
        let img = Rgb {
            width: w,
            height: h,
            pixels,
        };
        for size in [224, 96, 300] {
            for mode in [ResizeMode::Squash, ResizeMode::Crop] {
                let run = |ext| resize_with(&img, mode, size, Some(ext)).unwrap().pixels;
                let want = run(CpuExtensions::None);
                // What the pipeline runs (the best extension this CPU has) gives them too.
                let default = skinengine::data::image::resize(&img, mode, size).unwrap();
                assert!(
                    default.pixels == want,
                    "default vs portable, {w}x{h} -> {size} {mode:?}"
                );
                for &e in &exts[1..] {
                    let got = run(e);
                    let diff = got.iter().zip(&want).filter(|(a, b)| a != b).count();
                    assert_eq!(diff, 0, "{e:?} vs portable, {w}x{h} -> {size} {mode:?}");
                    compared += 1;
                }
            }
        }
    }
    assert!(compared > 0, "no SIMD extension to compare on this CPU");
}
