//! Backbone features of every view, batched through the backend and cached on disk.
//!
//! The cache is one safetensors file per (backbone weights hash, preprocessing): tensor
//! `features` [N, 2048] and the view names as a JSON array in metadata `views`. Missing views
//! are computed and the file is rewritten atomically every few batches, so a killed run keeps
//! what it computed.

use crate::backend::Backend;
use crate::data::dataset::Dataset;
use crate::data::image::{INPUT_SIZE, Preprocess, preprocess_view};
use crate::data::views::View;
use crate::error::{Result, file_err};
use crate::io::hash::fnv1a64_words;
use crate::io::safetensors as st;
use crate::model::resnet50::{FEATURES, ResNet50};
use crate::tensor::Tensor;
use indicatif::{ProgressBar, ProgressStyle};
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

#[allow(clippy::too_many_arguments)]
pub fn view_features<B: Backend>(
    b: &B,
    model: &ResNet50<B>,
    ds: &Dataset,
    views: &[View],
    pp: &Preprocess,
    cache: Option<&Path>,
    batch: usize,
    strict: bool,
) -> Result<ViewFeatures> {
    let mut store = match cache {
        Some(p) => read_cache(p)?,
        None => HashMap::new(),
    };
    let todo: Vec<usize> = (0..views.len())
        .filter(|&i| !store.contains_key(&views[i].name))
        .collect();
    let mut failed: HashMap<usize, String> = HashMap::new();
    if !todo.is_empty() {
        let bar = ProgressBar::new(todo.len() as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "features {bar:30} {pos}/{len} views  {per_sec}  ETA {eta}",
            )
            .expect("static template"),
        );
        let s = INPUT_SIZE as usize;
        let decode = |&i: &usize| {
            preprocess_view(&ds.samples[views[i].sample].path, &views[i].transform, pp)
        };
        crate::data::prefetch::decode_ahead(&todo, batch, decode, |n_batch, chunk, decoded| {
            let mut x = Vec::with_capacity(chunk.len() * 3 * s * s);
            let mut ok = Vec::new();
            for (&i, r) in chunk.iter().zip(decoded) {
                match r {
                    Ok(t) => {
                        x.extend_from_slice(t.data());
                        ok.push(i);
                    }
                    Err(e) if strict => return Err(e),
                    Err(e) => {
                        failed.insert(i, e.to_string());
                    }
                }
            }
            if !ok.is_empty() {
                let xt = b.upload(&Tensor::new(&[ok.len(), 3, s, s], x)?)?;
                let f = b.download(&model.forward(b, &xt, false)?.features)?;
                for (&i, row) in ok.iter().zip(f.data().chunks(FEATURES)) {
                    store.insert(views[i].name.clone(), row.to_vec());
                }
            }
            bar.inc(chunk.len() as u64);
            // Persist progress every 16 batches: a killed run loses at most that much.
            if let Some(p) = cache
                && n_batch % 16 == 15
            {
                write_cache(p, &store)?;
            }
            Ok(())
        })?;
        bar.finish_and_clear();
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
    let mut skipped: Vec<String> = failed.into_values().collect();
    skipped.sort();
    skipped.dedup();
    Ok(ViewFeatures {
        features: Tensor::new(&[kept.len(), FEATURES], data)?,
        kept,
        skipped,
    })
}
