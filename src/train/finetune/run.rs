//! A fine-tuning run, in order: backbone weights (+ a new head) -> the network -> optimiser and
//! schedule -> resume -> per epoch: augmented batches (decoded one batch ahead) -> micro-steps
//! and updates -> validation of the whole network in evaluation mode -> best model, checkpoint,
//! metrics.json -> the best model on the validation (and test) set -> report.
//!
//! Training metrics of an epoch are running ones: the predictions of each training batch in
//! training mode, before that batch's update, on its augmented images (what Keras reports). A
//! second pass over the training set per epoch would cost as much as the epoch's forward passes.

use rayon::prelude::*;

use super::images::ImageRecipe;
use super::step::{micro_step, softmax_rows, trained_params, update_scaled};
use super::{checkpoint, memory};
use crate::backend::Backend;
use crate::data::dataset::Dataset;
use crate::data::prefetch::decode_ahead;
use crate::data::views::{View, ViewConfig, make_views};
use crate::error::{Result, invalid};
use crate::metrics::evaluate_probs_for;
use crate::model::net::{BnMode, Graph, HeadSpec, Net};
use crate::pipeline::batches::{BatchOptions, bad_image, run_batches};
use crate::tensor::Tensor;
use crate::train::checkpoint::{Progress, write_history};
use crate::train::loss_scale::LossScaler;
use crate::train::model_file::{LoadedModel, MODEL, load_model, save_net_model_for};
use crate::train::optim::{OptimConfig, Optimizer};
use crate::train::scoring::Scored;
use crate::train::step::{BatchLoss, EpochMetrics, batch_loss, epoch_batches};
use crate::train::{TrainConfig, TrainResult, model_file::backbone_weights};

/// Predictions of a network on evaluation views: ids, labels, probabilities, mean loss, and the
/// images that could not be read.
struct Evaluated {
    ids: Vec<String>,
    labels: Vec<usize>,
    probs: Vec<Vec<f32>>,
    loss: f64,
    skipped: Vec<String>,
}

fn evaluate<B: Backend>(
    b: &B,
    net: &Net<B>,
    ds: &Dataset,
    views: &[View],
    recipe: &ImageRecipe,
    cfg: &TrainConfig,
    weights: &[f32],
) -> Result<Evaluated> {
    let (reduction, strict) = (cfg.reduction, cfg.strict);
    let items: Vec<usize> = (0..views.len()).collect();
    let opts = BatchOptions {
        batch: 16,
        strict,
        logits: true,
        progress: None,
        size: recipe.size,
    };
    let (mut ids, mut labels, mut logits) = (Vec::new(), Vec::new(), Vec::new());
    let failed = run_batches(
        b,
        net,
        &items,
        &opts,
        |&i| ds.samples[views[i].sample].path.clone(),
        |&i| recipe.eval_image(ds, &views[i]),
        |c| {
            for &&i in &c.items {
                ids.push(views[i].name.clone());
                labels.push(ds.samples[views[i].sample].label.unwrap_or(0));
            }
            logits.extend_from_slice(c.logits.expect("asked for").data());
            Ok(())
        },
    )?;
    let z = Tensor::new(&[ids.len(), weights.len()], logits)?;
    let loss = if ids.is_empty() {
        0.0
    } else {
        let zt = b.upload(&z)?;
        match batch_loss(&labels, weights, || {
            b.weighted_cross_entropy(&zt, &labels, weights, reduction)
        })? {
            BatchLoss::Computed((l, _)) => l,
            BatchLoss::AllZeroWeight => 0.0,
        }
    };
    let mut skipped: Vec<String> = failed.into_iter().map(|f| f.reason).collect();
    skipped.sort();
    skipped.dedup();
    Ok(Evaluated {
        ids,
        labels,
        probs: softmax_rows(&z),
        loss,
        skipped,
    })
}

/// The seed of the dropout masks of micro-batch `micro` of epoch `epoch`.
fn step_seed(seed: u64, epoch: usize, micro: usize) -> u64 {
    let mut r = crate::rng::Rng::new(seed ^ u64::from_le_bytes(*b"dropout1"));
    let h = r.next_u64() ^ ((epoch as u64) << 32 | micro as u64);
    crate::rng::Rng::new(h).next_u64()
}

