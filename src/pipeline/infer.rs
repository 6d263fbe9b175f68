//! `infer`: class probabilities of image files under a trained model file (backbone features
//! -> the model's feature standardisation -> head -> softmax, optionally averaged with the
//! horizontal mirror or the 8 symmetries of the square input, [`Tta`]), and the ISIC submission
//! CSV they are written to. Grad-CAM heat maps beside the CSV: [`super::infer_heatmaps`].

use std::path::{Path, PathBuf};

use super::batches::{BatchOptions, Skipped, run_batches_outputs};
use super::model::{EvalModel, Outputs};
use super::shard::{Shard, write_sidecar};
use super::tta::Tta;
use crate::backend::Backend;
use crate::classes::ClassList;
use crate::data::files::collect_images;
use crate::data::image::{Decode, INPUT_SIZE, Preprocess};
use crate::error::{Result, file_err};
use crate::io::safetensors as st;
use crate::model::arch::Arch;
use crate::pipeline::model::FrozenBackbone;
use crate::tensor::Tensor;
use crate::train::features::file_hash;
use crate::train::model_file::{HeadModel, LoadedModel, backbone_weights, load_model};

/// An inference run.
#[derive(Clone, Debug)]
pub struct InferConfig {
    /// Model file written by `train` (RUN/model.safetensors).
    pub model: PathBuf,
    /// Backbone weights; `None`: the file recorded in the model (its hash must match).
    pub weights: Option<PathBuf>,
    /// Image files and/or folders.
    pub images: Vec<PathBuf>,
    /// Test-time augmentation: the views whose probabilities are averaged.
    pub tta: Tta,
    /// Images per forward pass.
    pub batch: usize,
    /// Fail on the first unreadable image instead of skipping it.
    pub strict: bool,
    /// Only the images of this shard (`infer --shard K/N`; see [`super::shard`]).
    pub shard: Option<Shard>,
    /// JPEG decoding: full size (default) or DCT-scaled (`--scaled-decode`).
    pub decode: Decode,
}

impl InferConfig {
    /// A model's preprocessing with this run's decoding (the model file does not record one).
    pub fn preprocess(&self, model: &Preprocess) -> Preprocess {
        Preprocess {
            decode: self.decode,
            ..*model
        }
    }
}

/// What `infer` computed.
pub struct Inferred {
    /// The model's classes (the columns of `probs`).
    pub classes: ClassList,
    pub ids: Vec<String>,
    pub probs: Vec<Vec<f32>>,
    /// Unreadable images (file, reason).
    pub skipped: Vec<Skipped>,
}

impl Inferred {
    /// How many images each class wins (argmax of the probabilities).
    pub fn predicted_counts(&self) -> Vec<usize> {
        let k = self.classes.len();
        let mut counts = vec![0usize; k];
        for p in &self.probs {
            let best = (0..k).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap_or(0);
            counts[best] += 1;
        }
        counts
    }

    /// The summary `infer` prints: image count, CSV path and predicted images per class.
    pub fn summary(&self, out: &Path) -> String {
        format!(
            "{} images -> {}\npredicted  {}\nimages     {}\n",
            self.ids.len(),
            out.display(),
            self.classes
                .codes()
                .iter()
                .map(|c| format!("{c:>6}"))
                .collect::<String>(),
            self.predicted_counts()
                .iter()
                .map(|c| format!("{c:>6}"))
                .collect::<String>()
        )
    }

    /// Writes shard `shard`'s CSV and its record for `merge` (an empty shard writes the header
    /// alone: the set of shards must stay complete). `model` is the model file (its hash is
    /// recorded, so shards of different models are not merged).
    pub fn write_shard_csv(&self, out: &Path, shard: Shard, model: &Path) -> Result<()> {
        self.write_rows(out)?;
        write_sidecar(out, shard, self.ids.len(), &file_hash(model)?)
    }

    /// Writes the ISIC submission CSV (atomically); no readable image is an error (nothing
    /// written).
    pub fn write_csv(&self, out: &Path) -> Result<()> {
        if self.ids.is_empty() {
            return Err(file_err(out, "no image could be read; nothing written"));
        }
        self.write_rows(out)
    }

    /// The submission's columns are the model's classes and then the list's untrained columns
    /// as 0.0 (ISIC 2019's UNK, which its official ground truth has and the scorer requires).
    fn write_rows(&self, out: &Path) -> Result<()> {
        crate::metrics::write_predictions_csv_for(out, &self.classes, true, &self.ids, &self.probs)
    }
}

