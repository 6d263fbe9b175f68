//! Results across CPUs (issue 13, README "Results across CPUs"): which parts of the pipeline give
//! the same bits whatever SIMD level a CPU has, checked by running each level's code path here.

use fast_image_resize::{
    CpuExtensions, PixelType, ResizeAlg, ResizeOptions, Resizer,
    images::{Image, ImageRef},
};

/// Every resize the pipeline does (squash and crop windows, down and up), for each SIMD
/// extension fast_image_resize can pick on an x86-64 CPU: portable, SSE4.1, AVX2. The bilinear
/// convolution on 8-bit pixels is integer arithmetic with the same fixed-point coefficients in
/// every extension, so the pixels must be identical; a CPU's extension then cannot change
/// a model input.
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
        let px = skinengine::data::synth::render_example(class, 11 + class as u64, w, h).unwrap();
        let src = ImageRef::new(w, h, &px, PixelType::U8x3).unwrap();
        for (size, crop) in [
            (224, None),
            (96, None),
            (300, None),
            (224, Some((13.5, 7.25, w as f64 * 0.8, h as f64 * 0.7))),
        ] {
            let run = |ext: CpuExtensions| {
                let mut dst = Image::new(size, size, PixelType::U8x3);
                let mut o = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(
                    fast_image_resize::FilterType::Bilinear,
                ));
                if let Some((l, t, cw, ch)) = crop {
                    o = o.crop(l, t, cw, ch);
                }
                let mut r = Resizer::new();
                // SAFETY: only extensions this CPU supports (filtered above).
                unsafe { r.set_cpu_extensions(ext) };
                r.resize(&src, &mut dst, &o).unwrap();
                dst.into_vec()
            };
            let want = run(CpuExtensions::None);
            for &e in &exts[1..] {
                let got = run(e);
                let diff = got.iter().zip(&want).filter(|(a, b)| a != b).count();
                assert_eq!(
                    diff, 0,
                    "{e:?} vs portable, {w}x{h} -> {size} crop {crop:?}"
                );
                compared += 1;
            }
        }
    }
    assert!(compared > 0, "no SIMD extension to compare on this CPU");
}
