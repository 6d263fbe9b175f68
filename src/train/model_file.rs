//! The model file `train` writes and `infer` reads (RUN/model.safetensors), in two formats:
//!
//! - `skinengine-head-v1` (`--fine-tune head`): the head's tensors, the feature
//!   standardisation (`input.mean`, `input.std`, [F] for the backbone's feature width F) and
//!   metadata: classes (the class list's codes, comma-separated: the head's outputs and the
//!   columns `infer` writes; a file without it holds ISIC 2018's 7), head widths, batch norm, preprocessing, the training config, the
//!   backbone's architecture (`arch`; files written before it existed are ResNet50's) and the
//!   backbone it was trained on (file or "random-init") with that file's hash, so inference can
//!   refuse other backbone weights.
//! - `skinengine-net-v1` (fine-tuned through the backbone): every tensor of the network under
//!   its torchvision name (backbone, BN running statistics) plus the head (`head.*`), and
//!   metadata: architecture, pooling, head, image size, preprocessing, config, and the backbone
//!   file it started from with that file's hash (a record only: the file is not needed again).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::config::TrainConfig;
use super::features;
use super::head::Head;
use super::norm::FeatureNorm;
use crate::backend::Backend;
use crate::classes::ClassList;
use crate::data::image::{Decode, Preprocess, ResizeMode};
use crate::error::{Result, file_err};
use crate::io::safetensors as st;
use crate::model::arch::Arch;
use crate::model::init::{random_state_dict, random_weights};
use crate::model::net::{Graph, HeadSpec, Net, Pool};
use crate::model::resnet50::load_state_dict;
use crate::tensor::Tensor;

/// The model file's name in a run folder.
pub const MODEL: &str = "model.safetensors";
const FORMAT: &str = "skinengine-head-v1";
/// The format of a fine-tuned model, which carries its whole network.
pub const FORMAT_NET: &str = "skinengine-net-v1";

/// The backbone a model was trained on: (weights file or "random-init", its hash).
pub type BackboneId = (String, String);

/// Writes the model file of a head on frozen `arch` features: head tensors + metadata that
/// `infer` needs; ISIC 2018's classes ([`save_model_for`] records another list).
pub fn save_model<B: Backend>(
    b: &B,
    path: &Path,
    head: &Head<B>,
    norm: &FeatureNorm,
    cfg: &TrainConfig,
    arch: Arch,
    backbone: &BackboneId,
) -> Result<()> {
    let list = ClassList::isic2018();
    save_model_for(b, path, head, norm, cfg, (arch, &list), backbone)
}

/// [`save_model`] of a head whose outputs are the classes of `list`.
pub fn save_model_for<B: Backend>(
    b: &B,
    path: &Path,
    head: &Head<B>,
    norm: &FeatureNorm,
    cfg: &TrainConfig,
    (arch, list): (Arch, &ClassList),
    backbone: &BackboneId,
) -> Result<()> {
    let mut named = head.named(b)?;
    let f = norm.mean.len();
    named.insert("input.mean".into(), Tensor::new(&[f], norm.mean.clone())?);
    named.insert("input.std".into(), Tensor::new(&[f], norm.std.clone())?);
    let meta = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("arch".to_string(), arch.name().to_string()),
        ("classes".to_string(), list.joined()),
        (
            "head".to_string(),
            serde_json::to_string(&head.dims[1..]).expect("ints"),
        ),
        ("batchnorm".to_string(), cfg.batchnorm.to_string()),
        (
            "resize".to_string(),
            cfg.preprocess.resize.name().to_string(),
        ),
        (
            "color_constancy".to_string(),
            cfg.preprocess.color_constancy.to_string(),
        ),
        ("backbone".to_string(), backbone.0.clone()),
        ("backbone_hash".to_string(), backbone.1.clone()),
        ("config".to_string(), cfg.to_json().to_string()),
    ]);
    let list: Vec<(&str, &Tensor)> = named.iter().map(|(k, v)| (k.as_str(), v)).collect();
    st::write(path, &list, &meta)
}

