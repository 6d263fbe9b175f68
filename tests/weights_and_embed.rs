//! ResNet50 weight files (real safetensors files in f32, f16, bf16; every kind of bad tensor)
//! and image preprocessing / `embed` on real JPEG and PNG files.

use safetensors::{Dtype, tensor::TensorView};
use skinengine::data::files::collect_images;
use skinengine::data::image::{Decode, ResizeMode, load_rgb, preprocess};
use skinengine::io::safetensors as st;
use skinengine::model::init::random_state_dict;
use skinengine::model::resnet50::{ResNet50, load_state_dict};
use skinengine::pipeline::embed::{EmbedOptions, embed_images};
use skinengine::{CpuBackend, Tensor};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

fn write_sd(path: &Path, sd: &BTreeMap<String, Tensor>) {
    let named: Vec<(&str, &Tensor)> = sd.iter().map(|(k, v)| (k.as_str(), v)).collect();
    st::write(path, &named, &HashMap::new()).unwrap();
}

/// Writes `sd` in a 16-bit dtype plus an i64 `num_batches_tracked` per BN, as
/// `safetensors.torch.save_file(model.half().state_dict())` would.
fn write_sd_16bit(path: &Path, sd: &BTreeMap<String, Tensor>, dtype: Dtype) {
    let mut bufs: Vec<(String, Vec<usize>, Vec<u8>, Dtype)> = sd
        .iter()
        .map(|(k, t)| {
            let bytes: Vec<u8> = t
                .data()
                .iter()
                .flat_map(|&v| match dtype {
                    Dtype::F16 => half::f16::from_f32(v).to_le_bytes(),
                    _ => half::bf16::from_f32(v).to_le_bytes(),
                })
                .collect();
            (k.clone(), t.shape().to_vec(), bytes, dtype)
        })
        .collect();
    for k in sd.keys().filter(|k| k.ends_with("running_var")) {
        let name = k.replace("running_var", "num_batches_tracked");
        bufs.push((name, vec![], 7i64.to_le_bytes().to_vec(), Dtype::I64));
    }
    let views: Vec<(String, TensorView)> = bufs
        .iter()
        .map(|(k, s, b, d)| (k.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

#[test]
fn loads_f32_f16_bf16_and_ignores_num_batches_tracked() {
    let dir = tempfile::tempdir().unwrap();
    let sd = random_state_dict(5, Some(1000));
    let p32 = dir.path().join("w32.safetensors");
    write_sd(&p32, &sd);
    assert_eq!(load_state_dict(&p32).unwrap(), sd);
    for (dtype, rel) in [(Dtype::F16, 1.0 / 1024.0), (Dtype::BF16, 1.0 / 128.0)] {
        let p = dir.path().join(format!("w_{dtype:?}.safetensors"));
        write_sd_16bit(&p, &sd, dtype);
        let got = load_state_dict(&p).unwrap();
        assert_eq!(
            got.len(),
            sd.len(),
            "{dtype:?}: num_batches_tracked must be dropped"
        );
        for (k, t) in &sd {
            let g = &got[k];
            for (a, b) in g.data().iter().zip(t.data()) {
                // One rounding to 11 (f16) or 8 (bf16) significant bits; f16 values here are far
                // from its subnormal range.
                assert!(
                    (a - b).abs() <= rel * b.abs() + 1e-7,
                    "{dtype:?} {k}: {a} vs {b}"
                );
            }
        }
    }
}

#[test]
fn bad_weights_list_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let mut sd = random_state_dict(6, None);
    sd.remove("layer2.1.conv2.weight");
    sd.insert("layer3.0.bn1.weight".into(), Tensor::zeros(&[255]));
    sd.insert("head.extra".into(), Tensor::zeros(&[3]));
    sd.get_mut("layer4.2.conv3.weight").unwrap().data_mut()[17] = f32::NAN;
    sd.insert("fc.weight".into(), Tensor::zeros(&[10, 2048]));
    let p = dir.path().join("bad.safetensors");
    write_sd(&p, &sd);
    let msg = load_state_dict(&p).unwrap_err().to_string();
    for frag in [
        "bad.safetensors",
        "5 problems",
        "missing layer2.1.conv2.weight [128, 128, 3, 3]",
        "layer3.0.bn1.weight has shape [255], expected [256]",
        "unexpected head.extra [3]",
        "layer4.2.conv3.weight has 1 non-finite values",
        "fc.weight without fc.bias",
    ] {
        assert!(msg.contains(frag), "{msg}\nlacks: {frag}");
    }
    // Not a safetensors file at all, and a missing file.
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"hello").unwrap();
    let msg = load_state_dict(&junk).unwrap_err().to_string();
    assert!(
        msg.contains("junk.safetensors") && msg.contains("not a valid safetensors"),
        "{msg}"
    );
    let msg = load_state_dict(&dir.path().join("nope.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("nope.safetensors") && msg.contains("cannot read"),
        "{msg}"
    );
}

/// A 60x45 image with a coloured gradient in several formats and colour types.
fn write_images(dir: &Path) {
    let rgb = image::RgbImage::from_fn(60, 45, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 5) as u8, 128])
    });
    rgb.save(dir.join("ISIC_0000001.jpg")).unwrap();
    rgb.save(dir.join("ISIC_0000002.png")).unwrap();
    let rgba = image::RgbaImage::from_fn(60, 45, |x, y| {
        image::Rgba([(x * 4) as u8, (y * 5) as u8, 128, 200])
    });
    rgba.save(dir.join("ISIC_0000003.png")).unwrap();
    let gray = image::GrayImage::from_fn(45, 60, |x, _| image::Luma([(x * 5) as u8]));
    gray.save(dir.join("ISIC_0000004.jpg")).unwrap();
    let g16 = image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_fn(30, 30, |x, y| {
        image::Luma([(x * y * 70) as u16])
    });
    g16.save(dir.join("ISIC_0000005.png")).unwrap();
}

