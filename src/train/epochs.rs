//! The epoch loop: each epoch's batch order from (seed, epoch), weighted cross-entropy + Adam
//! per batch, train and validation metrics per epoch, the best model (by validation bmca) and
//! the checkpoint and metrics.json written after every epoch.
//!
//! A batch is skipped in exactly one case (see [`super::step`]): every sample in it has class
//! weight 0 (for example a class absent from the training labels under inverse weights), where
//! the loss is undefined ([`BatchLoss::AllZeroWeight`]). Any other error from the loss stops training with
//! its message, as does a loss that is not finite.

use super::checkpoint::{Progress, save_checkpoint, write_history};
use super::config::TrainConfig;
use super::head::{AdamState, Head};
use super::loss_scale::{LossScaler, Unscaled, scale_grad};
use super::model_file::{BackboneId, MODEL, save_model_for};
use super::norm::FeatureNorm;
use super::optim::Schedule;
use super::scoring::{predict, rows_of};
use super::step::{BatchLoss, EpochMetrics, batch_loss, epoch_batches};
use crate::backend::Backend;
use crate::classes::ClassList;
use crate::error::{Result, invalid};
use crate::metrics::evaluate_probs_for;
use crate::model::arch::Arch;
use crate::ops::adam::AdamConfig;
use crate::tensor::Tensor;

/// Standardised features and labels the epochs train and validate on, and what the model file
/// records with the head.
pub struct EpochData<'a> {
    pub x_train: &'a Tensor,
    pub y_train: &'a [usize],
    pub x_val: &'a Tensor,
    pub y_val: &'a [usize],
    /// One per class; its length is the number of classes.
    pub weights: &'a [f32],
    pub classes: &'a ClassList,
    pub norm: &'a FeatureNorm,
    /// The backbone's architecture and identity (file or "random-init", hash).
    pub arch: Arch,
    pub backbone: &'a BackboneId,
}

/// Runs epochs `progress.done..cfg.epochs` (at most `cfg.stop_after` of them), updating
/// `progress` and writing the model (on a new best), checkpoint and metrics.json after each.
pub fn run_epochs<B: Backend>(
    b: &B,
    cfg: &TrainConfig,
    d: &EpochData,
    head: &mut Head<B>,
    adam: &mut AdamState<B::Tensor>,
    scaler: &mut LossScaler,
    progress: &mut Progress,
) -> Result<()> {
    let n = d.y_train.len();
    // The learning-rate schedule (constant by default), over optimiser steps = batches.
    let steps_per_epoch = epoch_batches(n, cfg.batch_size, cfg.seed, 0).len() as u64;
    let schedule = cfg.fine.schedule(cfg.epochs, steps_per_epoch);
    schedule.validate()?;
    for (ran, epoch) in (progress.done..cfg.epochs).enumerate() {
        if cfg.stop_after.is_some_and(|s| ran >= s) {
            break;
        }
        let mut loss_sum = 0.0;
        for idx in &epoch_batches(n, cfg.batch_size, cfg.seed, epoch) {
            // Every op of the step on the pool (BackendBase::run_on_workers).
            let step = b.run_on_workers(|| {
                batch_step(b, cfg, d, (head, adam, scaler), idx, epoch, &schedule)
            })?;
            if let Some(loss) = step {
                loss_sum += loss * idx.len() as f64;
            }
        }
        let (_, p_train) = predict(b, head, d.x_train, d.y_train, d.weights, cfg.reduction)?;
        let (val_loss, p_val) = predict(b, head, d.x_val, d.y_val, d.weights, cfg.reduction)?;
        let (rt, rv) = (
            evaluate_probs_for(&d.classes.codes(), d.y_train, &p_train)?,
            evaluate_probs_for(&d.classes.codes(), d.y_val, &p_val)?,
        );
        let (tb, tm, vb, vm) = (rt.bmca, rt.mean_precision, rv.bmca, rv.mean_precision);
        let m = EpochMetrics {
            epoch: epoch + 1,
            train_loss: loss_sum / n as f64,
            val_loss,
            train_bmca: tb,
            train_mean_precision: tm,
            val_bmca: vb,
            val_mean_precision: vm,
        };
        eprintln!(
            "epoch {:>3}/{}: train loss {:.4} bmca {:.4} mean_prec {:.4} | val loss {:.4} bmca {:.4} mean_prec {:.4}",
            m.epoch, cfg.epochs, m.train_loss, tb, tm, val_loss, vb, vm
        );
        if let Some(line) = scaler.summary() {
            eprintln!("           {line}");
        }
        if vb > progress.best.1 {
            progress.best = (epoch + 1, vb);
            save_model_for(
                b,
                &cfg.out.join(MODEL),
                head,
                d.norm,
                cfg,
                (d.arch, d.classes),
                d.backbone,
            )?;
        }
        progress.history.push(m);
        progress.done = epoch + 1;
        save_checkpoint(b, &cfg.out, head, adam, scaler, epoch + 1, progress.best)?;
        write_history(&cfg.out, &progress.history)?;
    }
    Ok(())
}

/// One batch: forward, weighted cross-entropy, backward and (unless the loss-scaled gradients
/// overflowed) the Adam step at the learning rate `schedule` gives. The batch loss,
/// or None when every label of the batch weighs 0 (skipped).
fn batch_step<B: Backend>(
    b: &B,
    cfg: &TrainConfig,
    d: &EpochData,
    (head, adam, scaler): (&mut Head<B>, &mut AdamState<B::Tensor>, &mut LossScaler),
    idx: &[usize],
    epoch: usize,
    schedule: &Schedule,
) -> Result<Option<f64>> {
    let xb = b.upload(&rows_of(d.x_train, idx))?;
    let yb: Vec<usize> = idx.iter().map(|&i| d.y_train[i]).collect();
    let (logits, tape) = head.forward(b, &xb, true)?;
    let (loss, dlogits) = match batch_loss(&yb, d.weights, || {
        b.weighted_cross_entropy(&logits, &yb, d.weights, cfg.reduction)
    })? {
        BatchLoss::Computed(v) => v,
        BatchLoss::AllZeroWeight => return Ok(None),
    };
    if !loss.is_finite() {
        return Err(invalid(
            "train",
            format!(
                "loss became {loss} in epoch {}; lower --lr or check the data",
                epoch + 1
            ),
        ));
    }
    // Loss scaling (FP16): dL/dlogits times the scale, the gradients divided by it; an
    // overflow skips the step (super::loss_scale).
    let dlogits = scale_grad(b, dlogits, scaler.scale())?;
    let grads = head.backward(b, &dlogits, tape.expect("training forward keeps a tape"))?;
    let Unscaled::Step(grads) = scaler.unscale(b, grads)? else {
        scaler.update(true);
        return Ok(Some(loss));
    };
    scaler.update(false);
    let step_cfg = AdamConfig {
        lr: cfg.adam.lr * schedule.factor(adam.step + 1),
        ..cfg.adam
    };
    head.adam_step(b, &grads, adam, &step_cfg)?;
    Ok(Some(loss))
}
