//! Image decoding through the public entry point every command uses (`data::image::decode_rgb`,
//! which `load_rgb` calls on a file's bytes): format sniffing, the truncation / corruption
//! checks of `data::integrity`, the size limit and the decoders. Seeds are small images of every
//! colour type we accept, encoded by the `image` crate, and the CMYK JPEG fixture. PNG
//! mutations fix every chunk's CRC afterwards (else the integrity check stops nearly all of
//! them before the decoder); JPEG mutations edit segment fields (frame size, component count,
//! lengths, tables).

use super::{Target, mutate, scratch};
use image::{DynamicImage, ImageBuffer, ImageFormat};
use skinengine::Rng;
use skinengine::data::image::decode_rgb;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

const W: u32 = 16;
const H: u32 = 12;

fn encode(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn seeds() -> Vec<Vec<u8>> {
    let v8 = |x: u32, y: u32, c: u32| ((x * 13 + y * 7 + c * 50) % 256) as u8;
    let v16 = |x: u32, y: u32, c: u32| ((x * 3001 + y * 977 + c * 20000) % 65536) as u16;
    let rgb8 = ImageBuffer::from_fn(W, H, |x, y| {
        image::Rgb([v8(x, y, 0), v8(x, y, 1), v8(x, y, 2)])
    });
    let rgba8 = ImageBuffer::from_fn(W, H, |x, y| {
        image::Rgba([v8(x, y, 0), v8(x, y, 1), v8(x, y, 2), v8(x, y, 3)])
    });
    let l8 = ImageBuffer::from_fn(W, H, |x, y| image::Luma([v8(x, y, 0)]));
    let la8 = ImageBuffer::from_fn(W, H, |x, y| image::LumaA([v8(x, y, 0), v8(x, y, 1)]));
    let rgb16 = ImageBuffer::from_fn(W, H, |x, y| {
        image::Rgb([v16(x, y, 0), v16(x, y, 1), v16(x, y, 2)])
    });
    let l16 = ImageBuffer::from_fn(W, H, |x, y| image::Luma([v16(x, y, 0)]));
    let cmyk = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cmyk.jpg"))
        .expect("tests/fixtures/cmyk.jpg");
    vec![
        encode(DynamicImage::ImageRgb8(rgb8.clone()), ImageFormat::Jpeg),
        encode(DynamicImage::ImageLuma8(l8.clone()), ImageFormat::Jpeg),
        cmyk,
        encode(DynamicImage::ImageRgb8(rgb8), ImageFormat::Png),
        encode(DynamicImage::ImageRgba8(rgba8), ImageFormat::Png),
        encode(DynamicImage::ImageLuma8(l8), ImageFormat::Png),
        encode(DynamicImage::ImageLumaA8(la8), ImageFormat::Png),
        encode(DynamicImage::ImageRgb16(rgb16), ImageFormat::Png),
        encode(DynamicImage::ImageLuma16(l16), ImageFormat::Png),
    ]
}

const PNG_SIG: usize = 8;

/// (start, data length) of every PNG chunk that fits in the file.
fn png_chunks(b: &[u8]) -> Vec<(usize, usize)> {
    let mut v = Vec::new();
    let mut i = PNG_SIG;
    while let Some(h) = b.get(i..i + 8) {
        let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
        if i + 12 + len > b.len() {
            break;
        }
        v.push((i, len));
        i += 12 + len;
    }
    v
}

fn fix_png_crcs(b: &mut [u8]) {
    for (i, len) in png_chunks(b) {
        let crc = crc32fast::hash(&b[i + 4..i + 8 + len]);
        b[i + 8 + len..i + 12 + len].copy_from_slice(&crc.to_be_bytes());
    }
}

fn mutate_png(b: &[u8], rng: &mut Rng) -> Option<Vec<u8>> {
    let chunks = png_chunks(b);
    if chunks.is_empty() {
        return None;
    }
    let mut v = b.to_vec();
    let (i, len) = chunks[rng.below(chunks.len())];
    match rng.below(6) {
        0 => {
            // IHDR fields: width, height, bit depth, colour type, interlace.
            let (s, _) = chunks[0];
            let d = s + 8;
            if v.len() < d + 13 {
                return None;
            }
            match rng.below(5) {
                0 | 1 => {
                    let at = d + 4 * rng.below(2);
                    let x =
                        [0u32, 1, 0xffff, 8000, 1 << 16, 0x7fff_ffff, 0xffff_ffff][rng.below(7)];
                    v[at..at + 4].copy_from_slice(&x.to_be_bytes());
                }
                2 => v[d + 8] = [1, 2, 4, 8, 16, 3, 0][rng.below(7)],
                3 => v[d + 9] = [0, 2, 3, 4, 6, 1, 7][rng.below(7)],
                _ => v[d + 12] = rng.below(3) as u8,
            }
        }
        1 | 2 if len > 0 => {
            // Bytes inside one chunk's data (the zlib stream of IDAT, palette entries, ...).
            let at = i + 8 + rng.below(len);
            v[at] = match rng.below(3) {
                0 => v[at] ^ (1 << rng.below(8)),
                1 => rng.next_u64() as u8,
                _ => [0, 0xff, 0x80][rng.below(3)],
            };
        }
        3 => {
            // Drop a chunk.
            v.drain(i..i + 12 + len);
        }
        4 => {
            // Repeat a chunk.
            let c = v[i..i + 12 + len].to_vec();
            v.splice(i..i, c);
        }
        _ => {
            // A chunk's length field.
            let x = [
                0u32,
                1,
                (len as u32).wrapping_add(1),
                len.saturating_sub(1) as u32,
                0x7fff_ffff,
            ][rng.below(5)];
            v[i..i + 4].copy_from_slice(&x.to_be_bytes());
        }
    }
    if rng.below(8) != 0 {
        fix_png_crcs(&mut v);
    }
    Some(v)
}

/// (marker position, segment length) of every JPEG segment before the first scan's data.
fn jpeg_segments(b: &[u8]) -> Vec<(usize, usize)> {
    let mut v = Vec::new();
    let mut i = 2;
    while i + 4 <= b.len() && b[i] == 0xFF {
        let marker = b[i + 1];
        let len = u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize;
        v.push((i, len));
        if marker == 0xDA || len < 2 {
            break;
        }
        i += 2 + len;
    }
    v
}

fn mutate_jpeg(b: &[u8], rng: &mut Rng) -> Option<Vec<u8>> {
    let segs = jpeg_segments(b);
    if segs.is_empty() {
        return None;
    }
    let mut v = b.to_vec();
    // Frame header (SOF0..SOF15 but DHT/JPG/DAC): precision, height, width, components.
    let sof = segs
        .iter()
        .find(|(i, _)| matches!(v[i + 1], 0xC0..=0xCF) && ![0xC4, 0xC8, 0xCC].contains(&v[i + 1]));
    match (rng.below(4), sof) {
        (0, Some(&(i, len))) if len >= 8 && i + 10 <= v.len() => match rng.below(4) {
            0 | 1 => {
                let at = i + 5 + 2 * rng.below(2);
                let x = [0u16, 1, 2, 8000, 0xffff, 0x7fff][rng.below(6)];
                v[at..at + 2].copy_from_slice(&x.to_be_bytes());
            }
            2 => v[i + 4] = [8, 12, 16, 0, 1][rng.below(5)],
            _ => v[i + 9] = [0, 1, 2, 3, 4, 5, 255][rng.below(7)],
        },
        (1, _) => {
            // A segment's length.
            let (i, len) = segs[rng.below(segs.len())];
            let x = [
                0u16,
                1,
                2,
                (len as u16).wrapping_add(1),
                len.saturating_sub(1) as u16,
                0xffff,
            ][rng.below(6)];
            v[i + 2..i + 4].copy_from_slice(&x.to_be_bytes());
        }
        (2, _) => {
            // A marker byte (SOF2 progressive, SOF3 lossless, an unknown APPn, EOI early...).
            let (i, _) = segs[rng.below(segs.len())];
            v[i + 1] = [
                0xC0, 0xC1, 0xC2, 0xC3, 0xC4, 0xDB, 0xDD, 0xDA, 0xD9, 0xE1, 0xEE, 0xFE, 0x01,
            ][rng.below(13)];
        }
        _ => {
            // A byte inside a segment's payload (tables, frame and scan headers).
            let (i, len) = segs[rng.below(segs.len())];
            if len > 2 && i + 2 + len <= v.len() {
                let at = i + 4 + rng.below(len - 2);
                v[at] = match rng.below(3) {
                    0 => v[at] ^ (1 << rng.below(8)),
                    1 => rng.next_u64() as u8,
                    _ => [0, 0xff, 0x10, 0x11][rng.below(4)],
                };
            }
        }
    }
    Some(v)
}

pub struct Image {
    dir: TempDir,
    path: PathBuf,
}

impl Image {
    pub fn new() -> Self {
        let dir = scratch("image");
        let path = dir.path().join("ISIC_0000000.jpg");
        Image { dir, path }
    }
}

impl Target for Image {
    fn name(&self) -> &'static str {
        "image"
    }
    fn seeds(&mut self) -> Vec<Vec<u8>> {
        seeds()
    }
    fn mutate(&self, input: &[u8], rng: &mut Rng) -> Option<Vec<u8>> {
        if input.starts_with(&[0x89, b'P', b'N', b'G']) {
            mutate_png(input, rng)
        } else if input.starts_with(&[0xFF, 0xD8]) {
            mutate_jpeg(input, rng)
        } else {
            Some(mutate::bytes(input, &[], rng))
        }
    }
    fn exec(&mut self, input: &[u8]) -> Result<(), String> {
        // The bytes as `load_rgb` passes them on after reading the file.
        decode_rgb(&self.path, input)
            .map(drop)
            .map_err(|e| e.to_string())
    }
    fn names(&self) -> &Path {
        self.dir.path()
    }
    /// Decoding a 64-megapixel image (the limit, which a 100-byte file can claim) is legal and
    /// takes a few seconds; more is not.
    fn time_limit(&self) -> std::time::Duration {
        std::time::Duration::from_secs(10)
    }
    /// A 64-megapixel image (the limit) of 16-bit RGBA takes 512 MB decoded, plus its 8-bit
    /// RGB copy: legal. Past 1.5 GB something allocates more than the image it decodes.
    fn alloc_cap(&self) -> usize {
        3 << 29
    }
}
