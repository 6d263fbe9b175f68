//! Image -> tensor: decode any JPEG/PNG (grayscale, RGBA, 16-bit, CMYK JPEG are converted to
//! 8-bit RGB, not rejected), apply a view's transform (crop, flips; which views exist is decided
//! in `data::views`), resize, normalise with the ImageNet statistics to a CHW f32 tensor.

use crate::error::{Result, file_err};
use crate::tensor::Tensor;
use fast_image_resize::{
    self as fr, PixelType, ResizeAlg, ResizeOptions, Resizer,
    images::{Image, ImageRef},
};
use std::path::Path;

/// ImageNet statistics the torchvision ResNet50 weights expect (SPEC section 4).
pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];
pub const INPUT_SIZE: u32 = 224;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ResizeMode {
    /// The whole image to 224x224, ignoring aspect ratio (the seed's choice).
    #[default]
    Squash,
    /// Short side to 256, centre crop 224x224 (torchvision's evaluation transform).
    Crop,
}

impl ResizeMode {
    pub fn name(self) -> &'static str {
        match self {
            ResizeMode::Squash => "squash",
            ResizeMode::Crop => "crop",
        }
    }
}

/// A decoded 8-bit RGB image, row-major interleaved.
#[derive(Clone, Debug)]
pub struct Rgb {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

/// The largest image decoded: 64 megapixels (a 600 x 450 dermoscopy image is 0.27; the
/// largest dermoscopy cameras make ~25). Larger files are refused before any pixel buffer is
/// allocated, with their size in the message.
pub const MAX_PIXELS: u64 = 64_000_000;

/// Decodes a file of any supported format and colour type to 8-bit RGB. A file cut short or
/// corrupt ([`super::integrity`]) is an error that names the file and says "truncated" or
/// "corrupt"; so is an image over [`MAX_PIXELS`].
pub fn load_rgb(path: &Path) -> Result<Rgb> {
    let bytes = std::fs::read(path).map_err(|e| file_err(path, format!("cannot open: {e}")))?;
    decode_rgb(path, &bytes)
}

/// Is the file at `path` a whole image of a supported format and size? Everything
/// [`load_rgb`] checks before decoding ([`check_bytes`]), without decoding: a few tens of
/// microseconds beyond reading the file, so a data set can be checked whole when it is loaded.
/// Returns the image's width and height.
pub fn check_file(path: &Path) -> Result<(u32, u32)> {
    let bytes = std::fs::read(path).map_err(|e| file_err(path, format!("cannot open: {e}")))?;
    check_bytes(path, &bytes)
}

/// The checks before decoding: a recognised format, a whole file ([`super::integrity`]:
/// "truncated" / "corrupt"), and a size within [`MAX_PIXELS`] read from the header (so an
/// oversized image is refused with its size before any pixel buffer is allocated). Returns the
/// width and height.
pub fn check_bytes(path: &Path, bytes: &[u8]) -> Result<(u32, u32)> {
    let reader = whole_image(path, bytes)?;
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| file_err(path, format!("cannot decode image (corrupt?): {e}")))?;
    check_size(path, w, h)?;
    Ok((w, h))
}

/// A reader of `bytes` once their format is recognised and the file is whole.
fn whole_image<'a>(
    path: &Path,
    bytes: &'a [u8],
) -> Result<::image::ImageReader<std::io::Cursor<&'a [u8]>>> {
    let reader = ::image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| file_err(path, format!("cannot read: {e}")))?;
    if reader.format().is_none() {
        return Err(file_err(
            path,
            "not an image (unrecognised format; expected JPEG or PNG)",
        ));
    }
    super::integrity::check(bytes).map_err(|problem| file_err(path, problem))?;
    Ok(reader)
}

fn check_size(path: &Path, w: u32, h: u32) -> Result<()> {
    if w == 0 || h == 0 {
        return Err(file_err(path, "image has zero width or height"));
    }
    if w as u64 * h as u64 > MAX_PIXELS {
        return Err(file_err(
            path,
            format!(
                "image too large ({w} x {h}, limit {} megapixels)",
                MAX_PIXELS / 1_000_000
            ),
        ));
    }
    Ok(())
}

/// [`load_rgb`] on bytes already read (`path` names them in errors).
pub fn decode_rgb(path: &Path, bytes: &[u8]) -> Result<Rgb> {
    let mut r = whole_image(path, bytes)?;
    // The decoder's own allocation limit would refuse some legal sizes below ours.
    r.no_limits();
    let corrupt =
        |e: ::image::ImageError| file_err(path, format!("cannot decode image (corrupt?): {e}"));
    // One decoder reads the header (the size is checked before any pixel buffer exists) and
    // then the pixels: a second one would copy and parse the file again.
    let decoder = r.into_decoder().map_err(corrupt)?;
    let (w, h) = ::image::ImageDecoder::dimensions(&decoder);
    check_size(path, w, h)?;
    let img = ::image::DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    let rgb = img.to_rgb8();
    Ok(Rgb {
        width: rgb.width(),
        height: rgb.height(),
        pixels: rgb.into_raw(),
    })
}

