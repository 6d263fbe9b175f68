//! Optimisers and learning-rate schedules for training through the backbone.
//!
//! - [`Schedule`]: constant, step or cosine decay, each after an optional linear warm-up, as a
//!   pure function of the step number (so a resumed run continues the same curve).
//! - [`Optimizer`]: Adam / AdamW or SGD with (Nesterov) momentum over named parameters (torchvision names), with two learning
//!   rates (backbone and head, `--lr-backbone`) and weight decay only on weights of rank >= 2:
//!   biases and BN's gamma/beta are never decayed (the usual rule; decaying gamma towards 0
//!   shrinks a layer's output instead of regularising it). Moments live next to the parameters
//!   on the backend and are saved by name in checkpoints.

use crate::backend::Backend;
use crate::error::{Result, invalid};
use crate::ops::adam::AdamConfig;
use crate::ops::sgd::SgdConfig;
use crate::tensor::Tensor;
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ScheduleKind {
    #[default]
    Constant,
    /// Multiply by `gamma` every `step_every` steps.
    Step,
    /// Half a cosine from the base rate to 0 over the steps after warm-up.
    Cosine,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    pub kind: ScheduleKind,
    /// Linear warm-up steps: step s <= warmup runs at base * s / warmup.
    pub warmup: u64,
    /// Total optimiser steps of the run (for cosine).
    pub total: u64,
    pub step_every: u64,
    pub gamma: f64,
}

impl Schedule {
    pub fn constant() -> Schedule {
        Schedule {
            kind: ScheduleKind::Constant,
            warmup: 0,
            total: 0,
            step_every: 1,
            gamma: 1.0,
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.kind == ScheduleKind::Step
            && (self.step_every == 0 || self.gamma.is_nan() || self.gamma <= 0.0)
        {
            return Err(invalid(
                "schedule",
                "a step schedule needs --lr-step-every >= 1 and --lr-gamma > 0",
            ));
        }
        if self.kind == ScheduleKind::Cosine && self.total <= self.warmup {
            return Err(invalid(
                "schedule",
                format!(
                    "a cosine schedule needs more steps ({}) than warm-up steps ({})",
                    self.total, self.warmup
                ),
            ));
        }
        Ok(())
    }

    /// The factor on the base learning rate at optimiser step `step` (counting from 1).
    pub fn factor(&self, step: u64) -> f64 {
        if step <= self.warmup {
            return step as f64 / self.warmup as f64;
        }
        let t = step - self.warmup;
        match self.kind {
            ScheduleKind::Constant => 1.0,
            ScheduleKind::Step => self.gamma.powi(((t - 1) / self.step_every) as i32),
            ScheduleKind::Cosine => {
                let span = (self.total - self.warmup) as f64;
                0.5 * (1.0 + (std::f64::consts::PI * (t - 1) as f64 / span).cos())
            }
        }
    }
}

/// The optimiser a user names (`--optimizer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OptimizerName {
    /// Adam (`torch.optim.Adam`, no weight decay).
    #[default]
    Adam,
    /// AdamW (`torch.optim.AdamW`: decoupled weight decay, `--weight-decay`).
    Adamw,
    /// SGD with momentum (`--momentum`, `--nesterov`), L2 weight decay added to the gradient.
    Sgd,
}

impl OptimizerName {
    pub fn name(self) -> &'static str {
        match self {
            OptimizerName::Adam => "adam",
            OptimizerName::Adamw => "adamw",
            OptimizerName::Sgd => "sgd",
        }
    }

    /// The update rule (Adam and AdamW share one: AdamW with weight decay 0 is Adam).
    pub fn kind(self, momentum: f64, nesterov: bool) -> OptimKind {
        match self {
            OptimizerName::Adam | OptimizerName::Adamw => OptimKind::Adam,
            OptimizerName::Sgd => OptimKind::Sgd { momentum, nesterov },
        }
    }
}

/// Which learning rate a parameter takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    Backbone,
    Head,
}

/// The update rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimKind {
    /// Adam, or AdamW when `adam.weight_decay` > 0 (decoupled decay, `torch.optim.AdamW`).
    Adam,
    /// `torch.optim.SGD` with momentum (optionally Nesterov) and coupled L2 weight decay
    /// (`adam.weight_decay`), at `adam.lr`; Adam's betas and eps are unused.
    Sgd { momentum: f64, nesterov: bool },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OptimConfig {
    pub kind: OptimKind,
    /// Head learning rate, weight decay (and Adam's betas and eps).
    pub adam: AdamConfig,
    /// Base learning rate of the backbone's parameters (the head's is `adam.lr`).
    pub lr_backbone: f64,
}

impl OptimConfig {
    /// Adam/AdamW with these settings.
    pub fn adam(adam: AdamConfig, lr_backbone: f64) -> Self {
        OptimConfig {
            kind: OptimKind::Adam,
            adam,
            lr_backbone,
        }
    }
}

