//! Dynamic loss scaling for FP16 training: PyTorch's `torch.amp.GradScaler`, with its defaults
//! and its update rule.
//!
//! Why. At `--precision fp16` the tensor cores read every gradient operand as IEEE half, whose
//! smallest subnormal is 2^-24 ~ 6e-8 and largest value 65504. Weight gradients of a network
//! trained with a mean loss are often smaller than that (they flush to zero: the layer stops
//! learning), so the loss is multiplied by a scale S before backward (here: dL/dlogits, the
//! same thing), every gradient by 1/S after it, and the step is skipped when any gradient is
//! inf or NaN (S was too large: something overflowed).
//!
//! The rule, per optimiser step (`torch._amp_update_scale_`):
//! - overflow: skip the step (parameters, optimiser moments and step count untouched, so the
//!   learning-rate schedule does not advance either), S *= 0.5, growth tracker = 0;
//! - otherwise: step; tracker += 1; when it reaches the growth interval (2000), S *= 2 (if
//!   that stays finite) and tracker = 0.
//!
//! S starts at 2^16. S and the tracker are saved in every checkpoint (metadata `loss_scale`,
//! `loss_scale_growth`, `loss_scale_skipped`), so a resumed run scales exactly as the
//! uninterrupted run would have.
//!
//! `--loss-scale auto` (the default) turns it on where PyTorch's AMP recipe uses a GradScaler:
//! when any matrix product runs in FP16. BF16 has FP32's exponent range and needs none
//! (PyTorch's BF16 autocast recipe has no scaler either); FP32 and TF32 neither. `dynamic`
//! turns it on anywhere (harmless: in FP32 nothing flushes, and with powers of two the scaling
//! is exact), `off` never.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::backend::Backend;
use crate::cuda::{Precision, Precisions};
use crate::error::{Result, file_err, invalid};

/// `--loss-scale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LossScaleMode {
    /// Dynamic scaling when a matrix product runs in FP16 (PyTorch's AMP recipe), else off.
    #[default]
    Auto,
    /// Dynamic scaling at any precision.
    Dynamic,
    /// No scaling.
    Off,
}

impl LossScaleMode {
    pub fn name(self) -> &'static str {
        match self {
            LossScaleMode::Auto => "auto",
            LossScaleMode::Dynamic => "dynamic",
            LossScaleMode::Off => "off",
        }
    }
}

/// The scale's multiplier after `GROWTH_INTERVAL` steps without overflow (GradScaler's
/// growth_factor) and after an overflow (backoff_factor).
pub const GROWTH: f32 = 2.0;
pub const BACKOFF: f32 = 0.5;

/// How loss scaling runs (GradScaler's init_scale and growth_interval; the factors are fixed).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossScaleConfig {
    pub mode: LossScaleMode,
    /// The first scale (`--loss-scale-init`, 65536 = 2^16 as GradScaler's init_scale).
    pub init: f32,
    /// Steps without overflow before the scale doubles (`--loss-scale-interval`, 2000).
    pub growth_interval: u32,
}

impl Default for LossScaleConfig {
    fn default() -> Self {
        LossScaleConfig {
            mode: LossScaleMode::Auto,
            init: 65536.0,
            growth_interval: 2000,
        }
    }
}

impl LossScaleConfig {
    pub fn validate(&self) -> Result<()> {
        if !(self.init.is_finite() && self.init > 0.0) {
            return Err(invalid(
                "train",
                format!(
                    "--loss-scale-init must be finite and > 0, got {}",
                    self.init
                ),
            ));
        }
        if self.growth_interval == 0 {
            return Err(invalid("train", "--loss-scale-interval must be >= 1"));
        }
        Ok(())
    }

    /// Whether a backend computing at `p` scales its loss.
    pub fn enabled_for(&self, p: Precisions) -> bool {
        match self.mode {
            LossScaleMode::Off => false,
            LossScaleMode::Dynamic => true,
            LossScaleMode::Auto => p.conv == Precision::Fp16 || p.matmul == Precision::Fp16,
        }
    }

