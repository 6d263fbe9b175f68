//! Splits preprocessing time into decode, resize and normalise on one image:
//!   cargo run --release --example decode_timing -- IMAGE.jpg
use skinengine::data::image::{ResizeMode, load_rgb, normalise_into, resize};
use std::time::Instant;

fn main() {
    let p = std::path::PathBuf::from(std::env::args().nth(1).expect("image path"));
    let n = 50;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(load_rgb(&p).unwrap());
    }
    let dec = t.elapsed().as_secs_f64() / n as f64;
    let img = load_rgb(&p).unwrap();
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(resize(&img, ResizeMode::Squash, 224).unwrap());
    }
    let rs = t.elapsed().as_secs_f64() / n as f64;
    let small = resize(&img, ResizeMode::Squash, 224).unwrap();
    let mut out = vec![0.0f32; 3 * 224 * 224];
    let t = Instant::now();
    for _ in 0..n {
        normalise_into(&small, &mut out);
    }
    let nm = t.elapsed().as_secs_f64() / n as f64;
    println!(
        "decode {:.2} ms, resize {:.2} ms, normalise {:.3} ms",
        dec * 1e3,
        rs * 1e3,
        nm * 1e3
    );
}
