//! Per-epoch random augmentation for training through the backbone (issue 11): a random
//! resized crop, flips, quarter turns and a mild colour jitter, drawn afresh every epoch.
//!
//! Every image's draw comes from its own generator seeded by (run seed, epoch, image id), so a
//! run repeats and resumes exactly (epoch `e` of a resumed run draws what epoch `e` of the
//! uninterrupted run drew), and an image's augmentation never depends on which other images
//! are in its batch or set, nor on the order they are processed in.
//!
//! The pipeline is torchvision's usual training transform, in this order:
//! `RandomResizedCrop(size, scale, ratio)` (crop, then one antialiased bilinear resample to
//! `size` x `size`, as [`image::resize`] does for the whole image), `RandomHorizontalFlip`,
//! `RandomVerticalFlip`, a quarter turn `k` (`torch.rot90(img, k, dims=[-2, -1])`,
//! counter-clockwise), `ColorJitter(brightness, contrast, saturation)` on the [0, 255] RGB
//! values in f32, then the ImageNet normalisation of [`image::normalise_into`].
//! [`AugmentConfig::none`] switches everything off and gives exactly the evaluation transform
//! ([`image::preprocess`] with [`ResizeMode::Squash`]), bit for bit.
//!
//! What a draw holds is independent of the image's size: the crop is stored as torchvision's
//! ten sampling attempts and resolved against the image's pixel size when applied
//! ([`CropDraw::window`]), because torchvision's choice (rounding to whole pixels, rejecting
//! attempts that do not fit, the fallback's ratio test) depends on that size.

use crate::data::image::{self, CropFrac, MEAN, ResizeMode, Rgb, STD};
use crate::error::{Result, invalid, shape_err};
use crate::io::hash::fnv1a64;
use crate::rng::Rng;
use crate::tensor::Tensor;
use std::path::Path;

/// The largest output side accepted (a 4096 x 4096 x 3 f32 tensor is 192 MiB); backbones
/// take 224 to 600.
pub const MAX_SIZE: u32 = 4096;

/// torchvision's `RandomResizedCrop` tries this many area / aspect samples before falling back
/// to a central crop.
pub const CROP_ATTEMPTS: usize = 10;

/// `ColorJitter` strengths: each factor is drawn uniformly from `[max(0, 1 - s), 1 + s]`; a
/// strength of 0 gives the factor 1 (off). There is no hue jitter: in dermoscopy the hue of
/// pigment (brown, blue-grey, red, white) is itself diagnostic, and torchvision's hue shift
/// needs an HSV round trip per pixel; the mild brightness / contrast / saturation changes
/// model differences between cameras and lighting without turning one colour into another.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JitterConfig {
    pub brightness: f64,
    pub contrast: f64,
    pub saturation: f64,
}

impl JitterConfig {
    pub const OFF: JitterConfig = JitterConfig {
        brightness: 0.0,
        contrast: 0.0,
        saturation: 0.0,
    };
}

/// What is drawn for each image each epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AugmentConfig {
    /// Random resized crop on (false: the whole image is resized, as in evaluation).
    pub random_crop: bool,
    /// Range of the crop's area as a fraction of the image's. Default (0.25, 1.0), not
    /// torchvision's ImageNet (0.08, 1.0): a dermoscopy image is one lesion, roughly centred,
    /// with skin around it, and the diagnosis rests on the lesion's overall shape, border and
    /// symmetry. An 8% crop (28% of each side) of a 600 x 450 image is often only surrounding
    /// skin or a fragment of the lesion, so the label no longer describes the pixels; a
    /// quarter of the area (half of each side) still keeps most of a centred lesion while
    /// varying scale and position a lot. Fine-tuning sets are also small (10k images), where
    /// too strong an augmentation costs more than it regularises.
    pub scale: (f64, f64),
    /// Range of the crop's aspect ratio (width / height in pixels), sampled log-uniformly.
    /// Default (3/4, 4/3) as torchvision.
    pub ratio: (f64, f64),
    /// Horizontal flip with probability 0.5.
    pub hflip: bool,
    /// Vertical flip with probability 0.5 (dermoscopy has no up or down).
    pub vflip: bool,
    /// A quarter turn k in 0..4, uniform. With both flips this draws each of the 8 symmetries
    /// of the square equally often (each is reached by 2 of the 16 combinations).
    pub rot90: bool,
    /// Colour jitter strengths; default 0.1 each, no hue.
    pub jitter: JitterConfig,
    /// Output side: the tensor is [3, size, size]. Default 224.
    pub size: u32,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        AugmentConfig {
            random_crop: true,
            scale: (0.25, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
            hflip: true,
            vflip: true,
            rot90: true,
            jitter: JitterConfig {
                brightness: 0.1,
                contrast: 0.1,
                saturation: 0.1,
            },
            size: image::INPUT_SIZE,
        }
    }
}

impl AugmentConfig {
    /// No augmentation: the evaluation transform (the whole image squashed to 224 x 224),
    /// equal bit for bit to `image::preprocess(path, ResizeMode::Squash)`.
    pub fn none() -> Self {
        AugmentConfig {
            random_crop: false,
            hflip: false,
            vflip: false,
            rot90: false,
            jitter: JitterConfig::OFF,
            ..AugmentConfig::default()
        }
    }

