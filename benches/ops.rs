//! Criterion timings of individual ops: the CPU backend's convolution at ResNet50's conv shapes
//! (batch 1; `skinengine bench` covers the whole network and larger batches), dense at the
//! classifier head's shapes, the reference backend as the baseline, and, when a GPU is usable,
//! the CUDA kernels at every ResNet50 conv shape and the dense shapes of `bench-kernels`
//! (batch 32), synchronised after each launch. Without a GPU the CUDA group says it is skipped.
//! The CPU backend's training-step kernels at batch 32 (`cpu_train_b32`: batch norm, pooling
//! and elementwise backward, the conv bias gradient, one AdamW step over 25.6M values;
//! `cpu_conv2d_backward_b32`: conv data and weight gradients at six ResNet50 shapes, all of
//! them with SKINENGINE_BENCH_ALL_CONV=1); tools/bench_train_ops_torch.py times PyTorch's
//! kernels at the same shapes and prints the ratios to criterion's latest estimates.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use skinengine::model::resnet50::CONV_SHAPES;
use skinengine::ops::adam::AdamConfig;
use skinengine::ops::batchnorm::{BnParams, DEFAULT_EPS};
use skinengine::ops::conv2d::{Conv2dParams, geometry};
use skinengine::ops::pool::Pool2dParams;
use skinengine::ops::prelude::*;
use skinengine::{CpuBackend, CudaBackend, ReferenceBackend, Rng, Tensor};
use std::hint::black_box;
use std::time::Duration;

// The binary's allocator (src/main.rs): training allocates tens of MB per layer and op, and
// mimalloc keeps freed pages for reuse where the system allocator maps and faults in fresh ones.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

/// Winograd F(4x4, 3x3) against the direct AVX-512 kernel at ResNet50's stride-1 3x3 shapes,
/// batches 1, 8 and 32, alternating in one run (`cpu_conv2d_winograd`): the measurements behind
/// `cpu::winograd`'s dispatch rule. SKINENGINE_BENCH_WINO_BATCH=8 runs one batch size.
fn winograd_conv(c: &mut Criterion) {
    use skinengine::cpu::winograd::with_winograd;
    let batches: Vec<usize> = match std::env::var("SKINENGINE_BENCH_WINO_BATCH") {
        Ok(s) => s.split(',').filter_map(|b| b.parse().ok()).collect(),
        Err(_) => vec![1, 8, 32],
    };
    let mut rng = Rng::new(3);
    let b = CpuBackend;
    let mut group = c.benchmark_group("cpu_conv2d_winograd");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for n in batches {
        for (ci, h) in [(64, 56), (128, 28), (256, 14), (512, 7)] {
            let x = Tensor::uniform(&[n, ci, h, h], 0.0, 1.0, &mut rng);
            let w = Tensor::kaiming_normal(&[ci, ci, 3, 3], &mut rng);
            let bias = Tensor::zeros(&[ci]);
            let prm = Conv2dParams::square(1, 1);
            let g = geometry(x.shape(), w.shape(), &prm).unwrap();
            group.throughput(Throughput::Elements(2 * g.macs() as u64));
            for (name, on) in [("direct", false), ("winograd", true)] {
                group.bench_function(format!("b{n}_c{ci}_{h}x{h}/{name}"), |bch| {
                    bch.iter(|| {
                        with_winograd(on, || {
                            b.conv2d_fused(
                                black_box(&x),
                                black_box(&w),
                                Some(&bias),
                                None,
                                true,
                                &prm,
                            )
                            .unwrap()
                        })
                    })
                });
            }
        }
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

/// Batch of the training-kernel timings (fine-tuning ResNet50 on the CPU).
const TRAIN_BATCH: usize = 32;

/// The CPU backend's training-step kernels at ResNet50's sizes, batch 32: batch norm forward and
/// backward on layer1's [32, 256, 56, 56], the stem's max-pool backward, the head's
/// global-average-pool backward, ReLU backward and the residual add, the conv bias gradient,
/// and one Adam step over ResNet50's 25.6M parameters. Few samples: each runs 10-500 ms.
fn train_kernels(c: &mut Criterion) {
    let b = CpuBackend;
    let mut rng = Rng::new(4);
    let n = TRAIN_BATCH;
    let mut group = c.benchmark_group(format!("cpu_train_b{n}"));
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));

    let shape = [n, 256, 56, 56];
    let x = Tensor::randn(&shape, 1.0, &mut rng);
    let dy = Tensor::randn(&shape, 1.0, &mut rng);
    let bn = BnParams {
        gamma: Tensor::uniform(&[256], 0.5, 1.5, &mut rng),
        beta: Tensor::randn(&[256], 1.0, &mut rng),
        running_mean: Tensor::zeros(&[256]),
        running_var: Tensor::full(&[256], 1.0),
        eps: DEFAULT_EPS,
    };
    let (_, stats) = b.batchnorm_train(&x, &bn).unwrap();
    group.throughput(Throughput::Elements(x.len() as u64));
    group.bench_function("bn_train_fwd_256x56x56", |bch| {
        bch.iter(|| b.batchnorm_train(black_box(&x), &bn).unwrap())
    });
    group.bench_function("bn_train_bwd_256x56x56", |bch| {
        bch.iter(|| {
            b.batchnorm_train_backward(black_box(&dy), black_box(&x), &bn, &stats)
                .unwrap()
        })
    });
    group.bench_function("bn_frozen_bwd_256x56x56", |bch| {
        bch.iter(|| {
            b.batchnorm_inference_backward(black_box(&dy), black_box(&x), &bn)
                .unwrap()
        })
    });
    group.bench_function("relu_bwd_256x56x56", |bch| {
        bch.iter(|| b.relu_backward(black_box(&dy), black_box(&x)).unwrap())
    });
    group.bench_function("add_256x56x56", |bch| {
        bch.iter(|| b.add(black_box(&dy), black_box(&x)).unwrap())
    });
    group.bench_function("conv_bwd_bias_256x56x56", |bch| {
        bch.iter(|| b.conv2d_backward_bias(black_box(&dy)).unwrap())
    });
    drop((x, dy, stats));

    // The stem's pool: x [32, 64, 112, 112] -> [32, 64, 56, 56].
    let x = Tensor::randn(&[n, 64, 112, 112], 1.0, &mut rng);
    let p = Pool2dParams::square(3, 2, 1);
    let dy = Tensor::randn(&[n, 64, 56, 56], 1.0, &mut rng);
    group.throughput(Throughput::Elements(x.len() as u64));
    group.bench_function("maxpool_bwd_64x112x112", |bch| {
        bch.iter(|| {
            b.maxpool2d_backward(black_box(&dy), black_box(&x), &p)
                .unwrap()
        })
    });
    drop((x, dy));
    let dy = Tensor::randn(&[n, 2048], 1.0, &mut rng);
    let xs = [n, 2048, 7, 7];
    group.throughput(Throughput::Elements((n * 2048 * 49) as u64));
    group.bench_function("avgpool_bwd_2048x7x7", |bch| {
        bch.iter(|| b.global_avg_pool_backward(black_box(&dy), &xs).unwrap())
    });

    // ResNet50's parameter count, one flat tensor (the per-tensor calls add little).
    let len = 25_557_032;
    let mut param = Tensor::randn(&[len], 0.05, &mut rng);
    let grad = Tensor::randn(&[len], 1e-3, &mut rng);
    let (mut m, mut v) = (Tensor::zeros(&[len]), Tensor::zeros(&[len]));
    let cfg = AdamConfig {
        weight_decay: 1e-4,
        ..AdamConfig::default()
    };
    let mut step = 0;
    group.throughput(Throughput::Elements(len as u64));
    group.bench_function("adamw_25.6M", |bch| {
        bch.iter(|| {
            step += 1;
            b.adam_step(&mut param, black_box(&grad), &mut m, &mut v, &cfg, step)
                .unwrap()
        })
    });
    group.finish();
}

