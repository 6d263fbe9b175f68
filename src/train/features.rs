//! Backbone features of every view, batched through the backend and cached on disk.
//!
//! The cache is one safetensors file per (backbone, preprocessing): tensor `features` [N, F]
//! (F the architecture's feature width), the view names as a JSON array in metadata `views` and
//! the architecture in metadata `arch`. Missing views are computed and the file is rewritten
//! atomically every few batches, so a killed run keeps what it computed. The batches run through
//! the pipeline's one batch loop ([`crate::pipeline::batches`]), with its rule for bad images.
//!
//! The backbone in the file name is its identity: the weights file's hash (a file validates as
//! one architecture only, so the hash fixes the architecture too) or `random-init-*` (which
//! names the architecture for every backbone but ResNet50). Other architectures than ResNet50
//! also carry the architecture's name in front, so cache folders are legible; ResNet50's names
//! are those of caches written before other backbones existed, which stay valid. A cache whose
//! `arch` or width does not match is an error, never mixed in.
//!
//! The convolutions' precision (`--precision`) is part of the name too when it is not FP32:
//! TF32/BF16/FP16 features differ from FP32 ones by 1e-3..1e-2 relative (README, --precision), so
//! a GPU run at PyTorch's default (TF32) must not extend or reuse a cache the CPU wrote in FP32.

use crate::backend::Backend;
use crate::cuda::Precision;
use crate::data::dataset::Dataset;
use crate::data::image::{Decode, INPUT_SIZE, Preprocess};
use crate::data::input::view_tensor;
use crate::data::views::View;
use crate::error::{Result, file_err};
use crate::io::hash::fnv1a64_words;
use crate::io::safetensors as st;
use crate::model::arch::Arch;
use crate::pipeline::batches::{BatchOptions, run_batches};
use crate::pipeline::model::EvalModel;
use crate::tensor::Tensor;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A 64-bit FNV-1a-style hash of a file's bytes (8 bytes at a time), as 16 hex digits: identifies
/// backbone weights in cache keys and model files.
pub fn file_hash(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| file_err(path, format!("cannot read: {e}")))?;
    let h = fnv1a64_words(&bytes);
    Ok(format!("{h:016x}{:08x}", bytes.len() as u32))
}

/// The cache file for features of `arch` with identity `backbone` (the hash of
/// [`crate::train::model_file::BackboneId`]) and preprocessing `pp`, computed with convolutions
/// at precision `conv` (FP32 keeps the names caches had before `--precision` existed).
pub fn cache_path(
    dir: &Path,
    arch: Arch,
    backbone: &str,
    pp: &Preprocess,
    conv: Precision,
) -> PathBuf {
    let prefix = match arch {
        Arch::ResNet50 => String::new(),
        a => format!("{}_", a.name()),
    };
    // Full decoding keeps the names caches had before scaled decoding existed.
    let decode = match pp.decode {
        Decode::Full => "",
        Decode::Scaled => "_scaled",
    };
    let precision = match conv {
        Precision::Fp32 => String::new(),
        p => format!("_{}", p.name()),
    };
    dir.join(format!(
        "features_{prefix}{backbone}_{}_cc{}{decode}{precision}.safetensors",
        pp.resize.name(),
        pp.color_constancy as u8
    ))
}

/// Features of `views` in order, plus the views that could not be read (path, reason), which
/// are left out of the returned rows (`kept` lists the view indices the rows belong to).
pub struct ViewFeatures {
    pub features: Tensor,
    pub kept: Vec<usize>,
    pub skipped: Vec<String>,
}

/// Cached features: one row of the architecture's width per view name, all rows in one
/// allocation. This is the largest thing a head run holds, so it is held once: the cache file's
/// tensor becomes the rows without a copy, and the file is written from them row by row (a
/// HashMap of per-row vectors plus the tensor and the serialised bytes made to write it held
/// the features three to four times).
#[derive(Debug, PartialEq)]
struct Store {
    width: usize,
    index: HashMap<String, usize>,
    rows: Vec<f32>,
}

impl Store {
    fn new(width: usize) -> Store {
        Store {
            width,
            index: HashMap::new(),
            rows: Vec::new(),
        }
    }
    fn get(&self, name: &str) -> Option<&[f32]> {
        let w = self.width;
        self.index
            .get(name)
            .map(|&i| &self.rows[i * w..(i + 1) * w])
    }
    fn insert(&mut self, name: &str, row: &[f32]) {
        let w = self.width;
        match self.index.get(name) {
            Some(&i) => self.rows[i * w..(i + 1) * w].copy_from_slice(row),
            None => {
                self.index.insert(name.to_string(), self.index.len());
                self.rows.extend_from_slice(row);
            }
        }
    }
}