/// A model file written by `train`, ready for inference.
pub enum LoadedModel<B: Backend> {
    /// A head on frozen features of backbone weights kept in another file.
    Head(HeadModel<B>),
    /// A fine-tuned network carrying its own backbone.
    Net(NetModel<B>),
}

/// A fine-tuned network (format `skinengine-net-v1`).
pub struct NetModel<B: Backend> {
    pub net: Net<B>,
    pub head: HeadSpec,
    pub preprocess: Preprocess,
    /// Side of the square input images.
    pub size: u32,
    /// The classes of the outputs.
    pub classes: ClassList,
    /// The backbone weights fine-tuning started from: (file or "random-init", its hash).
    pub origin: BackboneId,
}

/// A head on frozen features (format `skinengine-head-v1`).
pub struct HeadModel<B: Backend> {
    pub head: Head<B>,
    pub norm: FeatureNorm,
    pub preprocess: Preprocess,
    /// The backbone's architecture (ResNet50 for files that do not record one).
    pub arch: Arch,
    /// (backbone file or "random-init", its hash)
    pub backbone: BackboneId,
    /// The classes of the outputs.
    pub classes: ClassList,
}

/// The class list a model file records (metadata `classes`); ISIC 2018's for files written
/// before lists were recorded.
fn recorded_classes(path: &Path, meta: &HashMap<String, String>) -> Result<ClassList> {
    match meta.get("classes") {
        None => Ok(ClassList::isic2018()),
        Some(c) => ClassList::parse(c)
            .map_err(|e| file_err(path, format!("bad metadata classes = {c:?}: {e}"))),
    }
}

/// Loads a model file written by `train` (either format).
pub fn load_model<B: Backend>(b: &B, path: &Path) -> Result<LoadedModel<B>> {
    let f = st::read(path)?;
    if f.metadata.get("format").map(String::as_str) == Some(FORMAT_NET) {
        return load_net_model(b, path, f).map(LoadedModel::Net);
    }
    let m = |k: &str| {
        f.metadata.get(k).cloned().ok_or_else(|| {
            file_err(
                path,
                format!("not a skinengine model: metadata '{k}' missing"),
            )
        })
    };
    if m("format")? != FORMAT {
        return Err(file_err(path, "not a skinengine model file (format)"));
    }
    // Files from before other backbones existed hold a head on ResNet50 features.
    let arch = match f.metadata.get("arch") {
        None => Arch::ResNet50,
        Some(a) => {
            Arch::parse(a).ok_or_else(|| file_err(path, format!("bad metadata arch = {a:?}")))?
        }
    };
    let features = arch.features();
    let list = recorded_classes(path, &f.metadata)?;
    let dims: Vec<usize> = serde_json::from_str(&m("head")?)
        .map_err(|e| file_err(path, format!("bad head metadata: {e}")))?;
    // Building the head allocates what the widths claim: check them against the file's own
    // tensors first (a width of zero would let a later layer claim any size).
    let mut prev = features;
    for (k, &o) in dims.iter().enumerate() {
        let name = format!("hidden.{k}.weight");
        match f.tensors.get(&name) {
            _ if o == 0 => {
                return Err(file_err(
                    path,
                    format!("bad head metadata {dims:?}: a layer of width 0"),
                ));
            }
            Some(t) if t.shape() == [o, prev] => {}
            Some(t) => {
                return Err(file_err(
                    path,
                    format!(
                        "tensor {name} has shape {:?}, the head metadata {dims:?} needs [{o}, {prev}]",
                        t.shape()
                    ),
                ));
            }
            None => {
                return Err(file_err(
                    path,
                    format!("missing tensor {name} (head metadata {dims:?})"),
                ));
            }
        }
        prev = o;
    }
    let mut head =
        Head::with_classes(b, features, &dims, m("batchnorm")? == "true", 0, list.len())?;
    head.load_named(b, &f.tensors, path)?;
    let vec_of = |k: &str| -> Result<Vec<f32>> {
        let t = f
            .tensors
            .get(k)
            .ok_or_else(|| file_err(path, format!("missing tensor {k}")))?;
        if t.shape() != [features] {
            return Err(file_err(
                path,
                format!(
                    "{k} has shape {:?}, expected [{features}] ({} features)",
                    t.shape(),
                    arch.pretty()
                ),
            ));
        }
        Ok(t.data().to_vec())
    };
    let norm = FeatureNorm {
        mean: vec_of("input.mean")?,
        std: vec_of("input.std")?,
    };
    let resize = match m("resize")?.as_str() {
        "crop" => ResizeMode::Crop,
        _ => ResizeMode::Squash,
    };
    Ok(LoadedModel::Head(HeadModel {
        head,
        norm,
        // Decoding is the reader's choice (infer/embed --scaled-decode), not recorded.
        preprocess: Preprocess {
            resize,
            color_constancy: m("color_constancy")? == "true",
            decode: Decode::default(),
        },
        arch,
        backbone: (m("backbone")?, m("backbone_hash")?),
        classes: list,
    }))
}