    pub fn to_json(&self) -> Value {
        json!({"mode": self.mode.name(), "init": self.init, "growth_interval": self.growth_interval})
    }
}

/// `dz` times `factor` (the loss scale, times 1/N for N accumulated micro-batches): the seed of
/// backward. A host round trip of dL/dlogits, [batch, classes] floats; `dz` itself when the
/// factor is 1.
pub fn scale_grad<B: Backend>(b: &B, dz: B::Tensor, factor: f32) -> Result<B::Tensor> {
    if factor == 1.0 {
        return Ok(dz);
    }
    let mut d = b.download(&dz)?;
    d.data_mut().iter_mut().for_each(|v| *v *= factor);
    b.upload(&d)
}

/// The scaler's state over a run.
#[derive(Clone, Debug, PartialEq)]
pub struct LossScaler {
    enabled: bool,
    scale: f32,
    growth_tracker: u32,
    growth_interval: u32,
    /// Steps skipped for overflow so far (reported, and saved so a resumed run counts on).
    skipped: u64,
}

/// What one unscale gives: the gradients divided by the scale, or the news that the step must
/// be skipped.
pub enum Unscaled<T> {
    Step(Vec<T>),
    Overflow,
}

impl LossScaler {
    /// The scaler of a run on a backend computing at `p`.
    pub fn new(cfg: &LossScaleConfig, p: Precisions) -> Result<LossScaler> {
        cfg.validate()?;
        Ok(LossScaler {
            enabled: cfg.enabled_for(p),
            scale: cfg.init,
            growth_tracker: 0,
            growth_interval: cfg.growth_interval,
            skipped: 0,
        })
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }
    /// The current scale (1 when scaling is off).
    pub fn scale(&self) -> f32 {
        if self.enabled { self.scale } else { 1.0 }
    }
    pub fn growth_tracker(&self) -> u32 {
        self.growth_tracker
    }
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Divides `grads` by the scale and checks them. Off: the gradients as they are. On: the
    /// unscaled gradients, or [`Unscaled::Overflow`] when any is inf or NaN before or after
    /// the division ([`crate::ops::grad_scale`]). Call [`LossScaler::update`] after the step.
    pub fn unscale<B: Backend>(&self, b: &B, grads: Vec<B::Tensor>) -> Result<Unscaled<B::Tensor>> {
        if !self.enabled {
            return Ok(Unscaled::Step(grads));
        }
        let refs: Vec<&B::Tensor> = grads.iter().collect();
        // 1 / S in f32, as GradScaler's `scale.double().reciprocal().float()`: exact for the
        // powers of two the rule produces from a power-of-two start.
        let inv = (1.0 / self.scale as f64) as f32;
        let (out, found) = b.unscale_grads(&refs, inv)?;
        Ok(if found {
            Unscaled::Overflow
        } else {
            Unscaled::Step(out)
        })
    }

    /// The scale after a step: backed off on overflow, grown after `growth_interval` clean
    /// steps (GradScaler.update).
    pub fn update(&mut self, overflow: bool) {
        if !self.enabled {
            return;
        }
        if overflow {
            self.scale *= BACKOFF;
            self.growth_tracker = 0;
            self.skipped += 1;
            return;
        }
        self.growth_tracker += 1;
        if self.growth_tracker == self.growth_interval {
            let grown = self.scale * GROWTH;
            if grown.is_finite() {
                self.scale = grown;
            }
            self.growth_tracker = 0;
        }
    }

    /// Checkpoint metadata (empty when scaling is off).
    pub fn metadata(&self) -> Vec<(String, String)> {
        if !self.enabled {
            return Vec::new();
        }
        vec![
            ("loss_scale".into(), format!("{:e}", self.scale)),
            ("loss_scale_growth".into(), self.growth_tracker.to_string()),
            ("loss_scale_skipped".into(), self.skipped.to_string()),
        ]
    }

