//! ResNet50 v1.5 (torchvision topology): stem conv 7x7/2 + BN + ReLU + max-pool 3x3/2, then
//! bottleneck blocks [3, 4, 6, 3] of widths [64, 128, 256, 512] (x4 out), the stride-2 of a
//! downsampling block on its 3x3 conv and on its 1x1 projection; global average pool to 2048
//! features; optional fc.
//!
//! For inference every BatchNorm is folded into the convolution before it (w' = w * s,
//! b' = beta - mean * s, s = gamma / sqrt(var + eps), computed in f64), so a block is three
//! fused conv(+bias, +residual, +ReLU) calls on any backend. The same folded model serves
//! every torchvision ResNet depth ([`ResNet50::from_state_dict_for`]): ResNet101/152 have
//! more bottleneck blocks, ResNet18/34 basic blocks (two 3x3 convolutions, 512 features), so
//! `embed`, `infer`, `serve` and Grad-CAM on any ResNet take the fused (and, on AVX-512 CPUs
//! and tensor cores, channels-last) path.

use crate::backend::Backend;
use crate::error::Result;
use crate::model::arch::{Arch, Block as BlockKind};
use crate::ops::conv2d::{Conv2dParams, geometry};
use crate::ops::pool::Pool2dParams;
use crate::tensor::Tensor;
use std::collections::BTreeMap;
use std::path::Path;

pub const BLOCKS: [usize; 4] = [3, 4, 6, 3];
pub const WIDTHS: [usize; 4] = [64, 128, 256, 512];
pub const FEATURES: usize = 2048;
pub const BN_EPS: f64 = 1e-5;

/// Every (name, shape) a torchvision ResNet50 state dict holds besides `fc.*` and
/// `num_batches_tracked`, in a stable order.
pub fn expected_tensors() -> Vec<(String, Vec<usize>)> {
    Arch::ResNet50.expected_tensors()
}

/// Checks a state dict against ResNet50 and lists every problem at once (see [`Arch::validate`]).
pub fn validate(path: &Path, sd: &BTreeMap<String, Tensor>) -> Result<()> {
    Arch::ResNet50.validate(path, sd)
}

/// Reads and validates ResNet50 weights (torchvision/timm names; f32, f16 or bf16).
/// `num_batches_tracked` entries are ignored.
pub fn load_state_dict(path: &Path) -> Result<BTreeMap<String, Tensor>> {
    Arch::ResNet50.load_state_dict(path)
}

/// A convolution with its BatchNorm folded in.
#[derive(Clone, Debug)]
pub struct ConvUnit<T> {
    pub w: T,
    pub b: T,
    pub p: Conv2dParams,
}

/// A residual block with its BatchNorms folded in: torchvision's bottleneck (1x1, 3x3 with the
/// stride, 1x1 to 4x the width: ResNet50/101/152) or basic block (two 3x3, the first with the
/// stride: ResNet18/34), and the projected shortcut where the block changes stride or width.
#[derive(Clone, Debug)]
pub enum Block<T> {
    Bottleneck {
        conv1: ConvUnit<T>,
        conv2: ConvUnit<T>,
        conv3: ConvUnit<T>,
        downsample: Option<ConvUnit<T>>,
    },
    Basic {
        conv1: ConvUnit<T>,
        conv2: ConvUnit<T>,
        downsample: Option<ConvUnit<T>>,
    },
}

/// Folds `{bn}.*` into `conv` weights: returns (w', b') on the host.
fn fold(sd: &BTreeMap<String, Tensor>, conv: &str, bn: &str) -> (Tensor, Tensor) {
    let w = &sd[&format!("{conv}.weight")];
    let get = |s: &str| &sd[&format!("{bn}.{s}")];
    let (gamma, beta, mean, var) = (
        get("weight"),
        get("bias"),
        get("running_mean"),
        get("running_var"),
    );
    let o = w.shape()[0];
    let per = w.len() / o;
    let scale: Vec<f64> = (0..o)
        .map(|c| gamma.data()[c] as f64 / (var.data()[c] as f64 + BN_EPS).sqrt())
        .collect();
    let wf = Tensor::from_fn(w.shape(), |i| (w.data()[i] as f64 * scale[i / per]) as f32);
    let bf = Tensor::from_fn(&[o], |c| {
        (beta.data()[c] as f64 - mean.data()[c] as f64 * scale[c]) as f32
    });
    (wf, bf)
}