/// Writes a fine-tuned network's model file (format `skinengine-net-v1`) of ISIC 2018's
/// classes ([`save_net_model_for`] records another list).
pub fn save_net_model<B: Backend>(
    b: &B,
    path: &Path,
    net: &Net<B>,
    spec: &HeadSpec,
    cfg: &TrainConfig,
    origin: &BackboneId,
) -> Result<()> {
    save_net_model_for(b, path, net, (spec, &ClassList::isic2018()), cfg, origin)
}

/// [`save_net_model`] of a network whose outputs are the classes of `list`.
pub fn save_net_model_for<B: Backend>(
    b: &B,
    path: &Path,
    net: &Net<B>,
    (spec, list): (&HeadSpec, &ClassList),
    cfg: &TrainConfig,
    origin: &BackboneId,
) -> Result<()> {
    if spec.classes != list.len() {
        return Err(file_err(
            path,
            format!(
                "a head of {} outputs cannot be saved as the {} classes {}",
                spec.classes,
                list.len(),
                list.joined()
            ),
        ));
    }
    let named = net.state_dict(b)?;
    let meta = HashMap::from([
        ("format".to_string(), FORMAT_NET.to_string()),
        ("classes".to_string(), list.joined()),
        ("arch".to_string(), net.graph.arch.name().to_string()),
        ("pool".to_string(), spec.pool.name().to_string()),
        (
            "head".to_string(),
            serde_json::to_string(&spec.hidden).expect("ints"),
        ),
        ("batchnorm".to_string(), spec.batchnorm.to_string()),
        ("dropout".to_string(), spec.dropout.to_string()),
        ("image_size".to_string(), cfg.fine.image_size.to_string()),
        (
            "resize".to_string(),
            cfg.preprocess.resize.name().to_string(),
        ),
        (
            "color_constancy".to_string(),
            cfg.preprocess.color_constancy.to_string(),
        ),
        ("fine_tune".to_string(), cfg.fine.depth.name().to_string()),
        ("origin".to_string(), origin.0.clone()),
        ("origin_hash".to_string(), origin.1.clone()),
        ("config".to_string(), cfg.to_json().to_string()),
    ]);
    let list: Vec<(&str, &Tensor)> = named.iter().map(|(k, v)| (k.as_str(), v)).collect();
    st::write(path, &list, &meta)
}

