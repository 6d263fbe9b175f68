//! The checkpoint written atomically after every epoch (RUN/checkpoint.safetensors): head
//! tensors, BN running statistics, Adam moments and step, the loss scaler's state (when loss
//! scaling is on), the epoch and the best epoch so far: everything that changes, so `--resume`
//! ends exactly where an uninterrupted run ends.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use super::head::{AdamState, Head};
use super::loss_scale::LossScaler;
use super::step::EpochMetrics;
use crate::backend::Backend;
use crate::error::{Result, file_err};
use crate::io::safetensors as st;
use crate::tensor::Tensor;

/// The checkpoint's name in a run folder.
pub const CHECKPOINT: &str = "checkpoint.safetensors";

/// Where training stands: completed epochs, (best epoch, its val bmca) and the metrics so far.
#[derive(Clone, Debug)]
pub struct Progress {
    pub done: usize,
    pub best: (usize, f64),
    pub history: Vec<EpochMetrics>,
}

impl Progress {
    /// A run that has not started.
    pub fn fresh() -> Self {
        Progress {
            done: 0,
            best: (0, f64::NEG_INFINITY),
            history: Vec::new(),
        }
    }
}

pub fn save_checkpoint<B: Backend>(
    b: &B,
    out: &Path,
    head: &Head<B>,
    adam: &AdamState<B::Tensor>,
    scaler: &LossScaler,
    epoch: usize,
    best: (usize, f64),
) -> Result<()> {
    let mut named = head.named(b)?;
    for (i, (m, v)) in adam.m.iter().zip(&adam.v).enumerate() {
        named.insert(format!("adam.m.{i}"), b.download(m)?);
        named.insert(format!("adam.v.{i}"), b.download(v)?);
    }
    let mut meta = HashMap::from([
        ("epoch".to_string(), epoch.to_string()),
        ("adam_step".to_string(), adam.step.to_string()),
        ("best_epoch".to_string(), best.0.to_string()),
        ("best_bmca".to_string(), format!("{:e}", best.1)),
    ]);
    meta.extend(scaler.metadata());
    let list: Vec<(&str, &Tensor)> = named.iter().map(|(k, v)| (k.as_str(), v)).collect();
    st::write(&out.join(CHECKPOINT), &list, &meta)
}

/// Loads a checkpoint into `head`, `adam` and `scaler`; returns (completed epochs, best epoch,
/// best bmca).
pub fn load_checkpoint<B: Backend>(
    b: &B,
    out: &Path,
    head: &mut Head<B>,
    adam: &mut AdamState<B::Tensor>,
    scaler: &mut LossScaler,
) -> Result<(usize, usize, f64)> {
    let p = out.join(CHECKPOINT);
    let f = st::read(&p)?;
    if f.metadata.contains_key("kind") {
        return Err(file_err(
            &p,
            "this checkpoint is from a fine-tuning run; resume it with the same --fine-tune",
        ));
    }
    head.load_named(b, &f.tensors, &p)?;
    for i in 0..adam.m.len() {
        let get = |k: String| {
            f.tensors
                .get(&k)
                .ok_or_else(|| file_err(&p, format!("missing {k}")))
        };
        adam.m[i] = b.upload(get(format!("adam.m.{i}"))?)?;
        adam.v[i] = b.upload(get(format!("adam.v.{i}"))?)?;
    }
    let num = |k: &str| {
        f.metadata
            .get(k)
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| file_err(&p, format!("missing metadata {k}")))
    };
    adam.step = num("adam_step")? as u64;
    scaler.restore(&f.metadata, &p)?;
    Ok((
        num("epoch")? as usize,
        num("best_epoch")? as usize,
        num("best_bmca")?,
    ))
}

/// Writes `out`/metrics.json (atomically): one record per completed epoch.
pub fn write_history(out: &Path, history: &[EpochMetrics]) -> Result<()> {
    let hist: Vec<Value> = history.iter().map(|h| h.to_json()).collect();
    crate::io::atomic::write_atomic(
        &out.join("metrics.json"),
        serde_json::to_string_pretty(&hist)
            .expect("json")
            .as_bytes(),
    )
}

/// The metrics.json records of `out` up to epoch `done` (what a resumed run continues).
pub fn history_until(out: &Path, done: usize) -> Vec<EpochMetrics> {
    let text = std::fs::read_to_string(out.join("metrics.json")).unwrap_or_default();
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let mut history: Vec<EpochMetrics> = v
        .as_array()
        .map(|a| a.iter().filter_map(EpochMetrics::from_json).collect())
        .unwrap_or_default();
    history.truncate(done);
    history
}

/// With a checkpoint in `out`: loads it into `head`, `adam` and `scaler` and returns where it
/// left off (metrics.json's records up to that epoch); without one, a fresh start.
pub fn resume<B: Backend>(
    b: &B,
    out: &Path,
    head: &mut Head<B>,
    adam: &mut AdamState<B::Tensor>,
    scaler: &mut LossScaler,
) -> Result<Progress> {
    if !out.join(CHECKPOINT).exists() {
        return Ok(Progress::fresh());
    }
    let (done, be, bb) = load_checkpoint(b, out, head, adam, scaler)?;
    let history = history_until(out, done);
    eprintln!("resuming after epoch {done} (best so far: epoch {be}, val bmca {bb:.4})");
    Ok(Progress {
        done,
        best: (be, bb),
        history,
    })
}
