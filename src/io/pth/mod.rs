//! PyTorch checkpoints (`torch.save`, since PyTorch 1.6: a zip archive) read without executing
//! any code: [`zip`] finds the entries, [`pickle`] rebuilds `data.pkl` with an allow-list of
//! names instead of Python's imports, and this module turns the tensors it describes (strided
//! views into `data/<key>` storages) into dense f32 tensors.
//!
//! Layout of such an archive: `<name>/data.pkl` (pickle, protocol 2), `<name>/data/<key>` (raw
//! storage bytes, little-endian unless `<name>/byteorder` says `big`), `<name>/version`.
//! Accepted: a bare state dict, or one under `state_dict` / `model` (timm and training
//! checkpoints); `module.` prefixes (DataParallel) are stripped; `num_batches_tracked` and other
//! integer tensors and non-tensor entries are skipped with a note.

pub mod pickle;
pub mod zip;

use crate::error::{Result, file_err};
use crate::tensor::Tensor;
use pickle::{DType, Obj, Pickle, TensorRef};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The float tensors of a checkpoint as f32, and what was left out or changed.
#[derive(Debug, Default)]
pub struct PthFile {
    pub tensors: BTreeMap<String, Tensor>,
    /// One line per thing skipped or changed (non-tensor entries, integer tensors, ...).
    pub notes: Vec<String>,
    /// The top-level key holding the state dict (`state_dict`, `model`), or `None` when the
    /// file is a bare state dict.
    pub state_dict_key: Option<String>,
    /// How many names lost a `module.` prefix.
    pub stripped_prefixes: usize,
    /// `num_batches_tracked` entries dropped.
    pub dropped_num_batches_tracked: usize,
    /// Converted tensors by their dtype in the file (float32, float16, ...).
    pub source_dtypes: BTreeMap<&'static str, usize>,
}

/// Caps that keep a damaged or hostile file from exhausting memory.
#[derive(Clone, Copy, Debug)]
pub struct PthLimits {
    pub pickle: pickle::Limits,
    /// Largest data.pkl read (decompressed).
    pub max_pickle_bytes: u64,
    /// Bytes that may be allocated for decompressed entries and f32 output together; `None`:
    /// 1 GiB or 8 times the file's size, whichever is larger (a state dict converted to f32
    /// takes at most 4 times its storages' bytes, unless tensors overlap).
    pub alloc_bytes: Option<u64>,
}

impl Default for PthLimits {
    fn default() -> Self {
        PthLimits {
            pickle: pickle::Limits::default(),
            max_pickle_bytes: 256 << 20,
            alloc_bytes: None,
        }
    }
}

/// Keys under which checkpoints nest the state dict, in the order they are tried.
pub const STATE_DICT_KEYS: [&str; 2] = ["state_dict", "model"];

/// Reads the floating-point tensors of a `torch.save` checkpoint as f32.
pub fn read_pth(path: &Path) -> Result<PthFile> {
    read_pth_with(path, &PthLimits::default())
}

/// The first 14 bytes of a legacy (pre-1.6, non-zip) `torch.save` file: PROTO 2, then the
/// LONG1 magic number 0x1950a86a20f9469cfc6c.
const LEGACY_MAGIC: [u8; 14] = [
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19,
];

const RESAVE: &str = "in Python you trust, load it and save it again with \
     torch.save(torch.load(old, weights_only=True), new, _use_new_zipfile_serialization=True)";

/// Why bytes that are no zip archive are no checkpoint this reader takes.
fn not_zip_reason(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "empty file, not a PyTorch checkpoint".into();
    }
    if bytes.starts_with(&LEGACY_MAGIC) {
        return format!(
            "legacy PyTorch checkpoint (written by torch < 1.6 or with \
             _use_new_zipfile_serialization=False); only the zip format of torch.save since 1.6 \
             is read: {RESAVE}"
        );
    }
    if bytes[0] == 0x80 {
        return format!(
            "a bare pickle, not a torch.save zip archive (the only PyTorch format read); \
             {RESAVE}"
        );
    }
    if bytes.len() >= 9 && bytes[8] == b'{' {
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap_or_default());
        if n > 0 && n < bytes.len() as u64 {
            return "this is already a safetensors file; use it as it is".into();
        }
    }
    "not a PyTorch checkpoint: not a zip archive (torch.save since PyTorch 1.6 writes zip \
     archives)"
        .into()
}

/// Reads with explicit limits (tests use small ones).
pub fn read_pth_with(path: &Path, limits: &PthLimits) -> Result<PthFile> {
    let bytes = std::fs::read(path).map_err(|e| file_err(path, format!("cannot read: {e}")))?;
    parse_pth(path, &bytes, limits)
}

