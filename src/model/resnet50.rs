//! ResNet50 v1.5 (torchvision topology): stem conv 7x7/2 + BN + ReLU + max-pool 3x3/2, then
//! bottleneck blocks [3, 4, 6, 3] of widths [64, 128, 256, 512] (x4 out), the stride-2 of a
//! downsampling block on its 3x3 conv and on its 1x1 projection; global average pool to 2048
//! features; optional fc.
//!
//! For inference every BatchNorm is folded into the convolution before it (w' = w * s,
//! b' = beta - mean * s, s = gamma / sqrt(var + eps), computed in f64), so a block is three
//! fused conv(+bias, +residual, +ReLU) calls on any backend.

use crate::backend::Backend;
use crate::error::Result;
use crate::model::arch::Arch;
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

#[derive(Clone, Debug)]
pub struct Bottleneck<T> {
    pub conv1: ConvUnit<T>,
    pub conv2: ConvUnit<T>,
    pub conv3: ConvUnit<T>,
    pub downsample: Option<ConvUnit<T>>,
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

/// ResNet50 ready for inference on backend `B`.
pub struct ResNet50<B: Backend> {
    pub stem: ConvUnit<B::Tensor>,
    pub blocks: Vec<Bottleneck<B::Tensor>>,
    /// (weight [K, 2048], bias [K]) when the weights carry a classifier.
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
    /// Builds the model from a validated state dict (see [`load_state_dict`]).
    pub fn from_state_dict(b: &B, sd: &BTreeMap<String, Tensor>) -> Result<Self> {
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
        for (l, &n) in BLOCKS.iter().enumerate() {
            for i in 0..n {
                let p = format!("layer{}.{i}", l + 1);
                let stride = if l > 0 && i == 0 { 2 } else { 1 };
                blocks.push(Bottleneck {
                    conv1: unit(
                        &format!("{p}.conv1"),
                        &format!("{p}.bn1"),
                        Conv2dParams::square(1, 0),
                    )?,
                    conv2: unit(
                        &format!("{p}.conv2"),
                        &format!("{p}.bn2"),
                        Conv2dParams::square(stride, 1),
                    )?,
                    conv3: unit(
                        &format!("{p}.conv3"),
                        &format!("{p}.bn3"),
                        Conv2dParams::square(1, 0),
                    )?,
                    downsample: if i == 0 {
                        Some(unit(
                            &format!("{p}.downsample.0"),
                            &format!("{p}.downsample.1"),
                            Conv2dParams::square(stride, 0),
                        )?)
                    } else {
                        None
                    },
                });
            }
        }
        let fc = match (sd.get("fc.weight"), sd.get("fc.bias")) {
            (Some(w), Some(bias)) => Some((b.upload(w)?, b.upload(bias)?)),
            _ => None,
        };
        Ok(ResNet50 { stem, blocks, fc })
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

    /// The 16 bottleneck blocks after the stem and its pool, with `conv` in either layout.
    fn blocks(
        &self,
        mut h: B::Tensor,
        conv: impl Fn(&B::Tensor, &ConvUnit<B::Tensor>, Option<&B::Tensor>, bool) -> Result<B::Tensor>,
    ) -> Result<B::Tensor> {
        for blk in &self.blocks {
            // The shortcut borrows h (no copy) unless the block projects it.
            let projected = match &blk.downsample {
                Some(d) => Some(conv(&h, d, None, false)?),
                None => None,
            };
            let t = conv(&h, &blk.conv1, None, true)?;
            let t = conv(&t, &blk.conv2, None, true)?;
            let out = conv(&t, &blk.conv3, Some(projected.as_ref().unwrap_or(&h)), true)?;
            h = out;
        }
        Ok(h)
    }
}

/// Floating-point operations (2 per multiply-add) of one forward pass on an H x W image,
/// counted from the actual layer geometry (8.18 GFLOP at 224x224 without fc).
pub fn forward_flops(h: usize, w: usize) -> Result<f64> {
    let mut macs = 0usize;
    let mut add = |xs: [usize; 4], ws: [usize; 4], p: Conv2dParams| -> Result<[usize; 4]> {
        let g = geometry(&xs, &ws, &p)?;
        macs += g.macs();
        Ok(g.y_shape())
    };
    let y = add([1, 3, h, w], [64, 3, 7, 7], Conv2dParams::square(2, 3))?;
    let mut s = Pool2dParams::square(3, 2, 1).output_shape(&y)?;
    for (l, (&n, &wd)) in BLOCKS.iter().zip(&WIDTHS).enumerate() {
        for i in 0..n {
            let stride = if l > 0 && i == 0 { 2 } else { 1 };
            let cin = s[1];
            if i == 0 {
                add(s, [4 * wd, cin, 1, 1], Conv2dParams::square(stride, 0))?;
            }
            let t = add(s, [wd, cin, 1, 1], Conv2dParams::square(1, 0))?;
            let t = add(t, [wd, wd, 3, 3], Conv2dParams::square(stride, 1))?;
            s = add(t, [4 * wd, wd, 1, 1], Conv2dParams::square(1, 0))?;
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
