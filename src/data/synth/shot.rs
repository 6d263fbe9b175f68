//! One photograph of a lesion: pose, exposure, sensor noise and hairs, drawn per image from its
//! own seed, so images of one lesion are alike but not identical.

use super::look::{jitter, u};
use crate::rng::Rng;

/// One photograph of a lesion: pose, exposure, noise and hairs.
pub(super) struct Shot {
    pub rot: f32,
    pub shift: (f32, f32),
    pub scale: f32,
    pub gain: [f32; 3],
    pub noise: f32,
    pub seed: u32,
    /// Hairs: polylines in pixel coordinates.
    pub hairs: Vec<Vec<(f32, f32)>>,
    pub hair_col: [f32; 3],
    pub hair_half_width: f32,
}

impl Shot {
    pub(super) fn draw(w: usize, h: usize, seed: u64) -> Shot {
        let rng = &mut Rng::new(seed);
        let bright = 1.0 + 0.04 * rng.normal();
        let mut gain = [0.0f32; 3];
        for g in &mut gain {
            *g = (bright + 0.015 * rng.normal()) as f32;
        }
        let (wf, hf) = (w as f32, h as f32);
        let n_hairs = if rng.next_f64() < 0.3 {
            0
        } else {
            1 + rng.below(5)
        };
        let mut hairs = Vec::with_capacity(n_hairs);
        for _ in 0..n_hairs {
            let p0 = (u(rng, -0.1, 1.1) * wf, u(rng, -0.1, 1.1) * hf);
            let a = u(rng, 0.0, std::f64::consts::TAU);
            let len = u(rng, 0.3, 1.1) * hf;
            let p2 = (p0.0 + len * a.cos(), p0.1 + len * a.sin());
            let bend = u(rng, -0.25, 0.25) * len;
            let mid = ((p0.0 + p2.0) / 2.0, (p0.1 + p2.1) / 2.0);
            let p1 = (mid.0 - bend * a.sin(), mid.1 + bend * a.cos());
            let pts = (0..=24)
                .map(|i| {
                    let t = i as f32 / 24.0;
                    let (s, tt) = ((1.0 - t) * (1.0 - t), t * t);
                    let m = 2.0 * t * (1.0 - t);
                    (
                        s * p0.0 + m * p1.0 + tt * p2.0,
                        s * p0.1 + m * p1.1 + tt * p2.1,
                    )
                })
                .collect();
            hairs.push(pts);
        }
        Shot {
            rot: (0.15 * rng.normal()) as f32,
            shift: ((0.02 * rng.normal()) as f32, (0.02 * rng.normal()) as f32),
            scale: (1.0 + 0.04 * rng.normal()) as f32,
            gain,
            noise: u(rng, 2.0, 6.0),
            seed: rng.next_u64() as u32,
            hairs,
            hair_col: jitter(rng, [46.0, 34.0, 28.0], 8.0),
            hair_half_width: (hf / 450.0 * u(rng, 0.45, 1.0)).max(0.35),
        }
    }
}
