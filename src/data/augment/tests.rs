use super::*;
use crate::data::image::{Transform, preprocess};
use rayon::prelude::*;

/// A photo-like image: a dark lesion on skin, with texture.
fn synthetic(w: u32, h: u32) -> Rgb {
    let mut pixels = Vec::with_capacity((w * h * 3) as usize);
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    for y in 0..h {
        for x in 0..w {
            let d = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();
            let v = (220.0 - 150.0 * (-d / (w as f32 / 5.0)).exp() + ((x * 7 + y * 13) % 17) as f32)
                as u8;
            pixels.extend_from_slice(&[v, (v as f32 * 0.75) as u8, (v as f32 * 0.6) as u8]);
        }
    }
    Rgb {
        width: w,
        height: h,
        pixels,
    }
}

/// An n x n image whose pixel (i, j) is (i, j, i * n + j): every pixel distinct.
fn labelled(n: u32) -> Rgb {
    let mut pixels = Vec::new();
    for i in 0..n {
        for j in 0..n {
            pixels.extend_from_slice(&[i as u8, j as u8, (i * n + j) as u8]);
        }
    }
    Rgb {
        width: n,
        height: n,
        pixels,
    }
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.data().iter().map(|v| v.to_bits()).collect()
}

#[test]
fn same_seed_epoch_id_gives_the_same_tensor_and_epochs_differ() {
    let cfg = AugmentConfig::default();
    let img = synthetic(300, 225);
    let a = draw(&cfg, 7, 3, "ISIC_0024310").unwrap();
    let b = draw(&cfg, 7, 3, "ISIC_0024310").unwrap();
    assert_eq!(a, b);
    let (ta, tb) = (apply(&img, &a, 224).unwrap(), apply(&img, &b, 224).unwrap());
    assert_eq!(ta.shape(), &[3, 224, 224]);
    assert_eq!(bits(&ta), bits(&tb));
    let next = draw(&cfg, 7, 4, "ISIC_0024310").unwrap();
    assert_ne!(a, next);
    assert_ne!(bits(&ta), bits(&apply(&img, &next, 224).unwrap()));
    assert_ne!(a, draw(&cfg, 8, 3, "ISIC_0024310").unwrap());
    assert_ne!(a, draw(&cfg, 7, 3, "ISIC_0024311").unwrap());
    // Every epoch of a run draws a different crop for the same image.
    let windows: std::collections::HashSet<_> = (0..50)
        .map(|e| draw(&cfg, 7, e, "ISIC_0024310").unwrap().window(600, 450))
        .collect();
    assert_eq!(windows.len(), 50);
}

#[test]
fn draws_do_not_depend_on_call_order_or_other_images() {
    let cfg = AugmentConfig::default();
    let img = synthetic(120, 90);
    let ids: Vec<String> = (0..16).map(|i| format!("ISIC_{i:07}")).collect();
    let forward: Vec<Vec<u32>> = ids
        .iter()
        .map(|id| bits(&apply(&img, &draw(&cfg, 1, 2, id).unwrap(), 64).unwrap()))
        .collect();
    // Reverse order, with other images' draws interleaved.
    let mut backward: Vec<Vec<u32>> = ids
        .iter()
        .rev()
        .map(|id| {
            draw(&cfg, 1, 2, "someone else").unwrap();
            bits(&apply(&img, &draw(&cfg, 1, 2, id).unwrap(), 64).unwrap())
        })
        .collect();
    backward.reverse();
    assert_eq!(forward, backward);
    // A subset, processed in parallel.
    let parallel: Vec<Vec<u32>> = ids[5..11]
        .par_iter()
        .map(|id| bits(&apply(&img, &draw(&cfg, 1, 2, id).unwrap(), 64).unwrap()))
        .collect();
    assert_eq!(&forward[5..11], &parallel[..]);
}

