//! `infer --heatmaps DIR [--heatmap-class CODE] [--heatmap-raw]`: the probabilities `infer`
//! writes (the same ops, so the same CSV; test-time augmentation included) and, per image, the
//! Grad-CAM map of the predicted (or the named) class over the original image as DIR/ID.png,
//! with `raw` also the map itself as DIR/ID.safetensors. See [`super::gradcam`] for the map.

use std::collections::HashMap;
use std::path::PathBuf;

use rayon::prelude::*;

use super::batches::bad_image;
use super::gradcam::{Explained, Explainer};
use super::heatmap::{write_png, write_raw};
use super::infer::{InferConfig, Inferred};
use crate::backend::Backend;
use crate::classes::ClassList;
use crate::data::files::collect_images;
use crate::data::image::load_rgb;
use crate::data::prefetch::decode_ahead;
use crate::error::{Result, file_err, invalid};
use crate::tensor::Tensor;

/// Where and what heat maps are written.
#[derive(Clone, Debug)]
pub struct HeatmapConfig {
    pub dir: PathBuf,
    /// The code of the class every map explains (any case), checked against the model's own
    /// class list once it is loaded ([`parse_class`]); `None`: each image's predicted class.
    pub class: Option<String>,
    /// Also the raw map (h x w f32) as safetensors.
    pub raw: bool,
}

/// What was written besides the probabilities.
pub struct Heatmaps {
    pub written: usize,
    /// Images whose map is zero everywhere (no positive evidence for the class anywhere); their
    /// PNG is the image under the colour map's coldest colour.
    pub all_zero: Vec<String>,
}

/// The index of a class code as `--heatmap-class` takes it (a code of the model's list `list`,
/// any case), or an error listing that list's codes.
pub fn parse_class(list: &ClassList, code: &str) -> Result<usize> {
    let codes = list.codes();
    codes
        .iter()
        .position(|c| c.eq_ignore_ascii_case(code.trim()))
        .ok_or_else(|| {
            invalid(
                "--heatmap-class",
                format!(
                    "unknown class code '{code}': expected one of {}",
                    codes.join(", ")
                ),
            )
        })
}

/// [`super::infer`] and the heat maps of `heat`.
pub fn infer_with_heatmaps<B: Backend>(
    b: &B,
    cfg: &InferConfig,
    heat: &HeatmapConfig,
) -> Result<(Inferred, Heatmaps)> {
    let ex = Explainer::load(b, &cfg.model, cfg.weights.as_deref())?;
    // Checked before any image is read or folder made: the codes are the model's own.
    let class = heat
        .class
        .as_deref()
        .map(|c| parse_class(&ex.classes, c))
        .transpose()?;
    if let (super::gradcam::CamModel::Net(_), Some(_)) = (&ex.model, &cfg.weights) {
        eprintln!(
            "note: {} is a fine-tuned model carrying its own backbone; --weights is not used",
            cfg.model.display()
        );
    }
    let mut images = collect_images(&cfg.images)?;
    if let Some(s) = &cfg.shard {
        images.retain(|(id, _)| s.contains(id));
    }
    std::fs::create_dir_all(&heat.dir)
        .map_err(|e| file_err(&heat.dir, format!("cannot create folder: {e}")))?;
    let (s, views) = (ex.size as usize, cfg.tta.views());
    let (mut ids, mut probs, mut skipped, mut all_zero) = (vec![], vec![], vec![], vec![]);
    // The same decoding as `infer` without heat maps, so the CSV is the same.
    let pp = cfg.preprocess(&ex.preprocess);
    let decode = |(_, p): &(String, PathBuf)| cfg.tta.decode(p, &pp, ex.size);
    decode_ahead(&images, cfg.batch, decode, |index, _, decoded| {
        let first = index * cfg.batch.max(1);
        let (mut x, mut good) = (Vec::new(), Vec::new());
        for (j, r) in decoded.into_iter().enumerate() {
            let item = &images[first + j];
            match r {
                Ok(pixels) => {
                    x.extend_from_slice(&pixels);
                    good.push(item);
                }
                Err(e) => skipped.push(bad_image(&item.1, e, cfg.strict)?),
            }
        }
        if good.is_empty() {
            return Ok(());
        }
        let x = Tensor::new(&[good.len() * views, 3, s, s], x)?;
        let explained = ex.explain(b, &x, views, class)?;
        // Drawing and encoding (a decode of the original and a PNG encode each) in parallel.
        good.par_iter()
            .zip(&explained)
            .try_for_each(|((id, path), e)| write_one(&ex, heat, id, path, e))?;
        for ((id, _), e) in good.into_iter().zip(explained) {
            if e.cam.max() == 0.0 {
                all_zero.push(id.clone());
            }
            ids.push(id.clone());
            probs.push(e.probs);
        }
        Ok(())
    })?;
    let written = ids.len();
    Ok((
        Inferred {
            // The model's list: Inferred::write_csv then writes the columns plain `infer` does
            // (ISIC 2019's untrained UNK included).
            classes: ex.classes,
            ids,
            probs,
            skipped,
        },
        Heatmaps { written, all_zero },
    ))
}

/// DIR/ID.png (and DIR/ID.safetensors with `raw`) of one explained image.
fn write_one<B: Backend>(
    ex: &Explainer<B>,
    heat: &HeatmapConfig,
    id: &str,
    path: &std::path::Path,
    e: &Explained,
) -> Result<()> {
    let original = load_rgb(path)?;
    write_png(
        &heat.dir.join(format!("{id}.png")),
        &ex.overlay(&original, &e.cam),
    )?;
    if heat.raw {
        let meta = HashMap::from([
            ("image".to_string(), id.to_string()),
            ("class".to_string(), ex.classes.code(e.class).to_string()),
            (
                "map".to_string(),
                "last convolutional block (ResNet: layer4 output; VGG19: features.35 ReLU)"
                    .to_string(),
            ),
            (
                "what".to_string(),
                "Grad-CAM: ReLU(sum_k alpha_k A_k), alpha_k = spatial mean of d(class logit)/dA_k; not normalised".to_string(),
            ),
            ("image_size".to_string(), ex.size.to_string()),
        ]);
        write_raw(&heat.dir.join(format!("{id}.safetensors")), &e.cam, &meta)?;
    }
    Ok(())
}
