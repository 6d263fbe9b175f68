//! Byte-level and text-level mutations shared by every target; the structure-aware ones live
//! with their targets.

use skinengine::Rng;

/// Values that break size and index arithmetic, as text.
pub const TOKENS: &[&str] = &[
    "",
    "0",
    "-0",
    "1",
    "-1",
    "0.5",
    "1.0",
    "2",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "1e308",
    "-1e308",
    "1e-320",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775807",
    "-9223372036854775808",
    "65535",
    "1000000000",
    "\"",
    "\"\"",
    ",",
    "\n",
    "\r\n",
    "\r",
    "\u{feff}",
    "\0",
    " ",
    "\t",
    "\u{fffd}",
    "\u{10ffff}",
    "é",
    "{",
    "}",
    "[",
    "]",
    "[]",
    "{}",
    "null",
    "true",
    "false",
    ":",
    "ISIC_0000000",
    "ISIC_0035068",
    "ISIC_0000000.jpg",
    "MEL",
    "NV",
    "BCC",
    "AKIEC",
    "BKL",
    "DF",
    "VASC",
    "mel",
    "nv",
    "bkl",
    "image",
    "image_id",
    "lesion_id",
    "dx",
    "train",
    "val",
    "score_weight",
    "validation_weight",
];

/// Interesting 32-bit values (as little- or big-endian bytes).
const INTS: &[u32] = &[
    0,
    1,
    2,
    7,
    8,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff,
    0x8000,
    0xffff,
    0x10000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
];

pub fn token(rng: &mut Rng) -> &'static str {
    TOKENS[rng.below(TOKENS.len())]
}

/// A long run of one character (a field or name far longer than any real one).
pub fn long_token(rng: &mut Rng) -> String {
    let c = ['A', '9', ',', '"', '\n', ' '][rng.below(6)];
    std::iter::repeat_n(c, 1 + rng.below(5000)).collect()
}

/// One byte-level mutation of `b`; `corpus` provides splice partners.
pub fn bytes(b: &[u8], corpus: &[Vec<u8>], rng: &mut Rng) -> Vec<u8> {
    let mut v = b.to_vec();
    let pos = |v: &Vec<u8>, rng: &mut Rng| rng.below(v.len() + 1);
    match rng.below(12) {
        0 if !v.is_empty() => {
            let i = rng.below(v.len());
            v[i] ^= 1 << rng.below(8);
        }
        1 if !v.is_empty() => {
            let i = rng.below(v.len());
            v[i] = [0, 0xff, 0x7f, 0x80, b'0', b',', b'"', b'\n'][rng.below(8)];
        }
        2 if !v.is_empty() => {
            let i = rng.below(v.len());
            v[i] = rng.next_u64() as u8;
        }
        3 => {
            // Insert random bytes.
            let i = pos(&v, rng);
            let n = 1 + rng.below(16);
            let ins: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            v.splice(i..i, ins);
        }
        4 if !v.is_empty() => {
            // Delete a range.
            let i = rng.below(v.len());
            let n = (1 + rng.below(64)).min(v.len() - i);
            v.drain(i..i + n);
        }
        5 => {
            // Truncate.
            let n = pos(&v, rng);
            v.truncate(n);
        }
        6 if !v.is_empty() => {
            // Duplicate a range in place.
            let i = rng.below(v.len());
            let n = (1 + rng.below(256)).min(v.len() - i);
            let chunk = v[i..i + n].to_vec();
            let at = pos(&v, rng);
            v.splice(at..at, chunk);
        }
        7 if v.len() >= 4 => {
            // An interesting 32-bit value over 4 bytes, either endianness.
            let i = rng.below(v.len() - 3);
            let x = INTS[rng.below(INTS.len())];
            let le = if rng.below(2) == 0 {
                x.to_le_bytes()
            } else {
                x.to_be_bytes()
            };
            v[i..i + 4].copy_from_slice(&le);
        }
        8 => {
            // Insert or overwrite with a text token.
            let i = pos(&v, rng);
            let t = token(rng).as_bytes();
            if rng.below(2) == 0 || i + t.len() > v.len() {
                v.splice(i..i, t.iter().copied());
            } else {
                v[i..i + t.len()].copy_from_slice(t);
            }
        }
        9 if !corpus.is_empty() => {
            // Splice: our head, another input's tail.
            let other = &corpus[rng.below(corpus.len())];
            let i = pos(&v, rng);
            let j = rng.below(other.len() + 1);
            v.truncate(i);
            v.extend_from_slice(&other[j..]);
        }
        10 if v.len() >= 2 => {
            // Swap two ranges' bytes.
            let n = 1 + rng.below(8.min(v.len() / 2));
            let i = rng.below(v.len() - n + 1);
            let j = rng.below(v.len() - n + 1);
            for k in 0..n {
                v.swap(i + k, j + k);
            }
        }
        _ => {
            // Decimal digits changed in place (sizes, offsets and counts written as text).
            let digits: Vec<usize> = (0..v.len()).filter(|&i| v[i].is_ascii_digit()).collect();
            if !digits.is_empty() {
                let i = digits[rng.below(digits.len())];
                v[i] = b'0' + rng.below(10) as u8;
            } else if !v.is_empty() {
                let i = rng.below(v.len());
                v[i] = v[i].wrapping_add(1);
            }
        }
    }
    v
}

/// Structure-aware CSV edits: on fields and rows (quoted fields are split naively, which is
/// one more way to damage a file).
pub fn csv(b: &[u8], rng: &mut Rng) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(b);
    let nl = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let mut rows: Vec<Vec<String>> = text
        .split(nl)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    if rows.is_empty() {
        return None;
    }
    let r = rng.below(rows.len());
    match rng.below(10) {
        0..=2 => {
            let c = rng.below(rows[r].len());
            rows[r][c] = if rng.below(8) == 0 {
                long_token(rng)
            } else {
                token(rng).to_string()
            };
        }
        3 => {
            // Another row's field (an id or label moved, duplicated).
            let (r2, c) = (rng.below(rows.len()), rng.below(rows[r].len()));
            let c2 = rng.below(rows[r2].len());
            rows[r][c] = rows[r2][c2].clone();
        }
        4 => {
            let row = rows[r].clone();
            let at = rng.below(rows.len() + 1);
            rows.insert(at, row);
        }
        5 if rows.len() > 1 => {
            rows.remove(r);
        }
        6 => {
            let c = rng.below(rows[r].len());
            rows[r].remove(c);
        }
        7 => {
            let c = rng.below(rows[r].len() + 1);
            rows[r].insert(c, token(rng).to_string());
        }
        8 => {
            // Swap two columns in every row (header included, or not).
            let w = rows[0].len();
            let (a, c) = (rng.below(w), rng.below(w));
            let from = rng.below(2);
            for row in rows.iter_mut().skip(from) {
                if a < row.len() && c < row.len() {
                    row.swap(a, c);
                }
            }
        }
        _ => {
            // A field quoted, maybe badly.
            let c = rng.below(rows[r].len());
            let f = &rows[r][c];
            rows[r][c] = match rng.below(3) {
                0 => format!("\"{f}\""),
                1 => format!("\"{f}"),
                _ => format!("\"{f}\"\"x\"\n"),
            };
        }
    }
    let out: Vec<String> = rows.iter().map(|r| r.join(",")).collect();
    Some(out.join(nl).into_bytes())
}
