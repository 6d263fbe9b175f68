//! The backbones skinengine knows, with torchvision's names and layouts: the ResNet family
//! (v1.5: the stride of a downsampling bottleneck on its 3x3 conv) and VGG19 without batch norm
//! (the seed's first backbone). [`Arch`] says which tensors a state dict must hold; the network
//! itself is built from it by [`crate::model::net`].

use crate::error::{Error, Result};
use crate::tensor::{ShapeFmt, Tensor};
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, clap::ValueEnum)]
pub enum Arch {
    #[value(name = "resnet18")]
    ResNet18,
    #[value(name = "resnet34")]
    ResNet34,
    #[default]
    #[value(name = "resnet50")]
    ResNet50,
    #[value(name = "resnet101")]
    ResNet101,
    #[value(name = "resnet152")]
    ResNet152,
    #[value(name = "vgg19")]
    Vgg19,
}

/// A ResNet's residual block kind: two 3x3 convs (18, 34) or 1x1-3x3-1x1 with 4x expansion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    Basic,
    Bottleneck,
}

/// VGG19's feature extractor (torchvision config "E"): output channels of each 3x3 conv, 0 = a
/// 2x2/2 max pool. torchvision numbers the `features.*` modules conv, relu, conv, relu, pool, ...
pub const VGG19_CFG: [usize; 21] = [
    64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0, 512, 512, 512, 512, 0,
];
/// VGG19's hidden classifier width (classifier.0 and classifier.3).
pub const VGG_HIDDEN: usize = 4096;