/// A folded ResNet (any depth torchvision has: 18, 34, 50, 101, 152) ready for inference on
/// backend `B`. The name stays ResNet50's: the product's backbone, and the one this module
/// was written for; the other depths differ only in their blocks.
pub struct ResNet50<B: Backend> {
    pub arch: Arch,
    pub stem: ConvUnit<B::Tensor>,
    pub blocks: Vec<Block<B::Tensor>>,
    /// (weight [K, features], bias [K]) when the weights carry a classifier.
    pub fc: Option<(B::Tensor, B::Tensor)>,
}

/// What a forward pass returns.
pub struct Output<T> {
    /// Global-average-pooled features [N, 2048].
    pub features: T,
    /// fc output [N, K], when asked for and present.
    pub logits: Option<T>,
}

impl<B: Backend> ResNet50<B> {
    /// Builds ResNet50 from a validated state dict (see [`load_state_dict`]).
    pub fn from_state_dict(b: &B, sd: &BTreeMap<String, Tensor>) -> Result<Self> {
        Self::from_state_dict_for(b, Arch::ResNet50, sd)
    }

    /// Builds the ResNet `arch` from a state dict validated for it ([`Arch::load_state_dict`]
    /// or [`Arch::validate`]); an error for an architecture that is not a ResNet.
    pub fn from_state_dict_for(b: &B, arch: Arch, sd: &BTreeMap<String, Tensor>) -> Result<Self> {
        let Some((kind, counts)) = arch.resnet() else {
            return Err(crate::error::invalid(
                arch.name(),
                "the folded inference model is built for ResNets only",
            ));
        };
        let unit = |conv: &str, bn: &str, p: Conv2dParams| -> Result<ConvUnit<B::Tensor>> {
            let (w, bias) = fold(sd, conv, bn);
            Ok(ConvUnit {
                w: b.upload(&w)?,
                b: b.upload(&bias)?,
                p,
            })
        };
        let stem = unit("conv1", "bn1", Conv2dParams::square(2, 3))?;
        let mut blocks = Vec::new();
        for (l, &n) in counts.iter().enumerate() {
            for i in 0..n {
                let p = format!("layer{}.{i}", l + 1);
                let stride = if l > 0 && i == 0 { 2 } else { 1 };
                let conv = |k: usize, s: usize, pad: usize| {
                    unit(
                        &format!("{p}.conv{k}"),
                        &format!("{p}.bn{k}"),
                        Conv2dParams::square(s, pad),
                    )
                };
                // torchvision projects the shortcut where the stride or the width changes
                // (Arch::expected_tensors): the validated state dict says where.
                let downsample = if sd.contains_key(&format!("{p}.downsample.0.weight")) {
                    Some(unit(
                        &format!("{p}.downsample.0"),
                        &format!("{p}.downsample.1"),
                        Conv2dParams::square(stride, 0),
                    )?)
                } else {
                    None
                };
                blocks.push(match kind {
                    BlockKind::Bottleneck => Block::Bottleneck {
                        conv1: conv(1, 1, 0)?,
                        conv2: conv(2, stride, 1)?,
                        conv3: conv(3, 1, 0)?,
                        downsample,
                    },
                    BlockKind::Basic => Block::Basic {
                        conv1: conv(1, stride, 1)?,
                        conv2: conv(2, 1, 1)?,
                        downsample,
                    },
                });
            }
        }
        let fc = match (sd.get("fc.weight"), sd.get("fc.bias")) {
            (Some(w), Some(bias)) => Some((b.upload(w)?, b.upload(bias)?)),
            _ => None,
        };
        Ok(ResNet50 {
            arch,
            stem,
            blocks,
            fc,
        })
    }

    /// Forward pass on normalised images [N, 3, H, W] (H, W >= 32 so layer4 is non-empty).
    pub fn forward(&self, b: &B, x: &B::Tensor, want_logits: bool) -> Result<Output<B::Tensor>> {
        b.run_on_workers(|| self.forward_here(b, x, want_logits))
    }

