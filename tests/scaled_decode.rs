//! DCT-domain scaled decoding (data::scaled, issue 13): the scale chosen, the decoded size, the
//! model input against full decoding, and cut-short files still refused.

use skinengine::data::image::{Decode, Preprocess, ResizeMode, Transform, apply, preprocess};
use skinengine::data::input::{decode_view, image_tensor, view_tensor};
use skinengine::data::scaled::{choose_idct, decode_rgb_scaled, needed_source};
use std::path::{Path, PathBuf};

fn write_jpeg(dir: &Path, name: &str, w: u32, h: u32) -> PathBuf {
    let px = skinengine::data::synth::render_example(2, 7, w, h).unwrap();
    let img = image::RgbImage::from_raw(w, h, px).unwrap();
    let p = dir.join(name);
    let mut f = std::fs::File::create(&p).unwrap();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut f, 95)
        .encode_image(&img)
        .unwrap();
    p
}

#[test]
fn scale_is_the_smallest_that_only_shrinks() {
    let sq = |w, h| {
        let (nw, nh) = needed_source(w, h, &Transform::IDENTITY, ResizeMode::Squash, 224);
        choose_idct(w, h, nw, nh)
    };
    assert_eq!(sq(600, 450), 4); // 300 x 225
    assert_eq!(sq(600, 447), 4); // ceil(447 / 2) = 224: still enough
    assert_eq!(sq(600, 446), 8); // 223 rows at 1/2 would need an enlargement
    assert_eq!(sq(1000, 1000), 2); // 250 x 250 at 1/4
    assert_eq!(sq(2000, 1800), 1); // 250 x 225 at 1/8
    assert_eq!(sq(200, 150), 8); // already smaller than the target: no scaling
    // Crop needs the short side at 256: 1/2 of 450 is 225, so full size.
    let (nw, nh) = needed_source(600, 450, &Transform::IDENTITY, ResizeMode::Crop, 224);
    assert_eq!(choose_idct(600, 450, nw, nh), 8);
    let (nw, nh) = needed_source(1200, 900, &Transform::IDENTITY, ResizeMode::Crop, 224);
    assert_eq!(choose_idct(1200, 900, nw, nh), 4);
}

#[test]
fn decoded_sizes_round_up_on_sizes_not_divisible_by_8() {
    let dir = tempfile::tempdir().unwrap();
    for (w, h, need, want) in [
        (601, 451, 224.0, (301, 226)),
        (603, 453, 60.0, (151, 114)),
        (150, 100, 224.0, (150, 100)),
    ] {
        let p = write_jpeg(dir.path(), &format!("{w}x{h}.jpg"), w, h);
        let bytes = std::fs::read(&p).unwrap();
        let img = decode_rgb_scaled(&p, &bytes, need, need).unwrap();
        assert_eq!((img.width, img.height), want, "{w}x{h}");
        assert_eq!(img.pixels.len(), (want.0 * want.1 * 3) as usize);
    }
}

#[test]
fn scaled_model_input_is_within_the_measured_tolerance() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_jpeg(dir.path(), "lesion.jpg", 600, 450);
    let full = preprocess(&p, ResizeMode::Squash).unwrap();
    let fast = image_tensor(&p, ResizeMode::Squash, Decode::Scaled).unwrap();
    assert_eq!(full.shape(), fast.shape());
    let d: Vec<f32> = full
        .data()
        .iter()
        .zip(fast.data())
        .map(|(a, b)| (a - b).abs())
        .collect();
    let max = d.iter().cloned().fold(0.0, f32::max);
    let mean = d.iter().map(|&v| v as f64).sum::<f64>() / d.len() as f64;
    // README "Scaled JPEG decoding": measured max 0.28-0.62, mean 0.007-0.012 (normalised units).
    assert!(max < 0.8 && mean < 0.015, "max {max} mean {mean}");
    assert!(mean > 0.0, "the scaled path decoded at full size");
}