/// Fine-tunes on `train_views` of `ds`, validating on `val_views` of `val_ds` (or `ds`); the
/// best model is scored on `test_ds` when given.
pub fn run<B: Backend>(
    b: &B,
    cfg: &TrainConfig,
    ds: &Dataset,
    val_ds: Option<&Dataset>,
    test_ds: Option<&Dataset>,
    train_views: &[View],
    val_views: &[View],
) -> Result<TrainResult> {
    let f = &cfg.fine;
    let (arch, sd, origin) = backbone_weights(f.backbone, cfg.weights.as_deref())?;
    if cfg.weights.is_none() {
        eprintln!(
            "note: no --weights given: fine-tuning a deterministic random-init {} (not ImageNet weights)",
            arch.pretty()
        );
    }
    let spec = HeadSpec {
        pool: f.pool,
        hidden: cfg.head.clone(),
        batchnorm: cfg.batchnorm,
        dropout: f.dropout,
        classes: ds.classes.len(),
    };
    let size = f.image_size;
    let input = spec.in_features(arch, size as usize)?;
    let mut all = sd;
    all.extend(spec.init(input, cfg.seed)?);
    let mut net = Net::from_graph(b, Graph::with_head(arch, &spec), &all)?;
    drop(all);
    let from = f.depth.first_node(&net);
    let params = trained_params(b, &net, from)?;

    let n = train_views.len();
    if n == 0 || val_views.is_empty() {
        return Err(invalid("train", "the training or validation set is empty"));
    }
    let batches_per_epoch = epoch_batches(n, cfg.batch_size, cfg.seed, 0).len();
    let steps_per_epoch = batches_per_epoch.div_ceil(f.accumulate) as u64;
    let schedule = f.schedule(cfg.epochs, steps_per_epoch);
    let ocfg = OptimConfig {
        kind: f.optimizer.kind(f.momentum, f.nesterov),
        adam: cfg.adam,
        lr_backbone: f.lr_backbone(cfg.adam.lr),
    };
    let mut opt = Optimizer::new(b, ocfg, schedule, &params)?;
    let mut scaler = LossScaler::new(&cfg.loss_scale, b.precisions())?;
    let mut progress = if cfg.resume {
        checkpoint::resume(b, &cfg.out, &mut net, &mut opt, &mut scaler)?
    } else {
        Progress::fresh()
    };
    let label = |i: usize| ds.samples[train_views[i].sample].label.unwrap_or(0);
    let all_labels: Vec<usize> = (0..n).map(label).collect();
    let weights = cfg.class_weights.compute_for(&ds.classes, &all_labels)?;
    let bn = if f.freeze_bn {
        BnMode::Eval
    } else {
        BnMode::Train
    };
    let mut augment = f.augment;
    if let Some(a) = &mut augment {
        a.size = size;
    }
    let recipe = ImageRecipe {
        preprocess: cfg.preprocess,
        augment,
        size,
        seed: cfg.seed,
    };
    let vds = val_ds.unwrap_or(ds);
    // A batch that cannot fit stops here, naming one that does, not mid-epoch.
    if let Some(free) = b.free_memory() {
        let largest = epoch_batches(n, cfg.batch_size, cfg.seed, 0)
            .iter()
            .map(Vec::len)
            .max()
            .unwrap_or(0);
        let need = memory::measure(b, &net, from, bn, size as usize)?;
        need.check(largest, free, b.name())?;
    }
    eprintln!(
        "fine-tuning {} from {} ({} of {} parameter tensors train), {} steps per epoch, lr head {} backbone {}",
        arch.pretty(),
        f.depth.name(),
        params.len(),
        net.graph.params_from(0).len(),
        steps_per_epoch,
        cfg.adam.lr,
        ocfg.lr_backbone
    );

    let mut skipped: Vec<String> = Vec::new();
    for (ran, epoch) in (progress.done..cfg.epochs).enumerate() {
        if cfg.stop_after.is_some_and(|s| ran >= s) {
            break;
        }
        let batches = epoch_batches(n, cfg.batch_size, cfg.seed, epoch);
        let nb = batches.len();
        let bar = indicatif::ProgressBar::new(nb as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "epoch {prefix} {bar:30} {pos}/{len} batches  {per_sec}  ETA {eta}",
            )
            .expect("static template"),
        );
        bar.set_prefix(format!("{}/{}", epoch + 1, cfg.epochs));
        let (mut loss_sum, mut seen) = (0.0, 0usize);
        let (mut run_labels, mut run_probs) = (Vec::new(), Vec::new());
        let mut sum = None;
        decode_ahead(
            &batches,
            1,
            |batch: &Vec<usize>| -> Vec<Result<Vec<f32>>> {
                batch
                    .par_iter()
                    .map(|&i| recipe.train_image(ds, &train_views[i], epoch))
                    .collect()
            },
            |bi, chunk, mut decoded| {
                let (batch, decoded) = (&chunk[0], decoded.pop().expect("one batch"));
                let (mut x, mut labels) = (Vec::new(), Vec::new());
                for (&i, r) in batch.iter().zip(decoded) {
                    match r {
                        Ok(px) => {
                            x.extend_from_slice(&px);
                            labels.push(label(i));
                        }
                        Err(e) => {
                            let path = &ds.samples[train_views[i].sample].path;
                            let s = bad_image(path, e, cfg.strict)?;
                            if !skipped.contains(&s.reason) {
                                eprintln!("skipped: {}", s.reason);
                                skipped.push(s.reason);
                            }
                        }
                    }
                }
                // Micro-batches of one optimiser step share its gradient average.
                let group = bi / f.accumulate;
                let in_group = (nb - group * f.accumulate).min(f.accumulate);
                if !labels.is_empty() {
                    let s = size as usize;
                    let xt = b.upload(&Tensor::new(&[labels.len(), 3, s, s], x)?)?;
                    net.step_seed = step_seed(cfg.seed, epoch, bi);
                    let m = micro_step(
                        b,
                        &mut net,
                        &xt,
                        &labels,
                        &weights,
                        cfg.reduction,
                        bn,
                        from,
                        scaler.scale() / in_group as f32,
                        &mut sum,
                    )?;
                    if let Some(m) = m {
                        if !m.loss.is_finite() {
                            return Err(invalid(
                                "train",
                                format!(
                                    "loss became {} in epoch {}; lower --lr / --lr-backbone or check the data",
                                    m.loss,
                                    epoch + 1
                                ),
                            ));
                        }
                        loss_sum += m.loss * labels.len() as f64;
                        seen += labels.len();
                        run_probs.extend(softmax_rows(&m.logits));
                        run_labels.extend_from_slice(&labels);
                    }
                }
                let last_of_group = (bi + 1) % f.accumulate == 0 || bi + 1 == nb;
                if last_of_group && let Some(g) = sum.take() {
                    // Loss scaling (FP16): divided by the scale; skipped on overflow.
                    update_scaled(b, &mut net, &mut opt, &mut scaler, g)?;
                }
                bar.inc(1);
                Ok(())
            },
        )?;
        bar.finish_and_clear();
        let ev = evaluate(b, &net, vds, val_views, &recipe, cfg, &weights)?;
        for s in ev.skipped {
            if !skipped.contains(&s) {
                skipped.push(s);
            }
        }
        if run_labels.is_empty() || ev.ids.is_empty() {
            return Err(invalid(
                "train",
                "no readable image in the training or validation set",
            ));
        }
        let (rt, rv) = (
            evaluate_probs_for(&ds.classes.codes(), &run_labels, &run_probs)?,
            evaluate_probs_for(&ds.classes.codes(), &ev.labels, &ev.probs)?,
        );
        let m = EpochMetrics {
            epoch: epoch + 1,
            train_loss: loss_sum / seen.max(1) as f64,
            val_loss: ev.loss,
            train_bmca: rt.bmca,
            train_mean_precision: rt.mean_precision,
            val_bmca: rv.bmca,
            val_mean_precision: rv.mean_precision,
        };
        eprintln!(
            "epoch {:>3}/{}: train loss {:.4} bmca {:.4} mean_prec {:.4} (running) | val loss {:.4} bmca {:.4} mean_prec {:.4}",
            m.epoch,
            cfg.epochs,
            m.train_loss,
            rt.bmca,
            rt.mean_precision,
            ev.loss,
            rv.bmca,
            rv.mean_precision
        );
        if let Some(line) = scaler.summary() {
            eprintln!("           {line}");
        }
        if rv.bmca > progress.best.1 {
            progress.best = (epoch + 1, rv.bmca);
            save_net_model_for(
                b,
                &cfg.out.join(MODEL),
                &net,
                (&spec, &ds.classes),
                cfg,
                &origin,
            )?;
        }
        progress.history.push(m);
        progress.done = epoch + 1;
        checkpoint::save(b, &cfg.out, &net, &opt, &scaler, epoch + 1, progress.best)?;
        write_history(&cfg.out, &progress.history)?;
    }
    drop(net);
    drop(opt);

    // The best model, read back from its file (what infer will use), on validation and test.
    let mp = cfg.out.join(MODEL);
    let LoadedModel::Net(best) = load_model(b, &mp)? else {
        return Err(invalid("train", "the model file is not a fine-tuned model"));
    };
    let ev = evaluate(b, &best.net, vds, val_views, &recipe, cfg, &weights)?;
    let test = match test_ds {
        Some(td) => {
            let all: Vec<usize> = (0..td.samples.len()).collect();
            let tv = make_views(td, &all, &ViewConfig::default(), cfg.seed);
            let t = evaluate(b, &best.net, td, &tv, &recipe, cfg, &weights)?;
            skipped.extend(t.skipped);
            Some(Scored {
                ids: t.ids,
                labels: t.labels,
                probs: t.probs,
            })
        }
        None => None,
    };
    skipped.sort();
    skipped.dedup();
    Ok(TrainResult {
        history: progress.history,
        best_epoch: progress.best.0,
        model_path: mp,
        val_ids: ev.ids,
        val_labels: ev.labels,
        val_probs: ev.probs,
        test,
        skipped,
        classes: ds.classes.clone(),
    })
}
