//! Pixels: one image of a [`Look`] as photographed by a [`Shot`] (skin, lesion, vessels,
//! hairs, dermoscope vignette, sensor noise), row-major RGB8. Deterministic per (look, shot),
//! whatever thread renders it.

use super::look::Look;
use super::look::SCC;
use super::noise::{fbm, hash2, mix, scale, smoothstep, value_noise};
use super::shot::Shot;
use crate::classes::{AKIEC, BCC, BKL, DF, MEL, NV, VASC};

/// Draws an anti-aliased polyline of half-width `hw` (pixels) into `cov` (coverage 0..=255,
/// maximum over strokes).
fn stamp_polyline(cov: &mut [u8], w: usize, h: usize, pts: &[(f32, f32)], hw: f32) {
    let reach = hw + 1.0;
    for seg in pts.windows(2) {
        let (a, b) = (seg[0], seg[1]);
        let len = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
        let steps = (len / 0.5).ceil().max(1.0) as usize;
        for i in 0..=steps {
            let t = i as f32 / steps as f32;
            let (px, py) = (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t);
            if px < -reach || py < -reach || px > w as f32 + reach || py > h as f32 + reach {
                continue;
            }
            let x0 = (px - reach).floor().max(0.0) as usize;
            let y0 = (py - reach).floor().max(0.0) as usize;
            let x1 = ((px + reach).ceil() as usize).min(w - 1);
            let y1 = ((py + reach).ceil() as usize).min(h - 1);
            for y in y0..=y1 {
                for x in x0..=x1 {
                    let dx = x as f32 + 0.5 - px;
                    let dy = y as f32 + 0.5 - py;
                    let c = (hw + 0.5 - (dx * dx + dy * dy).sqrt()).clamp(0.0, 1.0);
                    let v = (c * 255.0) as u8;
                    let slot = &mut cov[y * w + x];
                    if v > *slot {
                        *slot = v;
                    }
                }
            }
        }
    }
}

/// Pigment network: 1 on the lines of a ridged-noise mesh, 0 in its holes (times `strength`).
#[inline]
fn network(l: &Look, qx: f32, qy: f32, strength: f32) -> f32 {
    if l.net <= 0.0 || strength <= 0.0 {
        return 0.0;
    }
    let n = fbm(l.seed ^ 0x1E7, qx * l.net_scale, qy * l.net_scale, 1);
    strength * (1.0 - smoothstep(0.0, 0.45, n.abs()))
}