/// Resizes to `size` x `size` with an antialiased bilinear filter (like PIL / torchvision).
pub fn resize(img: &Rgb, mode: ResizeMode, size: u32) -> Result<Rgb> {
    resize_with(img, mode, size, None)
}

/// [`resize`] with fast_image_resize's SIMD extension chosen (`None`: the best this CPU has, as
/// [`resize`] does), so tests can run every extension's code on one machine
/// (tests/cpu_levels.rs: the pixels must not depend on the CPU).
///
/// # Errors
/// As [`resize`]; an extension this CPU lacks is refused, not run.
pub fn resize_with(
    img: &Rgb,
    mode: ResizeMode,
    size: u32,
    cpu: Option<fr::CpuExtensions>,
) -> Result<Rgb> {
    let mut resizer = Resizer::new();
    if let Some(ext) = cpu {
        if !ext.is_supported() {
            return Err(crate::error::invalid(
                "resize",
                format!("this CPU lacks the {ext:?} extension"),
            ));
        }
        // SAFETY: the extension is supported by this CPU (checked above).
        unsafe { resizer.set_cpu_extensions(ext) };
    }
    let src = ImageRef::new(img.width, img.height, &img.pixels, PixelType::U8x3)
        .map_err(|e| crate::error::invalid("resize", e.to_string()))?;
    let mut dst = Image::new(size, size, PixelType::U8x3);
    let mut opts =
        ResizeOptions::new().resize_alg(ResizeAlg::Convolution(fr::FilterType::Bilinear));
    if mode == ResizeMode::Crop {
        let (left, top, cw, ch) = crop_window(img.width, img.height, size);
        opts = opts.crop(left, top, cw, ch);
    }
    resizer
        .resize(&src, &mut dst, &opts)
        .map_err(|e| crate::error::invalid("resize", e.to_string()))?;
    Ok(Rgb {
        width: size,
        height: size,
        pixels: dst.into_vec(),
    })
}

/// The source window (left, top, width, height) that torchvision's `Resize(256)` +
/// `CenterCrop(224)` (scaled for other sizes) keeps, so one resample of it gives the same
/// pixels. torchvision sizes the long side as floor(256 * long / short), so the two axes have
/// slightly different scales, and rounds the crop offset half-to-even (Python's `round`).
pub fn crop_window(w: u32, h: u32, size: u32) -> (f64, f64, f64, f64) {
    let (w, h, size) = (w as u64, h as u64, size as u64);
    let target = (size * 256 + 112) / 224; // 256 for 224
    let short = w.min(h);
    let (rw, rh) = if w <= h {
        (target, target * h / short)
    } else {
        (target * w / short, target)
    };
    // round((r - size) / 2) with ties to even; r >= target > size.
    let offset = |r: u64| {
        let d = r - size;
        let q = d / 2;
        (if d % 2 == 1 && q % 2 == 1 { q + 1 } else { q }) as f64
    };
    let (sx, sy) = (w as f64 / rw as f64, h as f64 / rh as f64);
    (
        offset(rw) * sx,
        offset(rh) * sy,
        size as f64 * sx,
        size as f64 * sy,
    )
}

/// Interleaved RGB -> normalised planar CHW written into `out` (3 * w * h values).
pub fn normalise_into(img: &Rgb, out: &mut [f32]) {
    let plane = (img.width * img.height) as usize;
    assert_eq!(out.len(), 3 * plane, "normalise_into: output size");
    for c in 0..3 {
        let (scale, shift) = (1.0 / (255.0 * STD[c]), MEAN[c] / STD[c]);
        let dst = &mut out[c * plane..(c + 1) * plane];
        for (d, px) in dst.iter_mut().zip(img.pixels.chunks_exact(3)) {
            *d = px[c] as f32 * scale - shift;
        }
    }
}

/// Shades-of-Gray colour constancy (Finlayson & Trezzi 2004) with Minkowski norm p: estimates
/// the illuminant per channel as (mean I_c^p)^(1/p) and rescales each channel so the estimate
/// becomes neutral grey (the ISIC 2018 winners' p = 6). Values are clamped to 255.
pub fn shades_of_gray(img: &mut Rgb, p: f64) {
    let mut acc = [0.0f64; 3];
    for px in img.pixels.chunks_exact(3) {
        for c in 0..3 {
            acc[c] += (px[c] as f64 / 255.0).powf(p);
        }
    }
    let n = (img.pixels.len() / 3).max(1) as f64;
    let e: Vec<f64> = acc.iter().map(|a| (a / n).powf(1.0 / p)).collect();
    let norm = e.iter().map(|v| v * v).sum::<f64>().sqrt();
    if norm <= 0.0 {
        return; // an all-black image has no illuminant to correct
    }
    // Unit-norm illuminant; a neutral one is (1, 1, 1) / sqrt(3), which maps to gain 1.
    let gain: Vec<f64> = e
        .iter()
        .map(|v| {
            if *v > 0.0 {
                norm / (v * 3f64.sqrt())
            } else {
                1.0
            }
        })
        .collect();
    for px in img.pixels.chunks_exact_mut(3) {
        for c in 0..3 {
            px[c] = (px[c] as f64 * gain[c]).round().min(255.0) as u8;
        }
    }
}

