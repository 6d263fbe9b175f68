//! Times every distinct ResNet50 convolution shape on the CPU backend at a given batch:
//!   cargo run --release --example conv_shapes -- [BATCH] [cl]
//! `cl` times the channels-last path (`ops::channels_last`, NHWC activations) instead of NCHW.
//! Prints GFLOP/s per shape and the share of the forward pass each takes (count x time), by wall
//! time and by the process's CPU time (user + system, from /proc/self/stat): on a machine shared
//! with other work the CPU-time rate is the kernel's own speed, the wall rate is not.
//! `SKINENGINE_THREADS=1` measures one core.

use skinengine::ops::conv2d::{Conv2dParams, geometry};
use skinengine::ops::prelude::*;
use skinengine::{CpuBackend, Rng, Tensor};
use std::time::Instant;

/// CPU seconds (user + system) this process has used so far (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the ")" closing the command name, from the state (field 3): utime and
    // stime are fields 14 and 15.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

fn main() {
    if let Some(t) = std::env::var("SKINENGINE_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        skinengine::cli::set_threads(t);
    }
    let n: usize = std::env::args()
        .nth(1)
        .map_or(8, |s| s.parse().expect("batch"));
    let cl = std::env::args().nth(2).is_some_and(|a| a == "cl");
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
        let x = if cl {
            b.to_channels_last(&x).unwrap()
        } else {
            x
        };
        let run = || {
            if cl {
                b.conv2d_fused_cl(&x, &w, Some(&bias), None, true, &prm)
            } else {
                b.conv2d_fused(&x, &w, Some(&bias), None, true, &prm)
            }
            .unwrap()
        };
        run();
        // At least 0.5 s of CPU time per shape: /proc counts in 10 ms ticks.
        let (t, c0) = (Instant::now(), cpu_seconds());
        let mut reps = 0;
        while reps < 5 || cpu_seconds() - c0 < 0.5 {
            reps += 1;
            std::hint::black_box(run());
        }
        let dt = t.elapsed().as_secs_f64() / reps as f64;
        let cpu = (cpu_seconds() - c0) / reps as f64;
        total += dt * count as f64;
        let flop = 2.0 * g.macs() as f64;
        rows.push((count, c, h, o, k, s, dt, flop / dt / 1e9, flop / cpu / 1e9));
    }
    println!("batch {n}: conv total {:.1} ms per forward", total * 1e3);
    for (count, c, h, o, k, s, dt, gf, gf_cpu) in rows {
        println!(
            "{count} x C{c:<5} H{h:<4} O{o:<5} {k}x{k}/{s}: {:7.2} ms {:6.1} GFLOP/s wall \
             {:6.1} per CPU-s {:5.1}%",
            dt * 1e3,
            gf,
            gf_cpu,
            100.0 * dt * count as f64 / total
        );
    }
}
