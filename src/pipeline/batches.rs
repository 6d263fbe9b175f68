//! The one batch loop behind embed, infer and training's feature pass: images are decoded on
//! every core up to two batches ahead of the compute, into the backend's (pinned, on CUDA) host
//! buffers ([`decode_ahead_host`]), each batch goes through the backbone and its
//! features (and logits, when asked) come back to the host. One rule for bad images holds for
//! all three: without `strict` a bad image is skipped and listed with its file and the reason;
//! with `strict` the first bad image stops the run with an error naming the file.

use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};

use super::model::{EvalModel, Outputs};
use crate::backend::Backend;
use crate::data::prefetch::decode_ahead_host;
use crate::error::{Error, Result, file_err};
use crate::tensor::Tensor;

/// An image that could not be used, and why (`reason` is the decoder's message, which names
/// the file too).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub file: PathBuf,
    pub reason: String,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// "skipped N unreadable images:" and one indented line per image (the reasons).
pub fn describe_skipped(skipped: &[Skipped]) -> String {
    let mut s = format!("skipped {} unreadable images:", skipped.len());
    for x in skipped {
        s += "\n  ";
        s += &x.reason;
    }
    s
}

/// How the batch loop runs.
#[derive(Clone, Copy, Debug)]
pub struct BatchOptions {
    /// Items per forward pass (at least 1).
    pub batch: usize,
    /// The first bad image is an error instead of being skipped.
    pub strict: bool,
    /// Also compute the backbone's fc outputs.
    pub logits: bool,
    /// indicatif template of the progress bar over items; `None` shows none.
    pub progress: Option<&'static str>,
    /// Side of the square images `decode` produces (224 for ImageNet weights).
    pub size: u32,
}

/// One computed batch: the items that decoded, in order, with their backbone outputs on the
/// host. Each item contributes `views` consecutive rows (several for test-time augmentation).
pub struct Computed<'a, T> {
    /// Index of the batch among the batches with at least one good item.
    pub index: usize,
    pub items: Vec<&'a T>,
    pub views: usize,
    /// [items * views, 2048]
    pub features: Tensor,
    /// [items * views, K] when logits were asked for.
    pub logits: Option<Tensor>,
}

/// What to do with a bad image under the rule above: `Ok(skipped)` to list it, or the error
/// that stops the run (naming the file).
pub fn bad_image(file: &Path, e: Error, strict: bool) -> Result<Skipped> {
    let reason = e.to_string();
    if !strict {
        return Ok(Skipped {
            file: file.to_path_buf(),
            reason,
        });
    }
    if reason.contains(&file.display().to_string()) {
        Err(e)
    } else {
        Err(file_err(file, reason))
    }
}

/// Decodes `items` one batch ahead (`decode` gives an item's images, each 3 x size x size, as one
/// flat vector), runs each batch's good items through `model` and hands the result, downloaded
/// to the host, to `consume`. `file_of` names an item's file (for bad items). Returns the bad
/// items, in order. An error from `consume` (or a bad item under `strict`) stops everything and
/// is returned.
pub fn run_batches<'a, B, T, D, F, C>(
    b: &B,
    model: &dyn EvalModel<B>,
    items: &'a [T],
    opts: &BatchOptions,
    file_of: F,
    decode: D,
    mut consume: C,
) -> Result<Vec<Skipped>>
where
    B: Backend,
    T: Sync,
    F: Fn(&T) -> PathBuf,
    D: Fn(&T) -> Result<Vec<f32>> + Sync,
    C: FnMut(Computed<'a, T>) -> Result<()>,
{
    let mut index = 0;
    run_batches_outputs(
        b,
        model,
        items,
        opts,
        file_of,
        decode,
        |good, views, out| {
            let features = b.download(&out.features)?;
            let logits = match &out.logits {
                Some(l) => Some(b.download(l)?),
                None => None,
            };
            index += 1;
            consume(Computed {
                index: index - 1,
                views,
                items: good,
                features,
                logits,
            })
        },
    )
}

/// [`run_batches`] with the model's outputs left on the backend: `consume(items, views per
/// item, outputs)` for each batch with at least one good item. (`Computed::index` of
/// [`run_batches`] counts those batches.)
pub fn run_batches_outputs<'a, B, T, D, F, C>(
    b: &B,
    model: &dyn EvalModel<B>,
    items: &'a [T],
    opts: &BatchOptions,
    file_of: F,
    decode: D,
    mut consume: C,
) -> Result<Vec<Skipped>>
where
    B: Backend,
    T: Sync,
    F: Fn(&T) -> PathBuf,
    D: Fn(&T) -> Result<Vec<f32>> + Sync,
    C: FnMut(Vec<&'a T>, usize, Outputs<B::Tensor>) -> Result<()>,
{
    let s = opts.size as usize;
    let image_len = 3 * s * s;
    let bar = opts.progress.map(|template| {
        let bar = ProgressBar::new(items.len() as u64);
        bar.set_style(ProgressStyle::with_template(template).expect("static template"));
        bar
    });
    let mut skipped = Vec::new();
    // Decoded over every core up to two batches ahead, straight into the backend's host
    // buffers (pinned on CUDA: the upload is one asynchronous DMA).
    let alloc = |len: usize| b.host_buffer(len);
    decode_ahead_host(items, opts.batch, alloc, decode, |hb| {
        let first = hb.index * opts.batch.max(1);
        for (i, e) in hb.failed {
            skipped.push(bad_image(&file_of(&items[first + i]), e, opts.strict)?);
        }
        if let Some(bar) = &bar {
            bar.inc(hb.items.len() as u64);
        }
        if hb.good.is_empty() {
            return Ok(hb.buf);
        }
        let good: Vec<&'a T> = hb.good.iter().map(|&i| &items[first + i]).collect();
        let rows = hb.offsets.last().unwrap() / image_len;
        let xt = b.upload_host(&hb.buf, &[rows, 3, s, s])?;
        let out = model.eval_forward(b, &xt, opts.logits)?;
        let views = rows / good.len();
        consume(good, views, out)?;
        // Nothing may still be copying out of the buffer when it is refilled.
        b.host_fence()?;
        Ok(hb.buf)
    })?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(skipped)
}

#[cfg(test)]
mod tests {
    use super::bad_image;
    use crate::error::{file_err, invalid};
    use std::path::Path;

    #[test]
    fn bad_images_are_listed_or_stop_the_run_naming_the_file() {
        let f = Path::new("/data/ISIC_1.jpg");
        let s = bad_image(f, file_err(f, "truncated"), false).unwrap();
        assert_eq!(s.file, f);
        assert!(s.reason.contains("ISIC_1.jpg") && s.reason.contains("truncated"));
        let e = bad_image(f, file_err(f, "truncated"), true).unwrap_err();
        assert_eq!(e.to_string(), "/data/ISIC_1.jpg: truncated");
        // An error that does not name the file gets it added.
        let e = bad_image(f, invalid("decode", "bad marker"), true).unwrap_err();
        assert!(e.to_string().contains("ISIC_1.jpg"), "{e}");
        assert!(e.to_string().contains("bad marker"), "{e}");
    }
}
