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
mod tests;