#[test]
fn cut_short_jpeg_is_refused_on_the_scaled_path() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_jpeg(dir.path(), "whole.jpg", 600, 450);
    let bytes = std::fs::read(&p).unwrap();
    let cut = dir.path().join("cut.jpg");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = decode_rgb_scaled(&cut, &bytes[..bytes.len() / 2], 224.0, 224.0).unwrap_err();
    assert!(e.to_string().contains("truncated"), "{e}");
    // Through the pipelines' entry point, at both decodes: the same refusal, naming the file.
    for decode in [Decode::Scaled, Decode::Full] {
        let e = image_tensor(&cut, ResizeMode::Squash, decode).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("cut.jpg") && msg.contains("truncated"),
            "{msg}"
        );
    }
    // Cut inside the entropy data and closed with an end-of-image marker: README's one case
    // the integrity walk does not catch. The scaled decoder must not fail worse than the full
    // one (no panic); whatever it gives has the scaled size.
    let mut closed = bytes[..bytes.len() * 3 / 4].to_vec();
    closed.extend_from_slice(&[0xFF, 0xD9]);
    let cc = dir.path().join("closed.jpg");
    std::fs::write(&cc, &closed).unwrap();
    if let Ok(t) = image_tensor(&cc, ResizeMode::Squash, Decode::Scaled) {
        assert_eq!(t.shape(), &[3, 224, 224]);
    }
}

#[test]
fn pipelines_decode_full_by_default_and_scaled_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_jpeg(dir.path(), "lesion.jpg", 600, 450);
    let bytes = std::fs::read(&p).unwrap();
    assert_eq!(Preprocess::default().decode, Decode::Full);
    assert_eq!(Decode::from_scaled_flag(true), Decode::Scaled);
    assert_eq!(Decode::from_scaled_flag(false), Decode::Full);
    let size = |pp: &Preprocess, t: &Transform| {
        let img = decode_view(&p, &bytes, t, pp, 224).unwrap();
        (img.width, img.height)
    };
    let scaled = Preprocess {
        decode: Decode::Scaled,
        ..Preprocess::default()
    };
    let full = Preprocess::default();
    let crop = Preprocess {
        resize: ResizeMode::Crop,
        ..scaled
    };
    assert_eq!(size(&scaled, &Transform::IDENTITY), (300, 225));
    assert_eq!(size(&full, &Transform::IDENTITY), (600, 450));
    // Crop mode needs a 256 short side: 1/2 of 450 is too small, so full size.
    assert_eq!(size(&crop, &Transform::IDENTITY), (600, 450));
    // A view cropping to half the width needs twice the pixels across: full size again.
    let half = Transform {
        crop: Some(skinengine::data::image::CropFrac {
            x: 0.25,
            y: 0.0,
            w: 0.5,
            h: 1.0,
        }),
        ..Transform::IDENTITY
    };
    assert_eq!(size(&scaled, &half), (600, 450));
    // Full decoding through the pipelines' entry point is `preprocess`, bit for bit (the
    // parity tests against Pillow compare `preprocess`).
    let want = preprocess(&p, ResizeMode::Squash).unwrap();
    let got = view_tensor(&p, &Transform::IDENTITY, &full, 224).unwrap();
    assert_eq!(want.data(), got.data());
    // A mirrored view at the scaled decode is the mirror of the scaled decode, resized.
    let m = view_tensor(&p, &Transform::IDENTITY.mirrored(), &scaled, 224).unwrap();
    let small = decode_view(&p, &bytes, &Transform::IDENTITY, &scaled, 224).unwrap();
    let mirrored = apply(&small, &Transform::IDENTITY.mirrored());
    let img = skinengine::data::image::resize(&mirrored, ResizeMode::Squash, 224).unwrap();
    let mut want = vec![0f32; 3 * 224 * 224];
    skinengine::data::image::normalise_into(&img, &mut want);
    assert_eq!(m.data(), &want[..]);
    // And the scaled input is not the full one (the path really changed).
    let s = view_tensor(&p, &Transform::IDENTITY, &scaled, 224).unwrap();
    assert_ne!(s.data(), got.data());
}
