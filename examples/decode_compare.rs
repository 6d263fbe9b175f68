//! Full vs DCT-domain scaled decoding (issue 13), for tools/compare_decode.py: for each JPEG given
//! (or, with `--synth DIR K`, K synthetic 600x450 lesions written there first), the difference of
//! the normalised 224x224 model input between the two decodes, and the time per image on one
//! thread of decode + resize + normalise each way. One line of JSON per image on stdout.
//!
//! cargo run --release --example decode_compare -- [--iters N] [--synth DIR K] [FILE.jpg ...]

use skinengine::data::image::{Decode, ResizeMode, preprocess};
use skinengine::data::input::image_tensor;
use std::path::PathBuf;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut iters = 50usize;
    let mut files: Vec<PathBuf> = Vec::new();
    while !args.is_empty() {
        let a = args.remove(0);
        match a.as_str() {
            "--iters" => iters = args.remove(0).parse()?,
            "--synth" => {
                let dir = PathBuf::from(args.remove(0));
                let k: usize = args.remove(0).parse()?;
                std::fs::create_dir_all(&dir)?;
                for i in 0..k {
                    let px =
                        skinengine::data::synth::render_example(i % 7, 100 + i as u64, 600, 450)?;
                    let img = image::RgbImage::from_raw(600, 450, px).expect("600x450 RGB");
                    let p = dir.join(format!("synth_{i}.jpg"));
                    let mut f = std::io::BufWriter::new(std::fs::File::create(&p)?);
                    // Quality 95 like the HAM10000 files (high quality: entropy decoding dominates).
                    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut f, 95)
                        .encode_image(&img)?;
                    files.push(p);
                }
            }
            _ => files.push(PathBuf::from(a)),
        }
    }
    let cpu = skinengine::CpuBackend;
    let model = skinengine::model::resnet50::ResNet50::from_state_dict(
        &cpu,
        &skinengine::model::init::random_state_dict(7, None),
    )?;
    for p in &files {
        for mode in [ResizeMode::Squash, ResizeMode::Crop] {
            let full = preprocess(p, mode)?;
            let fast = image_tensor(p, mode, Decode::Scaled)?;
            let (a, b) = (full.data(), fast.data());
            let mut max = 0f32;
            let mut sum = 0f64;
            for (x, y) in a.iter().zip(b) {
                let d = (x - y).abs();
                max = max.max(d);
                sum += d as f64;
            }
            // Pooled 2048-d features of random-init ResNet50 (no real weights here): relative
            // L2 difference between the two decodes.
            let mut both = a.to_vec();
            both.extend_from_slice(b);
            let x = skinengine::Tensor::new(&[2, 3, 224, 224], both)?;
            let f = model.forward(&cpu, &x, false)?.features;
            let (f0, f1) = f.data().split_at(2048);
            let num: f64 = f0
                .iter()
                .zip(f1)
                .map(|(x, y)| ((x - y) as f64).powi(2))
                .sum();
            let den: f64 = f0.iter().map(|x| (*x as f64).powi(2)).sum();
            let feat_rel = (num / den).sqrt();
            let time = |f: &dyn Fn()| {
                f();
                let t0 = Instant::now();
                for _ in 0..iters {
                    f();
                }
                t0.elapsed().as_secs_f64() / iters as f64 * 1e3
            };
            let t_full = time(&|| {
                preprocess(p, mode).unwrap();
            });
            let t_fast = time(&|| {
                image_tensor(p, mode, Decode::Scaled).unwrap();
            });
            println!(
                "{{\"file\":{:?},\"mode\":\"{}\",\"max_abs\":{max},\"mean_abs\":{},\"feat_rel\":{feat_rel},\"ms_full\":{t_full},\"ms_scaled\":{t_fast}}}",
                p.display().to_string(),
                mode.name(),
                sum / a.len() as f64
            );
        }
    }
    Ok(())
}