    fn forward_here(&self, b: &B, x: &B::Tensor, want_logits: bool) -> Result<Output<B::Tensor>> {
        let features = if b.channels_last() {
            b.global_avg_pool_cl(&self.map_channels_last(b, x)?)?
        } else {
            b.global_avg_pool(&self.map_nchw(b, x)?)?
        };
        let logits = match (&self.fc, want_logits) {
            (Some((w, bias)), true) => Some(b.dense(&features, w, Some(bias))?),
            _ => None,
        };
        Ok(Output { features, logits })
    }

    /// layer4's output [N, 2048, H/32, W/32]: the map before global pooling (what Grad-CAM
    /// explains, `pipeline::gradcam`). Computed channels-last where the backend offers it (`ops::channels_last`: the CPU's
    /// AVX-512 kernel), NCHW otherwise; the result is NCHW either way.
    pub fn map(&self, b: &B, x: &B::Tensor) -> Result<B::Tensor> {
        b.run_on_workers(|| {
            if b.channels_last() {
                b.to_nchw(&self.map_channels_last(b, x)?)
            } else {
                self.map_nchw(b, x)
            }
        })
    }

    /// [`Self::map`] through the NCHW ops.
    pub fn map_nchw(&self, b: &B, x: &B::Tensor) -> Result<B::Tensor> {
        let conv = |x: &B::Tensor, u: &ConvUnit<B::Tensor>, res: Option<&B::Tensor>, relu: bool| {
            b.conv2d_fused(x, &u.w, Some(&u.b), res, relu, &u.p)
        };
        let mut h = conv(x, &self.stem, None, true)?;
        h = b.maxpool2d(&h, &Pool2dParams::square(3, 2, 1))?;
        self.blocks(h, conv)
    }

    /// layer4's output [N, H/32, W/32, 2048] channels-last, from NCHW images: the same
    /// layers through `ops::channels_last` (the backend must offer it).
    pub fn map_channels_last(&self, b: &B, x: &B::Tensor) -> Result<B::Tensor> {
        let conv = |x: &B::Tensor, u: &ConvUnit<B::Tensor>, res: Option<&B::Tensor>, relu: bool| {
            b.conv2d_fused_cl(x, &u.w, Some(&u.b), res, relu, &u.p)
        };
        let mut h = conv(&b.to_channels_last(x)?, &self.stem, None, true)?;
        h = b.maxpool2d_cl(&h, &Pool2dParams::square(3, 2, 1))?;
        self.blocks(h, conv)
    }

    /// The residual blocks after the stem and its pool, with `conv` in either layout.
    fn blocks(
        &self,
        mut h: B::Tensor,
        conv: impl Fn(&B::Tensor, &ConvUnit<B::Tensor>, Option<&B::Tensor>, bool) -> Result<B::Tensor>,
    ) -> Result<B::Tensor> {
        for blk in &self.blocks {
            let (Block::Bottleneck { downsample, .. } | Block::Basic { downsample, .. }) = blk;
            // The shortcut borrows h (no copy) unless the block projects it.
            let projected = match downsample {
                Some(d) => Some(conv(&h, d, None, false)?),
                None => None,
            };
            let shortcut = Some(projected.as_ref().unwrap_or(&h));
            h = match blk {
                Block::Bottleneck {
                    conv1,
                    conv2,
                    conv3,
                    ..
                } => {
                    let t = conv(&h, conv1, None, true)?;
                    let t = conv(&t, conv2, None, true)?;
                    conv(&t, conv3, shortcut, true)?
                }
                Block::Basic { conv1, conv2, .. } => {
                    let t = conv(&h, conv1, None, true)?;
                    conv(&t, conv2, shortcut, true)?
                }
            };
        }
        Ok(h)
    }
}

/// Floating-point operations (2 per multiply-add) of ResNet50's convolutions on one h x w
/// image.
pub fn forward_flops(h: usize, w: usize) -> Result<f64> {
    forward_flops_for(Arch::ResNet50, h, w)
}