/// Over 4000 draws on a 600 x 450 image the windows lie inside the image, their area
/// fraction in [scale.0 * (1 - tol), scale.1] and their aspect in
/// [ratio.0 * (1 - tol), ratio.1 * (1 + tol)], where tol = 1.01 / m and m is the smallest
/// exact side an attempt can have, sqrt(W * H * scale.0 * ratio.0) (rounding each side to
/// whole pixels moves it by at most half a pixel); the extremes of the ranges are reached
/// and positions, flips, quarter turns and jitter factors have their expected frequencies.
#[test]
fn crop_statistics_stay_within_the_configured_bounds() {
    for scale in [(0.25, 1.0), (0.08, 1.0)] {
        let cfg = AugmentConfig {
            scale,
            ..AugmentConfig::default()
        };
        let (w, h) = (600u32, 450u32);
        let area = (w * h) as f64;
        let tol = 1.01 / (area * scale.0 * cfg.ratio.0).sqrt();
        let n = 4000;
        let (mut amin, mut amax, mut rmin, mut rmax) = (f64::MAX, 0.0f64, f64::MAX, 0.0f64);
        let (mut cx, mut cy, mut hf, mut vf) = (0.0, 0.0, 0usize, 0usize);
        let mut ks = [0usize; 4];
        let mut orders = std::collections::HashSet::new();
        for i in 0..n {
            let a = draw(&cfg, 11, 0, &format!("img{i}")).unwrap();
            let (l, t, cw, ch) = a.window(w, h);
            assert!(
                cw >= 1 && ch >= 1 && l + cw <= w && t + ch <= h,
                "{l} {t} {cw} {ch}"
            );
            let af = (cw * ch) as f64 / area;
            let r = cw as f64 / ch as f64;
            assert!(af >= scale.0 * (1.0 - tol) && af <= scale.1, "area {af}");
            assert!(
                r >= cfg.ratio.0 * (1.0 - tol) && r <= cfg.ratio.1 * (1.0 + tol),
                "ratio {r}"
            );
            (amin, amax, rmin, rmax) = (amin.min(af), amax.max(af), rmin.min(r), rmax.max(r));
            cx += (l as f64 + cw as f64 / 2.0) / w as f64;
            cy += (t as f64 + ch as f64 / 2.0) / h as f64;
            hf += a.hflip as usize;
            vf += a.vflip as usize;
            ks[a.rot90 as usize] += 1;
            let j = a.jitter;
            for f in [j.brightness, j.contrast, j.saturation] {
                assert!((0.9..=1.1).contains(&f), "jitter {f}");
            }
            orders.insert(j.order);
        }
        assert!(amin < scale.0 + 0.02 && amax > 0.95, "area {amin}..{amax}");
        assert!(rmin < 0.77 && rmax > 1.30, "ratio {rmin}..{rmax}");
        let nf = n as f64;
        // Standard errors: ~0.0045 for the centres, 0.0079 for a rate of 0.5, 0.0068 for
        // 0.25; the bounds are over 4 of them.
        assert!((cx / nf - 0.5).abs() < 0.02 && (cy / nf - 0.5).abs() < 0.02);
        assert!((hf as f64 / nf - 0.5).abs() < 0.035, "hflip {hf}");
        assert!((vf as f64 / nf - 0.5).abs() < 0.035, "vflip {vf}");
        for k in ks {
            assert!((k as f64 / nf - 0.25).abs() < 0.03, "rot90 {ks:?}");
        }
        assert_eq!(orders.len(), 6);
    }
}

#[test]
fn crop_window_follows_torchvision_rounding_and_fallback() {
    let attempt = |scale, aspect| CropAttempt {
        scale,
        aspect,
        top: 0.999,
        left: 0.0,
    };
    let ratio = (3.0 / 4.0, 4.0 / 3.0);
    // sqrt(10 * 10 * 0.0625) = 2.5 rounds half to even, to 2 (Python's round).
    let c = CropDraw {
        attempts: [attempt(0.0625, 1.0); CROP_ATTEMPTS],
        ratio,
    };
    assert_eq!(c.window(10, 10), (0, 8, 2, 2));
    // Every attempt too large (a 520 x 520 square in 600 x 450): the central fallback.
    let c = CropDraw {
        attempts: [attempt(1.0, 1.0); CROP_ATTEMPTS],
        ratio,
    };
    assert_eq!(c.window(600, 450), (0, 0, 600, 450)); // 4/3 is inside the ratio range
    assert_eq!(c.window(1000, 100), (433, 0, 133, 100)); // w = round(100 * 4/3)
    assert_eq!(c.window(100, 1000), (0, 433, 100, 133)); // h = round(100 / (3/4))
    // The last attempt that fits is used only if all before it failed.
    let mut attempts = [attempt(1.0, 1.0); CROP_ATTEMPTS];
    attempts[9] = attempt(0.25, 1.0);
    let c = CropDraw { attempts, ratio };
    let (_, _, w, h) = c.window(600, 450);
    assert_eq!((w, h), (260, 260)); // round(sqrt(67500)) = round(259.8)
    // Degenerate images never give an empty or out-of-range window.
    assert_eq!(c.window(1, 1), (0, 0, 1, 1));
}

