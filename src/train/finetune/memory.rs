//! Will a training batch fit? Before the first epoch, one training step on 2 images is
//! profiled (2, not 1: training-mode BN after a dense layer needs two values per channel): the
//! forward peak ([`Tape::peak_bytes`]) and, at every backward step, the activations held
//! (proportional to the batch) and the parameter gradients made so far (not), from
//! [`Net::backward_profiled`]. A step's peak at batch N is then the largest of
//! `fixed + per_image * N` over those points, exactly for this network, input size and trained
//! depth. With the backend's free memory known, a batch that would not fit stops the run before
//! it starts, saying which batch would ("batch of N does not fit ... use --batch-size M"),
//! instead of failing in the middle of an epoch. Weights, optimiser moments and the frozen part
//! are already allocated when this runs, so they are not in the free memory.
//!
//! [`Tape::peak_bytes`]: crate::model::net::Tape::peak_bytes

use crate::backend::Backend;
use crate::error::{Result, invalid};
use crate::model::net::{BnMode, Net};
use crate::tensor::Tensor;

/// A training step's memory: its peak at batch N is the largest `fixed + per_image * N` over
/// the points (one per step of the pass).
#[derive(Clone, Debug, PartialEq)]
pub struct StepMemory {
    /// (fixed bytes, bytes per image) at each profiled point.
    pub points: Vec<(u64, u64)>,
}

/// Part of the free memory a plan may use: allocator rounding, kernel workspaces and the
/// decode-ahead batch need the rest.
pub const USABLE: f64 = 0.9;

impl StepMemory {
    /// The step's peak bytes at batch `images`.
    pub fn bytes(&self, images: usize) -> u64 {
        self.points
            .iter()
            .map(|&(fixed, per)| fixed + per * images as u64)
            .max()
            .unwrap_or(0)
    }

    /// The largest batch that fits in `free` bytes (0: not even one image).
    pub fn largest_batch(&self, free: u64) -> usize {
        let usable = (free as f64 * USABLE) as u64;
        self.points
            .iter()
            .map(|&(fixed, per)| {
                usable
                    .checked_sub(fixed)
                    .map_or(0, |rest| (rest / per.max(1)) as usize)
            })
            .min()
            .unwrap_or(0)
    }

    /// Ok when a batch of `batch` images fits in `free` bytes; otherwise the error that says
    /// what would fit (with `--accumulate` to keep the effective batch).
    pub fn check(&self, batch: usize, free: u64, device: &str) -> Result<()> {
        let need = self.bytes(batch);
        if need as f64 <= free as f64 * USABLE {
            return Ok(());
        }
        let gb = |b: u64| b as f64 / 1e9;
        let fit = self.largest_batch(free);
        let advice = if fit == 0 {
            "not even one image fits: use a smaller --image-size, a shallower --fine-tune, or a smaller backbone".to_string()
        } else {
            format!(
                "use --batch-size {fit} (with --accumulate {} for an effective batch of {batch} or more)",
                batch.div_ceil(fit)
            )
        };
        Err(invalid(
            "train",
            format!(
                "batch of {batch} does not fit: a training step needs about {:.2} GB, {device} has {:.2} GB free; {advice}",
                gb(need),
                gb(free)
            ),
        ))
    }
}

/// Profiles one training step on 2 images of `size` x `size` (forward from node `from` in `bn`
/// mode, backward to every trained parameter; nothing is updated).
pub fn measure<B: Backend>(
    b: &B,
    net: &Net<B>,
    from: usize,
    bn: BnMode,
    size: usize,
) -> Result<StepMemory> {
    let Some(logits) = net.graph.logits else {
        return Err(invalid("train", "the network has no classifier"));
    };
    const N: u64 = 2;
    let x = b.upload(&Tensor::zeros(&[N as usize, 3, size, size]))?;
    let tape = net.forward(b, &x, bn, from, &[logits])?;
    let fwd = tape.peak_bytes as u64;
    let z = tape.value(logits).expect("kept");
    let dz = b.upload(&Tensor::full(b.shape(z), 1e-3))?;
    let (_, profile) = net.backward_profiled(b, tape, logits, dz)?;
    let mut points = vec![(0, fwd / N)];
    points.extend(
        profile
            .into_iter()
            .map(|(acts, params)| (params as u64, acts as u64 / N)),
    );
    Ok(StepMemory { points })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::CpuBackend;
    use crate::model::arch::Arch;
    use crate::model::init::random_weights;
    use crate::ops::BackendBase;

    #[test]
    fn a_batch_that_does_not_fit_is_refused_with_one_that_does() {
        let m = StepMemory {
            points: vec![(0, 110_000_000), (1_000_000_000, 100_000_000)],
        };
        // 10 GB free: 9 GB usable, 8 GB for images -> 80 images.
        assert_eq!(m.largest_batch(10_000_000_000), 80);
        assert!(m.check(80, 10_000_000_000, "cuda").is_ok());
        let e = m
            .check(200, 10_000_000_000, "cuda")
            .unwrap_err()
            .to_string();
        assert!(e.contains("batch of 200 does not fit"), "{e}");
        assert!(e.contains("--batch-size 80"), "{e}");
        assert!(e.contains("--accumulate 3"), "{e}");
        let e = m.check(2, 1_000_000_000, "cuda").unwrap_err().to_string();
        assert!(e.contains("not even one image fits"), "{e}");
    }

    #[test]
    fn the_measured_model_predicts_a_larger_batch_exactly() {
        // Activations are proportional to the batch: the profile of a 2-image step predicts the
        // peak of a 6-image step (measured here the same way) exactly.
        let b = CpuBackend;
        let sd = random_weights(Arch::ResNet18, 1, Some(7));
        let net = Net::from_state_dict(&b, Arch::ResNet18, &sd, true).unwrap();
        let from = net.graph.first_of("layer3").unwrap();
        let m = measure(&b, &net, from, BnMode::Train, 64).unwrap();
        assert!(m.points.iter().any(|p| p.0 > 0) && m.points.iter().all(|p| p.1 > 0));
        let logits = net.graph.logits.unwrap();
        let x = b.upload(&Tensor::zeros(&[6, 3, 64, 64])).unwrap();
        let tape = net.forward(&b, &x, BnMode::Train, from, &[logits]).unwrap();
        let fwd = tape.peak_bytes as u64;
        let dz = Tensor::full(&[6, 7], 1e-3);
        let (_, profile) = net.backward_profiled(&b, tape, logits, dz).unwrap();
        let bwd = profile.iter().map(|(a, p)| (a + p) as u64).max().unwrap();
        assert_eq!(m.bytes(6), fwd.max(bwd));
    }
}