/// Colour and opacity of the lesion at lesion-local point `q` (`r2` = |q|^2), or None outside.
#[inline]
fn shade_lesion(l: &Look, qx: f32, qy: f32, r2: f32) -> Option<([f32; 3], f32)> {
    let r = r2.sqrt().max(1e-6);
    // Normalised distance to the border (1 on the border).
    let mut lobe = 0;
    let d0 = if l.class == VASC {
        let mut best = f32::MAX;
        for (i, ((cx, cy), lr, _)) in l.lobes.iter().enumerate() {
            let dd = ((qx - cx).powi(2) + (qy - cy).powi(2)).sqrt() / lr;
            if dd < best {
                best = dd;
                lobe = i;
            }
        }
        best
    } else {
        // cos/sin of k*theta by complex multiplication: no trigonometry per pixel.
        let (c1, s1) = (qx / r, qy / r);
        let (mut ck, mut sk) = (c1, s1);
        let mut b = 1.0;
        for &(hs, hc) in &l.harm {
            let (nc, ns) = (ck * c1 - sk * s1, sk * c1 + ck * s1);
            ck = nc;
            sk = ns;
            b += hs * sk + hc * ck;
        }
        r / b.max(0.2)
    };
    let d = d0 + l.border_noise * fbm(l.seed ^ 0xB0D0, qx * 3.0, qy * 3.0, 2);
    let alpha = l.opacity * (1.0 - smoothstep(1.0 - l.edge, 1.0 + l.edge, d));
    if alpha <= 0.002 {
        return None;
    }
    let ts = l.tex_scale;
    let col = match l.class {
        NV => {
            let t = fbm(l.seed, qx * ts, qy * ts, 2);
            let mut c = mix(l.pal[1], l.pal[0], smoothstep(0.0, 1.0, d));
            if l.wt[0] > 0.0 {
                // Dysplastic naevus: a few darker eccentric patches.
                let n = fbm(l.seed ^ 0x5EED, qx * 2.5, qy * 2.5, 2)
                    + 0.6 * (qx * l.dir.0 + qy * l.dir.1);
                let inside = 1.0 - smoothstep(0.6, 0.95, d);
                c = mix(c, l.pal[2], l.wt[0] * inside * smoothstep(0.5, 1.3, n));
            }
            scale(
                c,
                (1.0 + l.tex * t) * (1.0 - l.net * network(l, qx, qy, 1.0)),
            )
        }
        MEL => {
            let n1 = fbm(l.seed, qx * ts, qy * ts, 3);
            let n2 = fbm(l.seed ^ 0x5EED, qx * ts * 1.3, qy * ts * 1.3, 2);
            let g = (qx * l.dir.0 + qy * l.dir.1) * l.wt[3];
            let x = n1 + 1.4 * g;
            let mut c = mix(l.pal[0], l.pal[1], smoothstep(-0.9, 0.7, x));
            c = mix(c, l.pal[2], l.wt[0] * smoothstep(0.5, 1.6, x));
            c = mix(c, l.pal[3], l.wt[1] * smoothstep(0.2, 1.3, n2));
            c = mix(c, l.pal[4], l.wt[2] * smoothstep(0.3, 1.4, -n2));
            let net = l.net * network(l, qx, qy, smoothstep(-0.8, 0.8, n1));
            scale(c, (0.9 + 0.1 * d.min(1.0)) * (1.0 - net))
        }
        BCC => {
            let n = fbm(l.seed, qx * ts, qy * ts, 2);
            let mut c = mix(l.pal[1], l.pal[0], smoothstep(0.1, 1.0, d));
            c = mix(c, [250.0, 240.0, 238.0], 0.5 * smoothstep(1.0, 1.8, n));
            if l.wt[0] > 0.0 {
                let m = fbm(l.seed ^ 0x5EED, qx * 4.0, qy * 4.0, 2);
                c = mix(c, l.pal[2], l.wt[0] * smoothstep(1.0, 1.5, m));
            }
            c
        }
        AKIEC => {
            let rough = fbm(l.seed, qx * 7.0, qy * 7.0, 2);
            let sc = fbm(l.seed ^ 0x5EED, qx * ts, qy * ts, 2);
            let c = scale(l.pal[0], 1.0 + l.tex * rough);
            mix(
                c,
                l.pal[1],
                0.8 * smoothstep(1.3 - l.wt[0], 1.9 - l.wt[0], sc),
            )
        }
        BKL => {
            let t = fbm(l.seed, qx * ts, qy * ts, 3);
            let c = scale(l.pal[0], 1.0 + l.tex * t);
            let dots = value_noise(l.seed ^ 0xD075, qx * 14.0, qy * 14.0);
            mix(c, l.pal[1], l.wt[0] * smoothstep(0.8, 0.9, dots))
        }
        SCC => {
            let rough = fbm(l.seed, qx * ts, qy * ts, 2);
            let k = l.wt[0];
            let mut c = mix(l.pal[1], l.pal[0], smoothstep(k - 0.15, k + 0.2, d));
            let crust = fbm(l.seed ^ 0x5EED, qx * 3.0, qy * 3.0, 2);
            c = mix(c, l.pal[2], l.wt[1] * smoothstep(0.6, 1.4, crust));
            scale(c, 1.0 + l.tex * rough)
        }
        DF => {
            let t = fbm(l.seed, qx * ts, qy * ts, 2);
            let pr = l.wt[0];
            let c = mix(l.pal[1], l.pal[0], smoothstep(pr - 0.25, pr + 0.15, d));
            scale(c, 1.0 + l.tex * t)
        }
        _ => {
            // VASC: lobules darker in their middle.
            let t = fbm(l.seed, qx * ts, qy * ts, 2);
            let c = scale(l.lobes[lobe].2, 0.78 + 0.22 * d.min(1.0));
            scale(c, 1.0 + l.tex * t)
        }
    };
    Some((col, alpha))
}

