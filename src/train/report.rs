//! The run folder's report.md (and the validation predictions and truth as ISIC CSVs, so the
//! numbers can be re-scored with `skinengine eval` or the official scorer).

use crate::error::{Result, file_err};
use crate::io::atomic::write_atomic;
use crate::metrics::{evaluate_probs_for, write_predictions_csv_for};
use crate::train::{TrainConfig, TrainResult};
use std::fmt::Write as _;

/// The run folder's list of images left out of the run (one "file: problem" line each).
pub const SKIPPED: &str = "skipped.txt";

pub fn write(cfg: &TrainConfig, r: &TrainResult) -> Result<()> {
    let out = &cfg.out;
    // The validation files hold the trained classes only (no ISIC 2019 UNK column: with no UNK
    // image in it, the official scorer could not score the truth file).
    let list = &r.classes;
    let codes = list.codes();
    write_predictions_csv_for(
        &out.join("val_pred.csv"),
        list,
        false,
        &r.val_ids,
        &r.val_probs,
    )?;
    let mut truth = format!("image,{}\n", list.joined());
    for (id, &l) in r.val_ids.iter().zip(&r.val_labels) {
        let row: Vec<&str> = (0..list.len())
            .map(|c| if c == l { "1.0" } else { "0.0" })
            .collect();
        let _ = writeln!(truth, "{id},{}", row.join(","));
    }
    write_atomic(&out.join("val_truth.csv"), truth.as_bytes())?;

    let rep = evaluate_probs_for(&codes, &r.val_labels, &r.val_probs)?;
    let mut s = String::from("# skinengine training report\n\n");
    let _ = writeln!(s, "Configuration: `{}`\n", cfg.to_json());
    let _ = writeln!(
        s,
        "Best epoch: **{}** of {} — validation bmca **{:.4}** (official metric, mean recall), mean precision {:.4} (the seed's \"MCA\"), accuracy {:.4}, {} validation views.\n",
        r.best_epoch,
        r.history.len(),
        rep.bmca,
        rep.mean_precision,
        rep.accuracy,
        r.val_ids.len()
    );
    // The images left out, one line each (file: problem); a run without any removes the list a
    // previous run in this folder may have left.
    let skipped_list = out.join(SKIPPED);
    if r.skipped.is_empty() {
        std::fs::remove_file(&skipped_list)
            .or_else(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Ok(()),
                _ => Err(e),
            })
            .map_err(|e| file_err(&skipped_list, format!("cannot remove: {e}")))?;
    } else {
        write_atomic(&skipped_list, (r.skipped.join("\n") + "\n").as_bytes())?;
        let _ = writeln!(
            s,
            "Skipped {} unreadable images (truncated, corrupt, not an image, too large; listed in `{SKIPPED}`).\n",
            r.skipped.len()
        );
    }
    s += "## Per epoch\n\n| epoch | train loss | val loss | train bmca | train mean prec. | val bmca | val mean prec. |\n|---|---|---|---|---|---|---|\n";
    for h in &r.history {
        let _ = writeln!(
            s,
            "| {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} |",
            h.epoch,
            h.train_loss,
            h.val_loss,
            h.train_bmca,
            h.train_mean_precision,
            h.val_bmca,
            h.val_mean_precision
        );
    }
    // Figures (PNG); the tables below carry the same numbers.
    if crate::train::plots::font().is_some() {
        crate::train::plots::curves_png(&out.join("curves.png"), &r.history)?;
        crate::train::plots::confusion_png(&out.join("confusion.png"), &rep.confusion, &codes)?;
        s += "\n![loss and metric curves](curves.png)\n\n![validation confusion matrix](confusion.png)\n";
    } else {
        s += "\n(Figures skipped: no TrueType font found; set SKINENGINE_FONT to a .ttf file.)\n";
    }
    s += "\n## Validation confusion matrix (best epoch; rows truth, columns prediction)\n\n| truth \\ pred | ";
    s += &codes.join(" | ");
    s += " | tied |\n|---|";
    s += &"---|".repeat(codes.len() + 1);
    s += "\n";
    for (t, row) in rep.confusion.iter().enumerate() {
        let cells: Vec<String> = row.iter().map(|v| v.to_string()).collect();
        let _ = writeln!(
            s,
            "| **{}** | {} | {} |",
            codes[t],
            cells.join(" | "),
            rep.undecided[t]
        );
    }
    s += "\n## Validation per class (threshold 0.5 where thresholded)\n\n| class | sensitivity | specificity | PPV | NPV | F1 | AUC | AP |\n|---|---|---|---|---|---|---|---|\n";
    for (c, m) in rep.per_class.iter().enumerate() {
        let _ = writeln!(
            s,
            "| {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} |",
            codes[c], m.sensitivity, m.specificity, m.ppv, m.npv, m.f1, m.auc, m.ap
        );
    }
    if let Some(t) = &r.test {
        write_predictions_csv_for(&out.join("test_pred.csv"), list, false, &t.ids, &t.probs)?;
        let tr = evaluate_probs_for(&codes, &t.labels, &t.probs)?;
        let _ = writeln!(
            s,
            "\n## Official test set (best model)\n\n{} images: bmca **{:.4}**, mean precision {:.4}, accuracy {:.4} (predictions in `test_pred.csv`).",
            t.ids.len(),
            tr.bmca,
            tr.mean_precision,
            tr.accuracy
        );
    }
    s += "\nFiles: `config.json`, `split.csv`, `metrics.json`, `model.safetensors`, `checkpoint.safetensors`, `val_pred.csv`, `val_truth.csv` (re-score with `skinengine eval --truth val_truth.csv --pred val_pred.csv`).\n";
    write_atomic(&out.join("report.md"), s.as_bytes())
}
