//! `embed`: backbone features (and optionally logits) of image files, and the safetensors file
//! that holds them (`features` [N, F], `logits` [N, K], row order in metadata `image_ids`).
//!
//! Two sources: backbone weights of any architecture ([`Arch`]: ResNet18/34/50/101/152, VGG19;
//! recognised from the tensors unless named), whose features are what the ImageNet classifier
//! reads (512-d for ResNet18/34, 2048-d for the deeper ResNets, 4096-d for VGG19) and whose
//! logits are that classifier's; or a fine-tuned model file (`train --fine-tune`), whose
//! features are its fine-tuned backbone's (pooled or flattened map, what its head reads) at the
//! model's image size and preprocessing, and whose logits are its 7 class logits. ResNet50
//! weights run through the folded inference model ([`ResNet50`], BN folded into the
//! convolutions); every other network runs as a [`Net`] in evaluation mode.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::batches::{BatchOptions, Skipped, run_batches};
use super::model::{EvalModel, FrozenBackbone};
use crate::backend::Backend;
use crate::classes::ClassList;
use crate::data::files::collect_images;
use crate::data::image::{Decode, INPUT_SIZE, Preprocess, ResizeMode, Transform};
use crate::data::input::view_tensor;
use crate::error::{Result, file_err};
use crate::io::safetensors as st;
use crate::model::arch::Arch;
use crate::tensor::Tensor;
use crate::train::model_file::{LoadedModel, load_model};

/// Where the features come from.
#[derive(Clone, Debug, PartialEq)]
pub enum EmbedSource {
    /// Backbone weights (safetensors, torchvision names; f32, f16 or bf16) of `arch`, or of the
    /// architecture the tensors hold when `arch` is None.
    Weights { path: PathBuf, arch: Option<Arch> },
    /// A fine-tuned model file written by `train --fine-tune` (format `skinengine-net-v1`): its
    /// own image size and preprocessing are used (`EmbedOptions::resize` is not).
    Model(PathBuf),
}

impl EmbedSource {
    /// The file the features come from.
    pub fn path(&self) -> &Path {
        match self {
            EmbedSource::Weights { path, .. } | EmbedSource::Model(path) => path,
        }
    }
}

/// An embedding run: which network, which images, how.
#[derive(Clone, Debug)]
pub struct EmbedConfig {
    pub source: EmbedSource,
    /// Image files and/or folders (searched recursively).
    pub images: Vec<PathBuf>,
    pub options: EmbedOptions,
}

/// How images are embedded.
#[derive(Clone, Copy, Debug)]
pub struct EmbedOptions {
    /// Resizing of backbone weights' 224x224 inputs (a model file uses its own).
    pub resize: ResizeMode,
    /// Images per forward pass.
    pub batch: usize,
    /// Also compute the logits: the weights' own classifier (which they must hold), or a
    /// fine-tuned model's 7 class logits.
    pub logits: bool,
    /// Fail on the first unreadable image instead of skipping it.
    pub strict: bool,
    /// JPEG decoding: full size (default) or DCT-scaled (`--scaled-decode`).
    pub decode: Decode,
}

/// What an embedding run produced.
pub struct Embedded {
    pub ids: Vec<String>,
    /// [N, F]: F is the network's feature width.
    pub features: Tensor,
    pub logits: Option<Tensor>,
    /// Every image that could not be used (file, reason).
    pub skipped: Vec<Skipped>,
    /// Seconds spent building the model and embedding (weights loading excluded).
    pub seconds: f64,
    /// The network's architecture.
    pub arch: Arch,
    /// Side of the square input images, and how they were preprocessed.
    pub size: u32,
    pub preprocess: Preprocess,
    /// The class list of a fine-tuned model's head when the logits are its classes (ISIC 2018's
    /// 7, ISIC 2019's 8, ...); `None` for the weights' own classifier.
    pub class_logits: Option<ClassList>,
}

/// Reads backbone weights of `arch` (or of the architecture the tensors hold; ResNet50 when
/// they match none, so the problems are listed against it) and validates them.
pub fn load_weights(path: &Path, arch: Option<Arch>) -> Result<(Arch, BTreeMap<String, Tensor>)> {
    let f = st::read_filtered(path, |n| !n.ends_with("num_batches_tracked"))?;
    let arch = arch.unwrap_or_else(|| Arch::detect(&f.tensors).unwrap_or(Arch::ResNet50));
    arch.validate(path, &f.tensors)?;
    Ok((arch, f.tensors))
}