/// ResNet50 convolutions (CONV_SHAPES) for the backward timings: a few of each kind by default;
/// all of them with SKINENGINE_BENCH_ALL_CONV=1.
fn train_conv_shapes() -> Vec<(usize, usize, usize, usize, usize, usize)> {
    if std::env::var_os("SKINENGINE_BENCH_ALL_CONV").is_some() {
        let mut all: Vec<_> = Vec::new();
        for &(_, ci, h, o, k, s, p) in CONV_SHAPES {
            if !all.contains(&(ci, h, o, k, s, p)) {
                all.push((ci, h, o, k, s, p)); // the same shape in two roles, timed once
            }
        }
        return all;
    }
    // The stem, layer1's 3x3 and 1x1 expand, a strided 3x3, layer3's 1x1 reduce, layer4's 3x3.
    vec![
        (3, 224, 64, 7, 2, 3),
        (64, 56, 64, 3, 1, 1),
        (64, 56, 256, 1, 1, 0),
        (128, 56, 128, 3, 2, 1),
        (1024, 14, 256, 1, 1, 0),
        (512, 7, 512, 3, 1, 1),
    ]
}

/// The CPU convolution gradients (data and weight) at ResNet50 shapes, batch 32.
fn train_conv(c: &mut Criterion) {
    let b = CpuBackend;
    let mut rng = Rng::new(5);
    let n = TRAIN_BATCH;
    let mut group = c.benchmark_group(format!("cpu_conv2d_backward_b{n}"));
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    for (ci, h, o, k, s, p) in train_conv_shapes() {
        let prm = Conv2dParams::square(s, p);
        let xs = [n, ci, h, h];
        let g = geometry(&xs, &[o, ci, k, k], &prm).unwrap();
        let x = Tensor::uniform(&xs, -1.0, 1.0, &mut rng);
        let w = Tensor::kaiming_normal(&[o, ci, k, k], &mut rng);
        let dy = Tensor::randn(&g.y_shape(), 1.0, &mut rng);
        group.throughput(Throughput::Elements(2 * g.macs() as u64));
        let name = format!("conv{k}x{k}s{s}_c{ci}_{h}x{h}_o{o}");
        group.bench_function(format!("data_{name}"), |bch| {
            bch.iter(|| {
                b.conv2d_backward_data(black_box(&dy), black_box(&w), &xs, &prm)
                    .unwrap()
            })
        });
        group.bench_function(format!("weight_{name}"), |bch| {
            bch.iter(|| {
                b.conv2d_backward_weight(black_box(&dy), black_box(&x), w.shape(), &prm)
                    .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    conv,
    winograd_conv,
    dense,
    reference_conv,
    train_kernels,
    train_conv,
    cuda
);
criterion_main!(benches);
