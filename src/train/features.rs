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

use crate::backend::Backend;
use crate::data::dataset::Dataset;
use crate::data::image::{Preprocess, preprocess_view};
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
/// [`crate::train::model_file::BackboneId`]) and preprocessing `pp`.
pub fn cache_path(dir: &Path, arch: Arch, backbone: &str, pp: &Preprocess) -> PathBuf {
    let prefix = match arch {
        Arch::ResNet50 => String::new(),
        a => format!("{}_", a.name()),
    };
    dir.join(format!(
        "features_{prefix}{backbone}_{}_cc{}.safetensors",
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

fn read_cache(path: &Path, arch: Arch) -> Result<HashMap<String, Vec<f32>>> {
    if !path.exists() {
        return Ok(HashMap::new());
    }
    let f = st::read(path)?;
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
    let width = arch.features();
    let names: Vec<String> =
        serde_json::from_str(f.metadata.get("views").map_or("[]", |s| s.as_str()))
            .map_err(|e| file_err(path, format!("bad `views` metadata: {e}")))?;
    let t = f
        .tensors
        .get("features")
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
    Ok(names
        .into_iter()
        .zip(t.data().chunks(width))
        .map(|(n, r)| (n, r.to_vec()))
        .collect())
}

fn write_cache(path: &Path, arch: Arch, cache: &HashMap<String, Vec<f32>>) -> Result<()> {
    let width = arch.features();
    let mut names: Vec<&String> = cache.keys().collect();
    names.sort();
    let mut data = Vec::with_capacity(names.len() * width);
    for n in &names {
        data.extend_from_slice(&cache[*n]);
    }
    let t = Tensor::new(&[names.len(), width], data)?;
    let meta = HashMap::from([
        (
            "views".to_string(),
            serde_json::to_string(&names).expect("strings"),
        ),
        ("arch".to_string(), arch.name().to_string()),
    ]);
    st::write(path, &[("features", &t)], &meta)
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
        None => HashMap::new(),
    };
    let todo: Vec<usize> = (0..views.len())
        .filter(|&i| !store.contains_key(&views[i].name))
        .collect();
    let mut failed = Vec::new();
    if !todo.is_empty() {
        let opts = BatchOptions {
            batch: pass.batch,
            strict: pass.strict,
            logits: false,
            progress: Some("features {bar:30} {pos}/{len} views  {per_sec}  ETA {eta}"),
            size: crate::data::image::INPUT_SIZE,
        };
        let path_of = |&i: &usize| ds.samples[views[i].sample].path.clone();
        let decode = |&i: &usize| {
            Ok(preprocess_view(
                &ds.samples[views[i].sample].path,
                &views[i].transform,
                &pass.preprocess,
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
                store.insert(views[i].name.clone(), row.to_vec());
            }
            // Persist progress every 16 batches: a killed run loses at most that much.
            if let Some(p) = cache
                && c.index % 16 == 15
            {
                write_cache(p, arch, &store)?;
            }
            Ok(())
        })?;
        if let Some(p) = cache {
            write_cache(p, arch, &store)?;
        }
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
        };
        // ResNet50's name is the one caches had before other backbones existed.
        assert_eq!(
            cache_path(dir.path(), Arch::ResNet50, "abc", &pp),
            dir.path().join("features_abc_crop_cc1.safetensors")
        );
        let p18 = cache_path(dir.path(), Arch::ResNet18, "abc", &pp);
        assert_eq!(
            p18,
            dir.path()
                .join("features_resnet18_abc_crop_cc1.safetensors")
        );
        // A written cache reads back under its architecture only.
        let store = HashMap::from([("a".to_string(), vec![0.5f32; 512])]);
        write_cache(&p18, Arch::ResNet18, &store).unwrap();
        assert_eq!(read_cache(&p18, Arch::ResNet18).unwrap(), store);
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
        assert_eq!(read_cache(&old, Arch::ResNet50).unwrap()["v"].len(), 2048);
        assert!(read_cache(&old, Arch::ResNet101).is_err());
    }
}