/// A crop in fractions of the image size, so it applies to any resolution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CropFrac {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

/// What a view does to an image's pixels: an optional crop, then flips.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Transform {
    pub crop: Option<CropFrac>,
    pub hflip: bool,
    pub vflip: bool,
}

impl Transform {
    pub const IDENTITY: Transform = Transform {
        crop: None,
        hflip: false,
        vflip: false,
    };
    /// The same view, mirrored left-right.
    pub fn mirrored(self) -> Transform {
        Transform {
            hflip: true,
            ..self
        }
    }
}

/// Applies a view's transform to a decoded image (crop, then flips).
pub fn apply(img: &Rgb, t: &Transform) -> Rgb {
    let (w, h) = (img.width as usize, img.height as usize);
    let (x0, y0, cw, ch) = match t.crop {
        Some(c) => {
            let cw = ((c.w * w as f64).round() as usize).clamp(1, w);
            let ch = ((c.h * h as f64).round() as usize).clamp(1, h);
            let x0 = ((c.x * w as f64).round().max(0.0) as usize).min(w - cw);
            let y0 = ((c.y * h as f64).round().max(0.0) as usize).min(h - ch);
            (x0, y0, cw, ch)
        }
        None => (0, 0, w, h),
    };
    let mut px = Vec::with_capacity(cw * ch * 3);
    for r in 0..ch {
        let sy = if t.vflip { y0 + ch - 1 - r } else { y0 + r };
        for c in 0..cw {
            let sx = if t.hflip { x0 + cw - 1 - c } else { x0 + c };
            let at = (sy * w + sx) * 3;
            px.extend_from_slice(&img.pixels[at..at + 3]);
        }
    }
    Rgb {
        width: cw as u32,
        height: ch as u32,
        pixels: px,
    }
}

/// How a JPEG becomes pixels for a model input (issue 13). [`super::input::decode_view`] is the
/// one place that acts on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Decode {
    /// Always at full size, as Pillow/torchvision's preprocessing does (the default). Measured
    /// on the Xeon of 2026-12-07 (README): faster per core than [`Decode::Scaled`] (zune-jpeg's
    /// full decode vs jpeg-decoder's reduced IDCT, 1.2-1.3x) and closer to torchvision's
    /// features (tools/check_embed.py: 2.65e-2 vs 5.69e-2 largest deviation on resized images).
    #[default]
    Full,
    /// At the smallest DCT scale (1/8, 1/4, 1/2) that still leaves the view at least as large
    /// as the resize target in both axes ([`super::scaled`]), then resized: a 600x450 image is
    /// decoded at 300x225 for squash 224 (`--scaled-decode`). For machines where it measures
    /// faster; features move by up to ~3e-2 of their largest value (README).
    Scaled,
}

impl Decode {
    pub fn name(self) -> &'static str {
        match self {
            Decode::Scaled => "scaled",
            Decode::Full => "full",
        }
    }

    /// `--scaled-decode` -> Scaled, else the default (full).
    pub fn from_scaled_flag(scaled: bool) -> Decode {
        if scaled { Decode::Scaled } else { Decode::Full }
    }
}

/// Everything done to an image file before it becomes a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Preprocess {
    pub resize: ResizeMode,
    pub color_constancy: bool,
    /// A speed choice, not a property of a model: model files do not record it.
    pub decode: Decode,
}

/// A decoded image, always at full size (`pp.decode` is not used: random augmentation crops
/// need every pixel), with a view's transform and the colour constancy of `pp` applied (what is
/// left is resizing, or a training augmentation, and normalising).
pub fn view_rgb(path: &Path, t: &Transform, pp: &Preprocess) -> Result<Rgb> {
    let decoded = load_rgb(path)?;
    let mut img = if *t == Transform::IDENTITY {
        decoded
    } else {
        apply(&decoded, t)
    };
    if pp.color_constancy {
        shades_of_gray(&mut img, 6.0);
    }
    Ok(img)
}

/// The whole preprocessing of one file at full decode: decode, resize, normalise -> [3, 224,
/// 224]. What Pillow/torchvision do, so parity tests use it; the pipelines go through
/// [`super::input::view_tensor`], which follows [`Preprocess::decode`].
pub fn preprocess(path: &Path, mode: ResizeMode) -> Result<Tensor> {
    let img = resize(&load_rgb(path)?, mode, INPUT_SIZE)?;
    let s = INPUT_SIZE as usize;
    let mut out = vec![0.0f32; 3 * s * s];
    normalise_into(&img, &mut out);
    Tensor::new(&[3, s, s], out)
}
