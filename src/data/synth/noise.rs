//! Noise and colour helpers of the synthetic images: a lattice hash, value noise and its
//! fractal sum (textures, borders, sensor noise), smoothstep and RGB mixing. Pure functions of
//! their inputs, so images render identically on any thread.

#[inline]
pub(super) fn hash2(ix: i32, iy: i32, seed: u32) -> u32 {
    let mut h = seed
        ^ (ix as u32).wrapping_mul(0x27d4_eb2d)
        ^ (iy as u32).wrapping_mul(0x1656_67b1).rotate_left(13);
    h = (h ^ (h >> 15)).wrapping_mul(0x85eb_ca6b);
    h = (h ^ (h >> 13)).wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

#[inline]
fn unit(h: u32) -> f32 {
    (h >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// Value noise in [0, 1): random values on the integer lattice, smoothly interpolated.
#[inline]
pub(super) fn value_noise(seed: u32, x: f32, y: f32) -> f32 {
    let (x0, y0) = (x.floor(), y.floor());
    let (ix, iy) = (x0 as i32, y0 as i32);
    let (fx, fy) = (x - x0, y - y0);
    let sx = fx * fx * (3.0 - 2.0 * fx);
    let sy = fy * fy * (3.0 - 2.0 * fy);
    let a = unit(hash2(ix, iy, seed));
    let b = unit(hash2(ix + 1, iy, seed));
    let c = unit(hash2(ix, iy + 1, seed));
    let d = unit(hash2(ix + 1, iy + 1, seed));
    let top = a + (b - a) * sx;
    let bottom = c + (d - c) * sx;
    top + (bottom - top) * sy
}

/// Fractal value noise, centred and scaled to roughly unit standard deviation
/// (one octave of value noise has a standard deviation of about 0.18).
#[inline]
pub(super) fn fbm(seed: u32, x: f32, y: f32, octaves: u32) -> f32 {
    let (mut sum, mut amp, mut norm2) = (0.0f32, 1.0f32, 0.0f32);
    let (mut x, mut y) = (x, y);
    for o in 0..octaves {
        sum += amp * (value_noise(seed.wrapping_add(o.wrapping_mul(0x9E37_79B9)), x, y) - 0.5);
        norm2 += amp * amp;
        amp *= 0.5;
        // Next octave: double frequency, turned by ~29 degrees so lattice artefacts of the
        // octaves do not line up.
        (x, y) = (
            2.03 * (0.875 * x - 0.484 * y) + 17.3,
            2.03 * (0.484 * x + 0.875 * y) + 5.1,
        );
    }
    sum / (norm2.sqrt() * 0.18)
}

#[inline]
pub(super) fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

#[inline]
pub(super) fn mix(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

#[inline]
pub(super) fn scale(a: [f32; 3], s: f32) -> [f32; 3] {
    [a[0] * s, a[1] * s, a[2] * s]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fbm_is_roughly_unit_scale() {
        for oct in 1..=3 {
            let (mut s, mut s2, n) = (0.0f64, 0.0f64, 40_000);
            for i in 0..n {
                let v = fbm(7, (i % 200) as f32 * 0.173, (i / 200) as f32 * 0.131, oct) as f64;
                s += v;
                s2 += v * v;
            }
            let mean = s / n as f64;
            let sd = (s2 / n as f64 - mean * mean).sqrt();
            assert!(
                mean.abs() < 0.15 && (0.7..1.3).contains(&sd),
                "{oct}: {mean} {sd}"
            );
        }
    }
}
