//! Image file -> model input, for every path that feeds a network (train's feature pass and
//! fine-tuning's fixed views, embed, infer, and `serve`): the one place that decides between
//! full and DCT-scaled JPEG decoding ([`Decode`], issue 13), then the view's transform, colour
//! constancy, resize and normalisation of [`super::image`]. `inspect` does not come here: it
//! decodes at full size ([`super::image::load_rgb`]) to check integrity.

use super::image::{
    Decode, INPUT_SIZE, Preprocess, ResizeMode, Rgb, Transform, apply, decode_rgb, normalise_into,
    resize, shades_of_gray,
};
use super::scaled::decode_for_view;
use crate::error::{Result, file_err};
use crate::tensor::Tensor;
use std::path::Path;

/// Decodes `bytes` (the file at `path`) for view `t` of a `size` x `size` input preprocessed
/// by `pp`: at full size, or with [`Decode::Scaled`] at the smallest DCT scale that leaves the
/// view at least `size` in both axes after its crop (so the resize only shrinks). Both check
/// the whole file first: a truncated or corrupt image is an error naming the file either way.
/// The view's transform is not applied; the result's size says which scale was used.
pub fn decode_view(
    path: &Path,
    bytes: &[u8],
    t: &Transform,
    pp: &Preprocess,
    size: u32,
) -> Result<Rgb> {
    match pp.decode {
        Decode::Full => decode_rgb(path, bytes),
        Decode::Scaled => decode_for_view(path, bytes, t, pp.resize, size),
    }
}

/// The decoded pixels of view `t`: [`decode_view`], the view's transform, colour constancy.
pub fn view_pixels(path: &Path, t: &Transform, pp: &Preprocess, size: u32) -> Result<Rgb> {
    let bytes = std::fs::read(path).map_err(|e| file_err(path, format!("cannot open: {e}")))?;
    let decoded = decode_view(path, &bytes, t, pp, size)?;
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

/// View `t` of the file at `path` as a `size` x `size` model input: [`view_pixels`], resize,
/// normalise, written into `out` (3 * size * size values, planar).
pub fn view_into(
    path: &Path,
    t: &Transform,
    pp: &Preprocess,
    size: u32,
    out: &mut [f32],
) -> Result<()> {
    let img = resize(&view_pixels(path, t, pp, size)?, pp.resize, size)?;
    normalise_into(&img, out);
    Ok(())
}

/// [`view_into`] as a new [3, size, size] tensor.
pub fn view_tensor(path: &Path, t: &Transform, pp: &Preprocess, size: u32) -> Result<Tensor> {
    let s = size as usize;
    let mut out = vec![0.0f32; 3 * s * s];
    view_into(path, t, pp, size, &mut out)?;
    Tensor::new(&[3, s, s], out)
}

/// The whole image at 224x224 with resize `mode` and decoding `decode` (no view, no colour
/// constancy): [3, 224, 224].
pub fn image_tensor(path: &Path, mode: ResizeMode, decode: Decode) -> Result<Tensor> {
    let pp = Preprocess {
        resize: mode,
        color_constancy: false,
        decode,
    };
    view_tensor(path, &Transform::IDENTITY, &pp, INPUT_SIZE)
}