/// Reads a checkpoint held in memory; `path` only names it in errors.
pub fn parse_pth(path: &Path, bytes: &[u8], limits: &PthLimits) -> Result<PthFile> {
    if !zip::looks_like_zip(bytes) {
        return Err(file_err(path, not_zip_reason(bytes)));
    }
    let archive = zip::Archive::parse(bytes).map_err(|e| {
        file_err(
            path,
            format!("truncated or corrupt PyTorch checkpoint (zip archive): {e}"),
        )
    })?;
    let mut budget = limits
        .alloc_bytes
        .unwrap_or_else(|| (bytes.len() as u64).saturating_mul(8).max(1 << 30));

    let prefix = find_prefix(path, &archive)?;
    let entry = |name: &str| archive.find(&format!("{prefix}/{name}"));
    let big_endian = match entry("byteorder") {
        None => false,
        Some(e) => {
            let b = archive
                .read(e, &mut budget)
                .map_err(|e| file_err(path, e))?;
            match b.as_ref() {
                b"little" => false,
                b"big" => true,
                other => {
                    return Err(file_err(
                        path,
                        format!(
                            "unknown byte order {:?} in {prefix}/byteorder",
                            String::from_utf8_lossy(&other[..other.len().min(32)])
                        ),
                    ));
                }
            }
        }
    };
    let pkl_entry = entry("data.pkl").ok_or_else(|| file_err(path, "no data.pkl"))?;
    if pkl_entry.size > limits.max_pickle_bytes {
        return Err(file_err(
            path,
            format!(
                "{prefix}/data.pkl is {} bytes, over the limit of {} for a state dict's pickle",
                pkl_entry.size, limits.max_pickle_bytes
            ),
        ));
    }
    let pkl = archive
        .read(pkl_entry, &mut budget)
        .map_err(|e| file_err(path, e))?;
    let p = pickle::load(&pkl, limits.pickle).map_err(|e| file_err(path, e.to_string()))?;

    let mut out = PthFile::default();
    let items = select_state_dict(path, &p, &mut out)?;
    let mut storages: HashMap<String, Cow<[u8]>> = HashMap::new();
    for (key, id) in items {
        let Some(key) = key else {
            out.notes
                .push("skipped an entry whose key is not a string".to_string());
            continue;
        };
        let name = match key.strip_prefix("module.") {
            Some(rest) => {
                out.stripped_prefixes += 1;
                rest
            }
            None => key,
        };
        let t = match p.get(id) {
            Obj::Tensor(t) => t,
            o => {
                out.notes
                    .push(format!("skipped '{key}': not a tensor ({})", o.kind()));
                continue;
            }
        };
        let dtype = t.storage.dtype;
        if !dtype.is_float() {
            if name.ends_with("num_batches_tracked") {
                out.dropped_num_batches_tracked += 1;
            } else {
                out.notes.push(format!(
                    "skipped '{key}': {} tensor (only floating-point tensors are converted)",
                    dtype.name()
                ));
            }
            continue;
        }
        if !storages.contains_key(&t.storage.key) {
            let ename = format!("{prefix}/data/{}", t.storage.key);
            let e = archive.find(&ename).ok_or_else(|| {
                file_err(
                    path,
                    format!("tensor '{key}': its storage {ename} is missing from the archive"),
                )
            })?;
            let data = archive
                .read(e, &mut budget)
                .map_err(|e| file_err(path, e))?;
            storages.insert(t.storage.key.clone(), data);
        }
        let data = &storages[&t.storage.key];
        let values = gather(data, t, big_endian, &mut budget)
            .map_err(|e| file_err(path, format!("tensor '{key}': {e}")))?;
        let shape: Vec<usize> = t.size.iter().map(|&d| d as usize).collect();
        let tensor = Tensor::new(&shape, values)
            .map_err(|e| file_err(path, format!("tensor '{key}': {e}")))?;
        if out.tensors.insert(name.to_string(), tensor).is_some() {
            return Err(file_err(
                path,
                format!(
                    "two entries are named '{name}' once the DataParallel prefix 'module.' is \
                     stripped"
                ),
            ));
        }
        *out.source_dtypes.entry(dtype.name()).or_default() += 1;
    }
    if out.dropped_num_batches_tracked > 0 {
        out.notes.push(format!(
            "dropped {} num_batches_tracked entries (BatchNorm step counters, not weights)",
            out.dropped_num_batches_tracked
        ));
    }
    if out.tensors.is_empty() {
        return Err(file_err(
            path,
            "no floating-point tensors found in the checkpoint".to_string()
                + &notes_suffix(&out.notes),
        ));
    }
    Ok(out)
}

fn notes_suffix(notes: &[String]) -> String {
    if notes.is_empty() {
        String::new()
    } else {
        format!(
            " ({})",
            notes.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
        )
    }
}