fn load_net_model<B: Backend>(b: &B, path: &Path, f: st::TensorFile) -> Result<NetModel<B>> {
    let m = |k: &str| {
        f.metadata.get(k).cloned().ok_or_else(|| {
            file_err(
                path,
                format!("not a skinengine fine-tuned model: metadata '{k}' missing"),
            )
        })
    };
    let bad = |k: &str, v: &str| file_err(path, format!("bad metadata {k} = {v:?}"));
    let list = recorded_classes(path, &f.metadata)?;
    let arch_name = m("arch")?;
    let arch = Arch::parse(&arch_name).ok_or_else(|| bad("arch", &arch_name))?;
    let pool = match m("pool")?.as_str() {
        "avg" => Pool::Avg,
        "flatten" => Pool::Flatten,
        other => return Err(bad("pool", other)),
    };
    let hidden: Vec<usize> = serde_json::from_str(&m("head")?)
        .map_err(|_| bad("head", &m("head").unwrap_or_default()))?;
    let dropout: f64 = m("dropout")?.parse().map_err(|_| bad("dropout", ""))?;
    let size: u32 = m("image_size")?
        .parse()
        .map_err(|_| bad("image_size", ""))?;
    let spec = HeadSpec {
        pool,
        hidden,
        batchnorm: m("batchnorm")? == "true",
        dropout,
        classes: list.len(),
    };
    // The backbone part must be a complete, finite state dict of the architecture (classifier
    // aside), the head must have the shapes its metadata implies.
    let (backbone_sd, head_sd): (BTreeMap<String, Tensor>, BTreeMap<String, Tensor>) = f
        .tensors
        .into_iter()
        .partition(|(k, _)| !k.starts_with("head."));
    arch.validate(path, &backbone_sd)?;
    let input = spec
        .in_features(arch, size as usize)
        .map_err(|e| file_err(path, e.to_string()))?;
    spec.check(input, &head_sd)
        .map_err(|e| file_err(path, e.to_string()))?;
    let mut sd = backbone_sd;
    sd.extend(head_sd);
    let net = Net::from_graph(b, Graph::with_head(arch, &spec), &sd)?;
    let resize = match m("resize")?.as_str() {
        "crop" => ResizeMode::Crop,
        _ => ResizeMode::Squash,
    };
    Ok(NetModel {
        net,
        head: spec,
        preprocess: Preprocess {
            resize,
            color_constancy: m("color_constancy")? == "true",
            decode: Decode::default(),
        },
        size,
        origin: (m("origin")?, m("origin_hash")?),
        classes: list,
    })
}

/// Backbone weights of `arch` (or of the architecture `weights` holds, when `arch` is None)
/// and their identity; without a file, deterministic random weights of `arch` (default
/// ResNet50). The classifier tensors are left out.
pub fn backbone_weights(
    arch: Option<Arch>,
    weights: Option<&Path>,
) -> Result<(Arch, BTreeMap<String, Tensor>, BackboneId)> {
    let (arch, mut sd, id) = match weights {
        Some(p) => {
            let arch = match arch {
                Some(a) => a,
                None => {
                    let f = st::read_filtered(p, |n| !n.ends_with("num_batches_tracked"))?;
                    Arch::detect(&f.tensors).unwrap_or(Arch::ResNet50)
                }
            };
            let sd = arch.load_state_dict(p)?;
            let name = std::fs::canonicalize(p)
                .unwrap_or_else(|_| p.to_path_buf())
                .display()
                .to_string();
            (arch, sd, (name, features::file_hash(p)?))
        }
        None => {
            let arch = arch.unwrap_or(Arch::ResNet50);
            let id = if arch == Arch::ResNet50 {
                "random-init-seed0".to_string()
            } else {
                format!("random-init-{}-seed0", arch.name())
            };
            (
                arch,
                random_weights(arch, 0, None),
                ("random-init".into(), id),
            )
        }
    };
    let (cw, cb) = arch.classifier();
    sd.remove(cw);
    sd.remove(cb);
    Ok((arch, sd, id))
}

/// ResNet50 weights (classifier kept) and their identity (file name or "random-init", hash).
/// The frozen-feature paths use [`backbone_weights`], which takes every architecture.
pub fn backbone(weights: Option<&Path>) -> Result<(BTreeMap<String, Tensor>, BackboneId)> {
    match weights {
        Some(p) => {
            let sd = load_state_dict(p)?;
            let name = std::fs::canonicalize(p)
                .unwrap_or_else(|_| p.to_path_buf())
                .display()
                .to_string();
            Ok((sd, (name, features::file_hash(p)?)))
        }
        None => Ok((
            random_state_dict(0, None),
            ("random-init".into(), "random-init-seed0".into()),
        )),
    }
}
