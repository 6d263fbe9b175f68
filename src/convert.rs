//! `skinengine convert`: a PyTorch `.pth` checkpoint (torchvision, timm, a training checkpoint)
//! to a safetensors file of f32 tensors with the same names, read by [`crate::io::pth`]
//! without executing any of the checkpoint's pickle code. Afterwards the result is checked
//! against ResNet50; a file that is no ResNet50 is still written (other backbones have other
//! tensors) and the report says why it is not one.

use crate::error::{Result, file_err};
use crate::io::pth::{PthFile, read_pth};
use crate::io::safetensors;
use crate::tensor::Tensor;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct ConvertConfig {
    /// The `.pth` / `.pt` / `.bin` checkpoint written by `torch.save`.
    pub from: PathBuf,
    /// The safetensors file to write (atomically).
    pub out: PathBuf,
}

#[derive(Clone, Debug)]
pub struct ConvertReport {
    /// What was read and written, for stdout.
    pub report: String,
    /// What was skipped or changed, one line each, for stderr.
    pub notes: Vec<String>,
    pub tensors: usize,
    /// Values in all tensors but BatchNorm running statistics (torch's parameter count).
    pub parameters: usize,
    /// Whether the written file is a complete ResNet50 state dict.
    pub resnet50: bool,
}

/// 25557032 -> "25,557,032".
fn grouped(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

pub fn convert(cfg: &ConvertConfig) -> Result<ConvertReport> {
    if same_file(&cfg.from, &cfg.out) {
        return Err(file_err(
            &cfg.out,
            "the output would overwrite the checkpoint being converted",
        ));
    }
    let PthFile {
        tensors,
        notes,
        state_dict_key,
        stripped_prefixes,
        source_dtypes,
        ..
    } = read_pth(&cfg.from)?;
    let named: Vec<(&str, &Tensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let from_name = cfg
        .from
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let mut metadata = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("converted_from".to_string(), from_name),
    ]);
    if let Some(k) = &state_dict_key {
        metadata.insert("state_dict_key".to_string(), k.clone());
    }
    safetensors::write(&cfg.out, &named, &metadata)?;

    let values: usize = tensors.values().map(|t| t.len()).sum();
    // BatchNorm running statistics are buffers, not parameters (torch's count leaves them out).
    let stats: usize = tensors
        .iter()
        .filter(|(k, _)| k.ends_with("running_mean") || k.ends_with("running_var"))
        .map(|(_, t)| t.len())
        .sum();
    let parameters = values - stats;
    let mut r = String::new();
    let _ = writeln!(
        r,
        "read {}: {}{}",
        cfg.from.display(),
        match &state_dict_key {
            Some(k) => format!("state dict under top-level key '{k}'"),
            None => "state dict at the top level".to_string(),
        },
        if stripped_prefixes > 0 {
            format!(", 'module.' prefix stripped from {stripped_prefixes} names")
        } else {
            String::new()
        }
    );
    let dtypes: Vec<String> = source_dtypes
        .iter()
        .map(|(d, n)| format!("{n} {d}"))
        .collect();
    let _ = writeln!(
        r,
        "wrote {}: {} tensors as float32 (from {}), {} values{}",
        cfg.out.display(),
        tensors.len(),
        dtypes.join(", "),
        grouped(values),
        if stats > 0 {
            format!(
                " ({} parameters + {} BatchNorm running statistics)",
                grouped(parameters),
                grouped(stats)
            )
        } else {
            String::new()
        }
    );
    if !notes.is_empty() {
        let _ = writeln!(
            r,
            "{} note{} on stderr (entries skipped or dropped)",
            notes.len(),
            if notes.len() == 1 { "" } else { "s" }
        );
    }
    let resnet50 = match crate::model::resnet50::validate(&cfg.out, &tensors) {
        Ok(()) => {
            let _ = writeln!(r, "usable as ResNet50 backbone: yes");
            true
        }
        Err(e) => {
            let text = e.to_string();
            let problems: Vec<&str> = text
                .lines()
                .filter_map(|l| l.trim_start().strip_prefix("- "))
                .collect();
            let _ = write!(r, "usable as ResNet50 backbone: no (");
            if problems.is_empty() {
                let _ = write!(r, "{text}");
            } else {
                let _ = write!(r, "{}", problems[..problems.len().min(3)].join("; "));
                if problems.len() > 3 {
                    let _ = write!(r, "; {} problems in all", problems.len());
                }
            }
            let _ = writeln!(r, ")");
            for hint in text.lines().filter(|l| l.trim_start().starts_with('(')) {
                let _ = writeln!(r, "  {}", hint.trim());
            }
            false
        }
    };
    Ok(ConvertReport {
        report: r,
        notes,
        tensors: tensors.len(),
        parameters,
        resnet50,
    })
}

#[cfg(test)]
mod tests {
    use super::grouped;

    #[test]
    fn groups_digits() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(25_557_032), "25,557,032");
    }
}