fn read_cache(path: &Path, arch: Arch) -> Result<Store> {
    let width = arch.features();
    if !path.exists() {
        return Ok(Store::new(width));
    }
    let mut f = st::read(path)?;
    // Caches written before other backbones existed hold ResNet50 features.
    let cached = f.metadata.get("arch").map_or("resnet50", |s| s.as_str());
    if cached != arch.name() {
        return Err(file_err(
            path,
            format!(
                "this feature cache holds {cached} features, not {}; remove it or use another --cache",
                arch.name()
            ),
        ));
    }
    let names: Vec<String> =
        serde_json::from_str(f.metadata.get("views").map_or("[]", |s| s.as_str()))
            .map_err(|e| file_err(path, format!("bad `views` metadata: {e}")))?;
    let t = f
        .tensors
        .remove("features")
        .ok_or_else(|| file_err(path, "no `features` tensor"))?;
    if t.shape() != [names.len(), width] {
        return Err(file_err(
            path,
            format!(
                "features {:?} do not match {} view names of {width} {} features",
                t.shape(),
                names.len(),
                arch.pretty()
            ),
        ));
    }
    let n = names.len();
    let index: HashMap<String, usize> = names.into_iter().zip(0..).collect();
    if index.len() != n {
        return Err(file_err(path, "a view name appears twice in `views`"));
    }
    Ok(Store {
        width,
        index,
        rows: t.into_data(),
    })
}

/// Writes `store` as a safetensors file (tensor `features` [N, width] f32, rows sorted by view
/// name, metadata `views` and `arch`), atomically, streaming the rows from the store.
fn write_cache(path: &Path, arch: Arch, store: &Store) -> Result<()> {
    use std::io::Write;
    let width = arch.features();
    let mut names: Vec<(&String, &usize)> = store.index.iter().collect();
    names.sort();
    let n = names.len();
    let views: Vec<&String> = names.iter().map(|(k, _)| *k).collect();
    let header = serde_json::json!({
        "__metadata__": {
            "views": serde_json::to_string(&views).expect("strings"),
            "arch": arch.name(),
        },
        "features": {"dtype": "F32", "shape": [n, width], "data_offsets": [0, n * width * 4]},
    });
    let mut h = serde_json::to_vec(&header).expect("json");
    // The data starts 8-aligned, as the safetensors crate writes it.
    h.resize((h.len() + 8).div_ceil(8) * 8 - 8, b' ');
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| file_err(dir, format!("cannot create folder: {e}")))?;
    let name = path
        .file_name()
        .map_or_else(|| "cache".into(), |s| s.to_string_lossy());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
        w.write_all(&(h.len() as u64).to_le_bytes())?;
        w.write_all(&h)?;
        for &(_, &i) in &names {
            let row = &store.rows[i * width..(i + 1) * width];
            w.write_all(bytemuck::cast_slice(row))?;
        }
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        file_err(path, format!("cannot write: {e}"))
    })
}

/// How the feature pass runs: the backbone's architecture (its feature width), the
/// preprocessing, the cache file (if any), images per forward pass, and the bad-image rule (see
/// [`crate::pipeline::batches`]).
#[derive(Clone, Debug)]
pub struct FeaturePass {
    pub arch: Arch,
    pub preprocess: Preprocess,
    pub cache: Option<PathBuf>,
    pub batch: usize,
    pub strict: bool,
}

