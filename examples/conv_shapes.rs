//! Times every distinct ResNet50 convolution shape on the CPU backend at a given batch:
//!   cargo run --release --example conv_shapes -- [BATCH]
//! Prints GFLOP/s per shape and the share of the forward pass each takes (count x time).

use skinengine::ops::conv2d::{Conv2dParams, geometry};
use skinengine::ops::prelude::*;
use skinengine::{CpuBackend, Rng, Tensor};
use std::time::Instant;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(8, |s| s.parse().expect("batch"));
    let shapes = skinengine::model::resnet50::CONV_SHAPES;
    let b = CpuBackend;
    let mut rng = Rng::new(0);
    let mut total = 0.0;
    let mut rows = Vec::new();
    for &(count, c, h, o, k, s, p) in shapes {
        let x = Tensor::uniform(&[n, c, h, h], -1.0, 1.0, &mut rng);
        let w = Tensor::kaiming_normal(&[o, c, k, k], &mut rng);
        let bias = Tensor::zeros(&[o]);
        let prm = Conv2dParams::square(s, p);
        let g = geometry(x.shape(), w.shape(), &prm).unwrap();
        b.conv2d_fused(&x, &w, Some(&bias), None, true, &prm)
            .unwrap();
        let reps = 5;
        let t = Instant::now();
        for _ in 0..reps {
            std::hint::black_box(
                b.conv2d_fused(&x, &w, Some(&bias), None, true, &prm)
                    .unwrap(),
            );
        }
        let dt = t.elapsed().as_secs_f64() / reps as f64;
        total += dt * count as f64;
        rows.push((count, c, h, o, k, s, dt, 2.0 * g.macs() as f64 / dt / 1e9));
    }
    println!("batch {n}: conv total {:.1} ms per forward", total * 1e3);
    for (count, c, h, o, k, s, dt, gf) in rows {
        println!(
            "{count} x C{c:<5} H{h:<4} O{o:<5} {k}x{k}/{s}: {:7.2} ms {:6.1} GFLOP/s {:5.1}%",
            dt * 1e3,
            gf,
            100.0 * dt * count as f64 / total
        );
    }
}