/// Where an optimiser finds the parameters it updates, by name.
pub trait ParamStore<T> {
    fn param_mut(&mut self, name: &str) -> Option<&mut T>;
}

impl<B: Backend> ParamStore<B::Tensor> for crate::model::net::Net<B> {
    fn param_mut(&mut self, name: &str) -> Option<&mut B::Tensor> {
        crate::model::net::Net::param_mut(self, name)
    }
}

impl<T> ParamStore<T> for BTreeMap<String, T> {
    fn param_mut(&mut self, name: &str) -> Option<&mut T> {
        self.get_mut(name)
    }
}

/// What the optimiser keeps per parameter.
pub struct ParamState<T> {
    pub group: Group,
    /// Weight decay applies (rank >= 2).
    pub decayed: bool,
    /// Adam's first moment, or SGD's momentum buffer.
    pub m: T,
    /// Adam's second moment.
    pub v: Option<T>,
}

/// Optimiser state of every parameter being trained, by name.
pub struct Optimizer<B: Backend> {
    pub cfg: OptimConfig,
    pub schedule: Schedule,
    /// Steps taken so far.
    pub step: u64,
    pub state: BTreeMap<String, ParamState<B::Tensor>>,
}

impl<B: Backend> Optimizer<B> {
    /// Zero moments for each (name, group, parameter shape).
    pub fn new(
        b: &B,
        cfg: OptimConfig,
        schedule: Schedule,
        params: &[(String, Group, Vec<usize>)],
    ) -> Result<Self> {
        schedule.validate()?;
        cfg.adam.validate(1)?;
        if let OptimKind::Sgd { momentum, nesterov } = cfg.kind {
            SgdConfig {
                lr: cfg.adam.lr,
                momentum,
                dampening: 0.0,
                weight_decay: cfg.adam.weight_decay,
                nesterov,
            }
            .validate(1)?;
        }
        if !(cfg.lr_backbone.is_finite() && cfg.lr_backbone >= 0.0) {
            return Err(invalid(
                "optimizer",
                "--lr-backbone must be finite and >= 0",
            ));
        }
        let mut state = BTreeMap::new();
        for (name, group, shape) in params {
            let z = b.upload(&Tensor::zeros(shape))?;
            let v = match cfg.kind {
                OptimKind::Adam => Some(z.clone()),
                OptimKind::Sgd { .. } => None,
            };
            let st = ParamState {
                group: *group,
                decayed: shape.len() >= 2,
                m: z,
                v,
            };
            state.insert(name.clone(), st);
        }
        Ok(Optimizer {
            cfg,
            schedule,
            step: 0,
            state,
        })
    }

    /// The learning rate of `group` at the next step.
    pub fn lr(&self, group: Group) -> f64 {
        let base = match group {
            Group::Backbone => self.cfg.lr_backbone,
            Group::Head => self.cfg.adam.lr,
        };
        base * self.schedule.factor(self.step + 1)
    }

    /// One step: every parameter with state gets its gradient from `grads` (missing gradients
    /// are an error: a parameter that is trained must have one) and is updated in place.
    pub fn update(
        &mut self,
        b: &B,
        grads: &BTreeMap<String, B::Tensor>,
        params: &mut dyn ParamStore<B::Tensor>,
    ) -> Result<()> {
        let (lr_bb, lr_head) = (self.lr(Group::Backbone), self.lr(Group::Head));
        self.step += 1;
        for (name, st) in self.state.iter_mut() {
            let (group, decayed, m, v) = (&st.group, st.decayed, &mut st.m, &mut st.v);
            let g = grads
                .get(name)
                .ok_or_else(|| invalid("optimizer", format!("no gradient for {name}")))?;
            let p = params
                .param_mut(name)
                .ok_or_else(|| invalid("optimizer", format!("no parameter {name}")))?;
            let lr = match group {
                Group::Backbone => lr_bb,
                Group::Head => lr_head,
            };
            let weight_decay = if decayed {
                self.cfg.adam.weight_decay
            } else {
                0.0
            };
            match (self.cfg.kind, v) {
                (OptimKind::Sgd { momentum, nesterov }, _) => {
                    let cfg = SgdConfig {
                        lr,
                        momentum,
                        dampening: 0.0,
                        weight_decay,
                        nesterov,
                    };
                    b.sgd_step(p, g, m, &cfg, self.step)?;
                }
                (OptimKind::Adam, Some(v)) => {
                    let cfg = AdamConfig {
                        lr,
                        weight_decay,
                        ..self.cfg.adam
                    };
                    b.adam_step(p, g, m, v, &cfg, self.step)?;
                }
                (OptimKind::Adam, None) => unreachable!("Adam state has both moments"),
            }
        }
        Ok(())
    }

