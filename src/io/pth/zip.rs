//! A read-only zip reader for PyTorch checkpoints: the central directory (zip64 too), entries
//! stored or deflated (flate2, already in the tree through png), CRC-32 checked on every read
//! (unless the archive wrote none).
//!
//! Hand-written instead of the `zip` crate: with only its deflate feature, `zip` 9 adds eleven
//! crates (a zopfli compressor, zlib-rs, zeroize, nix, typed-path, indexmap, ...) for what is
//! here a few hundred lines of reading. Every offset and length read from the file is checked
//! against the file's size before use, so a damaged or hostile archive is an error, never a
//! panic or an out-of-bounds read.

use std::borrow::Cow;
use std::io::Read;

const EOCD_SIG: u32 = 0x0605_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const LOCAL_SIG: u32 = 0x0403_4b50;
/// At most this many entries (a ResNet50 checkpoint has ~330; a large LLM some thousands).
const MAX_ENTRIES: usize = 1 << 20;

/// One file in the archive.
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: String,
    method: u16,
    crc32: u32,
    compressed: u64,
    pub size: u64,
    local_offset: u64,
}

/// The archive's table of contents over the whole file's bytes.
pub struct Archive<'a> {
    bytes: &'a [u8],
    pub entries: Vec<Entry>,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// True when the bytes start like a zip archive (a local file header or an empty archive).
pub fn looks_like_zip(bytes: &[u8]) -> bool {
    matches!(u32_at(bytes, 0), Some(LOCAL_SIG | EOCD_SIG))
}

fn truncated(what: &str) -> String {
    format!("zip archive is truncated or corrupt ({what} lies outside the file)")
}