    /// Checks every field: size in 1..=[`MAX_SIZE`], 0 < scale.0 <= scale.1 <= 1,
    /// 0 < ratio.0 <= ratio.1 finite, jitter strengths finite and >= 0.
    pub fn validate(&self) -> Result<()> {
        check_size(self.size)?;
        let (s0, s1) = self.scale;
        if !(s0 > 0.0 && s0 <= s1 && s1 <= 1.0) {
            return Err(invalid(
                "augment",
                format!("crop scale ({s0}, {s1}) must satisfy 0 < min <= max <= 1"),
            ));
        }
        let (r0, r1) = self.ratio;
        if !(r0 > 0.0 && r0 <= r1 && r1.is_finite()) {
            return Err(invalid(
                "augment",
                format!("crop ratio ({r0}, {r1}) must satisfy 0 < min <= max, finite"),
            ));
        }
        let j = &self.jitter;
        for (name, s) in [
            ("brightness", j.brightness),
            ("contrast", j.contrast),
            ("saturation", j.saturation),
        ] {
            if !(s >= 0.0 && s.is_finite()) {
                return Err(invalid(
                    "augment",
                    format!("{name} jitter strength {s} must be finite and >= 0"),
                ));
            }
        }
        Ok(())
    }
}

fn check_size(size: u32) -> Result<()> {
    if size == 0 || size > MAX_SIZE {
        return Err(invalid(
            "augment",
            format!("output size {size} must be in 1..={MAX_SIZE}"),
        ));
    }
    Ok(())
}

/// One of torchvision's crop attempts: the sampled area fraction, the sampled aspect ratio and
/// two uniforms in [0, 1) that place the crop (torch's `randint(0, H - h + 1)` and
/// `randint(0, W - w + 1)`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CropAttempt {
    pub scale: f64,
    pub aspect: f64,
    pub top: f64,
    pub left: f64,
}

/// A drawn random resized crop, resolved against an image's size by [`CropDraw::window`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CropDraw {
    pub attempts: [CropAttempt; CROP_ATTEMPTS],
    /// The configured ratio range, which the fallback clamps to.
    pub ratio: (f64, f64),
}

impl CropDraw {
    /// The crop window (left, top, width, height) in whole pixels of a `width` x `height`
    /// image, exactly as torchvision's `RandomResizedCrop.get_params` picks it:
    ///
    /// ```text
    /// for each of the 10 attempts:
    ///     target = W * H * scale                  # scale ~ U(scale.0, scale.1)
    ///     aspect = exp(log_r)                     # log_r ~ U(ln ratio.0, ln ratio.1)
    ///     w = round(sqrt(target * aspect)); h = round(sqrt(target / aspect))
    ///     if 0 < w <= W and 0 < h <= H:
    ///         top ~ randint(0, H - h + 1); left ~ randint(0, W - w + 1); return
    /// fallback (central crop, clamped to the ratio range):
    ///     W / H < ratio.0: w = W, h = round(W / ratio.0)
    ///     W / H > ratio.1: h = H, w = round(H * ratio.1)
    ///     otherwise the whole image; top = (H - h) // 2, left = (W - w) // 2
    /// ```
    ///
    /// `round` is Python's (half to even). torchvision samples in f32; this samples in f64
    /// from our own generator (the same distribution, not torch's numbers). Added here only
    /// for degenerate images: a fallback side never rounds to 0.
    pub fn window(&self, width: u32, height: u32) -> (u32, u32, u32, u32) {
        let (wf, hf) = (width as f64, height as f64);
        let area = wf * hf;
        for a in &self.attempts {
            let target = area * a.scale;
            let w = (target * a.aspect).sqrt().round_ties_even();
            let h = (target / a.aspect).sqrt().round_ties_even();
            if 0.0 < w && w <= wf && 0.0 < h && h <= hf {
                let (w, h) = (w as u32, h as u32);
                let top = ((a.top * (height - h + 1) as f64) as u32).min(height - h);
                let left = ((a.left * (width - w + 1) as f64) as u32).min(width - w);
                return (left, top, w, h);
            }
        }
        let in_ratio = wf / hf;
        let (lo, hi) = self.ratio;
        let (w, h) = if in_ratio < lo {
            (
                width,
                ((wf / lo).round_ties_even() as u32).max(1).min(height),
            )
        } else if in_ratio > hi {
            (
                ((hf * hi).round_ties_even() as u32).max(1).min(width),
                height,
            )
        } else {
            (width, height)
        };
        ((width - w) / 2, (height - h) / 2, w, h)
    }
}

/// One colour operation of [`Jitter`], applied in the drawn order (torchvision's `ColorJitter`
/// permutes its operations at random).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JitterOp {
    Brightness,
    Contrast,
    Saturation,
}

/// Drawn colour jitter factors (1.0 is no change) and the order they are applied in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Jitter {
    pub brightness: f32,
    pub contrast: f32,
    pub saturation: f32,
    pub order: [JitterOp; 3],
}

impl Jitter {
    pub const IDENTITY: Jitter = Jitter {
        brightness: 1.0,
        contrast: 1.0,
        saturation: 1.0,
        order: [
            JitterOp::Brightness,
            JitterOp::Contrast,
            JitterOp::Saturation,
        ],
    };

    pub fn is_identity(&self) -> bool {
        self.brightness == 1.0 && self.contrast == 1.0 && self.saturation == 1.0
    }
}

/// The augmentation drawn for one image in one epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Augment {
    /// None: the whole image.
    pub crop: Option<CropDraw>,
    pub hflip: bool,
    pub vflip: bool,
    /// Counter-clockwise quarter turns, 0..4, after the flips.
    pub rot90: u8,
    pub jitter: Jitter,
}

impl Augment {
    /// Nothing done: the evaluation transform.
    pub const IDENTITY: Augment = Augment {
        crop: None,
        hflip: false,
        vflip: false,
        rot90: 0,
        jitter: Jitter::IDENTITY,
    };