#[test]
fn crop_copies_exactly_the_window() {
    let img = synthetic(97, 61);
    let cfg = AugmentConfig {
        scale: (0.01, 1.0),
        ..AugmentConfig::default()
    };
    let mut windows = vec![
        (0, 0, 97, 61),
        (10, 5, 40, 50),
        (96, 60, 1, 1),
        (3, 0, 94, 61),
    ];
    for e in 0..200 {
        let a = draw(&cfg, 3, e, "odd").unwrap();
        let f = a.crop_frac(97, 61);
        let (l, t, w, h) = a.window(97, 61);
        assert_eq!(
            [f.x * 97.0, f.y * 61.0, f.w * 97.0, f.h * 61.0].map(f64::round),
            [l as f64, t as f64, w as f64, h as f64]
        );
        windows.push((l, t, w, h));
    }
    for (l, t, w, h) in windows {
        let got = crop(&img, (l, t, w, h));
        assert_eq!((got.width, got.height), (w, h));
        let view = Transform {
            crop: Some(CropFrac {
                x: l as f64 / 97.0,
                y: t as f64 / 61.0,
                w: w as f64 / 97.0,
                h: h as f64 / 61.0,
            }),
            ..Transform::IDENTITY
        };
        assert_eq!(got.pixels, image::apply(&img, &view).pixels);
        let mut want = Vec::new();
        for y in t..t + h {
            let at = ((y * 97 + l) * 3) as usize;
            want.extend_from_slice(&img.pixels[at..at + 3 * w as usize]);
        }
        assert_eq!(got.pixels, want, "window {l} {t} {w} {h}");
    }
}

#[test]
fn flips_and_quarter_turns_move_pixels_exactly() {
    // [[1,2,3],[4,5,6],[7,8,9]] in the third channel (+1).
    let img = labelled(3);
    let grid = |h: bool, v: bool, k: u8| -> Vec<u8> {
        let mut out = vec![0.0f32; 27];
        oriented_planes(&img, h, v, k, &mut out);
        out[18..].iter().map(|v| *v as u8 + 1).collect()
    };
    let cases: [(bool, bool, u8, [u8; 9]); 6] = [
        (false, false, 0, [1, 2, 3, 4, 5, 6, 7, 8, 9]),
        (true, false, 0, [3, 2, 1, 6, 5, 4, 9, 8, 7]),
        (false, true, 0, [7, 8, 9, 4, 5, 6, 1, 2, 3]),
        // torch.rot90(x, 1) / np.rot90: counter-clockwise.
        (false, false, 1, [3, 6, 9, 2, 5, 8, 1, 4, 7]),
        (false, false, 2, [9, 8, 7, 6, 5, 4, 3, 2, 1]),
        // hflip then a counter-clockwise turn is the transpose.
        (true, false, 1, [1, 4, 7, 2, 5, 8, 3, 6, 9]),
    ];
    for (h, v, k, want) in cases {
        assert_eq!(grid(h, v, k), want, "{h} {v} {k}");
    }
    // k = 3 undoes k = 1; all 16 combinations are permutations giving each of the 8
    // symmetries of the square twice.
    for i in 0..3 {
        for j in 0..3 {
            let (a, b) = source(3, false, false, 3, i, j);
            assert_eq!(source(3, false, false, 1, a, b), (i, j));
        }
    }
    let mut seen = std::collections::HashMap::new();
    for h in [false, true] {
        for v in [false, true] {
            for k in 0..4 {
                let g = grid(h, v, k);
                let mut sorted = g.clone();
                sorted.sort();
                assert_eq!(sorted, (1..=9).collect::<Vec<u8>>());
                *seen.entry(g).or_insert(0) += 1;
            }
        }
    }
    assert_eq!(seen.len(), 8);
    assert!(seen.values().all(|&c| c == 2));

    // Through `apply` (no crop, resized to its own size, no jitter): every output pixel
    // is the input pixel the flip / turn sends there, found by its distinct value.
    let n = 6u32;
    let img = labelled(n);
    let base = apply(&img, &Augment::IDENTITY, n).unwrap();
    let mut direct = vec![0.0f32; (3 * n * n) as usize];
    image::normalise_into(&img, &mut direct);
    assert_eq!(
        base.data(),
        &direct[..],
        "same-size resize is not the identity"
    );
    let plane = (n * n) as usize;
    let last = n as usize - 1;
    for (hflip, vflip, rot90) in [(true, false, 0), (false, true, 3), (true, true, 1)] {
        let a = Augment {
            hflip,
            vflip,
            rot90,
            ..Augment::IDENTITY
        };
        let t = apply(&img, &a, n).unwrap();
        for i in 0..n as usize {
            for j in 0..n as usize {
                let (bi, bj) = match rot90 {
                    0 => (i, j),
                    1 => (j, last - i),
                    _ => (last - j, i),
                };
                let si = if vflip { last - bi } else { bi };
                let sj = if hflip { last - bj } else { bj };
                for c in 0..3 {
                    assert_eq!(
                        t.data()[c * plane + i * n as usize + j],
                        base.data()[c * plane + si * n as usize + sj]
                    );
                }
            }
        }
    }
}

