//! A Grad-CAM map made into pictures and files: normalised to [0, 1], upsampled bilinearly to
//! the original image, colour-mapped (jet) and alpha-blended over the original pixels, written
//! as PNG; the raw map as safetensors (`infer --heatmaps DIR [--heatmap-raw]`).

use std::collections::HashMap;
use std::path::Path;

use crate::data::image::{Preprocess, ResizeMode, Rgb, crop_window};
use crate::error::{Result, file_err};
use crate::io::atomic::write_atomic;
use crate::io::safetensors as st;
use crate::tensor::Tensor;

/// A class activation map at the resolution of the map it was computed on (7x7 for a ResNet at
/// 224x224): ReLU(sum_k alpha_k A_k), not normalised.
#[derive(Clone, Debug, PartialEq)]
pub struct Cam {
    pub height: usize,
    pub width: usize,
    /// Row-major, `height * width` values, all >= 0.
    pub data: Vec<f32>,
}

/// How much of the colour map covers the image: out = (1 - ALPHA) * pixel + ALPHA * colour.
pub const ALPHA: f32 = 0.5;

impl Cam {
    /// The largest value (0 for an all-zero map).
    pub fn max(&self) -> f32 {
        self.data.iter().fold(0.0f32, |m, &v| m.max(v))
    }

    /// The map divided by its maximum, so the hottest cell is 1 and a cell with no positive
    /// evidence 0 (the map is already >= 0 after the ReLU, so no minimum is subtracted: a map
    /// that is nearly flat keeps its contrast honest instead of being stretched). An all-zero map
    /// (no channel pushes the class up anywhere) stays all zero: no division, no NaN.
    pub fn normalised(&self) -> Vec<f32> {
        let m = self.max();
        if m > 0.0 {
            self.data.iter().map(|v| v / m).collect()
        } else {
            vec![0.0; self.data.len()]
        }
    }

