//! Per-class appearance of a synthetic lesion (and its patient's skin): a [`Look`] drawn once
//! per lesion from its own seed, so every image of the lesion shares it. Class by class (NV
//! round uniform brown; MEL large, irregular, many colours; BCC pearly pink with branching
//! vessels; AKIEC scaly red patch; BKL waxy mottled brown; DF brown ring, pale centre; VASC red
//! or purple lobules; ISIC 2019's SCC a keratotic pink-red nodule with a white-yellow keratin
//! centre and looped vessels at its rim), with jitter and atypical variants so that the
//! classes overlap.
//!
//! A look is keyed by class index: ISIC 2019's first seven classes are ISIC 2018's in the same
//! order (AK = AKIEC), and its eighth, SCC, is [`SCC`].

use super::noise::{mix, scale};
use crate::classes::{AKIEC, BCC, BKL, DF, MEL, NV};
use crate::rng::Rng;

/// ISIC 2019's `SCC` (index 7 of [`crate::classes::ClassList::isic2019`]).
pub(super) const SCC: usize = 7;

/// Everything that makes one lesion (and its patient's skin) look like itself. Lengths are in
/// units of the image height; lesion-local coordinates are in units of the lesion radius.
#[derive(Clone, Debug)]
pub(super) struct Look {
    pub class: usize,
    pub skin: [f32; 3],
    pub skin_var: f32,
    pub skin_red: f32,
    /// Fine skin texture: amplitude and frequency (per image height).
    pub skin_tex: f32,
    pub skin_tex_scale: f32,
    /// Pigment network (NV, MEL): strength and frequency (per lesion radius).
    pub net: f32,
    pub net_scale: f32,
    pub skin_seed: u32,
    /// Illumination falloff towards the edges.
    pub falloff: f32,
    /// Radius (in half-widths) where the dermoscope's dark vignette starts.
    pub vignette: f32,
    pub centre: (f32, f32),
    pub radius: f32,
    /// Minor / major axis.
    pub aspect: f32,
    pub angle: f32,
    /// Border modulation: (sin, cos) coefficients of harmonics 2..=6 of the polar angle.
    pub harm: [(f32, f32); 5],
    /// Half-width of the border transition, in radii.
    pub edge: f32,
    pub border_noise: f32,
    pub opacity: f32,
    pub seed: u32,
    /// Class-specific palette.
    pub pal: [[f32; 3]; 5],
    /// Class-specific weights.
    pub wt: [f32; 4],
    pub tex: f32,
    pub tex_scale: f32,
    /// Direction of the colour asymmetry (unit vector).
    pub dir: (f32, f32),
    /// VASC lobules: centre, radius (lesion-local) and colour.
    pub lobes: Vec<((f32, f32), f32, [f32; 3])>,
    /// BCC vessels: polylines in lesion-local coordinates.
    pub vessels: Vec<Vec<(f32, f32)>>,
    pub vessel_col: [f32; 3],
    /// Vessel width in units of the image height.
    pub vessel_width: f32,
    /// Lesion-local radius outside which the lesion is surely invisible.
    pub extent: f32,
}

/// `c` made lighter or darker (standard deviation `sd` levels at mid-grey) and its hue shifted
/// slightly: multiplicative, so dark colours keep their hue.
pub(super) fn jitter(rng: &mut Rng, c: [f32; 3], sd: f64) -> [f32; 3] {
    let common = 1.0 + rng.normal() * sd / 128.0;
    let mut out = c;
    for v in &mut out {
        let own = 1.0 + rng.normal() * sd / 640.0;
        *v = (*v as f64 * common * own).clamp(0.0, 255.0) as f32;
    }
    out
}

pub(super) fn u(rng: &mut Rng, lo: f64, hi: f64) -> f32 {
    rng.uniform(lo, hi) as f32
}