/// The `<name>` of `<name>/data.pkl`; TorchScript archives and zips without a data.pkl are
/// errors that say what the file is.
fn find_prefix(path: &Path, archive: &zip::Archive) -> Result<String> {
    let names = || {
        let mut v: Vec<&str> = archive
            .entries
            .iter()
            .map(|e| e.name.as_str())
            .take(6)
            .collect();
        if archive.entries.len() > 6 {
            v.push("...");
        }
        v.join(", ")
    };
    if archive
        .entries
        .iter()
        .any(|e| e.name.contains("/code/") || e.name.ends_with("/constants.pkl"))
    {
        return Err(file_err(
            path,
            "a TorchScript archive (torch.jit.save), not a state dict: in Python, save \
             model.state_dict() with torch.save and convert that",
        ));
    }
    let mut found = archive.entries.iter().filter_map(|e| {
        let p = e.name.strip_suffix("/data.pkl")?;
        (!p.contains('/')).then(|| p.to_string())
    });
    match (found.next(), found.next()) {
        (Some(p), None) => Ok(p),
        (Some(_), Some(_)) => Err(file_err(
            path,
            "zip archive holds more than one <name>/data.pkl: not a single torch.save checkpoint",
        )),
        (None, _) => Err(file_err(
            path,
            format!(
                "missing data.pkl: a zip archive, but not a torch.save checkpoint (entries: {})",
                names()
            ),
        )),
    }
}

/// The dict holding the tensors: the top level, or its `state_dict` / `model` entry.
fn select_state_dict<'p>(
    path: &Path,
    p: &'p Pickle,
    out: &mut PthFile,
) -> Result<Vec<(Option<&'p str>, pickle::Id)>> {
    let top = p.dict_items(p.root).ok_or_else(|| {
        file_err(
            path,
            format!(
                "the checkpoint holds a {}, not a dict of tensors (a state dict)",
                p.get(p.root).kind()
            ),
        )
    })?;
    for key in STATE_DICT_KEYS {
        let Some(&(_, id)) = top.iter().find(|(k, _)| *k == Some(key)) else {
            continue;
        };
        if let Some(inner) = p.dict_items(id) {
            out.state_dict_key = Some(key.to_string());
            let others: Vec<&str> = top
                .iter()
                .filter_map(|(k, _)| *k)
                .filter(|k| *k != key)
                .collect();
            if !others.is_empty() {
                out.notes.push(format!(
                    "used the state dict under '{key}'; ignored the other top-level entries: {}",
                    others.join(", ")
                ));
            }
            return Ok(inner);
        }
    }
    Ok(top)
}

/// Element `i` of a storage as f32, for one dtype and byte order.
fn converter(dtype: DType, big_endian: bool) -> Option<fn(&[u8]) -> f32> {
    fn arr<const N: usize>(b: &[u8], big: bool) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&b[..N]);
        if big {
            a.reverse();
        }
        a
    }
    Some(match (dtype, big_endian) {
        (DType::F32, false) => |b| f32::from_le_bytes(arr(b, false)),
        (DType::F32, true) => |b| f32::from_le_bytes(arr(b, true)),
        (DType::F16, false) => |b| half::f16::from_le_bytes(arr(b, false)).to_f32(),
        (DType::F16, true) => |b| half::f16::from_le_bytes(arr(b, true)).to_f32(),
        (DType::BF16, false) => |b| half::bf16::from_le_bytes(arr(b, false)).to_f32(),
        (DType::BF16, true) => |b| half::bf16::from_le_bytes(arr(b, true)).to_f32(),
        (DType::F64, false) => |b| f64::from_le_bytes(arr(b, false)) as f32,
        (DType::F64, true) => |b| f64::from_le_bytes(arr(b, true)) as f32,
        _ => return None,
    })
}