#[test]
fn preprocessing_converts_every_colour_type() {
    let dir = tempfile::tempdir().unwrap();
    write_images(dir.path());
    for (id, path) in collect_images(&[dir.path().to_path_buf()]).unwrap() {
        for mode in [ResizeMode::Squash, ResizeMode::Crop] {
            let t = preprocess(&path, mode).unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(t.shape(), &[3, 224, 224]);
            // Normalised values of 8-bit pixels lie in [(0 - mean)/std, (1 - mean)/std].
            assert!(t.data().iter().all(|v| (-2.2..=2.7).contains(v)), "{id}");
            assert!(
                t.data().iter().any(|&v| v != t.data()[0]),
                "{id}: constant image"
            );
        }
    }
    // Lossless PNG, squash: a horizontal gradient stays monotone in the red channel.
    let t = preprocess(&dir.path().join("ISIC_0000002.png"), ResizeMode::Squash).unwrap();
    let row: Vec<f32> = t.data()[100 * 224..101 * 224].to_vec();
    assert!(
        row.windows(2).all(|w| w[1] >= w[0] - 1e-6),
        "red gradient not monotone"
    );
}

#[test]
fn real_ham10000_jpeg_decodes() {
    let p = Path::new("../shared/data/ISIC_0024310.jpg");
    if !p.exists() {
        eprintln!("skipping: {} not present", p.display());
        return;
    }
    let img = load_rgb(p).unwrap();
    assert_eq!((img.width, img.height), (600, 450));
    let t = preprocess(p, ResizeMode::Crop).unwrap();
    assert_eq!(t.shape(), &[3, 224, 224]);
}

#[test]
fn bad_image_files_are_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("text.jpg"), b"this is not a jpeg").unwrap();
    let rgb = image::RgbImage::from_fn(64, 64, |x, y| image::Rgb([x as u8, y as u8, 9]));
    rgb.save(d.join("full.jpg")).unwrap();
    let bytes = std::fs::read(d.join("full.jpg")).unwrap();
    std::fs::write(d.join("truncated.jpg"), &bytes[..bytes.len() / 3]).unwrap();
    // Cut 10 bytes short: the decoder alone would fill the rest with grey and say nothing.
    std::fs::write(d.join("cut_short.jpg"), &bytes[..bytes.len() - 10]).unwrap();
    std::fs::write(d.join("empty.png"), b"").unwrap();
    rgb.save(d.join("whole.png")).unwrap();
    let png = std::fs::read(d.join("whole.png")).unwrap();
    std::fs::write(d.join("no_iend.png"), &png[..png.len() - 12]).unwrap();
    let mut flipped = png.clone();
    flipped[png.len() / 2] ^= 0x04;
    std::fs::write(d.join("flipped.png"), &flipped).unwrap();
    for (name, what) in [
        ("text.jpg", "not an image"),
        ("truncated.jpg", "truncated"),
        ("cut_short.jpg", "truncated"),
        ("empty.png", "not an image"),
        ("no_iend.png", "truncated"),
        ("flipped.png", "corrupt"),
    ] {
        let msg = preprocess(&d.join(name), ResizeMode::Squash)
            .unwrap_err()
            .to_string();
        assert!(msg.contains(name) && msg.contains(what), "{msg}");
    }
    preprocess(&d.join("whole.png"), ResizeMode::Squash).unwrap();
    std::fs::remove_file(d.join("whole.png")).unwrap();
    // Duplicate ids across folders, and nothing found.
    std::fs::create_dir(d.join("sub")).unwrap();
    rgb.save(d.join("sub/full.png")).unwrap();
    let msg = collect_images(&[d.to_path_buf()]).unwrap_err().to_string();
    assert!(msg.contains("duplicate image id 'full'"), "{msg}");
    let empty = tempfile::tempdir().unwrap();
    let msg = collect_images(&[empty.path().to_path_buf()])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("no images found"), "{msg}");
}

