//! The model file `train` writes and `infer` reads (RUN/model.safetensors, format
//! `skinengine-head-v1`): the head's tensors, the feature standardisation (`input.mean`,
//! `input.std`) and metadata: classes, head widths, batch norm, preprocessing, the training
//! config, and the backbone it was trained on (file or "random-init") with that file's hash,
//! so inference can refuse other backbone weights.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::config::TrainConfig;
use super::features;
use super::head::Head;
use super::norm::FeatureNorm;
use crate::backend::Backend;
use crate::classes;
use crate::data::image::{Preprocess, ResizeMode};
use crate::error::{Result, file_err};
use crate::io::safetensors as st;
use crate::model::init::random_state_dict;
use crate::model::resnet50::{FEATURES, load_state_dict};
use crate::tensor::Tensor;

/// The model file's name in a run folder.
pub const MODEL: &str = "model.safetensors";
const FORMAT: &str = "skinengine-head-v1";

/// The backbone a model was trained on: (weights file or "random-init", its hash).
pub type BackboneId = (String, String);

/// Writes the model file: head tensors + metadata that `infer` needs.
pub fn save_model<B: Backend>(
    b: &B,
    path: &Path,
    head: &Head<B>,
    norm: &FeatureNorm,
    cfg: &TrainConfig,
    backbone: &BackboneId,
) -> Result<()> {
    let mut named = head.named(b)?;
    named.insert(
        "input.mean".into(),
        Tensor::new(&[FEATURES], norm.mean.clone())?,
    );
    named.insert(
        "input.std".into(),
        Tensor::new(&[FEATURES], norm.std.clone())?,
    );
    let meta = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("classes".to_string(), classes::CODES.join(",")),
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
pub struct LoadedModel<B: Backend> {
    pub head: Head<B>,
    pub norm: FeatureNorm,
    pub preprocess: Preprocess,
    /// (backbone file or "random-init", its hash)
    pub backbone: BackboneId,
}

/// Loads a model file written by `train`.
pub fn load_model<B: Backend>(b: &B, path: &Path) -> Result<LoadedModel<B>> {
    let f = st::read(path)?;
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
    let dims: Vec<usize> = serde_json::from_str(&m("head")?)
        .map_err(|e| file_err(path, format!("bad head metadata: {e}")))?;
    let mut head = Head::new(b, FEATURES, &dims, m("batchnorm")? == "true", 0)?;
    head.load_named(b, &f.tensors, path)?;
    let vec_of = |k: &str| -> Result<Vec<f32>> {
        let t = f
            .tensors
            .get(k)
            .ok_or_else(|| file_err(path, format!("missing tensor {k}")))?;
        t.expect_shape("load_model", k, &[FEATURES])?;
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
    Ok(LoadedModel {
        head,
        norm,
        preprocess: Preprocess {
            resize,
            color_constancy: m("color_constancy")? == "true",
        },
        backbone: (m("backbone")?, m("backbone_hash")?),
    })
}

/// The backbone state dict and its identity (file name or "random-init", hash).
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