/// Features of `views` through the shared batch loop (`model`: a backbone of `pass.arch` at
/// 224x224), reading and extending the cache.
pub fn view_features<B: Backend>(
    b: &B,
    model: &dyn EvalModel<B>,
    ds: &Dataset,
    views: &[View],
    pass: &FeaturePass,
) -> Result<ViewFeatures> {
    let (arch, width) = (pass.arch, pass.arch.features());
    let cache = pass.cache.as_deref();
    let mut store = match cache {
        Some(p) => read_cache(p, arch)?,
        None => Store::new(width),
    };
    let todo: Vec<usize> = (0..views.len())
        .filter(|&i| store.get(&views[i].name).is_none())
        .collect();
    let mut failed = Vec::new();
    if !todo.is_empty() {
        let t0 = std::time::Instant::now();
        let mut last_write = t0;
        let opts = BatchOptions {
            batch: pass.batch,
            strict: pass.strict,
            logits: false,
            progress: Some("features {bar:30} {pos}/{len} views  {per_sec}  ETA {eta}"),
            size: crate::data::image::INPUT_SIZE,
        };
        let path_of = |&i: &usize| ds.samples[views[i].sample].path.clone();
        let decode = |&i: &usize| {
            Ok(view_tensor(
                &ds.samples[views[i].sample].path,
                &views[i].transform,
                &pass.preprocess,
                INPUT_SIZE,
            )?
            .into_data())
        };
        failed = run_batches(b, model, &todo, &opts, path_of, decode, |c| {
            if c.features.shape()[1] != width {
                return Err(crate::error::invalid(
                    "features",
                    format!(
                        "the backbone gave {} features per image, {} has {width}",
                        c.features.shape()[1],
                        arch.pretty()
                    ),
                ));
            }
            for (&&i, row) in c.items.iter().zip(c.features.data().chunks(width)) {
                store.insert(&views[i].name, row);
            }
            // Persist progress every 16 batches, but at most every 30 s: each write is the
            // whole file, so writing every 16 batches made the pass quadratic in the data set
            // (10,015 images: ~90 rewrites of up to 190 MB). A killed run loses at most that.
            if let Some(p) = cache
                && c.index % 16 == 15
                && last_write.elapsed().as_secs_f64() >= 30.0
            {
                write_cache(p, arch, &store)?;
                last_write = std::time::Instant::now();
            }
            Ok(())
        })?;
        if let Some(p) = cache {
            write_cache(p, arch, &store)?;
        }
        // The feature pass's rate (decode + backbone + cache writes), for seed-scale timings.
        let s = t0.elapsed().as_secs_f64();
        eprintln!(
            "features: {} views in {s:.1} s ({:.1} views/s)",
            todo.len(),
            todo.len() as f64 / s.max(1e-9)
        );
    }
    let mut data = Vec::with_capacity(views.len() * width);
    let mut kept = Vec::new();
    for (i, v) in views.iter().enumerate() {
        if let Some(r) = store.get(&v.name) {
            data.extend_from_slice(r);
            kept.push(i);
        }
    }
    // Several views of one bad image fail alike: each reason once, sorted.
    let mut skipped: Vec<String> = failed.into_iter().map(|f| f.reason).collect();
    skipped.sort();
    skipped.dedup();
    Ok(ViewFeatures {
        features: Tensor::new(&[kept.len(), width], data)?,
        kept,
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::image::ResizeMode;

    #[test]
    fn cache_names_keep_resnet50s_and_never_mix_architectures() {
        let dir = tempfile::tempdir().unwrap();
        let pp = Preprocess {
            resize: ResizeMode::Crop,
            color_constancy: true,
            decode: Decode::Full,
        };
        // Scaled decoding gives other features: another file.
        let scaled = Preprocess {
            decode: Decode::Scaled,
            ..pp
        };
        assert_eq!(
            cache_path(dir.path(), Arch::ResNet50, "abc", &scaled, Precision::Fp32),
            dir.path().join("features_abc_crop_cc1_scaled.safetensors")
        );
        // ResNet50's name is the one caches had before other backbones existed.
        assert_eq!(
            cache_path(dir.path(), Arch::ResNet50, "abc", &pp, Precision::Fp32),
            dir.path().join("features_abc_crop_cc1.safetensors")
        );
        // Features at another precision than FP32 never share a file with FP32 ones.
        for (p, tail) in [
            (Precision::Tf32, "_tf32"),
            (Precision::Bf16, "_bf16"),
            (Precision::Fp16, "_fp16"),
        ] {
            assert_eq!(
                cache_path(dir.path(), Arch::ResNet50, "abc", &scaled, p),
                dir.path()
                    .join(format!("features_abc_crop_cc1_scaled{tail}.safetensors"))
            );
        }
        let p18 = cache_path(dir.path(), Arch::ResNet18, "abc", &pp, Precision::Fp32);
        assert_eq!(
            p18,
            dir.path()
                .join("features_resnet18_abc_crop_cc1.safetensors")
        );
        // A written cache reads back under its architecture only.
        let mut store = Store::new(512);
        store.insert("b", &[0.25f32; 512]);
        store.insert("a", &[0.5f32; 512]);
        store.insert("b", &[-1.5f32; 512]); // replaces b's row
        write_cache(&p18, Arch::ResNet18, &store).unwrap();
        let back = read_cache(&p18, Arch::ResNet18).unwrap();
        assert_eq!(back.get("a").unwrap(), &[0.5f32; 512][..]);
        assert_eq!(back.get("b").unwrap(), &[-1.5f32; 512][..]);
        assert_eq!((back.index.len(), back.rows.len()), (2, 1024));
        // The streamed file is a safetensors file like st::write's: sorted rows, the names.
        let f = st::read(&p18).unwrap();
        assert_eq!(f.tensors["features"].shape(), &[2, 512]);
        assert_eq!(f.tensors["features"].data()[512], -1.5);
        assert_eq!(f.metadata["views"], "[\"a\",\"b\"]");
        let msg = read_cache(&p18, Arch::ResNet34).unwrap_err().to_string();
        assert!(
            msg.contains("holds resnet18 features, not resnet34"),
            "{msg}"
        );
        // A cache without `arch` (written before it was recorded) holds ResNet50 features.
        let old = dir.path().join("old.safetensors");
        let t = Tensor::new(&[1, 2048], vec![1.0; 2048]).unwrap();
        let meta = HashMap::from([("views".to_string(), "[\"v\"]".to_string())]);
        st::write(&old, &[("features", &t)], &meta).unwrap();
        assert_eq!(
            read_cache(&old, Arch::ResNet50)
                .unwrap()
                .get("v")
                .unwrap()
                .len(),
            2048
        );
        assert!(read_cache(&old, Arch::ResNet101).is_err());
    }
}