#[test]
fn none_is_preprocess_squash_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lesion.jpg");
    let img = synthetic(300, 200);
    ::image::RgbImage::from_raw(img.width, img.height, img.pixels.clone())
        .unwrap()
        .save(&path)
        .unwrap();
    let cfg = AugmentConfig::none();
    let want = bits(&preprocess(&path, ResizeMode::Squash).unwrap());
    for epoch in 0..3 {
        let a = draw(&cfg, 5, epoch, "lesion").unwrap();
        assert_eq!(a.crop, None);
        assert!(!a.hflip && !a.vflip && a.rot90 == 0 && a.jitter.is_identity());
        assert_eq!(bits(&load_augmented(&path, &a, &cfg).unwrap()), want);
    }
    assert_eq!(
        bits(&load_augmented(&path, &Augment::IDENTITY, &cfg).unwrap()),
        want
    );
}

#[test]
fn jitter_with_unit_factors_is_the_identity_and_other_factors_follow_torchvision() {
    let img = synthetic(40, 40);
    let n = 40 * 40;
    let mut planes = vec![0.0f32; 3 * n];
    oriented_planes(&img, false, false, 0, &mut planes);
    // Include the extremes.
    planes[0] = 0.0;
    planes[1] = 255.0;
    let orig = planes.clone();
    let ops = [
        JitterOp::Brightness,
        JitterOp::Contrast,
        JitterOp::Saturation,
    ];
    for order in [[0, 1, 2], [2, 1, 0], [1, 0, 2], [1, 2, 0]] {
        let j = Jitter {
            order: order.map(|i| ops[i]),
            ..Jitter::IDENTITY
        };
        let mut p = planes.clone();
        color_jitter(&mut p, n, &j);
        assert_eq!(
            p.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            orig.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }
    // The float path normalises integral values exactly like normalise_into.
    let mut direct = vec![0.0f32; 3 * n];
    image::normalise_into(&img, &mut direct);
    let mut q = vec![0.0f32; 3 * n];
    oriented_planes(&img, false, false, 0, &mut q);
    normalise_planes(&mut q, n);
    assert_eq!(
        q.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        direct.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );

    // One operation at factor f; the other two (at 1, the identity as shown) after it.
    let one = |op: JitterOp, f: f32| {
        let mut p = planes.clone();
        let mut order = ops;
        order.sort_by_key(|o| *o != op);
        let mut j = Jitter {
            order,
            ..Jitter::IDENTITY
        };
        match op {
            JitterOp::Brightness => j.brightness = f,
            JitterOp::Contrast => j.contrast = f,
            JitterOp::Saturation => j.saturation = f,
        }
        color_jitter(&mut p, n, &j);
        p
    };
    // Brightness multiplies and clamps.
    let p = one(JitterOp::Brightness, 1.5);
    for (v, o) in p.iter().zip(&orig) {
        assert_eq!(*v, (1.5 * o).min(255.0));
    }
    // Contrast 0: every value becomes the mean grey level.
    let mean = (0..n)
        .map(|i| grey(orig[i], orig[n + i], orig[2 * n + i]) as f64)
        .sum::<f64>()
        / n as f64;
    let p = one(JitterOp::Contrast, 0.0);
    assert!(p.iter().all(|v| (*v as f64 - mean).abs() < 1e-3), "{mean}");
    // Saturation 0: each pixel becomes its grey level in all three channels.
    let p = one(JitterOp::Saturation, 0.0);
    for i in 0..n {
        let l = grey(orig[i], orig[n + i], orig[2 * n + i]);
        assert_eq!([p[i], p[n + i], p[2 * n + i]], [l, l, l]);
    }
    // Saturation 2 pushes away from grey and clamps to [0, 255].
    let p = one(JitterOp::Saturation, 2.0);
    assert!(p.iter().all(|v| (0.0..=255.0).contains(v)));
    let i = n / 2;
    let l = grey(orig[i], orig[n + i], orig[2 * n + i]);
    assert_eq!(p[i], (2.0 * orig[i] - l).clamp(0.0, 255.0));
}

#[test]
fn bad_inputs_are_errors() {
    let img = synthetic(20, 10);
    let a = draw(&AugmentConfig::default(), 0, 0, "x").unwrap();
    assert!(apply(&img, &a, 0).is_err());
    assert!(apply(&img, &a, MAX_SIZE + 1).is_err());
    let empty = Rgb {
        width: 0,
        height: 0,
        pixels: vec![],
    };
    assert!(apply(&empty, &a, 8).is_err());
    assert!(apply(&empty, &Augment::IDENTITY, 8).is_err());
    let flat = Rgb {
        width: 20,
        height: 0,
        pixels: vec![],
    };
    assert!(apply(&flat, &a, 8).is_err());
    let short = Rgb {
        width: 2,
        height: 2,
        pixels: vec![0; 5],
    };
    assert!(apply(&short, &a, 8).is_err());
    assert!(apply_into(&img, &a, 8, &mut [0.0; 3 * 8 * 8 - 1]).is_err());
    // Windows of degenerate sizes never panic.
    for (w, h) in [(0, 0), (0, 5), (5, 0), (1, 1), (1, 1000)] {
        let (l, t, cw, ch) = a.window(w, h);
        assert!(l + cw <= w.max(1) && t + ch <= h.max(1));
    }

    let bad = [
        AugmentConfig {
            size: 0,
            ..AugmentConfig::default()
        },
        AugmentConfig {
            scale: (0.5, 0.2),
            ..AugmentConfig::default()
        },
        AugmentConfig {
            scale: (0.0, 1.0),
            ..AugmentConfig::default()
        },
        AugmentConfig {
            scale: (0.5, 1.5),
            ..AugmentConfig::default()
        },
        AugmentConfig {
            ratio: (f64::NAN, 1.0),
            ..AugmentConfig::default()
        },
        AugmentConfig {
            ratio: (-1.0, 1.0),
            ..AugmentConfig::default()
        },
        AugmentConfig {
            jitter: JitterConfig {
                contrast: -0.1,
                ..AugmentConfig::default().jitter
            },
            ..AugmentConfig::default()
        },
        AugmentConfig {
            jitter: JitterConfig {
                brightness: f64::INFINITY,
                ..AugmentConfig::default().jitter
            },
            ..AugmentConfig::default()
        },
    ];
    for cfg in bad {
        assert!(cfg.validate().is_err(), "{cfg:?}");
        assert!(draw(&cfg, 0, 0, "x").is_err(), "{cfg:?}");
    }

    let dir = tempfile::tempdir().unwrap();
    let cfg = AugmentConfig::default();
    let missing = dir.path().join("missing.jpg");
    let e = load_augmented(&missing, &a, &cfg).unwrap_err().to_string();
    assert!(e.contains("missing.jpg"), "{e}");
    let zero = AugmentConfig { size: 0, ..cfg };
    let path = dir.path().join("cut.jpg");
    ::image::RgbImage::from_raw(img.width, img.height, img.pixels.clone())
        .unwrap()
        .save(&path)
        .unwrap();
    assert!(load_augmented(&path, &a, &zero).is_err());
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_augmented(&path, &a, &cfg).unwrap_err().to_string();
    assert!(e.contains("cut.jpg") && e.contains("truncated"), "{e}");
}
