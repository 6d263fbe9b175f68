//! Criterion timings of individual ops. The reference backend is here as the baseline that the
//! fast backends are measured against; shapes are kept small because it is plain loops.

use criterion::{Criterion, criterion_group, criterion_main};
use skinengine::backend::Backend;
use skinengine::ops::conv2d::Conv2dParams;
use skinengine::{ReferenceBackend, Rng, Tensor};
use std::hint::black_box;

fn conv(c: &mut Criterion) {
    let mut rng = Rng::new(0);
    let b = ReferenceBackend;
    // A ResNet50 layer1 3x3 conv at 1/16 of the spatial size: [1,64,14,14] * [64,64,3,3].
    let x = Tensor::randn(&[1, 64, 14, 14], 1.0, &mut rng);
    let w = Tensor::kaiming_normal(&[64, 64, 3, 3], &mut rng);
    let p = Conv2dParams::square(1, 1);
    c.bench_function("reference/conv2d_3x3_64x64_14x14", |bch| {
        bch.iter(|| b.conv2d(black_box(&x), black_box(&w), None, &p).unwrap())
    });
    let x = Tensor::randn(&[32, 2048], 1.0, &mut rng);
    let w = Tensor::kaiming_normal(&[120, 2048], &mut rng);
    c.bench_function("reference/dense_32x2048x120", |bch| {
        bch.iter(|| b.dense(black_box(&x), black_box(&w), None).unwrap())
    });
}

criterion_group!(benches, conv);
criterion_main!(benches);
