//! The fine-tuning checkpoint (RUN/checkpoint.safetensors, written atomically after every
//! epoch): every tensor of the network (`net.<name>`, BN running statistics included), the
//! optimiser's moments (`opt.<name>.exp_avg[_sq]`), the optimiser step, the loss scaler's state
//! (when loss scaling is on), completed epochs and the best epoch so far. Nothing random needs saving: batch order, augmentation and dropout
//! masks are pure functions of (seed, epoch, image / step), so a resumed run draws exactly what
//! the uninterrupted run drew.

use std::collections::HashMap;
use std::path::Path;

use super::super::checkpoint::{CHECKPOINT, Progress, history_until};
use super::super::loss_scale::LossScaler;
use super::super::optim::Optimizer;
use crate::backend::Backend;
use crate::error::{Result, file_err};
use crate::io::safetensors as st;
use crate::model::net::Net;
use crate::tensor::Tensor;

const KIND: &str = "fine-tune";

pub fn save<B: Backend>(
    b: &B,
    out: &Path,
    net: &Net<B>,
    opt: &Optimizer<B>,
    scaler: &LossScaler,
    epoch: usize,
    best: (usize, f64),
) -> Result<()> {
    let mut named = std::collections::BTreeMap::new();
    for (k, t) in net.state_dict(b)? {
        named.insert(format!("net.{k}"), t);
    }
    for (k, t) in opt.named(b)? {
        named.insert(format!("opt.{k}"), t);
    }
    let mut meta = HashMap::from([
        ("kind".to_string(), KIND.to_string()),
        ("epoch".to_string(), epoch.to_string()),
        ("step".to_string(), opt.step.to_string()),
        ("best_epoch".to_string(), best.0.to_string()),
        ("best_bmca".to_string(), format!("{:e}", best.1)),
    ]);
    meta.extend(scaler.metadata());
    let list: Vec<(&str, &Tensor)> = named.iter().map(|(k, v)| (k.as_str(), v)).collect();
    st::write(&out.join(CHECKPOINT), &list, &meta)
}

/// With a checkpoint in `out`: restores `net`, `opt` and `scaler` from it and returns where it
/// left off;
/// without one, a fresh start. A checkpoint of another kind of run (the frozen-feature head) or
/// of another network is an error naming the file.
pub fn resume<B: Backend>(
    b: &B,
    out: &Path,
    net: &mut Net<B>,
    opt: &mut Optimizer<B>,
    scaler: &mut LossScaler,
) -> Result<Progress> {
    let p = out.join(CHECKPOINT);
    if !p.exists() {
        return Ok(Progress::fresh());
    }
    let f = st::read(&p)?;
    if f.metadata.get("kind").map(String::as_str) != Some(KIND) {
        return Err(file_err(
            &p,
            "this checkpoint is not from a fine-tuning run (same --fine-tune as the run it resumes?)",
        ));
    }
    let num = |k: &str| {
        f.metadata
            .get(k)
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| file_err(&p, format!("missing metadata {k}")))
    };
    let mut net_sd = std::collections::BTreeMap::new();
    let mut opt_sd = std::collections::BTreeMap::new();
    for (k, t) in f.tensors.iter() {
        if let Some(n) = k.strip_prefix("net.") {
            net_sd.insert(n.to_string(), t.clone());
        } else if let Some(n) = k.strip_prefix("opt.") {
            opt_sd.insert(n.to_string(), t.clone());
        }
    }
    net.load_state_dict(b, &net_sd)
        .map_err(|e| file_err(&p, e.to_string()))?;
    opt.load_named(b, &opt_sd, num("step")? as u64)
        .map_err(|e| file_err(&p, e.to_string()))?;
    scaler.restore(&f.metadata, &p)?;
    let (done, be, bb) = (
        num("epoch")? as usize,
        num("best_epoch")? as usize,
        num("best_bmca")?,
    );
    eprintln!("resuming after epoch {done} (best so far: epoch {be}, val bmca {bb:.4})");
    Ok(Progress {
        done,
        best: (be, bb),
        history: history_until(out, done),
    })
}
