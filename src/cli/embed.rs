//! `skinengine embed`: ResNet50 features (and optionally logits) for image files, written as a
//! safetensors file whose row order is the JSON array in metadata key `image_ids`.

use super::Device;
use crate::backend::Backend;
use crate::data::files::collect_images;
use crate::data::image::{INPUT_SIZE, ResizeMode, preprocess};
use crate::error::{Result, file_err};
use crate::model::resnet50::{FEATURES, ResNet50, load_state_dict};
use crate::tensor::Tensor;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct EmbedArgs {
    /// ResNet50 weights (safetensors, torchvision/timm names; f32, f16 or bf16).
    #[arg(long)]
    pub weights: PathBuf,
    /// Image files and/or folders (searched recursively for .jpg, .jpeg, .png).
    #[arg(long, num_args = 1.., required = true)]
    pub images: Vec<PathBuf>,
    /// Output safetensors file: `features` [N, 2048] (and `logits` [N, K] with --logits).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value_t = ResizeMode::Squash)]
    pub resize: ResizeMode,
    /// Images per forward pass.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    #[arg(long, value_enum, default_value_t = Device::Auto)]
    pub device: Device,
    /// Also write the fc outputs (the weights must contain fc.weight and fc.bias).
    #[arg(long)]
    pub logits: bool,
    /// Fail on the first unreadable image instead of skipping it.
    #[arg(long)]
    pub strict: bool,
    /// Worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// What an embedding run produced.
pub struct Embedded {
    pub ids: Vec<String>,
    pub features: Tensor,
    pub logits: Option<Tensor>,
    /// (file, reason) of every image that could not be used.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Embeds every image with `model`, batch by batch; bad images are skipped and listed (or an
/// error with `strict`).
pub fn embed_images<B: Backend>(
    b: &B,
    model: &ResNet50<B>,
    images: &[(String, PathBuf)],
    mode: ResizeMode,
    batch: usize,
    want_logits: bool,
    strict: bool,
) -> Result<Embedded> {
    let s = INPUT_SIZE as usize;
    let mut ids = Vec::new();
    let mut feats: Vec<f32> = Vec::new();
    let mut logits: Vec<f32> = Vec::new();
    let mut k = 0;
    let mut skipped = Vec::new();
    let bar = ProgressBar::new(images.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} images  {per_sec}  ETA {eta}")
            .expect("static template"),
    );
    let decode = |(_, p): &(String, PathBuf)| preprocess(p, mode);
    crate::data::prefetch::decode_ahead(images, batch, decode, |_, chunk, decoded| {
        let mut x = Vec::with_capacity(chunk.len() * 3 * s * s);
        let mut batch_ids = Vec::new();
        for ((id, path), r) in chunk.iter().zip(decoded) {
            match r {
                Ok(t) => {
                    x.extend_from_slice(t.data());
                    batch_ids.push(id.clone());
                }
                Err(e) if strict => return Err(e),
                Err(e) => skipped.push((path.clone(), e.to_string())),
            }
        }
        bar.inc(chunk.len() as u64);
        if batch_ids.is_empty() {
            return Ok(());
        }
        let x = Tensor::new(&[batch_ids.len(), 3, s, s], x)?;
        let out = model.forward(b, &b.upload(&x)?, want_logits)?;
        feats.extend_from_slice(b.download(&out.features)?.data());
        if let Some(l) = out.logits {
            let l = b.download(&l)?;
            k = l.shape()[1];
            logits.extend_from_slice(l.data());
        }
        ids.extend(batch_ids);
        Ok(())
    })?;
    bar.finish_and_clear();
    let n = ids.len();
    Ok(Embedded {
        features: Tensor::new(&[n, FEATURES], feats)?,
        logits: if want_logits {
            Some(Tensor::new(&[n, k], logits)?)
        } else {
            None
        },
        ids,
        skipped,
    })
}

pub fn run(args: &EmbedArgs) -> Result<()> {
    super::set_threads(args.threads);
    let resolved = args.device.resolve()?;
    let images = collect_images(&args.images)?;
    let sd = load_state_dict(&args.weights)?;
    if args.logits && !sd.contains_key("fc.weight") {
        return Err(file_err(
            &args.weights,
            "--logits asked for, but the weights have no fc.weight / fc.bias",
        ));
    }
    let t0 = Instant::now();
    let e = crate::with_backend!(resolved, |b| {
        let model = ResNet50::from_state_dict(b, &sd)?;
        embed_images(
            b,
            &model,
            &images,
            args.resize,
            args.batch,
            args.logits,
            args.strict,
        )?
    });
    let secs = t0.elapsed().as_secs_f64();
    if e.ids.is_empty() {
        return Err(file_err(
            &args.out,
            "no image could be read; nothing written",
        ));
    }
    let mut meta = HashMap::new();
    meta.insert(
        "image_ids".to_string(),
        serde_json::to_string(&e.ids).expect("strings serialise"),
    );
    meta.insert("resize".to_string(), args.resize.name().to_string());
    let wname = args
        .weights
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    meta.insert("weights".to_string(), wname);
    let mut tensors = vec![("features", &e.features)];
    if let Some(l) = &e.logits {
        tensors.push(("logits", l));
    }
    crate::io::safetensors::write(&args.out, &tensors, &meta)?;
    eprintln!(
        "embedded {} images in {secs:.1} s ({:.1} images/s) -> {}",
        e.ids.len(),
        e.ids.len() as f64 / secs,
        args.out.display()
    );
    if !e.skipped.is_empty() {
        eprintln!("skipped {} unreadable images:", e.skipped.len());
        for (_, why) in &e.skipped {
            eprintln!("  {why}");
        }
    }
    Ok(())
}