impl<'a> Archive<'a> {
    /// Parses the central directory. Errors are plain sentences; the caller adds the path.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, String> {
        // The end-of-central-directory record is 22 bytes plus a comment of up to 64 KiB.
        let min_start = bytes.len().saturating_sub(22 + 0xFFFF);
        let eocd = (min_start..=bytes.len().saturating_sub(22))
            .rev()
            .find(|&i| u32_at(bytes, i) == Some(EOCD_SIG))
            .ok_or_else(|| {
                "no zip end-of-central-directory record: the file is cut short, or not a zip \
                 archive"
                    .to_string()
            })?;
        let eocd_field = |off: usize| u16_at(bytes, eocd + off).ok_or_else(|| truncated("EOCD"));
        let eocd_field32 = |off: usize| u32_at(bytes, eocd + off).ok_or_else(|| truncated("EOCD"));
        let mut count = eocd_field(10)? as u64;
        let mut cd_size = eocd_field32(12)? as u64;
        let mut cd_offset = eocd_field32(16)? as u64;
        // Zip64: a locator 20 bytes before the EOCD points at the zip64 EOCD record.
        if eocd >= 20 && u32_at(bytes, eocd - 20) == Some(ZIP64_LOCATOR_SIG) {
            let rec = u64_at(bytes, eocd - 12).ok_or_else(|| truncated("zip64 locator"))?;
            let rec = usize::try_from(rec).map_err(|_| truncated("zip64 record"))?;
            if u32_at(bytes, rec) != Some(ZIP64_EOCD_SIG) {
                return Err(truncated("zip64 end-of-central-directory record"));
            }
            let f = |off: usize| u64_at(bytes, rec + off).ok_or_else(|| truncated("zip64 record"));
            count = f(32)?;
            cd_size = f(40)?;
            cd_offset = f(48)?;
        }
        let cd_start = usize::try_from(cd_offset).map_err(|_| truncated("central directory"))?;
        let cd_end = cd_offset
            .checked_add(cd_size)
            .and_then(|e| usize::try_from(e).ok())
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| truncated("central directory"))?;
        if count as usize > MAX_ENTRIES || count > cd_size / 46 + 1 {
            return Err(format!(
                "zip central directory claims {count} entries in {cd_size} bytes: corrupt"
            ));
        }
        let mut entries = Vec::with_capacity(count as usize);
        let mut at = cd_start;
        for _ in 0..count {
            let cd = &bytes[..cd_end];
            if u32_at(cd, at) != Some(CENTRAL_SIG) {
                return Err(truncated("a central directory entry"));
            }
            let g16 = |o: usize| u16_at(cd, at + o).ok_or_else(|| truncated("an entry"));
            let g32 = |o: usize| u32_at(cd, at + o).ok_or_else(|| truncated("an entry"));
            let flags = g16(8)?;
            let method = g16(10)?;
            let crc32 = g32(16)?;
            let mut compressed = g32(20)? as u64;
            let mut size = g32(24)? as u64;
            let name_len = g16(28)? as usize;
            let extra_len = g16(30)? as usize;
            let comment_len = g16(32)? as usize;
            let mut local_offset = g32(42)? as u64;
            let name_bytes = cd
                .get(at + 46..at + 46 + name_len)
                .ok_or_else(|| truncated("an entry name"))?;
            let name = String::from_utf8_lossy(name_bytes).into_owned();
            let extra = cd
                .get(at + 46 + name_len..at + 46 + name_len + extra_len)
                .ok_or_else(|| truncated("an entry's extra field"))?;
            // Zip64 extended information: the 64-bit values of the fields saturated above,
            // in this order.
            let mut e = 0;
            while e + 4 <= extra.len() {
                let id = u16_at(extra, e).unwrap_or(0);
                let len = u16_at(extra, e + 2).unwrap_or(0) as usize;
                let body = extra.get(e + 4..e + 4 + len).unwrap_or(&[]);
                if id == 0x0001 {
                    let mut p = 0;
                    for field in [&mut size, &mut compressed, &mut local_offset] {
                        if *field == 0xFFFF_FFFF {
                            *field = u64_at(body, p).ok_or_else(|| truncated("a zip64 field"))?;
                            p += 8;
                        }
                    }
                }
                e += 4 + len;
            }
            if flags & 1 != 0 {
                return Err(format!("zip entry '{name}' is encrypted"));
            }
            entries.push(Entry {
                name,
                method,
                crc32,
                compressed,
                size,
                local_offset,
            });
            at += 46 + name_len + extra_len + comment_len;
        }
        Ok(Archive { bytes, entries })
    }

    pub fn find(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// The entry's contents: a slice of the file when stored, decompressed when deflated
    /// (never more than `budget` bytes, which is reduced by what is allocated). The CRC-32 is
    /// checked either way.
    pub fn read(&self, e: &Entry, budget: &mut u64) -> Result<Cow<'a, [u8]>, String> {
        let name = &e.name;
        let lo = usize::try_from(e.local_offset).map_err(|_| truncated(name))?;
        if u32_at(self.bytes, lo) != Some(LOCAL_SIG) {
            return Err(format!(
                "zip entry '{name}': no local header where the directory says (corrupt archive)"
            ));
        }
        let name_len = u16_at(self.bytes, lo + 26).ok_or_else(|| truncated(name))? as usize;
        let extra_len = u16_at(self.bytes, lo + 28).ok_or_else(|| truncated(name))? as usize;
        let start = lo + 30 + name_len + extra_len;
        let raw = usize::try_from(e.compressed)
            .ok()
            .and_then(|n| self.bytes.get(start..start.checked_add(n)?))
            .ok_or_else(|| {
                format!(
                    "zip entry '{name}' is truncated: {} bytes expected at offset {start}, the \
                     file has {} bytes",
                    e.compressed,
                    self.bytes.len()
                )
            })?;
        let data: Cow<'a, [u8]> = match e.method {
            0 => {
                if e.compressed != e.size {
                    return Err(format!(
                        "zip entry '{name}': stored sizes disagree (corrupt)"
                    ));
                }
                Cow::Borrowed(raw)
            }
            8 => {
                if e.size > *budget {
                    return Err(format!(
                        "zip entry '{name}' would decompress to {} bytes, over the memory limit \
                         of {} bytes left for this file",
                        e.size, *budget
                    ));
                }
                let mut out = Vec::with_capacity(e.size as usize);
                flate2::read::DeflateDecoder::new(raw)
                    .take(e.size + 1)
                    .read_to_end(&mut out)
                    .map_err(|err| format!("zip entry '{name}': corrupt deflate data: {err}"))?;
                if out.len() as u64 != e.size {
                    return Err(format!(
                        "zip entry '{name}': decompressed to {} bytes, the directory says {}",
                        out.len(),
                        e.size
                    ));
                }
                *budget -= e.size;
                Cow::Owned(out)
            }
            m => {
                return Err(format!(
                    "zip entry '{name}' uses compression method {m}; only stored (0) and \
                     deflate (8) are supported"
                ));
            }
        };
        // torch.save writes 0 when CRC-32s are turned off (torch.serialization.set_crc32_options).
        if e.crc32 != 0 && crc32fast::hash(&data) != e.crc32 {
            return Err(format!(
                "zip entry '{name}' fails its CRC-32 check: the file is corrupt"
            ));
        }
        Ok(data)
    }
}
