//! The seed's ablation (SPEC section 2): its five cumulative configurations trained one after
//! another on the same data with one shared feature cache, as a markdown table (ablation.md)
//! and JSON (ablation.json) beside the numbers the seed reported.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::backend::Backend;
use crate::data::class_weights::ClassWeights;
use crate::error::Result;
use crate::io::atomic::write_atomic;
use crate::ops::loss::Reduction;
use crate::train::{Protocol, TrainConfig, train};

/// An ablation run.
#[derive(Clone, Debug)]
pub struct AblateConfig {
    pub data: PathBuf,
    /// ResNet50 weights; `None`: a deterministic random-init backbone (and said).
    pub weights: Option<PathBuf>,
    /// Output folder: one run folder per configuration, ablation.md, ablation.json, cache/.
    pub out: PathBuf,
    pub protocol: Protocol,
    pub epochs: usize,
    pub val_fraction: f64,
    pub seed: u64,
}

/// One configuration of the ablation.
pub struct Configuration {
    pub name: &'static str,
    pub batchnorm: bool,
    pub mirror: bool,
    /// The seed's frequency-weighted loss (its formula, SPEC 2).
    pub weighted: bool,
    pub oversample: bool,
    /// The seed's reported train and val MCA (mean precision).
    pub seed_train_mca: f64,
    pub seed_val_mca: f64,
}

const fn row(
    name: &'static str,
    [batchnorm, mirror, weighted, oversample]: [bool; 4],
    seed_train_mca: f64,
    seed_val_mca: f64,
) -> Configuration {
    Configuration {
        name,
        batchnorm,
        mirror,
        weighted,
        oversample,
        seed_train_mca,
        seed_val_mca,
    }
}

/// The seed's five cumulative configurations, in order.
pub const CONFIGURATIONS: [Configuration; 5] = [
    row("baseline", [false, false, false, false], 0.9367, 0.6274),
    row(
        "+ batch normalization",
        [true, false, false, false],
        0.8777,
        0.7329,
    ),
    row("+ mirroring", [true, true, false, false], 0.9285, 0.7627),
    row("+ weighted loss", [true, true, true, false], 0.9525, 0.7573),
    row("+ oversampling", [true, true, true, true], 0.9808, 0.8747),
];

impl Configuration {
    /// The training config of this configuration under `cfg`, run in `out`.
    pub fn train_config(&self, cfg: &AblateConfig, out: PathBuf) -> TrainConfig {
        let mut t = TrainConfig::new(cfg.data.clone(), out);
        t.weights = cfg.weights.clone();
        t.protocol = cfg.protocol;
        t.val_fraction = cfg.val_fraction;
        t.batchnorm = self.batchnorm;
        t.views.mirror = self.mirror;
        t.views.oversample = self.oversample;
        // The seed multiplied the loss by the class frequencies (its formula, SPEC 2).
        (t.class_weights, t.reduction) = if self.weighted {
            (ClassWeights::Frequency, Reduction::Seed)
        } else {
            (ClassWeights::None, Reduction::Normalized)
        };
        t.epochs = cfg.epochs;
        t.batch_size = 32;
        t.seed = cfg.seed;
        t.cache_dir = Some(cfg.out.join("cache"));
        t
    }
}

/// The ablation's outcome: the markdown table (as written to ablation.md) and the JSON rows.
pub struct Ablation {
    pub table: String,
    pub rows: Vec<Value>,
}

/// Trains the five configurations and writes ablation.md and ablation.json into `cfg.out`.
pub fn ablate<B: Backend>(b: &B, cfg: &AblateConfig) -> Result<Ablation> {
    let mut table = String::new();
    let _ = writeln!(
        table,
        "# Ablation ({} protocol, {} epochs, seed {})\n\nbmca = official balanced multiclass accuracy (mean recall); mean precision = the seed's \"MCA\". Our numbers are the best epoch by validation bmca. The seed's columns are its reported train/val MCA (mean precision), with a validation split drawn after augmentation.\n",
        format!("{:?}", cfg.protocol).to_lowercase(),
        cfg.epochs,
        cfg.seed
    );
    table += "| configuration | train bmca | train mean prec. | val bmca | val mean prec. | seed train MCA | seed val MCA |\n|---|---|---|---|---|---|---|\n";
    let mut rows = Vec::new();
    for (k, c) in CONFIGURATIONS.iter().enumerate() {
        let name = c.name;
        eprintln!("[ablate] {}/5: {name}", k + 1);
        let out = cfg.out.join(format!(
            "{}_{}",
            k + 1,
            name.trim_start_matches("+ ").replace(' ', "_")
        ));
        let t = c.train_config(cfg, out);
        let r = train(b, &t)?;
        eprintln!("{}", r.summary(&t));
        let best = r
            .history
            .iter()
            .find(|h| h.epoch == r.best_epoch)
            .cloned()
            .unwrap_or_else(|| r.history[r.history.len() - 1].clone());
        let (seed_tr, seed_va) = (c.seed_train_mca, c.seed_val_mca);
        let _ = writeln!(
            table,
            "| {name} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} |",
            best.train_bmca,
            best.train_mean_precision,
            best.val_bmca,
            best.val_mean_precision,
            seed_tr,
            seed_va
        );
        rows.push(json!({"configuration": name, "best_epoch": best.epoch, "train_bmca": best.train_bmca,
            "train_mean_precision": best.train_mean_precision, "val_bmca": best.val_bmca,
            "val_mean_precision": best.val_mean_precision, "seed_train_mca": seed_tr, "seed_val_mca": seed_va}));
    }
    write_atomic(&cfg.out.join("ablation.md"), table.as_bytes())?;
    write_atomic(
        &cfg.out.join("ablation.json"),
        serde_json::to_string_pretty(&rows)
            .expect("json")
            .as_bytes(),
    )?;
    Ok(Ablation { table, rows })
}
