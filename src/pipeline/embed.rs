//! `embed`: ResNet50 features (and optionally fc logits) of image files, and the safetensors
//! file that holds them (`features` [N, 2048], `logits` [N, K], row order in metadata
//! `image_ids`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use super::batches::{BatchOptions, Skipped, run_batches};
use crate::backend::Backend;
use crate::data::files::collect_images;
use crate::data::image::{ResizeMode, preprocess};
use crate::error::{Result, file_err};
use crate::model::resnet50::{FEATURES, ResNet50, load_state_dict};
use crate::tensor::Tensor;

/// An embedding run: which weights, which images, how.
#[derive(Clone, Debug)]
pub struct EmbedConfig {
    /// ResNet50 weights (safetensors, torchvision/timm names; f32, f16 or bf16).
    pub weights: PathBuf,
    /// Image files and/or folders (searched recursively).
    pub images: Vec<PathBuf>,
    pub options: EmbedOptions,
}

/// How images are embedded.
#[derive(Clone, Copy, Debug)]
pub struct EmbedOptions {
    pub resize: ResizeMode,
    /// Images per forward pass.
    pub batch: usize,
    /// Also compute the fc outputs (the weights must hold fc.weight and fc.bias).
    pub logits: bool,
    /// Fail on the first unreadable image instead of skipping it.
    pub strict: bool,
}

/// What an embedding run produced.
pub struct Embedded {
    pub ids: Vec<String>,
    pub features: Tensor,
    pub logits: Option<Tensor>,
    /// Every image that could not be used (file, reason).
    pub skipped: Vec<Skipped>,
    /// Seconds spent building the model and embedding (weights loading excluded).
    pub seconds: f64,
}

/// Loads the weights and embeds every image of `cfg.images`.
pub fn embed<B: Backend>(b: &B, cfg: &EmbedConfig) -> Result<Embedded> {
    let images = collect_images(&cfg.images)?;
    let sd = load_state_dict(&cfg.weights)?;
    if cfg.options.logits && !sd.contains_key("fc.weight") {
        return Err(file_err(
            &cfg.weights,
            "--logits asked for, but the weights have no fc.weight / fc.bias",
        ));
    }
    let t0 = Instant::now();
    let model = ResNet50::from_state_dict(b, &sd)?;
    let mut e = embed_images(b, &model, &images, &cfg.options)?;
    e.seconds = t0.elapsed().as_secs_f64();
    Ok(e)
}

/// Embeds `images` (id, path) with `model`, in order; bad images are skipped and listed (or the
/// first is an error with `strict`).
pub fn embed_images<B: Backend>(
    b: &B,
    model: &ResNet50<B>,
    images: &[(String, PathBuf)],
    opts: &EmbedOptions,
) -> Result<Embedded> {
    let t0 = Instant::now();
    let (mut ids, mut feats, mut logits) = (Vec::new(), Vec::new(), Vec::new());
    let mut k = 0;
    let batches = BatchOptions {
        batch: opts.batch,
        strict: opts.strict,
        logits: opts.logits,
        progress: Some("{bar:30} {pos}/{len} images  {per_sec}  ETA {eta}"),
        size: crate::data::image::INPUT_SIZE,
    };
    let skipped = run_batches(
        b,
        model,
        images,
        &batches,
        |(_, p)| p.clone(),
        |(_, p)| Ok(preprocess(p, opts.resize)?.into_data()),
        |c| {
            feats.extend_from_slice(c.features.data());
            if let Some(l) = &c.logits {
                k = l.shape()[1];
                logits.extend_from_slice(l.data());
            }
            ids.extend(c.items.into_iter().map(|(id, _)| id.clone()));
            Ok(())
        },
    )?;
    let n = ids.len();
    Ok(Embedded {
        features: Tensor::new(&[n, FEATURES], feats)?,
        logits: if opts.logits {
            Some(Tensor::new(&[n, k], logits)?)
        } else {
            None
        },
        ids,
        skipped,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Writes the embedding file (atomically); an embedding of no image is an error (nothing
/// written). `weights` is recorded by file name.
pub fn write_embedding(out: &std::path::Path, e: &Embedded, cfg: &EmbedConfig) -> Result<()> {
    if e.ids.is_empty() {
        return Err(file_err(out, "no image could be read; nothing written"));
    }
    let mut meta = HashMap::new();
    meta.insert(
        "image_ids".to_string(),
        serde_json::to_string(&e.ids).expect("strings serialise"),
    );
    meta.insert("resize".to_string(), cfg.options.resize.name().to_string());
    let wname = cfg
        .weights
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    meta.insert("weights".to_string(), wname);
    let mut tensors = vec![("features", &e.features)];
    if let Some(l) = &e.logits {
        tensors.push(("logits", l));
    }
    crate::io::safetensors::write(out, &tensors, &meta)
}