/// [`forward_flops`] for any ResNet depth (an error for VGG19).
pub fn forward_flops_for(arch: Arch, h: usize, w: usize) -> Result<f64> {
    let Some((kind, counts)) = arch.resnet() else {
        return Err(crate::error::invalid(arch.name(), "not a ResNet"));
    };
    let mut macs = 0usize;
    let mut add = |xs: [usize; 4], ws: [usize; 4], p: Conv2dParams| -> Result<[usize; 4]> {
        let g = geometry(&xs, &ws, &p)?;
        macs += g.macs();
        Ok(g.y_shape())
    };
    let y = add([1, 3, h, w], [64, 3, 7, 7], Conv2dParams::square(2, 3))?;
    let mut s = Pool2dParams::square(3, 2, 1).output_shape(&y)?;
    for (l, (&n, &wd)) in counts.iter().zip(&WIDTHS).enumerate() {
        for i in 0..n {
            let stride = if l > 0 && i == 0 { 2 } else { 1 };
            let cin = s[1];
            let out = match kind {
                BlockKind::Bottleneck => 4 * wd,
                BlockKind::Basic => wd,
            };
            // The projected shortcut, where torchvision has one (Arch::expected_tensors).
            if i == 0 && (stride != 1 || cin != out) {
                add(s, [out, cin, 1, 1], Conv2dParams::square(stride, 0))?;
            }
            s = match kind {
                BlockKind::Bottleneck => {
                    let t = add(s, [wd, cin, 1, 1], Conv2dParams::square(1, 0))?;
                    let t = add(t, [wd, wd, 3, 3], Conv2dParams::square(stride, 1))?;
                    add(t, [out, wd, 1, 1], Conv2dParams::square(1, 0))?
                }
                BlockKind::Basic => {
                    let t = add(s, [wd, cin, 3, 3], Conv2dParams::square(stride, 1))?;
                    add(t, [wd, wd, 3, 3], Conv2dParams::square(1, 1))?
                }
            };
        }
    }
    Ok(2.0 * macs as f64)
}

/// Every distinct convolution of ResNet50 v1.5 at 224x224:
/// (times it occurs, in channels, input size, out channels, kernel, stride, padding).
/// Benchmarks time each once and weight by the count.
pub const CONV_SHAPES: &[(usize, usize, usize, usize, usize, usize, usize)] = &[
    (1, 3, 224, 64, 7, 2, 3),
    (1, 64, 56, 64, 1, 1, 0),
    (3, 64, 56, 64, 3, 1, 1),
    (3, 64, 56, 256, 1, 1, 0),
    (1, 64, 56, 256, 1, 1, 0),
    (2, 256, 56, 64, 1, 1, 0),
    (1, 256, 56, 128, 1, 1, 0),
    (1, 128, 56, 128, 3, 2, 1),
    (1, 256, 56, 512, 1, 2, 0),
    (3, 128, 28, 128, 3, 1, 1),
    (4, 128, 28, 512, 1, 1, 0),
    (3, 512, 28, 128, 1, 1, 0),
    (1, 512, 28, 256, 1, 1, 0),
    (1, 256, 28, 256, 3, 2, 1),
    (1, 512, 28, 1024, 1, 2, 0),
    (5, 256, 14, 256, 3, 1, 1),
    (6, 256, 14, 1024, 1, 1, 0),
    (5, 1024, 14, 256, 1, 1, 0),
    (1, 1024, 14, 512, 1, 1, 0),
    (1, 512, 14, 512, 3, 2, 1),
    (1, 1024, 14, 2048, 1, 2, 0),
    (2, 512, 7, 512, 3, 1, 1),
    (3, 512, 7, 2048, 1, 1, 0),
    (2, 2048, 7, 512, 1, 1, 0),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_flops_match_torchvisions_published_counts() {
        // torchvision's model docs list multiply-adds per 224x224 image ("GFLOPS", in fact
        // GMACs): 1.81 / 3.66 / 4.09 / 7.80 / 11.51 G. Ours count the convolutions only (the
        // classifier adds 0.5-2 M), so within 1% of those.
        for (arch, gmacs) in [
            (Arch::ResNet18, 1.81),
            (Arch::ResNet34, 3.66),
            (Arch::ResNet50, 4.09),
            (Arch::ResNet101, 7.80),
            (Arch::ResNet152, 11.51),
        ] {
            let got = forward_flops_for(arch, 224, 224).unwrap() / 2e9;
            assert!(
                (got / gmacs - 1.0).abs() < 0.01,
                "{arch}: {got} G vs {gmacs}"
            );
        }
        assert_eq!(
            forward_flops(224, 224).unwrap(),
            forward_flops_for(Arch::ResNet50, 224, 224).unwrap()
        );
        assert!(forward_flops_for(Arch::Vgg19, 224, 224).is_err());
    }
}
