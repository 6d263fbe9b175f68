//! The safetensors reader (`io::safetensors::read`, behind every weights, model, checkpoint and
//! feature-cache file) followed by the weights check `--weights` files get
//! (`Arch::detect` + `Arch::validate`), and the structure-aware header mutation every
//! safetensors-based target shares.

use super::{Target, mutate, scratch};
use safetensors::{Dtype, tensor::TensorView};
use serde_json::{Map, Value};
use skinengine::Rng;
use skinengine::Tensor;
use skinengine::io::safetensors as st;
use skinengine::model::arch::Arch;
use std::collections::HashMap;
use std::path::Path;
use tempfile::TempDir;

/// Header numbers that break size arithmetic: dims and offsets.
const NUMBERS: &[u64] = &[
    0,
    1,
    2,
    3,
    7,
    64,
    1 << 20,
    (1 << 31) - 1,
    1 << 31,
    1 << 32,
    1 << 40,
    (1 << 61) + 1,
    i64::MAX as u64,
    u64::MAX - 1,
    u64::MAX,
];

const DTYPES: &[&str] = &[
    "F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "U16", "U32", "U64", "BOOL",
    "F8_E4M3", "F8_E5M2", "F4", "X", "",
];

fn number(rng: &mut Rng) -> Value {
    match rng.below(5) {
        0 => Value::from(-1),
        1 => Value::from(rng.below(100)),
        2 => Value::from(1.5),
        _ => Value::from(NUMBERS[rng.below(NUMBERS.len())]),
    }
}

/// Splits a safetensors file into (header JSON, data) when its length prefix holds.
pub fn split_file(b: &[u8]) -> Option<(Map<String, Value>, &[u8])> {
    let n = u64::from_le_bytes(b.get(..8)?.try_into().ok()?) as usize;
    let header = b.get(8..8usize.checked_add(n)?)?;
    let v: Value = serde_json::from_slice(header).ok()?;
    Some((v.as_object()?.clone(), &b[8 + n..]))
}

/// A safetensors file from a header and data (the length prefix made to fit, or off by a
/// little when `skew` is not zero).
pub fn join_file(h: &Map<String, Value>, data: &[u8], skew: i64) -> Vec<u8> {
    let mut json = Value::Object(h.clone()).to_string().into_bytes();
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let n = (json.len() as i64 + skew).max(0) as u64;
    let mut out = n.to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    out.extend_from_slice(data);
    out
}

/// One edit of a safetensors header (tensor dtype, shape, offsets, entries; metadata values
/// from `values` or the generic tokens) or of its data (NaN / infinity / huge values).
pub fn mutate_header(b: &[u8], rng: &mut Rng, values: &[&str]) -> Option<Vec<u8>> {
    let (mut h, data) = split_file(b)?;
    let mut data = data.to_vec();
    let names: Vec<String> = h.keys().filter(|k| *k != "__metadata__").cloned().collect();
    let mut skew = 0;
    match rng.below(12) {
        0..=2 => {
            // A metadata value (or a new key, or a non-string value).
            let meta = h
                .entry("__metadata__")
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(m) = meta else { return None };
            let keys: Vec<String> = m.keys().cloned().collect();
            let key = if keys.is_empty() || rng.below(8) == 0 {
                mutate::token(rng).to_string()
            } else {
                keys[rng.below(keys.len())].clone()
            };
            match rng.below(10) {
                0 => {
                    m.remove(&key);
                }
                1 => {
                    m.insert(key, number(rng));
                }
                2 | 3 => {
                    m.insert(key, Value::from(mutate::token(rng)));
                }
                4 => {
                    m.insert(key, Value::from(mutate::long_token(rng)));
                }
                _ if !values.is_empty() => {
                    m.insert(key, Value::from(values[rng.below(values.len())]));
                }
                _ => {
                    m.insert(key, Value::from(mutate::token(rng)));
                }
            }
        }
        3 if !names.is_empty() => {
            let t = h.get_mut(&names[rng.below(names.len())])?.as_object_mut()?;
            t.insert("dtype".into(), Value::from(DTYPES[rng.below(DTYPES.len())]));
        }
        4 | 5 if !names.is_empty() => {
            let t = h.get_mut(&names[rng.below(names.len())])?.as_object_mut()?;
            let mut shape: Vec<Value> = t.get("shape")?.as_array()?.clone();
            match rng.below(5) {
                0 if !shape.is_empty() => {
                    let i = rng.below(shape.len());
                    shape[i] = number(rng);
                }
                1 => shape.push(number(rng)),
                2 if !shape.is_empty() => {
                    shape.pop();
                }
                3 => shape.clear(),
                _ => shape.reverse(),
            }
            t.insert("shape".into(), Value::Array(shape));
        }
        6 | 7 if !names.is_empty() => {
            let t = h.get_mut(&names[rng.below(names.len())])?.as_object_mut()?;
            let mut off: Vec<Value> = t.get("data_offsets")?.as_array()?.clone();
            match rng.below(4) {
                0 if off.len() == 2 => off.swap(0, 1),
                1 => off.push(number(rng)),
                _ if !off.is_empty() => {
                    let i = rng.below(off.len());
                    off[i] = number(rng);
                }
                _ => {}
            }
            t.insert("data_offsets".into(), Value::Array(off));
        }
        8 if !names.is_empty() => {
            // Remove a tensor, or give one another's name (a duplicate key is overwritten by
            // the JSON parser: the file then has bytes no tensor covers).
            let a = &names[rng.below(names.len())];
            let v = h.remove(a)?;
            if rng.below(2) == 0 {
                let b = &names[rng.below(names.len())];
                h.insert(b.clone(), v);
            }
        }
        9 if !names.is_empty() => {
            // A tensor under another name (the name from the token list or long).
            let a = &names[rng.below(names.len())];
            let v = h.remove(a)?;
            let new = if rng.below(4) == 0 {
                mutate::long_token(rng)
            } else {
                format!("{a}{}", mutate::token(rng))
            };
            h.insert(new, v);
        }
        10 if data.len() >= 4 => {
            let i = rng.below(data.len() / 4) * 4;
            let v = [
                f32::NAN,
                f32::INFINITY,
                f32::NEG_INFINITY,
                f32::MAX,
                -1.0,
                0.0,
            ][rng.below(6)];
            data[i..i + 4].copy_from_slice(&v.to_le_bytes());
        }
        _ => {
            // The length prefix off by a little.
            skew = [-8i64, -1, 1, 8, 1 << 20][rng.below(5)];
        }
    }
    Some(join_file(&h, &data, skew))
}

