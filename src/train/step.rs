//! One training step's rules, shared by the epoch loop, the checkpoint and scoring: the
//! per-epoch metrics record, the batch order of an epoch, and the one case in which a batch is
//! skipped (every sample has class weight 0, where the loss is undefined); any other error from
//! the loss is returned.

use serde_json::{Value, json};

use crate::error::Result;
use crate::rng::Rng;

/// Per-epoch record (metrics.json holds one per completed epoch).
#[derive(Clone, Debug, PartialEq)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    pub train_bmca: f64,
    pub train_mean_precision: f64,
    pub val_bmca: f64,
    pub val_mean_precision: f64,
}

impl EpochMetrics {
    pub fn to_json(&self) -> Value {
        json!({"epoch": self.epoch, "train_loss": self.train_loss, "val_loss": self.val_loss,
               "train_bmca": self.train_bmca, "train_mean_precision": self.train_mean_precision,
               "val_bmca": self.val_bmca, "val_mean_precision": self.val_mean_precision})
    }
    pub fn from_json(v: &Value) -> Option<Self> {
        let f = |k: &str| v.get(k).and_then(|x| x.as_f64());
        Some(EpochMetrics {
            epoch: v.get("epoch")?.as_u64()? as usize,
            train_loss: f("train_loss")?,
            val_loss: f("val_loss")?,
            train_bmca: f("train_bmca")?,
            train_mean_precision: f("train_mean_precision")?,
            val_bmca: f("val_bmca")?,
            val_mean_precision: f("val_mean_precision")?,
        })
    }
}

/// A batch's loss, or the one reason a batch has none.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BatchLoss<T> {
    Computed(T),
    /// Every sample of the batch has class weight 0: the loss is undefined and the batch is
    /// skipped.
    AllZeroWeight,
}

/// True when `weights` are valid (finite, >= 0), every label has one, and every label's
/// weight is 0: the batch the loss refuses as undefined.
pub fn all_zero_weight(labels: &[usize], weights: &[f32]) -> bool {
    !labels.is_empty()
        && weights.iter().all(|w| w.is_finite() && *w >= 0.0)
        && labels
            .iter()
            .all(|&y| weights.get(y).is_some_and(|&w| w == 0.0))
}

/// Skip or stop: [`BatchLoss::AllZeroWeight`] (without calling `loss`) for a batch whose labels
/// all weigh 0, else `loss()`, whose every error is returned.
pub fn batch_loss<T>(
    labels: &[usize],
    weights: &[f32],
    loss: impl FnOnce() -> Result<T>,
) -> Result<BatchLoss<T>> {
    if all_zero_weight(labels, weights) {
        return Ok(BatchLoss::AllZeroWeight);
    }
    loss().map(BatchLoss::Computed)
}

/// The batches of one epoch: a permutation from (seed, epoch), cut into `batch_size` runs; a
/// trailing single sample joins the previous batch (batch norm needs two samples).
pub fn epoch_batches(n: usize, batch_size: usize, seed: u64, epoch: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..n).collect();
    Rng::new(seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)).shuffle(&mut order);
    let mut batches: Vec<Vec<usize>> = order.chunks(batch_size).map(|c| c.to_vec()).collect();
    if batches.len() > 1 && batches.last().is_some_and(|l| l.len() == 1) {
        let last = batches.pop().unwrap();
        batches.last_mut().unwrap().extend(last);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::{BatchLoss, all_zero_weight, batch_loss, epoch_batches};
    use crate::error::invalid;

    #[test]
    fn only_an_all_zero_weight_batch_is_skipped() {
        let mut w = [1.0f32; 7];
        w[5] = 0.0;
        w[6] = 0.0;
        // Labels all of weight 0: skipped without computing the loss.
        let r = batch_loss(&[5, 6, 5], &w, || -> crate::Result<f64> {
            panic!("the loss of an all-zero-weight batch is not computed")
        })
        .unwrap();
        assert_eq!(r, BatchLoss::AllZeroWeight);
        // One sample with weight: the loss is computed.
        let r = batch_loss(&[5, 0], &w, || Ok(0.5)).unwrap();
        assert_eq!(r, BatchLoss::Computed(0.5));
        // Any other error from the loss stops training with its message.
        let e = batch_loss(&[0, 1], &w, || -> crate::Result<f64> {
            Err(invalid("cross_entropy", "planted: device lost"))
        })
        .unwrap_err();
        assert!(e.to_string().contains("planted: device lost"), "{e}");
        // Invalid weights or labels are not a zero-weight batch: the loss's error comes back.
        assert!(!all_zero_weight(&[0], &[0.0, f32::NAN]));
        assert!(!all_zero_weight(&[0], &[-0.5, 0.0]));
        assert!(!all_zero_weight(&[3], &[0.0, 0.0]));
        assert!(!all_zero_weight(&[], &[0.0]));
        assert!(all_zero_weight(&[1, 1], &[1.0, 0.0]));
    }

    #[test]
    fn a_trailing_single_sample_joins_the_previous_batch() {
        let b = epoch_batches(9, 4, 3, 0);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), [4, 5]);
        let mut all: Vec<usize> = b.concat();
        all.sort();
        assert_eq!(all, (0..9).collect::<Vec<_>>());
        assert_ne!(epoch_batches(9, 4, 3, 0), epoch_batches(9, 4, 3, 1));
    }
}