    /// Moments by name (`<param>.exp_avg`, `<param>.exp_avg_sq`) on the host, for checkpoints.
    pub fn named(&self, b: &B) -> Result<BTreeMap<String, Tensor>> {
        let mut out = BTreeMap::new();
        for (name, st) in &self.state {
            out.insert(format!("{name}.exp_avg"), b.download(&st.m)?);
            if let Some(v) = &st.v {
                out.insert(format!("{name}.exp_avg_sq"), b.download(v)?);
            }
        }
        Ok(out)
    }

    /// Restores moments written by [`Optimizer::named`] and the step count.
    pub fn load_named(&mut self, b: &B, t: &BTreeMap<String, Tensor>, step: u64) -> Result<()> {
        for (name, st) in self.state.iter_mut() {
            for (suffix, dst) in [("exp_avg", Some(&mut st.m)), ("exp_avg_sq", st.v.as_mut())] {
                let Some(dst) = dst else { continue };
                let k = format!("{name}.{suffix}");
                let src = t
                    .get(&k)
                    .ok_or_else(|| invalid("checkpoint", format!("missing optimizer state {k}")))?;
                if src.shape() != b.shape(dst) {
                    return Err(invalid("checkpoint", format!("{k} has the wrong shape")));
                }
                *dst = b.upload(src)?;
            }
        }
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::ReferenceBackend;

    fn store() -> BTreeMap<String, Tensor> {
        BTreeMap::from([
            ("w".to_string(), Tensor::full(&[2, 2], 1.0)),
            ("fc.bias".to_string(), Tensor::full(&[2], 1.0)),
        ])
    }

    #[test]
    fn groups_and_decay_rules_reach_the_update() {
        // SGD without momentum: p <- p - lr (g + wd p); wd only on the rank-2 weight, and the
        // head ("fc.*") at lr, the backbone at lr_backbone.
        let b = ReferenceBackend;
        let mut params = store();
        let shapes = vec![
            ("w".to_string(), Group::Backbone, vec![2, 2]),
            ("fc.bias".to_string(), Group::Head, vec![2]),
        ];
        let cfg = OptimConfig {
            kind: OptimKind::Sgd {
                momentum: 0.0,
                nesterov: false,
            },
            adam: AdamConfig {
                lr: 0.5,
                weight_decay: 0.25,
                ..AdamConfig::default()
            },
            lr_backbone: 0.125,
        };
        let mut opt = Optimizer::new(&b, cfg, Schedule::constant(), &shapes).unwrap();
        let grads = BTreeMap::from([
            ("w".to_string(), Tensor::full(&[2, 2], 1.0)),
            ("fc.bias".to_string(), Tensor::full(&[2], 1.0)),
        ]);
        opt.update(&b, &grads, &mut params).unwrap();
        assert_eq!(params["w"].data(), &[1.0 - 0.125 * 1.25; 4]);
        assert_eq!(params["fc.bias"].data(), &[0.5; 2]);
        // A parameter without a gradient is an error, not a silent skip.
        let err = opt.update(&b, &BTreeMap::new(), &mut params).unwrap_err();
        assert!(err.to_string().contains("no gradient for"), "{err}");
        // Adam keeps two moments per parameter and names them for checkpoints.
        let adam = OptimConfig::adam(AdamConfig::default(), 1e-4);
        let opt = Optimizer::new(&b, adam, Schedule::constant(), &shapes).unwrap();
        assert_eq!(opt.named(&b).unwrap().len(), 4);
    }

    #[test]
    fn schedules_follow_their_formulas() {
        let s = Schedule {
            kind: ScheduleKind::Cosine,
            warmup: 2,
            total: 6,
            step_every: 1,
            gamma: 1.0,
        };
        let f: Vec<f64> = (1..=6).map(|k| s.factor(k)).collect();
        assert_eq!(f[0], 0.5);
        assert_eq!(f[1], 1.0);
        assert_eq!(f[2], 1.0); // first step after warm-up: cos(0)
        assert!((f[3] - 0.5 * (1.0 + (std::f64::consts::PI / 4.0).cos())).abs() < 1e-15);
        assert!(f[5] > 0.0 && f[5] < f[4]);
        let st = Schedule {
            kind: ScheduleKind::Step,
            warmup: 0,
            total: 0,
            step_every: 3,
            gamma: 0.1,
        };
        let f: Vec<f64> = (1..=7).map(|k| st.factor(k)).collect();
        assert_eq!(&f[..3], &[1.0, 1.0, 1.0]);
        assert!((f[3] - 0.1).abs() < 1e-15 && (f[6] - 0.01).abs() < 1e-15);
        assert_eq!(Schedule::constant().factor(1000), 1.0);
        let bad = Schedule { total: 2, ..s };
        assert!(bad.validate().is_err());
    }
}