    /// The crop window (left, top, width, height) in pixels of a `width` x `height` image.
    pub fn window(&self, width: u32, height: u32) -> (u32, u32, u32, u32) {
        match &self.crop {
            Some(c) => c.window(width, height),
            None => (0, 0, width, height),
        }
    }

    /// The crop window as fractions of a `width` x `height` image.
    pub fn crop_frac(&self, width: u32, height: u32) -> CropFrac {
        let (x, y, w, h) = self.window(width, height);
        let (wf, hf) = (width.max(1) as f64, height.max(1) as f64);
        CropFrac {
            x: x as f64 / wf,
            y: y as f64 / hf,
            w: w as f64 / wf,
            h: h as f64 / hf,
        }
    }
}

/// The seed of one image's generator in one epoch. Each input goes through a full generator
/// round (SplitMix64 seeding + one xoshiro step) before the next is mixed in, so different
/// triples do not share a stream the way `seed ^ epoch ^ hash(id)` would let them, and the
/// streams are unrelated to `views::random_crop`'s (`seed ^ hash(id) ^ k * golden`).
fn stream_seed(seed: u64, epoch: u64, id: &str) -> u64 {
    const DOMAIN: u64 = u64::from_le_bytes(*b"augment1");
    let h = Rng::new(seed ^ DOMAIN).next_u64();
    let h = Rng::new(h ^ epoch).next_u64();
    Rng::new(h ^ fnv1a64(id.as_bytes())).next_u64()
}

/// The augmentation of image `id` in `epoch` of a run seeded `seed`. A pure function of its
/// arguments. The generator is always consumed the same way (10 x 4 crop numbers, hflip,
/// vflip, k, three jitter factors, the jitter order), whatever is switched off, so turning
/// one option off leaves the others' draws as they were. Errors on an invalid `cfg`.
pub fn draw(cfg: &AugmentConfig, seed: u64, epoch: u64, id: &str) -> Result<Augment> {
    cfg.validate()?;
    let mut rng = Rng::new(stream_seed(seed, epoch, id));
    let (s0, s1) = cfg.scale;
    let (lr0, lr1) = (cfg.ratio.0.ln(), cfg.ratio.1.ln());
    let attempts = std::array::from_fn(|_| CropAttempt {
        scale: rng.uniform(s0, s1),
        aspect: rng.uniform(lr0, lr1).exp(),
        top: rng.next_f64(),
        left: rng.next_f64(),
    });
    let crop = cfg.random_crop.then_some(CropDraw {
        attempts,
        ratio: cfg.ratio,
    });
    let hflip = rng.next_f64() < 0.5;
    let vflip = rng.next_f64() < 0.5;
    let k = rng.below(4) as u8;
    let mut factor = |s: f64| rng.uniform((1.0 - s).max(0.0), 1.0 + s) as f32;
    let (brightness, contrast, saturation) = (
        factor(cfg.jitter.brightness),
        factor(cfg.jitter.contrast),
        factor(cfg.jitter.saturation),
    );
    let mut order = Jitter::IDENTITY.order;
    rng.shuffle(&mut order);
    Ok(Augment {
        crop,
        hflip: cfg.hflip && hflip,
        vflip: cfg.vflip && vflip,
        rot90: if cfg.rot90 { k } else { 0 },
        jitter: Jitter {
            brightness,
            contrast,
            saturation,
            order,
        },
    })
}

fn check_image(img: &Rgb) -> Result<()> {
    if img.width == 0 || img.height == 0 {
        return Err(invalid(
            "augment",
            format!("image has zero size ({} x {})", img.width, img.height),
        ));
    }
    let want = 3 * img.width as u64 * img.height as u64;
    if img.pixels.len() as u64 != want {
        return Err(invalid(
            "augment",
            format!(
                "{} x {} RGB image needs {want} bytes, has {}",
                img.width,
                img.height,
                img.pixels.len()
            ),
        ));
    }
    Ok(())
}

/// The window (left, top, w, h) of `img`, copied out row by row: the pixels
/// [`image::apply`]'s view crop keeps for the same window (a test checks), without its
/// per-pixel loop (about 5x faster on a 600 x 450 image). Crop first, then resize, as
/// torchvision's `resized_crop` does: resizing with a crop box instead (fast_image_resize's
/// `crop` option, PIL's `box`) lets the filter reach pixels outside the window, which
/// changes the border pixels of the result.
fn crop(img: &Rgb, (l, t, w, h): (u32, u32, u32, u32)) -> Rgb {
    let (iw, l, t, w, h) = (
        img.width as usize,
        l as usize,
        t as usize,
        w as usize,
        h as usize,
    );
    let mut pixels = Vec::with_capacity(w * h * 3);
    for row in img.pixels.chunks_exact(iw * 3).skip(t).take(h) {
        pixels.extend_from_slice(&row[l * 3..(l + w) * 3]);
    }
    Rgb {
        width: w as u32,
        height: h as u32,
        pixels,
    }
}

/// The pixel (row, column) of the resized n x n image that output pixel (i, j) shows after
/// the flips and then `k` counter-clockwise quarter turns: output (i, j) is the flipped
/// image's (i, j) for k = 0, (j, n-1-i) for k = 1 (`torch.rot90` / `np.rot90`),
/// (n-1-i, n-1-j) for k = 2, (n-1-j, i) for k = 3.
fn source(n: usize, hflip: bool, vflip: bool, k: u8, i: usize, j: usize) -> (usize, usize) {
    let last = n - 1;
    let (bi, bj) = match k % 4 {
        0 => (i, j),
        1 => (j, last - i),
        2 => (last - i, last - j),
        _ => (last - j, i),
    };
    (
        if vflip { last - bi } else { bi },
        if hflip { last - bj } else { bj },
    )
}

