//! The PyTorch checkpoint reader (`io::pth::parse_pth`, behind `convert`): zip directory,
//! entries (stored and deflated), the pickle VM and the tensors it describes. Seeds are the
//! checkpoints torch wrote (tests/fixtures/pth). Structure-aware mutations change bytes inside
//! one stored entry (data.pkl's opcodes and arguments, storages, byteorder) and then fix that
//! entry's CRC-32 in its local header and the central directory, so the pickle VM sees the
//! change instead of the CRC check refusing it.
//!
//! tests/convert_pth.rs keeps its own small mutation test (3 files x 3000 random byte
//! changes); this target is the long run and goes further (CRCs fixed, pickle opcodes).

use super::{Target, mutate, scratch};
use skinengine::Rng;
use skinengine::io::pth::{PthLimits, parse_pth};
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// Pickle opcodes (protocol 2) and the bytes that follow them most often.
const OPCODES: &[u8] =
    b"(.0123FGIJKLMNPQRSTUVXabcdeghijlopqrstu}])\x80\x81\x85\x86\x87\x88\x89\x8a\x8b\x8c\x94\x95";

/// (local header offset, data offset, data length, name) of every stored entry.
fn stored_entries(b: &[u8]) -> Vec<(usize, usize, usize, String)> {
    let mut v = Vec::new();
    let mut i = 0;
    while i + 30 <= b.len() && b[i..i + 4] == [0x50, 0x4b, 0x03, 0x04] {
        let u16at = |o: usize| u16::from_le_bytes([b[i + o], b[i + o + 1]]) as usize;
        let u32at = |o: usize| {
            u32::from_le_bytes([b[i + o], b[i + o + 1], b[i + o + 2], b[i + o + 3]]) as usize
        };
        let (method, size, n, e) = (u16at(8), u32at(18), u16at(26), u16at(28));
        let data = i + 30 + n + e;
        if data + size > b.len() || b.get(i + 30..i + 30 + n).is_none() {
            break;
        }
        let name = String::from_utf8_lossy(&b[i + 30..i + 30 + n]).into_owned();
        if method == 0 {
            v.push((i, data, size, name));
        }
        i = data + size;
    }
    v
}

/// Writes the CRC-32 of the entry at local header `local` into it and into its central
/// directory record.
fn fix_crc(b: &mut [u8], local: usize, data: usize, len: usize) {
    let crc = crc32fast::hash(&b[data..data + len]).to_le_bytes();
    b[local + 14..local + 18].copy_from_slice(&crc);
    let sig = [0x50, 0x4b, 0x01, 0x02];
    let mut j = 0;
    while j + 46 <= b.len() {
        if b[j..j + 4] == sig
            && u32::from_le_bytes([b[j + 42], b[j + 43], b[j + 44], b[j + 45]]) as usize == local
        {
            b[j + 16..j + 20].copy_from_slice(&crc);
            return;
        }
        j += 1;
    }
}

pub struct Pth {
    dir: TempDir,
    path: PathBuf,
}

impl Pth {
    pub fn new() -> Self {
        let dir = scratch("pth");
        let path = dir.path().join("weights.pth");
        Pth { dir, path }
    }
}

impl Target for Pth {
    fn name(&self) -> &'static str {
        "pth"
    }
    fn seeds(&mut self) -> Vec<Vec<u8>> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pth");
        [
            "small.pth",
            "nested.pth",
            "deflate.pth",
            "big_endian.pth",
            "model_key.pth",
        ]
        .iter()
        .map(|n| std::fs::read(dir.join(n)).expect("pth fixture"))
        .collect()
    }
    fn mutate(&self, input: &[u8], rng: &mut Rng) -> Option<Vec<u8>> {
        let entries = stored_entries(input);
        if entries.is_empty() {
            return None;
        }
        // data.pkl half of the time: that is where the structure is.
        let pkl: Vec<&(usize, usize, usize, String)> = entries
            .iter()
            .filter(|e| e.3.ends_with("data.pkl"))
            .collect();
        let &(local, data, len, _) = if !pkl.is_empty() && rng.below(2) == 0 {
            pkl[rng.below(pkl.len())]
        } else {
            &entries[rng.below(entries.len())]
        };
        if len == 0 {
            return None;
        }
        let mut v = input.to_vec();
        for _ in 0..1 + rng.below(3) {
            let at = data + rng.below(len);
            v[at] = match rng.below(4) {
                0 => OPCODES[rng.below(OPCODES.len())],
                1 => v[at] ^ (1 << rng.below(8)),
                2 => [0, 0xff, 0x7f, 0x80, 1, 2][rng.below(6)],
                _ => mutate::token(rng).bytes().next().unwrap_or(0),
            };
        }
        fix_crc(&mut v, local, data, len);
        Some(v)
    }
    fn exec(&mut self, input: &[u8]) -> Result<(), String> {
        parse_pth(&self.path, input, &PthLimits::default())
            .map(drop)
            .map_err(|e| e.to_string())
    }
    fn names(&self) -> &Path {
        self.dir.path()
    }
}
