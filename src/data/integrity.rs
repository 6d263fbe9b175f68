//! Is an image file whole? Decoders forgive a file cut short (an interrupted download or
//! unzip): the JPEG decoder fills the missing part with grey and reports nothing, so a broken
//! image would be trained on and classified. These checks walk the file's structure before it is
//! decoded and say "truncated" (or "corrupt") with where the file stops making sense.
//!
//! - JPEG: every marker segment from the start-of-image on, through each scan's entropy-coded
//!   data (where 0xFF is always followed by a stuffed 0x00 or a restart marker), up to the
//!   end-of-image marker. Bytes after the end-of-image marker (some cameras append data) are
//!   allowed.
//! - PNG: every chunk's length and CRC-32, up to the IEND chunk.

/// Why a file is not a whole image (the caller adds the file name).
pub type Problem = String;

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

/// Checks JPEG and PNG files; other formats are left to their decoders.
pub fn check(bytes: &[u8]) -> Result<(), Problem> {
    if bytes.starts_with(&[0xFF, 0xD8]) {
        jpeg(bytes)
    } else if bytes.starts_with(&PNG_SIGNATURE) {
        png(bytes)
    } else {
        Ok(())
    }
}

fn truncated(what: &str, len: usize) -> Problem {
    format!(
        "truncated {what}: the file ends at byte {len}, before its end (an interrupted download or copy?)"
    )
}

/// Walks a JPEG's markers from SOI to EOI.
fn jpeg(b: &[u8]) -> Result<(), Problem> {
    let cut = || truncated("JPEG", b.len());
    let mut i = 2;
    loop {
        if i >= b.len() {
            return Err(cut());
        }
        if b[i] != 0xFF {
            return Err(format!("corrupt JPEG: expected a marker at byte {i}"));
        }
        // Any number of 0xFF fill bytes may precede a marker.
        while i < b.len() && b[i] == 0xFF {
            i += 1;
        }
        let Some(&marker) = b.get(i) else {
            return Err(cut());
        };
        i += 1;
        match marker {
            0xD9 => return Ok(()),
            // Standalone markers: restart intervals and TEM carry no length.
            0x01 | 0xD0..=0xD7 => continue,
            0x00 => return Err(format!("corrupt JPEG: stray 0xFF00 at byte {}", i - 2)),
            _ => {}
        }
        let Some(len) = b
            .get(i..i + 2)
            .map(|l| u16::from_be_bytes([l[0], l[1]]) as usize)
        else {
            return Err(cut());
        };
        if len < 2 {
            return Err(format!(
                "corrupt JPEG: segment 0xFF{marker:02X} at byte {} has length {len}",
                i - 2
            ));
        }
        i += len;
        if i > b.len() {
            return Err(cut());
        }
        if marker == 0xDA {
            // Entropy-coded data runs to the next marker that is not a stuffed byte (0xFF00) or
            // a restart marker (0xFFD0-0xFFD7).
            loop {
                let Some(p) = memchr::memchr(0xFF, &b[i..]).map(|p| p + i) else {
                    return Err(cut());
                };
                match b.get(p + 1) {
                    None => return Err(cut()),
                    Some(0x00 | 0xD0..=0xD7) => i = p + 2,
                    Some(_) => {
                        i = p;
                        break;
                    }
                }
            }
        }
    }
}

/// Walks a PNG's chunks, checking each CRC, up to IEND.
fn png(b: &[u8]) -> Result<(), Problem> {
    let mut i = PNG_SIGNATURE.len();
    loop {
        let Some(head) = b.get(i..i + 8) else {
            return Err(truncated("PNG", b.len()));
        };
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let kind = &head[4..8];
        let name = String::from_utf8_lossy(kind).into_owned();
        let Some(end) = (i + 12).checked_add(len).filter(|&e| e <= b.len()) else {
            return Err(truncated("PNG", b.len()));
        };
        let data = &b[i + 8..i + 8 + len];
        let stored = u32::from_be_bytes([b[end - 4], b[end - 3], b[end - 2], b[end - 1]]);
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        if crc.finalize() != stored {
            return Err(format!(
                "corrupt PNG: chunk {name} at byte {i} fails its CRC check"
            ));
        }
        if kind == b"IEND" {
            return Ok(());
        }
        i = end;
    }
}

#[cfg(test)]
mod tests {
    use super::check;
    use std::io::Cursor;

    fn encoded(format: image::ImageFormat) -> Vec<u8> {
        let img = image::RgbImage::from_fn(64, 48, |x, y| {
            image::Rgb([(x * 4) as u8, (y * 5) as u8, ((x * y) % 251) as u8])
        });
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    #[test]
    fn whole_files_pass_and_every_cut_is_caught() {
        for format in [image::ImageFormat::Jpeg, image::ImageFormat::Png] {
            let bytes = encoded(format);
            check(&bytes).unwrap_or_else(|e| panic!("{format:?}: whole file refused: {e}"));
            // Every cut point from just after the signature to one byte short of the end
            // (shorter files are not recognised as JPEG / PNG at all: "not an image").
            let signature = if format == image::ImageFormat::Png {
                8
            } else {
                2
            };
            for cut in signature..bytes.len() {
                let e = check(&bytes[..cut]).expect_err(&format!(
                    "{format:?} cut at {cut} of {} passed",
                    bytes.len()
                ));
                assert!(e.contains("truncated"), "{format:?} cut at {cut}: {e}");
            }
        }
    }

    #[test]
    fn trailing_bytes_after_a_jpeg_are_allowed() {
        let mut bytes = encoded(image::ImageFormat::Jpeg);
        bytes.extend_from_slice(b"camera trailer \xFF\xDA\x00\x04xx");
        check(&bytes).unwrap();
    }

    #[test]
    fn a_flipped_png_byte_is_corrupt() {
        let bytes = encoded(image::ImageFormat::Png);
        // Flip one bit in the middle of the image data (inside IDAT).
        let mut bad = bytes.clone();
        let at = bytes.len() / 2;
        bad[at] ^= 0x10;
        let e = check(&bad).unwrap_err();
        assert!(e.contains("CRC"), "{e}");
    }
}
