//! `skinengine ablate`: the seed's five cumulative configurations (SPEC section 2), trained one
//! after another on the same data with one shared feature cache, as a markdown table (and JSON)
//! beside the numbers the seed reported.

use super::Device;
use super::train::{TrainArgs, run_train};
use crate::data::class_weights::ClassWeights;
use crate::error::Result;
use crate::io::atomic::write_atomic;
use crate::ops::loss::Reduction;
use crate::train::Protocol;
use serde_json::json;
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct AblateArgs {
    #[arg(long)]
    pub data: PathBuf,
    /// ResNet50 weights; without them a deterministic random-init backbone is used (and said).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Output folder: one run folder per configuration, ablation.md, ablation.json, cache/.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value_t = Protocol::Honest)]
    pub protocol: Protocol,
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    #[arg(long, default_value_t = 0.1)]
    pub val_fraction: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, value_enum, default_value_t = Device::Auto)]
    pub device: Device,
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// (name, batchnorm, mirror, frequency-weighted loss, oversample, seed's train MCA, val MCA)
const ROWS: [(&str, bool, bool, bool, bool, f64, f64); 5] = [
    ("baseline", false, false, false, false, 0.9367, 0.6274),
    (
        "+ batch normalization",
        true,
        false,
        false,
        false,
        0.8777,
        0.7329,
    ),
    ("+ mirroring", true, true, false, false, 0.9285, 0.7627),
    ("+ weighted loss", true, true, true, false, 0.9525, 0.7573),
    ("+ oversampling", true, true, true, true, 0.9808, 0.8747),
];

pub fn run(args: &AblateArgs) -> Result<()> {
    let mut table = String::new();
    let _ = writeln!(
        table,
        "# Ablation ({} protocol, {} epochs, seed {})\n\nbmca = official balanced multiclass accuracy (mean recall); mean precision = the seed's \"MCA\". Our numbers are the best epoch by validation bmca. The seed's columns are its reported train/val MCA (mean precision), with a validation split drawn after augmentation.\n",
        format!("{:?}", args.protocol).to_lowercase(),
        args.epochs,
        args.seed
    );
    table += "| configuration | train bmca | train mean prec. | val bmca | val mean prec. | seed train MCA | seed val MCA |\n|---|---|---|---|---|---|---|\n";
    let mut rows = Vec::new();
    for (k, &(name, bn, mirror, weighted, oversample, seed_tr, seed_va)) in ROWS.iter().enumerate()
    {
        eprintln!("[ablate] {}/5: {name}", k + 1);
        let out = args.out.join(format!(
            "{}_{}",
            k + 1,
            name.trim_start_matches("+ ").replace(' ', "_")
        ));
        let t = TrainArgs {
            weights: args.weights.clone(),
            device: args.device,
            protocol: args.protocol,
            val_fraction: args.val_fraction,
            batchnorm: bn,
            mirror,
            oversample,
            // The seed multiplied the loss by the class frequencies (its formula, SPEC 2).
            class_weights: if weighted {
                ClassWeights::Frequency
            } else {
                ClassWeights::None
            },
            loss_reduction: if weighted {
                Reduction::Seed
            } else {
                Reduction::Normalized
            },
            epochs: args.epochs,
            batch_size: 32,
            seed: args.seed,
            threads: args.threads,
            cache: Some(args.out.join("cache")),
            ..TrainArgs::new(args.data.clone(), out)
        };
        let r = run_train(&t)?;
        let best = r
            .history
            .iter()
            .find(|h| h.epoch == r.best_epoch)
            .cloned()
            .unwrap_or_else(|| r.history[r.history.len() - 1].clone());
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
    write_atomic(&args.out.join("ablation.md"), table.as_bytes())?;
    write_atomic(
        &args.out.join("ablation.json"),
        serde_json::to_string_pretty(&rows)
            .expect("json")
            .as_bytes(),
    )?;
    println!("{table}");
    Ok(())
}