    /// `values` (one per map cell) at a point of the map given in cell units, by bilinear
    /// interpolation between cell centres (`x = 0.5` is the first cell's centre); points beyond
    /// the outer centres take the edge value (PyTorch's `interpolate(mode="bilinear",
    /// align_corners=False)`, OpenCV's `resize`).
    fn sample(&self, values: &[f32], x: f64, y: f64) -> f32 {
        let (w, h) = (self.width, self.height);
        let fx = (x - 0.5).clamp(0.0, (w - 1) as f64);
        let fy = (y - 0.5).clamp(0.0, (h - 1) as f64);
        let (x0, y0) = (fx.floor() as usize, fy.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
        let (tx, ty) = ((fx - x0 as f64) as f32, (fy - y0 as f64) as f32);
        let at = |r: usize, c: usize| values[r * w + c];
        let top = at(y0, x0) * (1.0 - tx) + at(y0, x1) * tx;
        let bottom = at(y1, x0) * (1.0 - tx) + at(y1, x1) * tx;
        top * (1.0 - ty) + bottom * ty
    }

    /// The normalised map upsampled to an image of `width` x `height` whose region
    /// `(left, top, w, h)` (in pixels) is what the map covers; `None` outside that region.
    pub fn upsampled(
        &self,
        width: u32,
        height: u32,
        window: (f64, f64, f64, f64),
    ) -> Vec<Option<f32>> {
        let n = self.normalised();
        let (left, top, ww, wh) = window;
        let mut out = Vec::with_capacity(width as usize * height as usize);
        for r in 0..height {
            let y = r as f64 + 0.5 - top;
            for c in 0..width {
                let x = c as f64 + 0.5 - left;
                out.push((x >= 0.0 && y >= 0.0 && x <= ww && y <= wh).then(|| {
                    self.sample(&n, x / ww * self.width as f64, y / wh * self.height as f64)
                }));
            }
        }
        out
    }
}

/// The region of an original `width` x `height` image that the network saw (the map covers):
/// the whole image when squashed, torchvision's centre crop window when cropped
/// ([`crop_window`]). Flips and colour constancy do not move pixels.
pub fn seen_window(width: u32, height: u32, pp: &Preprocess, size: u32) -> (f64, f64, f64, f64) {
    match pp.resize {
        ResizeMode::Squash => (0.0, 0.0, width as f64, height as f64),
        ResizeMode::Crop => crop_window(width, height, size),
    }
}

/// The jet colour map (blue -> cyan -> yellow -> red) at `t` in [0, 1], the classic Grad-CAM
/// rendering: each channel a clamped tent, r peaking at 3/4, g at 1/2, b at 1/4.
pub fn jet(t: f32) -> [u8; 3] {
    let t = t.clamp(0.0, 1.0);
    let ch = |centre: f32| ((1.5 - (4.0 * t - centre).abs()).clamp(0.0, 1.0) * 255.0).round() as u8;
    [ch(3.0), ch(2.0), ch(1.0)]
}

/// `img` with the map's colours blended over the region the network saw (pixels outside it,
/// e.g. the margins a centre crop dropped, are left as they are).
pub fn overlay(img: &Rgb, cam: &Cam, window: (f64, f64, f64, f64)) -> Rgb {
    let heat = cam.upsampled(img.width, img.height, window);
    let mut px = img.pixels.clone();
    for (p, h) in px.chunks_exact_mut(3).zip(heat) {
        if let Some(h) = h {
            for (v, c) in p.iter_mut().zip(jet(h)) {
                *v = ((1.0 - ALPHA) * *v as f32 + ALPHA * c as f32).round() as u8;
            }
        }
    }
    Rgb {
        width: img.width,
        height: img.height,
        pixels: px,
    }
}

/// Writes `img` as an 8-bit RGB PNG (atomically).
pub fn write_png(path: &Path, img: &Rgb) -> Result<()> {
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(
            &img.pixels,
            img.width,
            img.height,
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| file_err(path, format!("cannot encode PNG: {e}")))?;
    write_atomic(path, &bytes)
}

use image::ImageEncoder as _;

/// Writes the raw map as safetensors: tensor `cam` [h, w] f32 (before normalisation), with
/// `metadata` (image id, class, ...).
pub fn write_raw(path: &Path, cam: &Cam, metadata: &HashMap<String, String>) -> Result<()> {
    let t = Tensor::new(&[cam.height, cam.width], cam.data.clone())?;
    st::write(path, &[("cam", &t)], metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalising_and_upsampling_keep_the_hot_cell_where_it_is() {
        let cam = Cam {
            height: 2,
            width: 2,
            data: vec![0.0, 4.0, 0.0, 0.0],
        };
        assert_eq!(cam.normalised(), vec![0.0, 1.0, 0.0, 0.0]);
        // 8x8 over a 2x2 map: the top-right quadrant is hot, the bottom-left cold; the exact
        // corner pixels take the corner cells' values (edge clamping).
        let up = cam.upsampled(8, 8, (0.0, 0.0, 8.0, 8.0));
        let at = |r: usize, c: usize| up[r * 8 + c].unwrap();
        assert_eq!(at(0, 7), 1.0);
        assert_eq!(at(7, 0), 0.0);
        assert!(at(1, 6) > at(6, 1));
        assert!(up.iter().all(|v| (0.0..=1.0).contains(&v.unwrap())));
        // Outside the seen window: no heat.
        let up = cam.upsampled(8, 4, (2.0, 0.0, 4.0, 4.0));
        assert!(up[0].is_none() && up[2].is_some() && up[7].is_none());
        // An all-zero map stays zero (no NaN from 0 / 0).
        let zero = Cam {
            data: vec![0.0; 4],
            ..cam
        };
        assert_eq!(zero.normalised(), vec![0.0; 4]);
        assert_eq!(jet(0.0), [0, 0, 128]);
        assert_eq!(jet(1.0), [128, 0, 0]);
        assert_eq!(jet(0.5), [128, 255, 128]);
    }
}