/// A safetensors file of `dtype` tensors (raw little-endian bytes) and metadata, written by the
/// `safetensors` crate (our writer only writes F32).
pub fn raw_file(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)], meta: &[(&str, &str)]) -> Vec<u8> {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.to_string(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    let meta: HashMap<String, String> = meta
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    safetensors::serialize(views, (!meta.is_empty()).then_some(meta)).unwrap()
}

/// Bytes of a file our own writer writes.
pub fn written(dir: &Path, tensors: &[(&str, &Tensor)], meta: &[(&str, &str)]) -> Vec<u8> {
    let p = dir.join("seed.safetensors");
    let meta: HashMap<String, String> = meta
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    st::write(&p, tensors, &meta).unwrap();
    std::fs::read(&p).unwrap()
}

pub fn ramp(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::new(shape, (0..n).map(|i| (i as f32 * 0.37).sin()).collect()).unwrap()
}

pub struct Safetensors {
    dir: TempDir,
}

impl Safetensors {
    pub fn new() -> Self {
        Safetensors {
            dir: scratch("safetensors"),
        }
    }
}

impl Target for Safetensors {
    fn name(&self) -> &'static str {
        "safetensors"
    }
    fn seeds(&mut self) -> Vec<Vec<u8>> {
        let (a, b, c, e) = (ramp(&[3, 4]), ramp(&[5]), ramp(&[]), ramp(&[0, 3]));
        // The start of a ResNet18 state dict, so the architecture check has something to find.
        let conv1 = ramp(&[64, 3, 7, 7]);
        let bn = ramp(&[64]);
        let halfs: Vec<u8> = (0..12u16).flat_map(|i| (i * 1000).to_le_bytes()).collect();
        vec![
            written(
                self.dir.path(),
                &[("a", &a), ("b", &b), ("scalar", &c), ("empty", &e)],
                &[("format", "pt"), ("note", "seed")],
            ),
            written(self.dir.path(), &[], &[]),
            written(
                self.dir.path(),
                &[
                    ("conv1.weight", &conv1),
                    ("bn1.weight", &bn),
                    ("bn1.bias", &bn),
                    ("bn1.running_mean", &bn),
                    ("bn1.running_var", &bn),
                ],
                &[],
            ),
            raw_file(
                &[
                    ("h", Dtype::F16, vec![3, 4], halfs.clone()),
                    ("bh", Dtype::BF16, vec![2, 6], halfs.clone()),
                    ("i", Dtype::I64, vec![3], vec![1; 24]),
                    ("u", Dtype::U8, vec![2, 2], vec![7; 4]),
                ],
                &[("format", "pt")],
            ),
        ]
    }
    fn mutate(&self, input: &[u8], rng: &mut Rng) -> Option<Vec<u8>> {
        mutate_header(input, rng, &[])
    }
    fn exec(&mut self, input: &[u8]) -> Result<(), String> {
        let p = self.dir.path().join("w.safetensors");
        std::fs::write(&p, input).unwrap();
        // Integer tensors are refused by dtype unless filtered out, as `--weights` filters
        // num_batches_tracked; read both ways.
        if let Err(e) = st::read(&p) {
            let e = e.to_string();
            if !self.names_file(&e) {
                return Err(e);
            }
        }
        let f = st::read_filtered(&p, |n| n != "i" && n != "u").map_err(|e| e.to_string())?;
        // The weights check (every missing, unexpected, mis-shaped, non-finite tensor) on
        // whatever was read: its message must name the file too.
        let arch = Arch::detect(&f.tensors).unwrap_or(Arch::ResNet18);
        if let Err(e) = arch.validate(&p, &f.tensors) {
            let e = e.to_string();
            if !self.names_file(&e) {
                return Err(e);
            }
        }
        Ok(())
    }
    fn names(&self) -> &Path {
        self.dir.path()
    }
}
