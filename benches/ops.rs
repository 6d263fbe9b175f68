//! Criterion timings of individual ops: the CPU backend's convolution at ResNet50's conv shapes
//! (batch 1; `skinengine bench` covers the whole network and larger batches), dense at the
//! classifier head's shapes, the reference backend as the baseline, and, when a GPU is usable,
//! the CUDA kernels at every ResNet50 conv shape and the dense shapes of `bench-kernels`
//! (batch 32), synchronised after each launch. Without a GPU the CUDA group says it is skipped.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use skinengine::model::resnet50::CONV_SHAPES;
use skinengine::ops::conv2d::{Conv2dParams, geometry};
use skinengine::ops::prelude::*;
use skinengine::{CpuBackend, CudaBackend, ReferenceBackend, Rng, Tensor};
use std::hint::black_box;

/// (name, C, H, O, kernel, stride, padding): one of each kind of ResNet50 convolution.
const SHAPES: &[(&str, usize, usize, usize, usize, usize, usize)] = &[
    ("stem_7x7s2_3to64_224", 3, 224, 64, 7, 2, 3),
    ("l1_3x3_64_56", 64, 56, 64, 3, 1, 1),
    ("l1_1x1_64to256_56", 64, 56, 256, 1, 1, 0),
    ("l2_3x3s2_128_56", 128, 56, 128, 3, 2, 1),
    ("l2_1x1_512to128_28", 512, 28, 128, 1, 1, 0),
    ("l3_3x3_256_14", 256, 14, 256, 3, 1, 1),
    ("l3_1x1s2_512to1024_28", 512, 28, 1024, 1, 2, 0),
    ("l4_3x3_512_7", 512, 7, 512, 3, 1, 1),
    ("l4_1x1_512to2048_7", 512, 7, 2048, 1, 1, 0),
];

fn conv(c: &mut Criterion) {
    let mut rng = Rng::new(0);
    let b = CpuBackend;
    let mut group = c.benchmark_group("cpu_conv2d_fused");
    group.sample_size(20);
    for &(name, ci, h, o, k, s, p) in SHAPES {
        let x = Tensor::uniform(&[1, ci, h, h], -1.0, 1.0, &mut rng);
        let w = Tensor::kaiming_normal(&[o, ci, k, k], &mut rng);
        let bias = Tensor::zeros(&[o]);
        let prm = Conv2dParams::square(s, p);
        let g = geometry(x.shape(), w.shape(), &prm).unwrap();
        group.throughput(Throughput::Elements(2 * g.macs() as u64)); // FLOP per iteration
        group.bench_function(name, |bch| {
            bch.iter(|| {
                b.conv2d_fused(black_box(&x), black_box(&w), Some(&bias), None, true, &prm)
                    .unwrap()
            })
        });
    }
    group.finish();
}

fn dense(c: &mut Criterion) {
    let mut rng = Rng::new(1);
    let x = Tensor::randn(&[32, 2048], 1.0, &mut rng);
    let w = Tensor::kaiming_normal(&[120, 2048], &mut rng);
    let mut group = c.benchmark_group("dense_32x2048to120");
    group.bench_function("cpu", |bch| {
        bch.iter(|| {
            CpuBackend
                .dense(black_box(&x), black_box(&w), None)
                .unwrap()
        })
    });
    group.sample_size(10);
    group.bench_function("reference", |bch| {
        bch.iter(|| {
            ReferenceBackend
                .dense(black_box(&x), black_box(&w), None)
                .unwrap()
        })
    });
    group.finish();
}

fn reference_conv(c: &mut Criterion) {
    let mut rng = Rng::new(2);
    // The reference at 1/16 of layer1's spatial size: the baseline the fast paths are checked by.
    let x = Tensor::randn(&[1, 64, 14, 14], 1.0, &mut rng);
    let w = Tensor::kaiming_normal(&[64, 64, 3, 3], &mut rng);
    let p = Conv2dParams::square(1, 1);
    let mut group = c.benchmark_group("conv2d_3x3_64_14");
    group.sample_size(10);
    group.bench_function("reference", |bch| {
        bch.iter(|| {
            ReferenceBackend
                .conv2d(black_box(&x), black_box(&w), None, &p)
                .unwrap()
        })
    });
    group.bench_function("cpu", |bch| {
        bch.iter(|| {
            CpuBackend
                .conv2d(black_box(&x), black_box(&w), None, &p)
                .unwrap()
        })
    });
    group.finish();
}

/// Batch of the CUDA kernel timings (as `bench-kernels`' default).
const CUDA_BATCH: usize = 32;

fn cuda(c: &mut Criterion) {
    let be = match CudaBackend::gpu() {
        Ok(be) => be,
        Err(e) => {
            eprintln!("cuda kernels: skipped, no usable GPU ({e})");
            return;
        }
    };
    let dev = be.device().clone();
    let mut rng = Rng::new(3);
    let n = CUDA_BATCH;
    let mut group = c.benchmark_group(format!("cuda_conv2d_fused_b{n}"));
    group.sample_size(20);
    for &(_, ci, h, o, k, s, p) in CONV_SHAPES {
        let prm = Conv2dParams::square(s, p);
        let g = geometry(&[n, ci, h, h], &[o, ci, k, k], &prm).unwrap();
        let x = be
            .upload(&Tensor::uniform(&[n, ci, h, h], -1.0, 1.0, &mut rng))
            .unwrap();
        let w = be
            .upload(&Tensor::kaiming_normal(&[o, ci, k, k], &mut rng))
            .unwrap();
        let bias = be.upload(&Tensor::zeros(&[o])).unwrap();
        group.throughput(Throughput::Elements(2 * g.macs() as u64));
        let name = format!("conv{k}x{k}s{s}_c{ci}_{h}x{h}_o{o}");
        group.bench_function(name, |bch| {
            bch.iter(|| {
                let y = be
                    .conv2d_fused(&x, &w, Some(&bias), None, true, &prm)
                    .unwrap();
                dev.synchronize().unwrap();
                y
            })
        });
    }
    group.finish();
    let mut group = c.benchmark_group(format!("cuda_dense_b{n}"));
    for (i, o) in [(2048, 1000), (2048, 120), (120, 84), (84, 7)] {
        let x = be
            .upload(&Tensor::uniform(&[n, i], -1.0, 1.0, &mut rng))
            .unwrap();
        let w = be
            .upload(&Tensor::kaiming_uniform(&[o, i], &mut rng))
            .unwrap();
        let bias = be.upload(&Tensor::zeros(&[o])).unwrap();
        group.throughput(Throughput::Elements(2 * (n * i * o) as u64));
        group.bench_function(format!("{i}to{o}"), |bch| {
            bch.iter(|| {
                let y = be.dense(&x, &w, Some(&bias)).unwrap();
                dev.synchronize().unwrap();
                y
            })
        });
    }
    group.finish();
}

criterion_group!(benches, conv, dense, reference_conv, cuda);
criterion_main!(benches);