pub const ALL: [Arch; 6] = [
    Arch::ResNet18,
    Arch::ResNet34,
    Arch::ResNet50,
    Arch::ResNet101,
    Arch::ResNet152,
    Arch::Vgg19,
];

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::ResNet18 => "resnet18",
            Arch::ResNet34 => "resnet34",
            Arch::ResNet50 => "resnet50",
            Arch::ResNet101 => "resnet101",
            Arch::ResNet152 => "resnet152",
            Arch::Vgg19 => "vgg19",
        }
    }

    pub fn parse(s: &str) -> Option<Arch> {
        ALL.into_iter().find(|a| a.name() == s)
    }

    /// Block kind and blocks per stage of a ResNet; None for VGG.
    pub fn resnet(self) -> Option<(Block, [usize; 4])> {
        match self {
            Arch::ResNet18 => Some((Block::Basic, [2, 2, 2, 2])),
            Arch::ResNet34 => Some((Block::Basic, [3, 4, 6, 3])),
            Arch::ResNet50 => Some((Block::Bottleneck, [3, 4, 6, 3])),
            Arch::ResNet101 => Some((Block::Bottleneck, [3, 4, 23, 3])),
            Arch::ResNet152 => Some((Block::Bottleneck, [3, 8, 36, 3])),
            Arch::Vgg19 => None,
        }
    }

    /// Width of the feature vector the classifier reads: 512 (ResNet18/34), 2048 (deeper
    /// ResNets), 4096 (VGG19's second hidden layer).
    pub fn features(self) -> usize {
        match self.resnet() {
            Some((Block::Basic, _)) => 512,
            Some((Block::Bottleneck, _)) => 2048,
            None => VGG_HIDDEN,
        }
    }

    /// Names of the classifier's (weight, bias): optional in a backbone file.
    pub fn classifier(self) -> (&'static str, &'static str) {
        match self {
            Arch::Vgg19 => ("classifier.6.weight", "classifier.6.bias"),
            _ => ("fc.weight", "fc.bias"),
        }
    }

    /// Every (name, shape) of a torchvision state dict of this architecture besides the
    /// classifier and `num_batches_tracked`, in module order.
    pub fn expected_tensors(self) -> Vec<(String, Vec<usize>)> {
        let mut v = Vec::new();
        let Some((block, counts)) = self.resnet() else {
            let mut cin = 3;
            let mut idx = 0;
            for &c in &VGG19_CFG {
                if c == 0 {
                    idx += 1;
                    continue;
                }
                v.push((format!("features.{idx}.weight"), vec![c, cin, 3, 3]));
                v.push((format!("features.{idx}.bias"), vec![c]));
                cin = c;
                idx += 2;
            }
            v.push(("classifier.0.weight".into(), vec![VGG_HIDDEN, 512 * 7 * 7]));
            v.push(("classifier.0.bias".into(), vec![VGG_HIDDEN]));
            v.push(("classifier.3.weight".into(), vec![VGG_HIDDEN, VGG_HIDDEN]));
            v.push(("classifier.3.bias".into(), vec![VGG_HIDDEN]));
            return v;
        };
        let bn = |v: &mut Vec<(String, Vec<usize>)>, prefix: &str, c: usize| {
            for s in ["weight", "bias", "running_mean", "running_var"] {
                v.push((format!("{prefix}.{s}"), vec![c]));
            }
        };
        v.push(("conv1.weight".into(), vec![64, 3, 7, 7]));
        bn(&mut v, "bn1", 64);
        let mut cin = 64;
        for (l, &blocks) in counts.iter().enumerate() {
            let w = 64 << l;
            let out = match block {
                Block::Basic => w,
                Block::Bottleneck => 4 * w,
            };
            for i in 0..blocks {
                let p = format!("layer{}.{i}", l + 1);
                match block {
                    Block::Basic => {
                        v.push((format!("{p}.conv1.weight"), vec![w, cin, 3, 3]));
                        bn(&mut v, &format!("{p}.bn1"), w);
                        v.push((format!("{p}.conv2.weight"), vec![w, w, 3, 3]));
                        bn(&mut v, &format!("{p}.bn2"), w);
                    }
                    Block::Bottleneck => {
                        v.push((format!("{p}.conv1.weight"), vec![w, cin, 1, 1]));
                        bn(&mut v, &format!("{p}.bn1"), w);
                        v.push((format!("{p}.conv2.weight"), vec![w, w, 3, 3]));
                        bn(&mut v, &format!("{p}.bn2"), w);
                        v.push((format!("{p}.conv3.weight"), vec![out, w, 1, 1]));
                        bn(&mut v, &format!("{p}.bn3"), out);
                    }
                }
                // torchvision projects the shortcut when the stride or the width changes.
                if i == 0 && (l > 0 || cin != out) {
                    v.push((format!("{p}.downsample.0.weight"), vec![out, cin, 1, 1]));
                    bn(&mut v, &format!("{p}.downsample.1"), out);
                }
                cin = out;
            }
        }
        v
    }

    /// The architecture whose tensors a state dict holds exactly (classifier aside), if any.
    pub fn detect(sd: &BTreeMap<String, Tensor>) -> Option<Arch> {
        ALL.into_iter().find(|a| {
            let exp = a.expected_tensors();
            let (cw, cb) = a.classifier();
            exp.iter()
                .all(|(n, s)| sd.get(n).is_some_and(|t| t.shape() == s.as_slice()))
                && sd.len() == exp.len() + [cw, cb].iter().filter(|n| sd.contains_key(**n)).count()
        })
    }

    /// Checks a state dict against this architecture and lists every problem at once: missing,
    /// unexpected, mis-shaped and non-finite tensors, negative running variances, half a
    /// classifier.
    pub fn validate(self, path: &Path, sd: &BTreeMap<String, Tensor>) -> Result<()> {
        let expected = self.expected_tensors();
        let (cw, cb) = self.classifier();
        let f = self.features();
        let mut problems = Vec::new();
        for (name, shape) in &expected {
            match sd.get(name) {
                None => problems.push(format!("missing {name} {}", ShapeFmt(shape))),
                Some(t) if t.shape() != shape.as_slice() => problems.push(format!(
                    "{name} has shape {}, expected {}",
                    ShapeFmt(t.shape()),
                    ShapeFmt(shape)
                )),
                Some(_) => {}
            }
        }
        let known: HashSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
        for (name, t) in sd {
            if !known.contains(name.as_str()) && name != cw && name != cb {
                problems.push(format!("unexpected {name} {}", ShapeFmt(t.shape())));
            }
            let bad = t.data().iter().filter(|v| !v.is_finite()).count();
            if bad > 0 {
                problems.push(format!("{name} has {bad} non-finite values"));
            }
            if name.ends_with("running_var") && t.data().iter().any(|&v| v < 0.0) {
                problems.push(format!("{name} has negative variances"));
            }
        }
        match (sd.get(cw), sd.get(cb)) {
            (None, None) => {}
            (Some(w), Some(b)) => {
                let k = w.shape().first().copied().unwrap_or(0);
                if w.shape() != [k, f] || b.shape() != [k] || k == 0 {
                    problems.push(format!(
                        "{cw} {} and {cb} {} must be [K, {f}] and [K]",
                        ShapeFmt(w.shape()),
                        ShapeFmt(b.shape())
                    ));
                }
            }
            (Some(_), None) => problems.push(format!("{cw} without {cb}")),
            (None, Some(_)) => problems.push(format!("{cb} without {cw}")),
        }
        if problems.is_empty() {
            return Ok(());
        }
        let mut detail = format!(
            "not a usable {} state dict ({} problems):",
            self.pretty(),
            problems.len()
        );
        for p in problems.iter().take(40) {
            let _ = write!(detail, "\n  - {p}");
        }
        if problems.len() > 40 {
            let _ = write!(detail, "\n  - ... and {} more", problems.len() - 40);
        }
        if let Some(a) = Arch::detect(sd).filter(|&a| a != self) {
            let _ = write!(
                detail,
                "\n  (the file holds a {}: pass --backbone {})",
                a.pretty(),
                a.name()
            );
        }
        Err(Error::File {
            path: path.to_path_buf(),
            detail,
        })
    }

    /// How people write the name: ResNet50, VGG19.
    pub fn pretty(self) -> &'static str {
        match self {
            Arch::ResNet18 => "ResNet18",
            Arch::ResNet34 => "ResNet34",
            Arch::ResNet50 => "ResNet50",
            Arch::ResNet101 => "ResNet101",
            Arch::ResNet152 => "ResNet152",
            Arch::Vgg19 => "VGG19",
        }
    }

    /// Reads and validates weights of this architecture (f32, f16 or bf16 safetensors);
    /// `num_batches_tracked` entries are ignored.
    pub fn load_state_dict(self, path: &Path) -> Result<BTreeMap<String, Tensor>> {
        let f =
            crate::io::safetensors::read_filtered(path, |n| !n.ends_with("num_batches_tracked"))?;
        self.validate(path, &f.tensors)?;
        Ok(f.tensors)
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_counts_match_torchvision() {
        // torchvision's documented parameter counts (with a 1000-class classifier).
        for (a, want) in [
            (Arch::ResNet18, 11_689_512usize),
            (Arch::ResNet34, 21_797_672),
            (Arch::ResNet50, 25_557_032),
            (Arch::ResNet101, 44_549_160),
            (Arch::ResNet152, 60_192_808),
            (Arch::Vgg19, 143_667_240),
        ] {
            let body: usize = a
                .expected_tensors()
                .iter()
                .filter(|(n, _)| !n.contains("running_"))
                .map(|(_, s)| s.iter().product::<usize>())
                .sum();
            let fc = 1000 * a.features() + 1000;
            assert_eq!(body + fc, want, "{a}");
        }
    }
}