/// Interleaved u8 RGB of a square image -> planar f32 values in [0, 255], flipped and
/// turned on the way ([`source`]): along an output row the source pixel moves by a fixed
/// step, so each row is one strided gather.
fn oriented_planes(img: &Rgb, hflip: bool, vflip: bool, k: u8, out: &mut [f32]) {
    debug_assert_eq!(img.width, img.height, "oriented_planes: square images only");
    let n = img.width as usize;
    let plane = n * n;
    let (r, gb) = out.split_at_mut(plane);
    let (g, b) = gb.split_at_mut(plane);
    let px = &img.pixels;
    let at = |(si, sj): (usize, usize)| (si * n + sj) as isize;
    for i in 0..n {
        let start = at(source(n, hflip, vflip, k, i, 0));
        let step = if n > 1 {
            at(source(n, hflip, vflip, k, i, 1)) - start
        } else {
            0
        };
        let row = i * n..(i + 1) * n;
        for (j, ((r, g), b)) in r[row.clone()]
            .iter_mut()
            .zip(&mut g[row.clone()])
            .zip(&mut b[row])
            .enumerate()
        {
            let s = (start + j as isize * step) as usize * 3;
            let p = &px[s..s + 3];
            (*r, *g, *b) = (p[0] as f32, p[1] as f32, p[2] as f32);
        }
    }
}

/// torchvision's grey level (`rgb_to_grayscale`: ITU-R 601-2 luma).
#[inline]
fn grey(r: f32, g: f32, b: f32) -> f32 {
    0.2989 * r + 0.587 * g + 0.114 * b
}

/// torchvision's `_blend`: `f * a + (1 - f) * b`, clamped to the value range.
#[inline]
fn blend(f: f32, a: f32, b: f32) -> f32 {
    (f * a + (1.0 - f) * b).clamp(0.0, 255.0)
}

/// `ColorJitter` on planar RGB values in [0, 255] (`planes` is R, G, B planes of `n` values),
/// with torchvision's float-tensor semantics: brightness blends with black (multiplies),
/// contrast blends with the mean grey level of the whole image, saturation blends each pixel
/// with its grey level; each clamps to [0, 255]; the operations run in `j.order`. Factors of
/// 1 leave every value unchanged, bit for bit.
fn color_jitter(planes: &mut [f32], n: usize, j: &Jitter) {
    let planes = &mut planes[..3 * n];
    for op in j.order {
        match op {
            JitterOp::Brightness => {
                let f = j.brightness;
                for v in planes.iter_mut() {
                    *v = blend(f, *v, 0.0);
                }
            }
            JitterOp::Contrast => {
                let f = j.contrast;
                let (r, gb) = planes.split_at(n);
                let (g, b) = gb.split_at(n);
                let sum: f64 = r
                    .iter()
                    .zip(g)
                    .zip(b)
                    .map(|((r, g), b)| grey(*r, *g, *b) as f64)
                    .sum();
                let mean = (sum / n as f64) as f32;
                for v in planes.iter_mut() {
                    *v = blend(f, *v, mean);
                }
            }
            JitterOp::Saturation => {
                let f = j.saturation;
                let (r, gb) = planes.split_at_mut(n);
                let (g, b) = gb.split_at_mut(n);
                for ((r, g), b) in r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut()) {
                    let l = grey(*r, *g, *b);
                    (*r, *g, *b) = (blend(f, *r, l), blend(f, *g, l), blend(f, *b, l));
                }
            }
        }
    }
}

/// The normalisation of [`image::normalise_into`] (same expression, so the same bits for
/// integral values) on planar values in [0, 255].
fn normalise_planes(out: &mut [f32], plane: usize) {
    for c in 0..3 {
        let (scale, shift) = (1.0 / (255.0 * STD[c]), MEAN[c] / STD[c]);
        for v in &mut out[c * plane..(c + 1) * plane] {
            *v = *v * scale - shift;
        }
    }
}

/// [`apply`] into a caller's buffer of 3 * size * size values (one image of a batch).
pub fn apply_into(img: &Rgb, a: &Augment, size: u32, out: &mut [f32]) -> Result<()> {
    check_size(size)?;
    check_image(img)?;
    let s = size as usize;
    if out.len() != 3 * s * s {
        return Err(shape_err(
            "augment",
            format!(
                "output buffer holds {} values, [3, {s}, {s}] needs {}",
                out.len(),
                3 * s * s
            ),
        ));
    }
    let window = a.window(img.width, img.height);
    let resized = if window == (0, 0, img.width, img.height) {
        image::resize(img, ResizeMode::Squash, size)?
    } else {
        image::resize(&crop(img, window), ResizeMode::Squash, size)?
    };
    let turned = a.hflip || a.vflip || !a.rot90.is_multiple_of(4);
    if !turned && a.jitter.is_identity() {
        image::normalise_into(&resized, out);
    } else {
        // Same normalisation expression, so the same bits as normalise_into when nothing
        // changed the values (tested).
        oriented_planes(&resized, a.hflip, a.vflip, a.rot90, out);
        if !a.jitter.is_identity() {
            color_jitter(out, s * s, &a.jitter);
        }
        normalise_planes(out, s * s);
    }
    Ok(())
}