/// Loads the network of `cfg.source` and embeds every image of `cfg.images`.
pub fn embed<B: Backend>(b: &B, cfg: &EmbedConfig) -> Result<Embedded> {
    let images = collect_images(&cfg.images)?;
    let opts = &cfg.options;
    match &cfg.source {
        EmbedSource::Weights { path, arch } => {
            let (arch, sd) = load_weights(path, *arch)?;
            let (cw, cb) = arch.classifier();
            if opts.logits && !sd.contains_key(cw) {
                return Err(file_err(
                    path,
                    format!("--logits asked for, but the weights have no {cw} / {cb}"),
                ));
            }
            let t0 = Instant::now();
            let model = FrozenBackbone::new(b, arch, &sd, opts.logits)?;
            drop(sd);
            let pp = Preprocess {
                resize: opts.resize,
                color_constancy: false,
                decode: opts.decode,
            };
            let mut e = embed_images_sized(b, &model, &images, opts, &pp, INPUT_SIZE)?;
            e.arch = arch;
            e.seconds = t0.elapsed().as_secs_f64();
            Ok(e)
        }
        EmbedSource::Model(path) => {
            let m = match load_model(b, path)? {
                LoadedModel::Net(m) => m,
                LoadedModel::Head(h) => {
                    let (arch, file) = (h.arch.pretty(), h.backbone.0);
                    let how = if file == "random-init" {
                        format!(
                            "embed backbone weights with --weights (this model's backbone was the random-init {arch}, which has no file)"
                        )
                    } else {
                        format!("embed with --weights {file}, the {arch} weights it was trained on")
                    };
                    return Err(file_err(
                        path,
                        format!(
                            "a head-only model (--fine-tune head, on frozen {arch} features) has no backbone of its own (--model takes fine-tuned models): {how}"
                        ),
                    ));
                }
            };
            let t0 = Instant::now();
            let pp = Preprocess {
                decode: opts.decode,
                ..m.preprocess
            };
            let mut e = embed_images_sized(b, &m.net, &images, opts, &pp, m.size)?;
            e.arch = m.net.graph.arch;
            e.class_logits = opts.logits.then(|| m.classes.clone());
            e.seconds = t0.elapsed().as_secs_f64();
            Ok(e)
        }
    }
}

/// Embeds `images` (id, path) with `model` at 224x224 resized by `opts.resize`, in order; bad
/// images are skipped and listed (or the first is an error with `strict`).
pub fn embed_images<B: Backend>(
    b: &B,
    model: &dyn EvalModel<B>,
    images: &[(String, PathBuf)],
    opts: &EmbedOptions,
) -> Result<Embedded> {
    let pp = Preprocess {
        resize: opts.resize,
        color_constancy: false,
        decode: opts.decode,
    };
    embed_images_sized(b, model, images, opts, &pp, INPUT_SIZE)
}

/// [`embed_images`] at `size` x `size` with preprocessing `pp` (a fine-tuned model's).
/// `Embedded::arch` is left at ResNet50 for the caller to set.
pub fn embed_images_sized<B: Backend>(
    b: &B,
    model: &dyn EvalModel<B>,
    images: &[(String, PathBuf)],
    opts: &EmbedOptions,
    pp: &Preprocess,
    size: u32,
) -> Result<Embedded> {
    let t0 = Instant::now();
    let (mut ids, mut feats, mut logits) = (Vec::new(), Vec::new(), Vec::new());
    let (mut f, mut k) = (0, 0);
    let batches = BatchOptions {
        batch: opts.batch,
        strict: opts.strict,
        logits: opts.logits,
        progress: Some("{bar:30} {pos}/{len} images  {per_sec}  ETA {eta}"),
        size,
    };
    let skipped = run_batches(
        b,
        model,
        images,
        &batches,
        |(_, p)| p.clone(),
        |(_, p)| Ok(view_tensor(p, &Transform::IDENTITY, pp, size)?.into_data()),
        |c| {
            f = c.features.shape()[1];
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
        features: Tensor::new(&[n, f], feats)?,
        logits: if opts.logits {
            Some(Tensor::new(&[n, k], logits)?)
        } else {
            None
        },
        ids,
        skipped,
        seconds: t0.elapsed().as_secs_f64(),
        arch: Arch::ResNet50,
        size,
        preprocess: *pp,
        class_logits: None,
    })
}

/// Writes the embedding file (atomically); an embedding of no image is an error (nothing
/// written). Metadata: `image_ids`, `arch`, `resize`, `image_size`, `color_constancy`, the
/// source by file name (`weights` or `model`), `classes` (the codes, comma-separated) when the
/// logits are a fine-tuned model's classes, and `skipped`: the images left out, as a JSON array
/// of `{"file", "problem"}` (empty when none), so the file itself says what it lacks.
pub fn write_embedding(out: &Path, e: &Embedded, cfg: &EmbedConfig) -> Result<()> {
    if e.ids.is_empty() {
        return Err(file_err(out, "no image could be read; nothing written"));
    }
    let mut meta = HashMap::new();
    meta.insert(
        "image_ids".to_string(),
        serde_json::to_string(&e.ids).expect("strings serialise"),
    );
    let skipped: Vec<serde_json::Value> = e
        .skipped
        .iter()
        .map(|s| serde_json::json!({"file": s.file.display().to_string(), "problem": s.reason}))
        .collect();
    meta.insert(
        "skipped".to_string(),
        serde_json::Value::Array(skipped).to_string(),
    );
    meta.insert("arch".to_string(), e.arch.name().to_string());
    meta.insert("resize".to_string(), e.preprocess.resize.name().to_string());
    meta.insert("image_size".to_string(), e.size.to_string());
    meta.insert(
        "color_constancy".to_string(),
        e.preprocess.color_constancy.to_string(),
    );
    let key = match cfg.source {
        EmbedSource::Weights { .. } => "weights",
        EmbedSource::Model(_) => "model",
    };
    let name = cfg
        .source
        .path()
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    meta.insert(key.to_string(), name);
    if let (Some(list), Some(_)) = (&e.class_logits, &e.logits) {
        meta.insert("classes".to_string(), list.codes().join(","));
    }
    let mut tensors = vec![("features", &e.features)];
    if let Some(l) = &e.logits {
        tensors.push(("logits", l));
    }
    st::write(out, &tensors, &meta)
}