#[test]
fn embed_matches_direct_forward_and_skips_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    write_images(dir.path());
    std::fs::write(dir.path().join("ISIC_0000009.jpg"), b"broken").unwrap();
    let images = collect_images(&[dir.path().to_path_buf()]).unwrap();
    let b = CpuBackend;
    let model = ResNet50::from_state_dict(&b, &random_state_dict(7, Some(10))).unwrap();
    // Batch 2 over 6 files: batches of good and bad files mixed.
    let opts = |logits, strict| EmbedOptions {
        resize: ResizeMode::Squash,
        batch: 2,
        logits,
        strict,
        // Row 3 is compared with `preprocess`, which decodes at full size.
        decode: Decode::Full,
    };
    let e = embed_images(&b, &model, &images, &opts(true, false)).unwrap();
    assert_eq!(
        e.ids,
        [
            "ISIC_0000001",
            "ISIC_0000002",
            "ISIC_0000003",
            "ISIC_0000004",
            "ISIC_0000005"
        ]
    );
    assert_eq!(e.skipped.len(), 1);
    assert!(e.skipped[0].reason.contains("ISIC_0000009.jpg"));
    assert!(e.skipped[0].file.ends_with("ISIC_0000009.jpg"));
    assert_eq!(e.features.shape(), &[5, 2048]);
    assert_eq!(e.logits.as_ref().unwrap().shape(), &[5, 10]);
    // Row 3 equals a batch-of-one forward of the same file: batching changes nothing.
    let x = preprocess(&images[3].1, ResizeMode::Squash)
        .unwrap()
        .reshape(&[1, 3, 224, 224])
        .unwrap();
    let one = model.forward(&b, &x, false).unwrap().features;
    let row = &e.features.data()[3 * 2048..4 * 2048];
    let scale = one.data().iter().fold(0.0f32, |m, v| m.max(v.abs()));
    for (a, b) in row.iter().zip(one.data()) {
        assert!((a - b).abs() <= 1e-5 * scale, "{a} vs {b}");
    }
    // Strict mode turns the bad file into an error naming it.
    let err = embed_images(&b, &model, &images, &opts(false, true))
        .err()
        .unwrap();
    assert!(err.to_string().contains("ISIC_0000009.jpg"), "{err}");
}

#[test]
fn crop_window_follows_torchvision() {
    use skinengine::data::image::crop_window;
    // 600x450: Resize(256) -> 341x256 (floor(256*600/450)), CenterCrop(224): left offset
    // round(58.5) = 58 (half to even), top 16; mapped back by 600/341 and 450/256.
    let (l, t, w, h) = crop_window(600, 450, 224);
    let (sx, sy) = (600.0 / 341.0, 450.0 / 256.0);
    for (got, want) in [
        (l, 58.0 * sx),
        (t, 16.0 * sy),
        (w, 224.0 * sx),
        (h, 224.0 * sy),
    ] {
        assert!((got - want).abs() < 1e-9, "{got} vs {want}");
    }
    // Portrait 450x600 is the transpose; a square image keeps its centre exactly.
    let (l2, t2, _, _) = crop_window(450, 600, 224);
    assert!((l2 - 16.0 * sy).abs() < 1e-9 && (t2 - 58.0 * sx).abs() < 1e-9);
    let (l3, t3, w3, _) = crop_window(256, 256, 224);
    assert_eq!((l3, t3, w3), (16.0, 16.0, 224.0));
}

#[test]
fn cmyk_jpeg_is_converted_to_rgb() {
    // tests/fixtures/cmyk.jpg (tools/make_cmyk_fixture.py): pixel (0, 0) is C=0 M=0 Y=40 K=10 of
    // 255, i.e. RGB = 255 * (1 - c)(1 - k): (245, 245, 207). JPEG loss allows a few levels.
    let img = load_rgb(Path::new("tests/fixtures/cmyk.jpg")).unwrap();
    assert_eq!((img.width, img.height), (48, 32));
    for (got, want) in img.pixels[..3].iter().zip([245u8, 245, 207]) {
        assert!(got.abs_diff(want) <= 4, "{:?}", &img.pixels[..3]);
    }
    // Cyan grows to the right: red falls across the first row.
    let red_last = img.pixels[(47) * 3];
    assert!(red_last < 40, "red at x=47: {red_last}");
    assert_eq!(
        preprocess(Path::new("tests/fixtures/cmyk.jpg"), ResizeMode::Crop)
            .unwrap()
            .shape(),
        &[3, 224, 224]
    );
}
