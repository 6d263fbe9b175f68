//! Times every distinct ResNet50 convolution shape on the CPU backend at a given batch:
//!   cargo run --release --example conv_shapes -- [BATCH]
//! Prints GFLOP/s per shape and the share of the forward pass each takes (count x time).

use skinengine::backend::Backend;
use skinengine::ops::conv2d::{Conv2dParams, geometry};
use skinengine::{CpuBackend, Rng, Tensor};
use std::time::Instant;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(8, |s| s.parse().expect("batch"));
    // (count in ResNet50, C, H, O, K, stride, pad)
    let shapes: &[(usize, usize, usize, usize, usize, usize, usize)] = &[
        (1, 3, 224, 64, 7, 2, 3),
        (1, 64, 56, 64, 1, 1, 0),
        (3, 64, 56, 64, 3, 1, 1),
        (3, 64, 56, 256, 1, 1, 0),
        (1, 64, 56, 256, 1, 1, 0),
        (2, 256, 56, 64, 1, 1, 0),
        (1, 256, 56, 128, 1, 1, 0),
        (1, 128, 56, 128, 3, 2, 1),
        (1, 256, 56, 512, 1, 2, 0),
        (3, 128, 28, 128, 3, 1, 1),
        (4, 128, 28, 512, 1, 1, 0),
        (3, 512, 28, 128, 1, 1, 0),
        (1, 512, 28, 256, 1, 1, 0),
        (1, 256, 28, 256, 3, 2, 1),
        (1, 512, 28, 1024, 1, 2, 0),
        (5, 256, 14, 256, 3, 1, 1),
        (6, 256, 14, 1024, 1, 1, 0),
        (5, 1024, 14, 256, 1, 1, 0),
        (1, 1024, 14, 512, 1, 1, 0),
        (1, 512, 14, 512, 3, 2, 1),
        (1, 1024, 14, 2048, 1, 2, 0),
        (2, 512, 7, 512, 3, 1, 1),
        (3, 512, 7, 2048, 1, 1, 0),
        (2, 2048, 7, 512, 1, 1, 0),
    ];
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