    /// The state a checkpoint (`path`, metadata `meta`) saved. A checkpoint without it (scaling
    /// was off, or it predates loss scaling) leaves the fresh state; a malformed value is an
    /// error naming the file.
    pub fn restore(&mut self, meta: &HashMap<String, String>, path: &Path) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        let Some(s) = meta.get("loss_scale") else {
            return Ok(());
        };
        let bad = |k: &str| file_err(path, format!("bad metadata {k}"));
        let scale: f32 = s.parse().map_err(|_| bad("loss_scale"))?;
        if !(scale.is_finite() && scale > 0.0) {
            return Err(bad("loss_scale"));
        }
        let num = |k: &str| -> Result<u64> {
            meta.get(k)
                .ok_or_else(|| bad(k))?
                .parse()
                .map_err(|_| bad(k))
        };
        let growth = num("loss_scale_growth")?;
        if growth >= self.growth_interval as u64 {
            return Err(bad("loss_scale_growth"));
        }
        self.scale = scale;
        self.growth_tracker = growth as u32;
        self.skipped = num("loss_scale_skipped")?;
        Ok(())
    }

    /// A line for the epoch log when scaling is on: the scale and the steps skipped so far.
    pub fn summary(&self) -> Option<String> {
        self.enabled.then(|| {
            format!(
                "loss scale {} ({} step{} skipped for overflow so far)",
                self.scale,
                self.skipped,
                if self.skipped == 1 { "" } else { "s" }
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::prelude::*;
    use crate::{CpuBackend, Tensor};

    fn fp16() -> Precisions {
        Precisions::all(Precision::Fp16)
    }

    #[test]
    fn auto_follows_pytorchs_amp_recipe() {
        let auto = LossScaleConfig::default();
        assert!(auto.enabled_for(fp16()));
        let conv_only = Precisions {
            conv: Precision::Fp16,
            matmul: Precision::Fp32,
        };
        assert!(auto.enabled_for(conv_only));
        for p in [Precision::Fp32, Precision::Tf32, Precision::Bf16] {
            assert!(!auto.enabled_for(Precisions::all(p)), "{p:?}");
            let dynamic = LossScaleConfig {
                mode: LossScaleMode::Dynamic,
                ..auto
            };
            assert!(dynamic.enabled_for(Precisions::all(p)));
        }
        let off = LossScaleConfig {
            mode: LossScaleMode::Off,
            ..auto
        };
        assert!(!off.enabled_for(fp16()));
        let s = LossScaler::new(&off, fp16()).unwrap();
        assert_eq!((s.enabled(), s.scale()), (false, 1.0));
        assert!(s.metadata().is_empty() && s.summary().is_none());
    }

    /// The sequence GradScaler produces (init 2^16, growth interval 3): an overflow halves the
    /// scale and resets the tracker; 3 clean steps in a row double it. The expected pairs are
    /// what `torch._amp_update_scale_(scale, tracker, found_inf, 2.0, 0.5, 3)` gave for this
    /// overflow sequence (torch 2.15, CPU).
    #[test]
    fn update_rule_is_gradscalers() {
        let cfg = LossScaleConfig {
            growth_interval: 3,
            ..Default::default()
        };
        let mut s = LossScaler::new(&cfg, fp16()).unwrap();
        let mut seen = Vec::new();
        for overflow in [false, false, true, false, false, false, false, true, true] {
            s.update(overflow);
            seen.push((s.scale(), s.growth_tracker()));
        }
        let k = 65536.0;
        assert_eq!(
            seen,
            [
                (k, 1),
                (k, 2),
                (k / 2.0, 0),
                (k / 2.0, 1),
                (k / 2.0, 2),
                (k, 0),
                (k, 1),
                (k / 2.0, 0),
                (k / 4.0, 0)
            ]
        );
        assert_eq!(s.skipped(), 3);
        // Growth stops below inf (GradScaler keeps the old scale when the new one is not finite).
        let mut top = LossScaler::new(
            &LossScaleConfig {
                init: f32::MAX,
                growth_interval: 1,
                ..cfg
            },
            fp16(),
        )
        .unwrap();
        top.update(false);
        assert_eq!((top.scale(), top.growth_tracker()), (f32::MAX, 0));
    }

    #[test]
    fn state_round_trips_through_checkpoint_metadata() {
        let cfg = LossScaleConfig {
            growth_interval: 5,
            ..Default::default()
        };
        let mut s = LossScaler::new(&cfg, fp16()).unwrap();
        for o in [true, true, false, false, true, false] {
            s.update(o);
        }
        let meta: HashMap<String, String> = s.metadata().into_iter().collect();
        let mut r = LossScaler::new(&cfg, fp16()).unwrap();
        r.restore(&meta, Path::new("ck.safetensors")).unwrap();
        assert_eq!(r, s);
        // Odd scales survive the text form exactly.
        let mut odd = LossScaler::new(&LossScaleConfig { init: 0.1, ..cfg }, fp16()).unwrap();
        odd.update(true);
        let meta: HashMap<String, String> = odd.metadata().into_iter().collect();
        let mut r = LossScaler::new(&cfg, fp16()).unwrap();
        r.restore(&meta, Path::new("ck")).unwrap();
        assert_eq!(r.scale().to_bits(), odd.scale().to_bits());
        // No state saved: fresh. Bad state: an error naming the file.
        let mut fresh = LossScaler::new(&cfg, fp16()).unwrap();
        fresh.restore(&HashMap::new(), Path::new("ck")).unwrap();
        assert_eq!(fresh, LossScaler::new(&cfg, fp16()).unwrap());
        for (k, v) in [
            ("loss_scale", "-1"),
            ("loss_scale", "inf"),
            ("loss_scale", "x"),
            ("loss_scale_growth", "5"),
            ("loss_scale_skipped", "-2"),
        ] {
            let mut m: HashMap<String, String> = s.metadata().into_iter().collect();
            m.insert(k.into(), v.into());
            let e = fresh
                .clone()
                .restore(&m, Path::new("ck.safetensors"))
                .unwrap_err();
            assert!(
                e.to_string().contains("ck.safetensors") && e.to_string().contains(k),
                "{e}"
            );
        }
    }

    #[test]
    fn bad_settings_are_refused() {
        for init in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            let c = LossScaleConfig {
                init,
                ..Default::default()
            };
            assert!(LossScaler::new(&c, fp16()).is_err(), "{init}");
        }
        let c = LossScaleConfig {
            growth_interval: 0,
            ..Default::default()
        };
        assert!(LossScaler::new(&c, fp16()).is_err());
    }

    #[test]
    fn unscale_divides_or_reports_overflow() {
        let b = CpuBackend;
        let cfg = LossScaleConfig {
            mode: LossScaleMode::Dynamic,
            init: 1024.0,
            ..Default::default()
        };
        let s = LossScaler::new(&cfg, Precisions::default()).unwrap();
        let g = b
            .upload(&Tensor::new(&[3], vec![1024.0, -3.0, 1e-30]).unwrap())
            .unwrap();
        let Unscaled::Step(out) = s.unscale(&b, vec![g]).unwrap() else {
            panic!("finite gradients reported as overflow")
        };
        assert_eq!(out[0].data(), &[1.0, -3.0 / 1024.0, 1e-30 / 1024.0]);
        let bad = b
            .upload(&Tensor::new(&[2], vec![1.0, f32::NAN]).unwrap())
            .unwrap();
        assert!(matches!(
            s.unscale(&b, vec![bad]).unwrap(),
            Unscaled::Overflow
        ));
        // Off: the gradients as they are, NaN included (the loss check stops such a run).
        let off = LossScaler::new(
            &LossScaleConfig {
                mode: LossScaleMode::Off,
                ..cfg
            },
            Precisions::default(),
        )
        .unwrap();
        let nan = b
            .upload(&Tensor::new(&[1], vec![f32::NAN]).unwrap())
            .unwrap();
        assert!(matches!(
            off.unscale(&b, vec![nan]).unwrap(),
            Unscaled::Step(_)
        ));
    }
}
