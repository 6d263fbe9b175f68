//! The synthetic image generator by eye and by the clock, both `#[ignore]`d: rendering speed
//! at full size, and a contact sheet of every class. (Formats, determinism and class signal
//! are tested in tests/synth.rs.)

use skinengine::classes;
use skinengine::data::synth::{SynthConfig, SynthLayout, render_example, write_synth};

/// Rendering speed at full size, one core (run with `--ignored --nocapture`).
#[test]
#[ignore]
fn render_speed() {
    let reps = 3;
    let t0 = std::time::Instant::now();
    let mut jpeg_secs = 0.0;
    for class in 0..classes::COUNT {
        for r in 0..reps {
            let rgb = render_example(class, r, 600, 450).unwrap();
            let t = std::time::Instant::now();
            let mut buf = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, 90)
                .encode(&rgb, 600, 450, image::ExtendedColorType::Rgb8)
                .unwrap();
            jpeg_secs += t.elapsed().as_secs_f64();
        }
    }
    let total = t0.elapsed().as_secs_f64();
    let n = (classes::COUNT * reps as usize) as f64;
    eprintln!(
        "600x450: {:.1} ms per image on one core ({:.1} ms rendering + {:.1} ms JPEG encoding)",
        1e3 * total / n,
        1e3 * (total - jpeg_secs) / n,
        1e3 * jpeg_secs / n
    );
    // The whole command on every core: rendering, encoding, writing.
    let tmp = tempfile::tempdir().unwrap();
    let cfg = SynthConfig {
        n: 200,
        layout: SynthLayout::Ham10000,
        seed: 0,
        width: 600,
        height: 450,
        ..SynthConfig::default()
    };
    let s = write_synth(&tmp.path().join("d"), &cfg).unwrap();
    eprintln!(
        "write_synth 200 images 600x450 on {} threads: {:.2} s, {:.1} images/s",
        rayon::current_num_threads(),
        s.seconds,
        200.0 / s.seconds
    );
}

/// A contact sheet: one row per class, four lesions each, at 300x225
/// (`SYNTH_SHEET=sheet.png cargo test --release --test synth sheet -- --ignored`).
#[test]
#[ignore]
fn sheet() {
    let (w, h, cols) = (300u32, 225u32, 4u32);
    let mut sheet = image::RgbImage::new(w * cols, h * classes::COUNT as u32);
    for class in 0..classes::COUNT {
        for col in 0..cols {
            let rgb = render_example(class, 100 + col as u64, w, h).unwrap();
            let img = image::RgbImage::from_raw(w, h, rgb).unwrap();
            image::imageops::replace(
                &mut sheet,
                &img,
                (col * w) as i64,
                (class as u32 * h) as i64,
            );
        }
    }
    let out = std::env::var("SYNTH_SHEET").unwrap_or_else(|_| {
        std::env::temp_dir()
            .join("synth_sheet.png")
            .display()
            .to_string()
    });
    sheet.save(&out).unwrap();
    eprintln!("rows: {:?} -> {out}", classes::CODES);
}
