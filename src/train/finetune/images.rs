//! Images for fine-tuning, decoded on the CPU (in parallel, one batch ahead of the compute):
//! training views with a fresh augmentation per epoch, drawn from (seed, epoch, view name) so
//! a run repeats and resumes exactly; evaluation views resized as the model file records.

use crate::data::augment::{self, AugmentConfig};
use crate::data::dataset::Dataset;
use crate::data::image::{Preprocess, view_rgb};
use crate::data::input::view_into;
use crate::data::views::View;
use crate::error::Result;

/// How images become tensors in a fine-tuning run.
#[derive(Clone, Copy, Debug)]
pub struct ImageRecipe {
    pub preprocess: Preprocess,
    /// None: the fixed views, resized as in evaluation.
    pub augment: Option<AugmentConfig>,
    pub size: u32,
    pub seed: u64,
}

impl ImageRecipe {
    /// Training view `v` of `ds` in `epoch`: the view's own transform (mirror, the seed's
    /// crops), colour constancy, then this epoch's random augmentation (crop + resize, flips,
    /// quarter turns, jitter) or a plain resize; normalised, [3, size, size] flat. A random
    /// crop may zoom into a quarter of the image, so augmented views decode at full size; the
    /// fixed views follow `preprocess.decode` (full size by default), as evaluation does.
    pub fn train_image(&self, ds: &Dataset, v: &View, epoch: usize) -> Result<Vec<f32>> {
        let path = &ds.samples[v.sample].path;
        let s = self.size as usize;
        let mut out = vec![0.0f32; 3 * s * s];
        match &self.augment {
            Some(cfg) => {
                let img = view_rgb(path, &v.transform, &self.preprocess)?;
                let a = augment::draw(cfg, self.seed, epoch as u64, &v.name)?;
                augment::apply_into(&img, &a, self.size, &mut out)?;
            }
            None => view_into(path, &v.transform, &self.preprocess, self.size, &mut out)?,
        }
        Ok(out)
    }

    /// Evaluation view `v` of `ds`: the view's transform, colour constancy, resize, normalise.
    pub fn eval_image(&self, ds: &Dataset, v: &View) -> Result<Vec<f32>> {
        let s = self.size as usize;
        let mut out = vec![0.0f32; 3 * s * s];
        view_into(
            &ds.samples[v.sample].path,
            &v.transform,
            &self.preprocess,
            self.size,
            &mut out,
        )?;
        Ok(out)
    }
}