/// The dense row-major f32 values of a strided view into `storage` (its raw bytes). Every
/// element the view can reach is checked to lie inside the storage first.
fn gather(
    storage: &[u8],
    t: &TensorRef,
    big_endian: bool,
    budget: &mut u64,
) -> Result<Vec<f32>, String> {
    let dtype = t.storage.dtype;
    let es = dtype.size() as u64;
    let conv = converter(dtype, big_endian)
        .ok_or_else(|| format!("dtype {} cannot be converted to float32", dtype.name()))?;
    let declared = t
        .storage
        .numel
        .checked_mul(es)
        .ok_or("storage size overflows")?;
    if (storage.len() as u64) < declared {
        return Err(format!(
            "storage data/{} is truncated: {} bytes, {} {} elements need {declared}",
            t.storage.key,
            storage.len(),
            t.storage.numel,
            dtype.name()
        ));
    }
    let numel = t
        .size
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or("element count overflows")?;
    let out_bytes = numel.checked_mul(4).ok_or("element count overflows")?;
    if out_bytes > *budget {
        return Err(format!(
            "{numel} elements as float32 exceed the memory limit ({} bytes left for this file)",
            *budget
        ));
    }
    if numel == 0 {
        return Ok(Vec::new());
    }
    // The furthest element the view reaches (all strides are non-negative).
    let last = t
        .size
        .iter()
        .zip(&t.stride)
        .try_fold(t.offset, |a, (&d, &s)| {
            (d - 1).checked_mul(s).and_then(|x| a.checked_add(x))
        })
        .ok_or("view offset overflows")?;
    if last >= t.storage.numel {
        return Err(format!(
            "view (offset {}, size {:?}, stride {:?}) reaches element {last} of a storage of {} \
             elements",
            t.offset, t.size, t.stride, t.storage.numel
        ));
    }
    *budget -= out_bytes;
    // All indices below are <= `last` < numel of a storage that fits in memory: no overflow.
    let es = es as usize;
    let numel = numel as usize;
    let at = |i: u64| conv(&storage[i as usize * es..]);
    let mut out = Vec::with_capacity(numel);
    let nd = t.size.len();
    if nd == 0 {
        out.push(at(t.offset));
        return Ok(out);
    }
    // Row-major contiguous (ignoring dims of size 1): one slice.
    let mut expect = 1u64;
    let contiguous = (0..nd).rev().all(|i| {
        let ok = t.size[i] == 1 || t.stride[i] == expect;
        expect *= t.size[i];
        ok
    });
    if contiguous {
        let start = t.offset as usize * es;
        out.extend(
            storage[start..start + numel * es]
                .chunks_exact(es)
                .map(conv),
        );
        return Ok(out);
    }
    let inner = t.size[nd - 1];
    let inner_stride = t.stride[nd - 1];
    let mut idx = vec![0u64; nd - 1];
    loop {
        let base = t.offset + idx.iter().zip(&t.stride).map(|(&i, &s)| i * s).sum::<u64>();
        out.extend((0..inner).map(|j| at(base + j * inner_stride)));
        // Next outer index, last dimension first.
        let mut d = nd - 1;
        loop {
            if d == 0 {
                return Ok(out);
            }
            d -= 1;
            idx[d] += 1;
            if idx[d] < t.size[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pickle::StorageRef;

    fn view(numel: u64, offset: u64, size: &[u64], stride: &[u64]) -> TensorRef {
        TensorRef {
            storage: StorageRef {
                dtype: DType::F32,
                key: "0".into(),
                numel,
            },
            offset,
            size: size.to_vec(),
            stride: stride.to_vec(),
        }
    }

    fn bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn gathers_strided_views_and_refuses_out_of_range_ones() {
        let s = bytes(&[0., 1., 2., 3., 4., 5., 6.]);
        let mut b = u64::MAX;
        // Transposed 2x3 -> 3x2, offset 1.
        let t = view(7, 1, &[3, 2], &[1, 3]);
        assert_eq!(
            gather(&s, &t, false, &mut b).unwrap(),
            [1., 4., 2., 5., 3., 6.]
        );
        // Broadcast (stride 0), scalar, empty.
        let t = view(7, 2, &[2, 3], &[0, 1]);
        assert_eq!(
            gather(&s, &t, false, &mut b).unwrap(),
            [2., 3., 4., 2., 3., 4.]
        );
        assert_eq!(
            gather(&s, &view(7, 6, &[], &[]), false, &mut b).unwrap(),
            [6.]
        );
        assert!(
            gather(&s, &view(7, 99, &[0, 5], &[1, 1]), false, &mut b)
                .unwrap()
                .is_empty()
        );
        // One past the end, huge strides, storage larger than its bytes.
        for t in [
            view(7, 2, &[3, 2], &[2, 1]),
            view(7, 0, &[2, 2], &[u64::MAX, 1]),
            view(7, 7, &[], &[]),
            view(8, 0, &[8], &[1]),
        ] {
            let e = gather(&s, &t, false, &mut b).unwrap_err();
            assert!(
                e.contains("reaches element") || e.contains("overflow") || e.contains("truncated"),
                "{e}"
            );
        }
        // Budget: 6 elements need 24 bytes.
        let mut small = 20;
        let e = gather(&s, &view(7, 0, &[6], &[1]), false, &mut small).unwrap_err();
        assert!(e.contains("memory limit"), "{e}");
    }

    #[test]
    fn big_endian_storages_are_swapped() {
        let s: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|x| x.to_be_bytes())
            .collect();
        let mut b = u64::MAX;
        assert_eq!(
            gather(&s, &view(2, 0, &[2], &[1]), true, &mut b).unwrap(),
            [1.5, -2.0]
        );
    }
}