/// Crop + resize, flips, quarter turns, colour jitter, normalisation -> [3, size, size].
pub fn apply(img: &Rgb, a: &Augment, size: u32) -> Result<Tensor> {
    check_size(size)?;
    let s = size as usize;
    let mut out = vec![0.0f32; 3 * s * s];
    apply_into(img, a, size, &mut out)?;
    Tensor::new(&[3, s, s], out)
}

/// Decodes `path` ([`image::load_rgb`]: truncated or corrupt files are errors naming the file)
/// and applies `a` at `cfg.size`.
pub fn load_augmented(path: &Path, a: &Augment, cfg: &AugmentConfig) -> Result<Tensor> {
    cfg.validate()?;
    apply(&image::load_rgb(path)?, a, cfg.size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::image::{Transform, preprocess};
    use rayon::prelude::*;

    /// A photo-like image: a dark lesion on skin, with texture.
    fn synthetic(w: u32, h: u32) -> Rgb {
        let mut pixels = Vec::with_capacity((w * h * 3) as usize);
        let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
        for y in 0..h {
            for x in 0..w {
                let d = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();
                let v = (220.0 - 150.0 * (-d / (w as f32 / 5.0)).exp()
                    + ((x * 7 + y * 13) % 17) as f32) as u8;
                pixels.extend_from_slice(&[v, (v as f32 * 0.75) as u8, (v as f32 * 0.6) as u8]);
            }
        }
        Rgb {
            width: w,
            height: h,
            pixels,
        }
    }

    /// An n x n image whose pixel (i, j) is (i, j, i * n + j): every pixel distinct.
    fn labelled(n: u32) -> Rgb {
        let mut pixels = Vec::new();
        for i in 0..n {
            for j in 0..n {
                pixels.extend_from_slice(&[i as u8, j as u8, (i * n + j) as u8]);
            }
        }
        Rgb {
            width: n,
            height: n,
            pixels,
        }
    }

    fn bits(t: &Tensor) -> Vec<u32> {
        t.data().iter().map(|v| v.to_bits()).collect()
    }

    #[test]
    fn same_seed_epoch_id_gives_the_same_tensor_and_epochs_differ() {
        let cfg = AugmentConfig::default();
        let img = synthetic(300, 225);
        let a = draw(&cfg, 7, 3, "ISIC_0024310").unwrap();
        let b = draw(&cfg, 7, 3, "ISIC_0024310").unwrap();
        assert_eq!(a, b);
        let (ta, tb) = (apply(&img, &a, 224).unwrap(), apply(&img, &b, 224).unwrap());
        assert_eq!(ta.shape(), &[3, 224, 224]);
        assert_eq!(bits(&ta), bits(&tb));
        let next = draw(&cfg, 7, 4, "ISIC_0024310").unwrap();
        assert_ne!(a, next);
        assert_ne!(bits(&ta), bits(&apply(&img, &next, 224).unwrap()));
        assert_ne!(a, draw(&cfg, 8, 3, "ISIC_0024310").unwrap());
        assert_ne!(a, draw(&cfg, 7, 3, "ISIC_0024311").unwrap());
        // Every epoch of a run draws a different crop for the same image.
        let windows: std::collections::HashSet<_> = (0..50)
            .map(|e| draw(&cfg, 7, e, "ISIC_0024310").unwrap().window(600, 450))
            .collect();
        assert_eq!(windows.len(), 50);
    }

    #[test]
    fn draws_do_not_depend_on_call_order_or_other_images() {
        let cfg = AugmentConfig::default();
        let img = synthetic(120, 90);
        let ids: Vec<String> = (0..16).map(|i| format!("ISIC_{i:07}")).collect();
        let forward: Vec<Vec<u32>> = ids
            .iter()
            .map(|id| bits(&apply(&img, &draw(&cfg, 1, 2, id).unwrap(), 64).unwrap()))
            .collect();
        // Reverse order, with other images' draws interleaved.
        let mut backward: Vec<Vec<u32>> = ids
            .iter()
            .rev()
            .map(|id| {
                draw(&cfg, 1, 2, "someone else").unwrap();
                bits(&apply(&img, &draw(&cfg, 1, 2, id).unwrap(), 64).unwrap())
            })
            .collect();
        backward.reverse();
        assert_eq!(forward, backward);
        // A subset, processed in parallel.
        let parallel: Vec<Vec<u32>> = ids[5..11]
            .par_iter()
            .map(|id| bits(&apply(&img, &draw(&cfg, 1, 2, id).unwrap(), 64).unwrap()))
            .collect();
        assert_eq!(&forward[5..11], &parallel[..]);
    }

    /// Over 4000 draws on a 600 x 450 image the windows lie inside the image, their area
    /// fraction in [scale.0 * (1 - tol), scale.1] and their aspect in
    /// [ratio.0 * (1 - tol), ratio.1 * (1 + tol)], where tol = 1.01 / m and m is the smallest
    /// exact side an attempt can have, sqrt(W * H * scale.0 * ratio.0) (rounding each side to
    /// whole pixels moves it by at most half a pixel); the extremes of the ranges are reached
    /// and positions, flips, quarter turns and jitter factors have their expected frequencies.
    #[test]
    fn crop_statistics_stay_within_the_configured_bounds() {
        for scale in [(0.25, 1.0), (0.08, 1.0)] {
            let cfg = AugmentConfig {
                scale,
                ..AugmentConfig::default()
            };
            let (w, h) = (600u32, 450u32);
            let area = (w * h) as f64;
            let tol = 1.01 / (area * scale.0 * cfg.ratio.0).sqrt();
            let n = 4000;
            let (mut amin, mut amax, mut rmin, mut rmax) = (f64::MAX, 0.0f64, f64::MAX, 0.0f64);
            let (mut cx, mut cy, mut hf, mut vf) = (0.0, 0.0, 0usize, 0usize);
            let mut ks = [0usize; 4];
            let mut orders = std::collections::HashSet::new();
            for i in 0..n {
                let a = draw(&cfg, 11, 0, &format!("img{i}")).unwrap();
                let (l, t, cw, ch) = a.window(w, h);
                assert!(
                    cw >= 1 && ch >= 1 && l + cw <= w && t + ch <= h,
                    "{l} {t} {cw} {ch}"
                );
                let af = (cw * ch) as f64 / area;
                let r = cw as f64 / ch as f64;
                assert!(af >= scale.0 * (1.0 - tol) && af <= scale.1, "area {af}");
                assert!(
                    r >= cfg.ratio.0 * (1.0 - tol) && r <= cfg.ratio.1 * (1.0 + tol),
                    "ratio {r}"
                );
                (amin, amax, rmin, rmax) = (amin.min(af), amax.max(af), rmin.min(r), rmax.max(r));
                cx += (l as f64 + cw as f64 / 2.0) / w as f64;
                cy += (t as f64 + ch as f64 / 2.0) / h as f64;
                hf += a.hflip as usize;
                vf += a.vflip as usize;
                ks[a.rot90 as usize] += 1;
                let j = a.jitter;
                for f in [j.brightness, j.contrast, j.saturation] {
                    assert!((0.9..=1.1).contains(&f), "jitter {f}");
                }
                orders.insert(j.order);
            }
            assert!(amin < scale.0 + 0.02 && amax > 0.95, "area {amin}..{amax}");
            assert!(rmin < 0.77 && rmax > 1.30, "ratio {rmin}..{rmax}");
            let nf = n as f64;
            // Standard errors: ~0.0045 for the centres, 0.0079 for a rate of 0.5, 0.0068 for
            // 0.25; the bounds are over 4 of them.
            assert!((cx / nf - 0.5).abs() < 0.02 && (cy / nf - 0.5).abs() < 0.02);
            assert!((hf as f64 / nf - 0.5).abs() < 0.035, "hflip {hf}");
            assert!((vf as f64 / nf - 0.5).abs() < 0.035, "vflip {vf}");
            for k in ks {
                assert!((k as f64 / nf - 0.25).abs() < 0.03, "rot90 {ks:?}");
            }
            assert_eq!(orders.len(), 6);
        }
    }

    #[test]
    fn crop_window_follows_torchvision_rounding_and_fallback() {
        let attempt = |scale, aspect| CropAttempt {
            scale,
            aspect,
            top: 0.999,
            left: 0.0,
        };
        let ratio = (3.0 / 4.0, 4.0 / 3.0);
        // sqrt(10 * 10 * 0.0625) = 2.5 rounds half to even, to 2 (Python's round).
        let c = CropDraw {
            attempts: [attempt(0.0625, 1.0); CROP_ATTEMPTS],
            ratio,
        };
        assert_eq!(c.window(10, 10), (0, 8, 2, 2));
        // Every attempt too large (a 520 x 520 square in 600 x 450): the central fallback.
        let c = CropDraw {
            attempts: [attempt(1.0, 1.0); CROP_ATTEMPTS],
            ratio,
        };
        assert_eq!(c.window(600, 450), (0, 0, 600, 450)); // 4/3 is inside the ratio range
        assert_eq!(c.window(1000, 100), (433, 0, 133, 100)); // w = round(100 * 4/3)
        assert_eq!(c.window(100, 1000), (0, 433, 100, 133)); // h = round(100 / (3/4))
        // The last attempt that fits is used only if all before it failed.
        let mut attempts = [attempt(1.0, 1.0); CROP_ATTEMPTS];
        attempts[9] = attempt(0.25, 1.0);
        let c = CropDraw { attempts, ratio };
        let (_, _, w, h) = c.window(600, 450);
        assert_eq!((w, h), (260, 260)); // round(sqrt(67500)) = round(259.8)
        // Degenerate images never give an empty or out-of-range window.
        assert_eq!(c.window(1, 1), (0, 0, 1, 1));
    }

    #[test]
    fn crop_copies_exactly_the_window() {
        let img = synthetic(97, 61);
        let cfg = AugmentConfig {
            scale: (0.01, 1.0),
            ..AugmentConfig::default()
        };
        let mut windows = vec![
            (0, 0, 97, 61),
            (10, 5, 40, 50),
            (96, 60, 1, 1),
            (3, 0, 94, 61),
        ];
        for e in 0..200 {
            let a = draw(&cfg, 3, e, "odd").unwrap();
            let f = a.crop_frac(97, 61);
            let (l, t, w, h) = a.window(97, 61);
            assert_eq!(
                [f.x * 97.0, f.y * 61.0, f.w * 97.0, f.h * 61.0].map(f64::round),
                [l as f64, t as f64, w as f64, h as f64]
            );
            windows.push((l, t, w, h));
        }
        for (l, t, w, h) in windows {
            let got = crop(&img, (l, t, w, h));
            assert_eq!((got.width, got.height), (w, h));
            let view = Transform {
                crop: Some(CropFrac {
                    x: l as f64 / 97.0,
                    y: t as f64 / 61.0,
                    w: w as f64 / 97.0,
                    h: h as f64 / 61.0,
                }),
                ..Transform::IDENTITY
            };
            assert_eq!(got.pixels, image::apply(&img, &view).pixels);
            let mut want = Vec::new();
            for y in t..t + h {
                let at = ((y * 97 + l) * 3) as usize;
                want.extend_from_slice(&img.pixels[at..at + 3 * w as usize]);
            }
            assert_eq!(got.pixels, want, "window {l} {t} {w} {h}");
        }
    }

    #[test]
    fn flips_and_quarter_turns_move_pixels_exactly() {
        // [[1,2,3],[4,5,6],[7,8,9]] in the third channel (+1).
        let img = labelled(3);
        let grid = |h: bool, v: bool, k: u8| -> Vec<u8> {
            let mut out = vec![0.0f32; 27];
            oriented_planes(&img, h, v, k, &mut out);
            out[18..].iter().map(|v| *v as u8 + 1).collect()
        };
        let cases: [(bool, bool, u8, [u8; 9]); 6] = [
            (false, false, 0, [1, 2, 3, 4, 5, 6, 7, 8, 9]),
            (true, false, 0, [3, 2, 1, 6, 5, 4, 9, 8, 7]),
            (false, true, 0, [7, 8, 9, 4, 5, 6, 1, 2, 3]),
            // torch.rot90(x, 1) / np.rot90: counter-clockwise.
            (false, false, 1, [3, 6, 9, 2, 5, 8, 1, 4, 7]),
            (false, false, 2, [9, 8, 7, 6, 5, 4, 3, 2, 1]),
            // hflip then a counter-clockwise turn is the transpose.
            (true, false, 1, [1, 4, 7, 2, 5, 8, 3, 6, 9]),
        ];
        for (h, v, k, want) in cases {
            assert_eq!(grid(h, v, k), want, "{h} {v} {k}");
        }
        // k = 3 undoes k = 1; all 16 combinations are permutations giving each of the 8
        // symmetries of the square twice.
        for i in 0..3 {
            for j in 0..3 {
                let (a, b) = source(3, false, false, 3, i, j);
                assert_eq!(source(3, false, false, 1, a, b), (i, j));
            }
        }
        let mut seen = std::collections::HashMap::new();
        for h in [false, true] {
            for v in [false, true] {
                for k in 0..4 {
                    let g = grid(h, v, k);
                    let mut sorted = g.clone();
                    sorted.sort();
                    assert_eq!(sorted, (1..=9).collect::<Vec<u8>>());
                    *seen.entry(g).or_insert(0) += 1;
                }
            }
        }
        assert_eq!(seen.len(), 8);
        assert!(seen.values().all(|&c| c == 2));

        // Through `apply` (no crop, resized to its own size, no jitter): every output pixel
        // is the input pixel the flip / turn sends there, found by its distinct value.
        let n = 6u32;
        let img = labelled(n);
        let base = apply(&img, &Augment::IDENTITY, n).unwrap();
        let mut direct = vec![0.0f32; (3 * n * n) as usize];
        image::normalise_into(&img, &mut direct);
        assert_eq!(
            base.data(),
            &direct[..],
            "same-size resize is not the identity"
        );
        let plane = (n * n) as usize;
        let last = n as usize - 1;
        for (hflip, vflip, rot90) in [(true, false, 0), (false, true, 3), (true, true, 1)] {
            let a = Augment {
                hflip,
                vflip,
                rot90,
                ..Augment::IDENTITY
            };
            let t = apply(&img, &a, n).unwrap();
            for i in 0..n as usize {
                for j in 0..n as usize {
                    let (bi, bj) = match rot90 {
                        0 => (i, j),
                        1 => (j, last - i),
                        _ => (last - j, i),
                    };
                    let si = if vflip { last - bi } else { bi };
                    let sj = if hflip { last - bj } else { bj };
                    for c in 0..3 {
                        assert_eq!(
                            t.data()[c * plane + i * n as usize + j],
                            base.data()[c * plane + si * n as usize + sj]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn none_is_preprocess_squash_bit_for_bit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lesion.jpg");
        let img = synthetic(300, 200);
        ::image::RgbImage::from_raw(img.width, img.height, img.pixels.clone())
            .unwrap()
            .save(&path)
            .unwrap();
        let cfg = AugmentConfig::none();
        let want = bits(&preprocess(&path, ResizeMode::Squash).unwrap());
        for epoch in 0..3 {
            let a = draw(&cfg, 5, epoch, "lesion").unwrap();
            assert_eq!(a.crop, None);
            assert!(!a.hflip && !a.vflip && a.rot90 == 0 && a.jitter.is_identity());
            assert_eq!(bits(&load_augmented(&path, &a, &cfg).unwrap()), want);
        }
        assert_eq!(
            bits(&load_augmented(&path, &Augment::IDENTITY, &cfg).unwrap()),
            want
        );
    }

    #[test]
    fn jitter_with_unit_factors_is_the_identity_and_other_factors_follow_torchvision() {
        let img = synthetic(40, 40);
        let n = 40 * 40;
        let mut planes = vec![0.0f32; 3 * n];
        oriented_planes(&img, false, false, 0, &mut planes);
        // Include the extremes.
        planes[0] = 0.0;
        planes[1] = 255.0;
        let orig = planes.clone();
        let ops = [
            JitterOp::Brightness,
            JitterOp::Contrast,
            JitterOp::Saturation,
        ];
        for order in [[0, 1, 2], [2, 1, 0], [1, 0, 2], [1, 2, 0]] {
            let j = Jitter {
                order: order.map(|i| ops[i]),
                ..Jitter::IDENTITY
            };
            let mut p = planes.clone();
            color_jitter(&mut p, n, &j);
            assert_eq!(
                p.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                orig.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
        // The float path normalises integral values exactly like normalise_into.
        let mut direct = vec![0.0f32; 3 * n];
        image::normalise_into(&img, &mut direct);
        let mut q = vec![0.0f32; 3 * n];
        oriented_planes(&img, false, false, 0, &mut q);
        normalise_planes(&mut q, n);
        assert_eq!(
            q.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            direct.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );

        // One operation at factor f; the other two (at 1, the identity as shown) after it.
        let one = |op: JitterOp, f: f32| {
            let mut p = planes.clone();
            let mut order = ops;
            order.sort_by_key(|o| *o != op);
            let mut j = Jitter {
                order,
                ..Jitter::IDENTITY
            };
            match op {
                JitterOp::Brightness => j.brightness = f,
                JitterOp::Contrast => j.contrast = f,
                JitterOp::Saturation => j.saturation = f,
            }
            color_jitter(&mut p, n, &j);
            p
        };
        // Brightness multiplies and clamps.
        let p = one(JitterOp::Brightness, 1.5);
        for (v, o) in p.iter().zip(&orig) {
            assert_eq!(*v, (1.5 * o).min(255.0));
        }
        // Contrast 0: every value becomes the mean grey level.
        let mean = (0..n)
            .map(|i| grey(orig[i], orig[n + i], orig[2 * n + i]) as f64)
            .sum::<f64>()
            / n as f64;
        let p = one(JitterOp::Contrast, 0.0);
        assert!(p.iter().all(|v| (*v as f64 - mean).abs() < 1e-3), "{mean}");
        // Saturation 0: each pixel becomes its grey level in all three channels.
        let p = one(JitterOp::Saturation, 0.0);
        for i in 0..n {
            let l = grey(orig[i], orig[n + i], orig[2 * n + i]);
            assert_eq!([p[i], p[n + i], p[2 * n + i]], [l, l, l]);
        }
        // Saturation 2 pushes away from grey and clamps to [0, 255].
        let p = one(JitterOp::Saturation, 2.0);
        assert!(p.iter().all(|v| (0.0..=255.0).contains(v)));
        let i = n / 2;
        let l = grey(orig[i], orig[n + i], orig[2 * n + i]);
        assert_eq!(p[i], (2.0 * orig[i] - l).clamp(0.0, 255.0));
    }

    #[test]
    fn bad_inputs_are_errors() {
        let img = synthetic(20, 10);
        let a = draw(&AugmentConfig::default(), 0, 0, "x").unwrap();
        assert!(apply(&img, &a, 0).is_err());
        assert!(apply(&img, &a, MAX_SIZE + 1).is_err());
        let empty = Rgb {
            width: 0,
            height: 0,
            pixels: vec![],
        };
        assert!(apply(&empty, &a, 8).is_err());
        assert!(apply(&empty, &Augment::IDENTITY, 8).is_err());
        let flat = Rgb {
            width: 20,
            height: 0,
            pixels: vec![],
        };
        assert!(apply(&flat, &a, 8).is_err());
        let short = Rgb {
            width: 2,
            height: 2,
            pixels: vec![0; 5],
        };
        assert!(apply(&short, &a, 8).is_err());
        assert!(apply_into(&img, &a, 8, &mut [0.0; 3 * 8 * 8 - 1]).is_err());
        // Windows of degenerate sizes never panic.
        for (w, h) in [(0, 0), (0, 5), (5, 0), (1, 1), (1, 1000)] {
            let (l, t, cw, ch) = a.window(w, h);
            assert!(l + cw <= w.max(1) && t + ch <= h.max(1));
        }

        let bad = [
            AugmentConfig {
                size: 0,
                ..AugmentConfig::default()
            },
            AugmentConfig {
                scale: (0.5, 0.2),
                ..AugmentConfig::default()
            },
            AugmentConfig {
                scale: (0.0, 1.0),
                ..AugmentConfig::default()
            },
            AugmentConfig {
                scale: (0.5, 1.5),
                ..AugmentConfig::default()
            },
            AugmentConfig {
                ratio: (f64::NAN, 1.0),
                ..AugmentConfig::default()
            },
            AugmentConfig {
                ratio: (-1.0, 1.0),
                ..AugmentConfig::default()
            },
            AugmentConfig {
                jitter: JitterConfig {
                    contrast: -0.1,
                    ..AugmentConfig::default().jitter
                },
                ..AugmentConfig::default()
            },
            AugmentConfig {
                jitter: JitterConfig {
                    brightness: f64::INFINITY,
                    ..AugmentConfig::default().jitter
                },
                ..AugmentConfig::default()
            },
        ];
        for cfg in bad {
            assert!(cfg.validate().is_err(), "{cfg:?}");
            assert!(draw(&cfg, 0, 0, "x").is_err(), "{cfg:?}");
        }

        let dir = tempfile::tempdir().unwrap();
        let cfg = AugmentConfig::default();
        let missing = dir.path().join("missing.jpg");
        let e = load_augmented(&missing, &a, &cfg).unwrap_err().to_string();
        assert!(e.contains("missing.jpg"), "{e}");
        let zero = AugmentConfig { size: 0, ..cfg };
        let path = dir.path().join("cut.jpg");
        ::image::RgbImage::from_raw(img.width, img.height, img.pixels.clone())
            .unwrap()
            .save(&path)
            .unwrap();
        assert!(load_augmented(&path, &a, &zero).is_err());
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let e = load_augmented(&path, &a, &cfg).unwrap_err().to_string();
        assert!(e.contains("cut.jpg") && e.contains("truncated"), "{e}");
    }
}
