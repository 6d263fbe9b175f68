//! DCT-domain scaled decoding (data::scaled, issue 13): the scale chosen, the decoded size, the
//! model input against full decoding, and cut-short files still refused.

use skinengine::data::image::{ResizeMode, Transform, preprocess};
use skinengine::data::scaled::{choose_idct, decode_rgb_scaled, needed_source, preprocess_scaled};
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
    let fast = preprocess_scaled(&p, ResizeMode::Squash).unwrap();
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
    let e = preprocess_scaled(&cut, ResizeMode::Squash).unwrap_err();
    assert!(e.to_string().contains("cut.jpg"), "{e}");
}
