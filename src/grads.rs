//! `skinengine grads`: one forward and backward pass through a network's own ImageNet
//! classifier (fc / classifier.6) with the mean cross-entropy over given images and labels;
//! writes the loss and the gradient of every parameter under its torchvision name. A check
//! anyone can run against PyTorch autograd (tools/torch_grads.py reads the same output file:
//! it holds the exact input tensor and labels too).

use crate::backend::Backend;
use crate::data::image::{ResizeMode, preprocess};
use crate::error::{Result, file_err, invalid};
use crate::io::safetensors as st;
use crate::model::arch::Arch;
use crate::model::net::{BnMode, Net};
use crate::tensor::{ShapeFmt, Tensor};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

pub struct GradsConfig {
    pub weights: PathBuf,
    /// Image files, or one safetensors file holding `images` [N, 3, H, W] (normalised).
    pub images: Vec<PathBuf>,
    pub labels: Vec<usize>,
    pub bn: BnMode,
    /// None: the architecture the weights hold.
    pub backbone: Option<Arch>,
    pub resize: ResizeMode,
}

pub struct GradsResult {
    pub arch: Arch,
    pub loss: f64,
    pub images: Tensor,
    pub grads: BTreeMap<String, Tensor>,
}

/// The input batch: decoded and preprocessed image files (224x224, ImageNet normalisation), or
/// the `images` tensor of a safetensors file.
pub fn load_images(paths: &[PathBuf], resize: ResizeMode) -> Result<Tensor> {
    if let [p] = paths
        && p.extension().is_some_and(|e| e == "safetensors")
    {
        let f = st::read(p)?;
        let Some(t) = f.tensors.get("images") else {
            return Err(file_err(p, "holds no tensor named `images`"));
        };
        if t.rank() != 4 || t.shape()[1] != 3 {
            return Err(file_err(
                p,
                format!("`images` is {}, expected [N, 3, H, W]", ShapeFmt(t.shape())),
            ));
        }
        return Ok(t.clone());
    }
    let mut data = Vec::new();
    let mut shape = Vec::new();
    for p in paths {
        let t = preprocess(p, resize)?;
        shape = t.shape().to_vec();
        data.extend_from_slice(t.data());
    }
    let mut full = vec![paths.len()];
    full.extend(shape);
    Tensor::new(&full, data)
}

fn weights_arch(path: &Path, sd: &BTreeMap<String, Tensor>, asked: Option<Arch>) -> Result<Arch> {
    if let Some(a) = asked {
        a.validate(path, sd)?;
        return Ok(a);
    }
    Arch::detect(sd).ok_or_else(|| {
        // Validate against ResNet50 for the itemised list of what does not fit.
        match Arch::ResNet50.validate(path, sd) {
            Err(e) => e,
            Ok(()) => file_err(path, "not a known backbone"),
        }
    })
}

pub fn grads<B: Backend>(b: &B, cfg: &GradsConfig) -> Result<GradsResult> {
    let f = st::read_filtered(&cfg.weights, |n| !n.ends_with("num_batches_tracked"))?;
    let sd = f.tensors;
    let arch = weights_arch(&cfg.weights, &sd, cfg.backbone)?;
    let (cw, _) = arch.classifier();
    let Some(k) = sd.get(cw).map(|t| t.shape()[0]) else {
        return Err(file_err(
            &cfg.weights,
            format!(
                "has no classifier ({cw}): grads takes the loss through the weights' own classifier"
            ),
        ));
    };
    let images = load_images(&cfg.images, cfg.resize)?;
    let n = images.shape()[0];
    if cfg.labels.len() != n {
        return Err(invalid(
            "grads",
            format!("{n} images but {} labels were given", cfg.labels.len()),
        ));
    }
    if let Some(&l) = cfg.labels.iter().find(|&&l| l >= k) {
        return Err(invalid(
            "grads",
            format!("label {l} is not below the classifier's {k} classes"),
        ));
    }
    if cfg.bn == BnMode::Train && arch.resnet().is_some() && n < 2 {
        // A single image still has several values per channel until layer4 at 1x1.
        let s = images.shape();
        if s[2] < 64 || s[3] < 64 {
            return Err(invalid(
                "grads",
                "training-mode batch norm on one small image leaves one value per channel; use --bn eval or more images",
            ));
        }
    }
    let net = Net::from_state_dict(b, arch, &sd, true)?;
    let x = b.upload(&images)?;
    let (loss, g) = net.loss_and_grads(b, &x, &cfg.labels, cfg.bn)?;
    let mut grads = BTreeMap::new();
    for (name, t) in g {
        grads.insert(name, b.download(&t)?);
    }
    Ok(GradsResult {
        arch,
        loss,
        images,
        grads,
    })
}

/// Writes `loss` [1], `images`, `labels` [N] (as f32) and every gradient under its name.
pub fn write(
    path: &Path,
    r: &GradsResult,
    labels: &[usize],
    bn: BnMode,
    device: &str,
) -> Result<()> {
    let loss = Tensor::new(&[1], vec![r.loss as f32])?;
    let lab = Tensor::new(&[labels.len()], labels.iter().map(|&l| l as f32).collect())?;
    let mut named: Vec<(&str, &Tensor)> =
        vec![("loss", &loss), ("images", &r.images), ("labels", &lab)];
    named.extend(r.grads.iter().map(|(k, v)| (k.as_str(), v)));
    let meta: HashMap<String, String> = [
        ("arch", r.arch.name().to_string()),
        ("bn", bn.name().to_string()),
        ("device", device.to_string()),
        ("loss_f64", format!("{:.17e}", r.loss)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    st::write(path, &named, &meta)
}
