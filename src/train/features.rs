//! Backbone features of every view, batched through the backend and cached on disk.
//!
//! The cache is one safetensors file per (backbone weights hash, preprocessing): tensor
//! `features` [N, 2048] and the view names as a JSON array in metadata `views`. Missing views
//! are computed and the file is rewritten atomically every few batches, so a killed run keeps
//! what it computed. The batches run through the pipeline's one batch loop
//! ([`crate::pipeline::batches`]), with its rule for bad images.

use crate::backend::Backend;
use crate::data::dataset::Dataset;
use crate::data::image::{Preprocess, preprocess_view};
use crate::data::views::View;
use crate::error::{Result, file_err};
use crate::io::hash::fnv1a64_words;
use crate::io::safetensors as st;
use crate::model::resnet50::{FEATURES, ResNet50};
use crate::pipeline::batches::{BatchOptions, run_batches};
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

/// The cache file for a backbone and preprocessing.
pub fn cache_path(dir: &Path, backbone: &str, pp: &Preprocess) -> PathBuf {
    dir.join(format!(
        "features_{backbone}_{}_cc{}.safetensors",
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

fn read_cache(path: &Path) -> Result<HashMap<String, Vec<f32>>> {
    if !path.exists() {
        return Ok(HashMap::new());
    }
    let f = st::read(path)?;
    let names: Vec<String> =
        serde_json::from_str(f.metadata.get("views").map_or("[]", |s| s.as_str()))
            .map_err(|e| file_err(path, format!("bad `views` metadata: {e}")))?;
    let t = f
        .tensors
        .get("features")
        .ok_or_else(|| file_err(path, "no `features` tensor"))?;
    if t.shape() != [names.len(), FEATURES] {
        return Err(file_err(
            path,
            format!(
                "features {:?} do not match {} view names",
                t.shape(),
                names.len()
            ),
        ));
    }
    Ok(names
        .into_iter()
        .zip(t.data().chunks(FEATURES))
        .map(|(n, r)| (n, r.to_vec()))
        .collect())
}

fn write_cache(path: &Path, cache: &HashMap<String, Vec<f32>>) -> Result<()> {
    let mut names: Vec<&String> = cache.keys().collect();
    names.sort();
    let mut data = Vec::with_capacity(names.len() * FEATURES);
    for n in &names {
        data.extend_from_slice(&cache[*n]);
    }
    let t = Tensor::new(&[names.len(), FEATURES], data)?;
    let meta = HashMap::from([(
        "views".to_string(),
        serde_json::to_string(&names).expect("strings"),
    )]);
    st::write(path, &[("features", &t)], &meta)
}

/// How the feature pass runs: the preprocessing, the cache file (if any), images per forward
/// pass, and the bad-image rule (see [`crate::pipeline::batches`]).
#[derive(Clone, Debug)]
pub struct FeaturePass {
    pub preprocess: Preprocess,
    pub cache: Option<PathBuf>,
    pub batch: usize,
    pub strict: bool,
}

/// Features of `views` through the shared batch loop, reading and extending the cache.
pub fn view_features<B: Backend>(
    b: &B,
    model: &ResNet50<B>,
    ds: &Dataset,
    views: &[View],
    pass: &FeaturePass,
) -> Result<ViewFeatures> {
    let cache = pass.cache.as_deref();
    let mut store = match cache {
        Some(p) => read_cache(p)?,
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
            for (&&i, row) in c.items.iter().zip(c.features.data().chunks(FEATURES)) {
                store.insert(views[i].name.clone(), row.to_vec());
            }
            // Persist progress every 16 batches: a killed run loses at most that much.
            if let Some(p) = cache
                && c.index % 16 == 15
            {
                write_cache(p, &store)?;
            }
            Ok(())
        })?;
        if let Some(p) = cache {
            write_cache(p, &store)?;
        }
    }
    let mut data = Vec::with_capacity(views.len() * FEATURES);
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
        features: Tensor::new(&[kept.len(), FEATURES], data)?,
        kept,
        skipped,
    })
}
