//! DCT-domain downscaled JPEG decoding for the feature paths (issue 13): a JPEG is decoded at
//! 1/2, 1/4 or 1/8 scale with a reduced inverse DCT (`jpeg-decoder`'s `Decoder::scale`, the
//! same technique as libjpeg's `scale_denom` and Pillow's `draft`), then resized to the model
//! input. The scale is the smallest that keeps the decoded image at least as large as what the
//! resize needs in both axes, so the final resize only ever shrinks.
//!
//! Why `jpeg-decoder`: zune-jpeg (our full-size decoder, through `image`) has no scaled decode in
//! a release (zune-image issue #103); `jpeg-decoder` (MIT/Apache, image-rs organisation) has had
//! `scale` since 0.2 and was already in Cargo.lock. Its `rayon` feature is left off so one image
//! stays on one core: the batch is spread over cores one image per task instead.
//!
//! `inspect` and the integrity checks keep full decoding ([`super::image::load_rgb`]); here the
//! whole-file checks ([`super::image::check_bytes`]) run first too, so a truncated or corrupt
//! file is refused the same way whichever decoder then runs. Which decoder runs for a model
//! input is decided in one place, [`super::input::decode_view`].

use super::image::{CropFrac, ResizeMode, Rgb, Transform, check_bytes, decode_rgb};
use crate::error::{Result, file_err};
use std::path::Path;

/// The reduced-IDCT sizes jpeg-decoder implements: output = ceil(size * n / 8).
const IDCT_SIZES: [u32; 4] = [1, 2, 4, 8];

/// The scaled size of one axis at IDCT size `n` (of 8), as the decoder computes it.
pub fn scaled_len(len: u32, n: u32) -> u32 {
    (len * n).div_ceil(8)
}

/// The smallest IDCT size n (of 8: scale n/8) at which a `w` x `h` image is still at least
/// `need_w` x `need_h`; 8 (full size) when no reduction keeps both.
pub fn choose_idct(w: u32, h: u32, need_w: f64, need_h: f64) -> u32 {
    IDCT_SIZES
        .into_iter()
        .find(|&n| scaled_len(w, n) as f64 >= need_w && scaled_len(h, n) as f64 >= need_h)
        .unwrap_or(8)
}

/// The source size (in pixels of the decoded image) that the view's crop and the resize need to
/// only shrink: squash needs the kept region to be `size` in both axes; crop needs its short side
/// to be torchvision's Resize target (256 for 224).
pub fn needed_source(w: u32, h: u32, t: &Transform, mode: ResizeMode, size: u32) -> (f64, f64) {
    let c = t.crop.unwrap_or(CropFrac {
        x: 0.0,
        y: 0.0,
        w: 1.0,
        h: 1.0,
    });
    match mode {
        ResizeMode::Squash => (size as f64 / c.w, size as f64 / c.h),
        ResizeMode::Crop => {
            let target = ((size * 256 + 112) / 224) as f64;
            // The kept region's short side must reach `target`, whichever axis it is on.
            let (cw, ch) = (c.w * w as f64, c.h * h as f64);
            let k = target / cw.min(ch);
            (k * cw / c.w, k * ch / c.h)
        }
    }
}

/// Decodes `bytes` at the smallest DCT scale that is still at least `need_w` x `need_h`.
/// Checks exactly what [`decode_rgb`] checks first (format, whole file, size); PNGs, JPEGs that
/// need no reduction and colour types the scaled decoder does not give as RGB (CMYK, 16-bit)
/// are decoded at full size by [`decode_rgb`].
pub fn decode_rgb_scaled(path: &Path, bytes: &[u8], need_w: f64, need_h: f64) -> Result<Rgb> {
    let (w, h) = check_bytes(path, bytes)?;
    decode_checked(path, bytes, (w, h), choose_idct(w, h, need_w, need_h))
}

/// Decodes `bytes` (already through [`check_bytes`], which gave `w` x `h`) at IDCT size `n`.
fn decode_checked(path: &Path, bytes: &[u8], (w, h): (u32, u32), n: u32) -> Result<Rgb> {
    let is_jpeg = bytes.starts_with(&[0xFF, 0xD8]);
    // JPEG dimensions are 16-bit, so `w`, `h` fit the decoder's u16 request.
    if !is_jpeg || n == 8 || w > u16::MAX as u32 || h > u16::MAX as u32 {
        return decode_rgb(path, bytes);
    }
    let corrupt =
        |e: jpeg_decoder::Error| file_err(path, format!("cannot decode image (corrupt?): {e}"));
    let mut d = jpeg_decoder::Decoder::new(bytes);
    let (sw, sh) = d
        .scale(scaled_len(w, n) as u16, scaled_len(h, n) as u16)
        .map_err(corrupt)?;
    let format = d.info().map(|i| i.pixel_format);
    let (sw, sh) = (sw as u32, sh as u32);
    let plane = sw as usize * sh as usize;
    let pixels = match format {
        Some(jpeg_decoder::PixelFormat::RGB24) => d.decode().map_err(corrupt)?,
        Some(jpeg_decoder::PixelFormat::L8) => {
            let grey = d.decode().map_err(corrupt)?;
            grey.iter().flat_map(|&v| [v, v, v]).collect()
        }
        _ => return decode_rgb(path, bytes),
    };
    if pixels.len() != plane * 3 {
        return Err(file_err(
            path,
            "cannot decode image (corrupt?): short pixel data",
        ));
    }
    Ok(Rgb {
        width: sw,
        height: sh,
        pixels,
    })
}

/// Decodes `bytes` for view `t` resized by `mode` to `size` x `size`: at the smallest DCT scale
/// whose pixels the crop of `t` and the resize still only shrink ([`needed_source`]), after the
/// checks of [`check_bytes`]. The view's transform is not applied.
pub fn decode_for_view(
    path: &Path,
    bytes: &[u8],
    t: &Transform,
    mode: ResizeMode,
    size: u32,
) -> Result<Rgb> {
    let (w, h) = check_bytes(path, bytes)?;
    let (nw, nh) = needed_source(w, h, t, mode, size);
    decode_checked(path, bytes, (w, h), choose_idct(w, h, nw, nh))
}