/// Probabilities for the images of `cfg` under its model file.
pub fn infer<B: Backend>(b: &B, cfg: &InferConfig) -> Result<Inferred> {
    match load_model(b, &cfg.model)? {
        LoadedModel::Head(m) => infer_head(b, cfg, m),
        LoadedModel::Net(m) => {
            if cfg.weights.is_some() {
                eprintln!(
                    "note: {} is a fine-tuned model carrying its own backbone; --weights is not used",
                    cfg.model.display()
                );
            }
            let (size, pp) = (m.size, m.preprocess);
            classify(b, cfg, &m.net, (size, &m.classes), &pp, |b, out| {
                b.download(&b.softmax(&out.logits.expect("asked for"))?)
            })
        }
    }
}

/// A head on frozen features: the backbone weights are the file the model records (or
/// `cfg.weights`), and must be of the model's architecture and the very file it was trained on
/// (same hash). ResNet50 runs folded, the other architectures as a [`crate::model::net::Net`]
/// in evaluation mode.
fn infer_head<B: Backend>(b: &B, cfg: &InferConfig, m: HeadModel<B>) -> Result<Inferred> {
    let model = head_backbone(b, &cfg.model, cfg.weights.as_deref(), &m)?;
    let HeadModel {
        head,
        norm,
        preprocess: pp,
        classes,
        ..
    } = m;
    classify(b, cfg, &model, (INPUT_SIZE, &classes), &pp, |b, out| {
        let f = norm.apply(b.download(&out.features)?);
        let (logits, _) = head.forward(b, &b.upload(&f)?, false)?;
        b.download(&b.softmax(&logits)?)
    })
}

/// The frozen backbone of head model `m` (from the file `model`): the weights file it records,
/// or `weights`, which must be of its architecture and the very file it was trained on (same
/// hash).
pub fn head_backbone<B: Backend>(
    b: &B,
    model: &Path,
    weights: Option<&Path>,
    m: &HeadModel<B>,
) -> Result<FrozenBackbone<B>> {
    let arch = m.arch;
    let (bb_name, bb_hash) = &m.backbone;
    let wpath = match (weights, bb_name.as_str()) {
        (Some(w), _) => Some(w.to_path_buf()),
        (None, "random-init") => None,
        (None, p) => Some(PathBuf::from(p)),
    };
    // Weights of another architecture: say so (rather than list the tensors they lack).
    if let Some(w) = &wpath {
        let f = st::read_filtered(w, |n| !n.ends_with("num_batches_tracked"))?;
        if let Some(other) = Arch::detect(&f.tensors).filter(|&a| a != arch) {
            return Err(file_err(
                w,
                format!(
                    "these are {} weights, but {} is a head on {} features: pass the {} weights it was trained on (hash {bb_hash})",
                    other.pretty(),
                    model.display(),
                    arch.pretty(),
                    arch.pretty()
                ),
            ));
        }
    }
    let (_, sd, (_, hash)) = backbone_weights(Some(arch), wpath.as_deref())?;
    if &hash != bb_hash {
        return Err(file_err(
            wpath.as_deref().unwrap_or(Path::new("random-init")),
            format!(
                "these backbone weights (hash {hash}) are not the ones the model was trained on (hash {bb_hash})"
            ),
        ));
    }
    FrozenBackbone::new(b, arch, &sd, false)
}

/// Runs every image of `cfg` (and its other views with TTA) through `model` and `probs` (model
/// outputs of a batch -> softmax rows, one column per class of `classes`), averaging the views
/// of each image.
fn classify<B: Backend>(
    b: &B,
    cfg: &InferConfig,
    model: &dyn EvalModel<B>,
    (size, classes): (u32, &ClassList),
    pp: &Preprocess,
    probs_of: impl Fn(&B, Outputs<B::Tensor>) -> Result<Tensor>,
) -> Result<Inferred> {
    let mut images = collect_images(&cfg.images)?;
    if let Some(s) = &cfg.shard {
        images.retain(|(id, _)| s.contains(id));
    }
    let (mut ids, mut probs) = (Vec::new(), Vec::new());
    let opts = BatchOptions {
        batch: cfg.batch,
        strict: cfg.strict,
        logits: true,
        progress: None,
        size,
    };
    let pp = &cfg.preprocess(pp);
    let decode = |(_, p): &(String, PathBuf)| cfg.tta.decode(p, pp, size);
    let skipped = run_batches_outputs(
        b,
        model,
        &images,
        &opts,
        |(_, p)| p.clone(),
        decode,
        |items, views, out| {
            let p = probs_of(b, out)?;
            let nt = views;
            let k = classes.len();
            for (i, (id, _)) in items.into_iter().enumerate() {
                let mut avg = vec![0f32; k];
                for row in p.data()[i * nt * k..(i + 1) * nt * k].chunks(k) {
                    for (a, v) in avg.iter_mut().zip(row) {
                        *a += v / nt as f32;
                    }
                }
                ids.push(id.clone());
                probs.push(avg);
            }
            Ok(())
        },
    )?;
    Ok(Inferred {
        classes: classes.clone(),
        ids,
        probs,
        skipped,
    })
}
