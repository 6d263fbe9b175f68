//! Decode + resize + normalise throughput on 600x450 JPEGs (the HAM10000 size), one image on one
//! thread and a batch of 32 over all threads, at full and (the pipelines' default) DCT-scaled
//! decoding. Uses the real HAM10000 image from ../shared/data
//! when present, else a generated photo-like JPEG of the same size. `augment_600x450_jpeg`:
//! one image decoded and put through the training augmentation (a new draw each iteration)
//! against the evaluation preprocessing. `integrity_600x450_jpeg`: what the whole-file checks
//! of issue 13 cost (a decode without them, the checked decode, the structure walk alone, and
//! the load-time check of one file that `train` runs over its data set).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rayon::prelude::*;
use skinengine::data::augment::{AugmentConfig, draw, load_augmented};
use skinengine::data::image::{Decode, ResizeMode, check_file, load_rgb, preprocess};
use skinengine::data::input::image_tensor;
use skinengine::data::integrity;
use std::hint::black_box;
use std::path::PathBuf;

fn sample_jpeg(dir: &std::path::Path) -> PathBuf {
    let real = PathBuf::from("../shared/data/ISIC_0024310.jpg");
    if real.exists() {
        return real;
    }
    let p = dir.join("sample.jpg");
    let img = image::RgbImage::from_fn(600, 450, |x, y| {
        let d = ((x as f32 - 300.0).powi(2) + (y as f32 - 225.0).powi(2)).sqrt();
        let v = (200.0 - d * 0.4 + ((x * 7 + y * 13) % 17) as f32).clamp(0.0, 255.0) as u8;
        image::Rgb([v, (v as f32 * 0.7) as u8, (v as f32 * 0.6) as u8])
    });
    img.save(&p).unwrap();
    p
}

fn decode(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = sample_jpeg(dir.path());
    let mut g = c.benchmark_group("preprocess_600x450_jpeg");
    g.throughput(Throughput::Elements(1));
    for mode in [ResizeMode::Squash, ResizeMode::Crop] {
        g.bench_function(format!("one_image_{}", mode.name()), |b| {
            b.iter(|| preprocess(black_box(&path), mode).unwrap())
        });
    }
    let batch: Vec<PathBuf> = (0..32).map(|_| path.clone()).collect();
    g.throughput(Throughput::Elements(batch.len() as u64));
    g.bench_function("batch32_all_threads_squash", |b| {
        b.iter(|| {
            batch
                .par_iter()
                .map(|p| preprocess(p, ResizeMode::Squash).unwrap())
                .count()
        })
    });
    // What embed/infer/train's feature pass do by default (issue 13): DCT-scaled decoding.
    g.bench_function("batch32_all_threads_squash_scaled", |b| {
        b.iter(|| {
            batch
                .par_iter()
                .map(|p| image_tensor(p, ResizeMode::Squash, Decode::Scaled).unwrap())
                .count()
        })
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("one_image_squash_scaled", |b| {
        b.iter(|| image_tensor(black_box(&path), ResizeMode::Squash, Decode::Scaled).unwrap())
    });
    g.finish();
}

fn augment(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = sample_jpeg(dir.path());
    let mut g = c.benchmark_group("augment_600x450_jpeg");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode_preprocess_squash", |b| {
        b.iter(|| preprocess(black_box(&path), ResizeMode::Squash).unwrap())
    });
    for (name, cfg) in [
        ("decode_augment_default", AugmentConfig::default()),
        ("decode_augment_none", AugmentConfig::none()),
    ] {
        let mut epoch = 0u64;
        g.bench_function(name, |b| {
            b.iter(|| {
                epoch += 1;
                let a = draw(&cfg, 0, epoch, "ISIC_0024310").unwrap();
                load_augmented(black_box(&path), &a, &cfg).unwrap()
            })
        });
    }
    g.finish();
}

fn integrity(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = sample_jpeg(dir.path());
    let bytes = std::fs::read(&path).unwrap();
    let mut g = c.benchmark_group("integrity_600x450_jpeg");
    g.throughput(Throughput::Elements(1));
    // The decode as it was before the checks: the image crate alone (which fills a JPEG cut
    // short with grey and reports nothing).
    g.bench_function("decode_unchecked", |b| {
        b.iter(|| {
            image::ImageReader::open(black_box(&path))
                .unwrap()
                .with_guessed_format()
                .unwrap()
                .decode()
                .unwrap()
                .to_rgb8()
        })
    });
    g.bench_function("load_rgb_checked", |b| {
        b.iter(|| load_rgb(black_box(&path)).unwrap())
    });
    g.bench_function("walk_only", |b| {
        b.iter(|| integrity::check(black_box(&bytes)).unwrap())
    });
    g.bench_function("check_file", |b| {
        b.iter(|| check_file(black_box(&path)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, decode, augment, integrity);
criterion_main!(benches);