impl Look {
    pub(super) fn draw(class: usize, seed: u64) -> Look {
        let rng = &mut Rng::new(seed);
        // Skin: fair to light-brown, pinkish under the dermoscope.
        let tone = u(rng, 0.0, 1.0);
        let skin = jitter(
            rng,
            mix([236.0, 186.0, 166.0], [196.0, 140.0, 112.0], tone),
            6.0,
        );
        let mut l = Look {
            class,
            skin,
            skin_var: u(rng, 0.03, 0.08),
            skin_red: u(rng, 0.0, 1.0),
            skin_tex: u(rng, 0.015, 0.045),
            skin_tex_scale: u(rng, 14.0, 28.0),
            net: 0.0,
            net_scale: 12.0,
            skin_seed: rng.next_u64() as u32,
            falloff: u(rng, 0.0, 0.3),
            vignette: if rng.next_f64() < 0.25 {
                u(rng, 1.2, 1.4)
            } else {
                u(rng, 0.82, 1.15)
            },
            centre: ((0.07 * rng.normal()) as f32, (0.05 * rng.normal()) as f32),
            radius: 0.15,
            aspect: u(rng, 0.7, 1.0),
            angle: u(rng, 0.0, std::f64::consts::TAU),
            harm: [(0.0, 0.0); 5],
            edge: 0.1,
            border_noise: 0.04,
            opacity: 0.9,
            seed: rng.next_u64() as u32,
            pal: [[0.0; 3]; 5],
            wt: [0.0; 4],
            tex: 0.1,
            tex_scale: 4.0,
            dir: (1.0, 0.0),
            lobes: Vec::new(),
            vessels: Vec::new(),
            vessel_col: [0.0; 3],
            vessel_width: 0.0,
            extent: 2.0,
        };
        let a = u(rng, 0.0, std::f64::consts::TAU);
        l.dir = (a.cos(), a.sin());
        // Border harmonics with amplitudes up to `amp` (falling with the order).
        let harmonics = |rng: &mut Rng, amp: f64| {
            let mut h = [(0.0f32, 0.0f32); 5];
            for (k, hk) in h.iter_mut().enumerate() {
                let a = rng.uniform(0.3, 1.0) * amp / (1.0 + 0.4 * k as f64);
                let phi = rng.uniform(0.0, std::f64::consts::TAU);
                *hk = ((a * phi.cos()) as f32, (a * phi.sin()) as f32);
            }
            h
        };
        // A darker or lighter lesion than its class usually is: classes overlap.
        let shade = u(rng, 0.82, 1.15);
        match class {
            NV => {
                let dysplastic = rng.next_f64() < 0.22;
                l.radius = u(rng, 0.16, 0.33) * if dysplastic { 1.25 } else { 1.0 };
                l.aspect = u(rng, 0.72, 1.0);
                l.harm = harmonics(rng, if dysplastic { 0.1 } else { 0.04 });
                l.edge = u(rng, 0.06, 0.18);
                l.border_noise = u(rng, 0.02, 0.07);
                l.opacity = u(rng, 0.75, 0.97);
                l.pal[0] = jitter(rng, scale([158.0, 108.0, 78.0], shade), 14.0);
                l.pal[1] = jitter(rng, scale([112.0, 72.0, 50.0], shade), 14.0);
                l.pal[2] = jitter(rng, [80.0, 52.0, 40.0], 10.0);
                l.wt[0] = if dysplastic { u(rng, 0.4, 1.0) } else { 0.0 };
                l.tex = u(rng, 0.03, 0.08);
                l.tex_scale = u(rng, 3.0, 5.0);
                l.net = if rng.next_f64() < 0.6 {
                    u(rng, 0.1, 0.3)
                } else {
                    0.0
                };
                l.net_scale = u(rng, 10.0, 16.0);
            }
            MEL => {
                let featureless = rng.next_f64() < 0.2;
                l.radius = u(rng, 0.24, 0.45);
                l.aspect = u(rng, 0.6, 0.95);
                l.harm = harmonics(rng, if featureless { 0.06 } else { 0.18 });
                l.edge = u(rng, 0.04, 0.16);
                l.border_noise = u(rng, 0.05, 0.15);
                l.opacity = u(rng, 0.85, 1.0);
                l.pal[0] = jitter(rng, scale([150.0, 102.0, 74.0], shade), 14.0); // light brown
                l.pal[1] = jitter(rng, scale([92.0, 58.0, 40.0], shade), 12.0); // dark brown
                l.pal[2] = jitter(rng, [40.0, 30.0, 32.0], 8.0); // black
                l.pal[3] = jitter(rng, [112.0, 118.0, 134.0], 12.0); // blue-grey
                l.pal[4] = jitter(rng, [176.0, 86.0, 82.0], 12.0); // reddish
                let p = |rng: &mut Rng, prob: f64| {
                    if featureless || rng.next_f64() > prob {
                        0.0
                    } else {
                        u(rng, 0.4, 1.0)
                    }
                };
                l.wt = [
                    if featureless { 0.2 } else { u(rng, 0.3, 1.0) }, // black
                    0.8 * p(rng, 0.65),                               // blue-grey
                    p(rng, 0.5),                                      // red
                    u(rng, 0.2, 0.7),                                 // asymmetry
                ];
                l.tex_scale = u(rng, 1.4, 2.4);
                l.net = if rng.next_f64() < 0.5 {
                    u(rng, 0.15, 0.4)
                } else {
                    0.0
                };
                l.net_scale = u(rng, 8.0, 14.0);
            }
            BCC => {
                l.radius = u(rng, 0.17, 0.33);
                l.aspect = u(rng, 0.7, 1.0);
                l.harm = harmonics(rng, 0.06);
                l.edge = u(rng, 0.1, 0.22);
                l.border_noise = u(rng, 0.03, 0.08);
                l.opacity = u(rng, 0.45, 0.78);
                l.pal[0] = jitter(rng, [226.0, 172.0, 172.0], 10.0); // pink
                l.pal[1] = jitter(rng, [242.0, 212.0, 206.0], 6.0); // pearly centre
                l.pal[2] = jitter(rng, [98.0, 104.0, 122.0], 12.0); // pigmented nests
                l.wt[0] = if rng.next_f64() < 0.3 {
                    u(rng, 0.4, 0.9)
                } else {
                    0.0
                };
                l.tex_scale = u(rng, 3.0, 5.0);
                l.vessel_col = jitter(rng, [172.0, 32.0, 46.0], 10.0);
                l.vessel_width = u(rng, 0.0018, 0.0035);
                let trees = 3 + rng.below(5);
                for _ in 0..trees {
                    let r = rng.uniform(0.0, 0.6);
                    let t = rng.uniform(0.0, std::f64::consts::TAU);
                    let start = ((r * t.cos()) as f32, (r * t.sin()) as f32);
                    let dir = rng.uniform(0.0, std::f64::consts::TAU) as f32;
                    grow_vessel(rng, start, dir, 0, &mut l.vessels);
                }
            }
            AKIEC => {
                l.radius = u(rng, 0.2, 0.38);
                l.aspect = u(rng, 0.6, 1.0);
                l.harm = harmonics(rng, 0.1);
                l.edge = u(rng, 0.25, 0.45);
                l.border_noise = u(rng, 0.06, 0.14);
                l.opacity = u(rng, 0.5, 0.85);
                l.pal[0] = jitter(rng, scale([206.0, 108.0, 100.0], shade), 14.0); // red-pink
                l.pal[1] = jitter(rng, [238.0, 228.0, 198.0], 8.0); // scale
                l.wt[0] = u(rng, 0.15, 0.7); // amount of scale
                l.tex = u(rng, 0.08, 0.18);
                l.tex_scale = u(rng, 8.0, 13.0);
            }
            BKL => {
                let dark = rng.next_f64() < 0.2;
                l.radius = u(rng, 0.2, 0.38);
                l.aspect = u(rng, 0.62, 1.0);
                l.harm = harmonics(rng, 0.08);
                l.edge = u(rng, 0.015, 0.05);
                l.border_noise = u(rng, 0.01, 0.04);
                l.opacity = u(rng, 0.85, 1.0);
                let base = if dark {
                    [120.0, 84.0, 60.0]
                } else {
                    [172.0, 128.0, 94.0]
                };
                l.pal[0] = jitter(rng, scale(base, shade), 18.0);
                l.pal[1] = jitter(rng, [230.0, 218.0, 190.0], 8.0); // milia-like dots
                l.tex = u(rng, 0.06, 0.14);
                l.tex_scale = u(rng, 4.0, 7.0);
                l.wt[0] = u(rng, 0.0, 0.9);
            }
            DF => {
                l.radius = u(rng, 0.12, 0.22);
                l.aspect = u(rng, 0.7, 1.0);
                l.harm = harmonics(rng, 0.05);
                l.edge = u(rng, 0.18, 0.35);
                l.border_noise = u(rng, 0.04, 0.1);
                l.opacity = u(rng, 0.7, 0.95);
                l.pal[0] = jitter(rng, scale([140.0, 96.0, 74.0], shade), 14.0); // ring
                l.pal[1] = jitter(rng, [232.0, 210.0, 196.0], 8.0); // pale centre
                l.wt[0] = u(rng, 0.35, 0.6); // pale radius
                l.tex = u(rng, 0.05, 0.12);
                l.tex_scale = u(rng, 8.0, 12.0);
            }
            SCC => {
                // Raised keratotic nodule: keratin centre (pal[1], radius wt[0]), pink-red rim
                // (pal[0]) with short looped vessels, rough surface.
                l.radius = u(rng, 0.18, 0.34);
                l.aspect = u(rng, 0.7, 1.0);
                l.harm = harmonics(rng, 0.08);
                l.edge = u(rng, 0.12, 0.28);
                l.border_noise = u(rng, 0.04, 0.1);
                l.opacity = u(rng, 0.6, 0.9);
                l.pal[0] = jitter(rng, scale([214.0, 118.0, 112.0], shade), 12.0);
                l.pal[1] = jitter(rng, [240.0, 226.0, 176.0], 8.0);
                l.pal[2] = jitter(rng, [150.0, 96.0, 70.0], 10.0); // crust
                l.wt[0] = u(rng, 0.3, 0.6);
                l.wt[1] = u(rng, 0.0, 0.6); // crust amount
                l.tex = u(rng, 0.1, 0.2);
                l.tex_scale = u(rng, 6.0, 10.0);
                l.vessel_col = jitter(rng, [176.0, 40.0, 52.0], 10.0);
                l.vessel_width = u(rng, 0.0015, 0.003);
                let loops = 6 + rng.below(8);
                for _ in 0..loops {
                    // A short hairpin between the keratin centre and the rim.
                    let t = rng.uniform(0.0, std::f64::consts::TAU) as f32;
                    let r0 = u(rng, 0.5, 0.8);
                    let (c, s) = (t.cos(), t.sin());
                    let len = u(rng, 0.08, 0.16);
                    let w = u(rng, 0.02, 0.04);
                    l.vessels.push(vec![
                        (r0 * c - w * s, r0 * s + w * c),
                        ((r0 + len) * c - w * s, (r0 + len) * s + w * c),
                        ((r0 + len) * c + w * s, (r0 + len) * s - w * c),
                        (r0 * c + w * s, r0 * s - w * c),
                    ]);
                }
            }
            _ => {
                // VASC
                l.radius = u(rng, 0.13, 0.26);
                l.edge = u(rng, 0.04, 0.1);
                l.border_noise = u(rng, 0.01, 0.04);
                l.opacity = u(rng, 0.85, 1.0);
                let lobes = 3 + rng.below(4);
                let red = jitter(rng, [168.0, 36.0, 62.0], 12.0);
                let purple = jitter(rng, [106.0, 40.0, 94.0], 12.0);
                for _ in 0..lobes {
                    let r = rng.uniform(0.0, 0.5);
                    let t = rng.uniform(0.0, std::f64::consts::TAU);
                    let c = ((r * t.cos()) as f32, (r * t.sin()) as f32);
                    let lr = u(rng, 0.3, 0.6);
                    let col = scale(mix(red, purple, u(rng, 0.0, 1.0)), shade);
                    l.lobes.push((c, lr, col));
                }
                l.tex = u(rng, 0.04, 0.1);
                l.tex_scale = u(rng, 4.0, 7.0);
            }
        }
        let harm_sum: f32 = l.harm.iter().map(|(s, c)| s.abs() + c.abs()).sum();
        let lobe_max = l
            .lobes
            .iter()
            .map(|((x, y), r, _)| (x * x + y * y).sqrt() + r)
            .fold(0.0f32, f32::max);
        l.extent = (1.0 + harm_sum).max(lobe_max) * (1.0 + l.edge + 4.0 * l.border_noise) + 0.05;
        l
    }
}

/// A random-walk vessel from `start` heading `dir`, branching now and then (lesion-local units).
fn grow_vessel(
    rng: &mut Rng,
    start: (f32, f32),
    mut dir: f32,
    depth: u32,
    out: &mut Vec<Vec<(f32, f32)>>,
) {
    let mut p = start;
    let mut line = vec![p];
    let steps = 8 + rng.below(16);
    for _ in 0..steps {
        dir += (0.4 * rng.normal()) as f32;
        let step = u(rng, 0.03, 0.06);
        p = (p.0 + step * dir.cos(), p.1 + step * dir.sin());
        if p.0 * p.0 + p.1 * p.1 > 0.9 {
            break;
        }
        line.push(p);
        if depth < 2 && rng.next_f64() < 0.12 {
            let side = if rng.next_f64() < 0.5 { -1.0 } else { 1.0 };
            let turn = side * u(rng, 0.4, 1.0);
            grow_vessel(rng, p, dir + turn, depth + 1, out);
        }
    }
    if line.len() > 1 {
        out.push(line);
    }
}