/// Renders one image: row-major RGB8, `w * h * 3` bytes.
pub(super) fn render(l: &Look, s: &Shot, w: usize, h: usize) -> Vec<u8> {
    let (wf, hf) = (w as f32, h as f32);
    // Overlays first (coverage buffers), composited in the pixel pass.
    let ang = l.angle + s.rot;
    let (ca, sa) = (ang.cos(), ang.sin());
    let rad = l.radius * s.scale;
    let centre = (l.centre.0 + s.shift.0, l.centre.1 + s.shift.1);
    let to_pixel = |q: (f32, f32)| {
        let (lx, ly) = (q.0 * rad, q.1 * rad * l.aspect);
        let px = centre.0 + lx * ca - ly * sa;
        let py = centre.1 + lx * sa + ly * ca;
        (px * hf + wf / 2.0, py * hf + hf / 2.0)
    };
    let vessels = if l.vessels.is_empty() {
        None
    } else {
        let mut cov = vec![0u8; w * h];
        let hw = (l.vessel_width * hf * 0.5).max(0.3);
        for v in &l.vessels {
            let pts: Vec<(f32, f32)> = v.iter().map(|&q| to_pixel(q)).collect();
            stamp_polyline(&mut cov, w, h, &pts, hw);
        }
        Some(cov)
    };
    let hairs = if s.hairs.is_empty() {
        None
    } else {
        let mut cov = vec![0u8; w * h];
        for hpts in &s.hairs {
            stamp_polyline(&mut cov, w, h, hpts, s.hair_half_width);
        }
        Some(cov)
    };

    let inv_r = 1.0 / rad;
    let inv_ra = 1.0 / (rad * l.aspect);
    let ext2 = l.extent * l.extent;
    let half_w = wf / 2.0;
    // Skin (smooth colour variation and fine texture) on a grid of about 110 rows, interpolated
    // per row: the finest texture has about 55 cycles per image height.
    let g = (h / 110).clamp(1, 8);
    let (gw, gh) = (w / g + 2, h / g + 2);
    let mut grid = vec![(0.0f32, 0.0f32); gw * gh];
    let ts = l.skin_tex_scale;
    for gy in 0..gh {
        for gx in 0..gw {
            let px = ((gx * g) as f32 + 0.5 - wf / 2.0) / hf;
            let py = ((gy * g) as f32 + 0.5 - hf / 2.0) / hf;
            // Texture turned ~31 degrees so its noise lattice does not line up with the pixels.
            let (tx, ty) = (
                (0.857 * px - 0.515 * py) * ts,
                (0.515 * px + 0.857 * py) * ts,
            );
            let var = l.skin_var * fbm(l.skin_seed, px * 2.2, py * 2.2, 2);
            let tex = l.skin_tex * fbm(l.skin_seed ^ 0x7E7, tx, ty, 2);
            grid[gy * gw + gx] = (
                (1.0 + var) * (1.0 + tex),
                l.skin_red * fbm(l.skin_seed ^ 0x0ED, px * 1.6 + 7.0, py * 1.6, 1),
            );
        }
    }
    let mut skin_row = vec![(0.0f32, 0.0f32); w];
    let mut out = vec![0u8; w * h * 3];
    for y in 0..h {
        let py = (y as f32 + 0.5 - hf / 2.0) / hf;
        let vy = (y as f32 + 0.5 - hf / 2.0) / half_w;
        let (gy, ty) = (y / g, (y % g) as f32 / g as f32);
        for (x, sv) in skin_row.iter_mut().enumerate() {
            let (gx, tx) = (x / g, (x % g) as f32 / g as f32);
            let at = |gx: usize, gy: usize| grid[gy * gw + gx];
            let (a, b, c, d) = (
                at(gx, gy),
                at(gx + 1, gy),
                at(gx, gy + 1),
                at(gx + 1, gy + 1),
            );
            let top = (a.0 + (b.0 - a.0) * tx, a.1 + (b.1 - a.1) * tx);
            let bot = (c.0 + (d.0 - c.0) * tx, c.1 + (d.1 - c.1) * tx);
            *sv = (top.0 + (bot.0 - top.0) * ty, top.1 + (bot.1 - top.1) * ty);
        }
        for (x, &(sb, sr)) in skin_row.iter().enumerate() {
            let i = y * w + x;
            let px = (x as f32 + 0.5 - wf / 2.0) / hf;
            // Skin: smooth brightness and redness variation, illumination falloff.
            let illum = 1.0 - l.falloff * (px * px + py * py);
            let mut c = [
                (l.skin[0] + 8.0 * sr) * sb,
                (l.skin[1] - 6.0 * sr) * sb,
                (l.skin[2] - 3.0 * sr) * sb,
            ];
            // Lesion.
            let (dx, dy) = (px - centre.0, py - centre.1);
            let qx = (dx * ca + dy * sa) * inv_r;
            let qy = (-dx * sa + dy * ca) * inv_ra;
            let r2 = qx * qx + qy * qy;
            if r2 < ext2
                && let Some((lc, a)) = shade_lesion(l, qx, qy, r2)
            {
                c = mix(c, lc, a);
            }
            if let Some(v) = &vessels
                && v[i] > 0
            {
                c = mix(c, l.vessel_col, 0.85 * v[i] as f32 / 255.0);
            }
            if let Some(hc) = &hairs
                && hc[i] > 0
            {
                c = mix(c, s.hair_col, 0.9 * hc[i] as f32 / 255.0);
            }
            // Dermoscope vignette (radius in half-widths from the image centre).
            let vx = (x as f32 + 0.5 - wf / 2.0) / half_w;
            let rr = (vx * vx + vy * vy).sqrt();
            let dark = 1.0 - 0.94 * smoothstep(l.vignette, l.vignette + 0.07, rr);
            let f = illum * dark;
            // Sensor noise: triangular, per channel.
            let hsh = hash2(x as i32, y as i32, s.seed);
            let hsh2 = hash2(y as i32, x as i32, s.seed ^ 0x7777);
            let nz = [
                ((hsh & 0xFFFF) as f32 + (hsh2 & 0xFFFF) as f32) / 65536.0 - 1.0,
                ((hsh >> 16) as f32 + (hsh2 >> 16) as f32) / 65536.0 - 1.0,
                (((hsh ^ hsh2.rotate_left(7)) & 0xFFFF) as f32 / 32768.0) - 1.0,
            ];
            for ch in 0..3 {
                let v = c[ch] * f * s.gain[ch] + s.noise * 1.7 * nz[ch];
                out[i * 3 + ch] = v.clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}
