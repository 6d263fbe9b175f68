//! The classifier head trained on frozen backbone features: dense layers with ReLU (and
//! optionally batch norm before each ReLU), ending in one logit per class (7 for ISIC 2018).
//! Default 2048-120-84-7, the seed's described head. All compute goes through the backend.

use crate::backend::Backend;
use crate::classes;
use crate::error::{Result, file_err};
use crate::ops::adam::AdamConfig;
use crate::ops::batchnorm::{BnBatchStats, BnParams};
use crate::rng::Rng;
use crate::tensor::Tensor;
use std::collections::BTreeMap;

/// One hidden layer: dense, optional BN, ReLU.
pub struct Layer<T> {
    pub w: T,
    pub b: T,
    pub bn: Option<BnParams<T>>,
}

pub struct Head<B: Backend> {
    pub hidden: Vec<Layer<B::Tensor>>,
    pub out_w: B::Tensor,
    pub out_b: B::Tensor,
    /// Input width, hidden widths.
    pub dims: Vec<usize>,
}

/// What a training-mode forward keeps for backward.
pub struct Tape<T> {
    inputs: Vec<T>,
    pre_bn: Vec<T>,
    pre_relu: Vec<T>,
    stats: Vec<Option<BnBatchStats<T>>>,
    last_in: T,
}

/// Adam moments for every parameter, in `Head::params` order.
pub struct AdamState<T> {
    pub m: Vec<T>,
    pub v: Vec<T>,
    pub step: u64,
}

pub const BN_MOMENTUM: f64 = 0.1;

/// Logits and, for a training forward, the tape.
pub type Forward<T> = (T, Option<Tape<T>>);

impl<B: Backend> Head<B> {
    /// Kaiming-normal weights, zero biases, BN gamma 1 / beta 0 / running (0, 1); 7 outputs
    /// (ISIC 2018's classes).
    pub fn new(b: &B, input: usize, hidden: &[usize], batchnorm: bool, seed: u64) -> Result<Self> {
        Self::with_classes(b, input, hidden, batchnorm, seed, classes::COUNT)
    }

    /// [`Head::new`] with `classes` outputs (the same draws, in the same order, for 7).
    pub fn with_classes(
        b: &B,
        input: usize,
        hidden: &[usize],
        batchnorm: bool,
        seed: u64,
        classes: usize,
    ) -> Result<Self> {
        let mut rng = Rng::new(seed);
        let mut dims = vec![input];
        dims.extend_from_slice(hidden);
        let mut layers = Vec::new();
        for win in dims.windows(2) {
            let (i, o) = (win[0], win[1]);
            let bn = if batchnorm {
                Some(BnParams {
                    gamma: b.upload(&Tensor::full(&[o], 1.0))?,
                    beta: b.upload(&Tensor::zeros(&[o]))?,
                    running_mean: b.upload(&Tensor::zeros(&[o]))?,
                    running_var: b.upload(&Tensor::full(&[o], 1.0))?,
                    eps: 1e-5,
                })
            } else {
                None
            };
            layers.push(Layer {
                w: b.upload(&Tensor::kaiming_normal(&[o, i], &mut rng))?,
                b: b.upload(&Tensor::zeros(&[o]))?,
                bn,
            });
        }
        let last = *dims.last().unwrap();
        // Output layer: variance 1/fan_in (no ReLU after it).
        let out_w = Tensor::randn(&[classes, last], (1.0 / last as f64).sqrt(), &mut rng);
        Ok(Head {
            hidden: layers,
            out_w: b.upload(&out_w)?,
            out_b: b.upload(&Tensor::zeros(&[classes]))?,
            dims,
        })
    }

    /// Logits [N, classes]; `train` uses batch statistics and returns the tape for backward.
    pub fn forward(&self, b: &B, x: &B::Tensor, train: bool) -> Result<Forward<B::Tensor>> {
        let mut tape = Tape {
            inputs: vec![],
            pre_bn: vec![],
            pre_relu: vec![],
            stats: vec![],
            last_in: x.clone(),
        };
        let mut h = x.clone();
        for l in &self.hidden {
            let z = b.dense(&h, &l.w, Some(&l.b))?;
            let (a, st) = match (&l.bn, train) {
                (Some(bn), true) => {
                    let (y, s) = b.batchnorm_train(&z, bn)?;
                    (y, Some(s))
                }
                (Some(bn), false) => (b.batchnorm_inference(&z, bn)?, None),
                (None, _) => (z.clone(), None),
            };
            let out = b.relu(&a)?;
            if train {
                tape.inputs.push(h);
                tape.pre_bn.push(z);
                tape.pre_relu.push(a);
                tape.stats.push(st);
            }
            h = out;
        }
        let logits = b.dense(&h, &self.out_w, Some(&self.out_b))?;
        tape.last_in = h;
        Ok((logits, train.then_some(tape)))
    }

    /// Gradients in `params` order from dL/dlogits; also updates BN running statistics.
    pub fn backward(
        &mut self,
        b: &B,
        dlogits: &B::Tensor,
        tape: Tape<B::Tensor>,
    ) -> Result<Vec<B::Tensor>> {
        let g = b.dense_backward(dlogits, &tape.last_in, &self.out_w)?;
        let mut grads_rev = vec![g.db, g.dw];
        let mut d = g.dx;
        for (k, l) in self.hidden.iter_mut().enumerate().rev() {
            let da = b.relu_backward(&d, &tape.pre_relu[k])?;
            let dz = match (&mut l.bn, &tape.stats[k]) {
                (Some(bn), Some(st)) => {
                    let (dz, dg, dbeta) =
                        b.batchnorm_train_backward(&da, &tape.pre_bn[k], bn, st)?;
                    b.batchnorm_update_running(bn, st, BN_MOMENTUM)?;
                    grads_rev.push(dbeta);
                    grads_rev.push(dg);
                    dz
                }
                _ => da,
            };
            let gl = b.dense_backward(&dz, &tape.inputs[k], &l.w)?;
            grads_rev.push(gl.db);
            grads_rev.push(gl.dw);
            d = gl.dx;
        }
        grads_rev.reverse();
        Ok(grads_rev)
    }

    /// Mutable parameters in a fixed order: per layer w, b, [gamma, beta]; then out_w, out_b.
    pub fn params_mut(&mut self) -> Vec<&mut B::Tensor> {
        let mut v = Vec::new();
        for l in &mut self.hidden {
            v.push(&mut l.w);
            v.push(&mut l.b);
            if let Some(bn) = &mut l.bn {
                v.push(&mut bn.gamma);
                v.push(&mut bn.beta);
            }
        }
        v.push(&mut self.out_w);
        v.push(&mut self.out_b);
        v
    }

    pub fn adam_init(&mut self, b: &B) -> Result<AdamState<B::Tensor>> {
        let shapes: Vec<Vec<usize>> = self
            .params_mut()
            .iter()
            .map(|p| b.shape(p).to_vec())
            .collect();
        let zeros = |s: &Vec<usize>| b.upload(&Tensor::zeros(s));
        Ok(AdamState {
            m: shapes.iter().map(zeros).collect::<Result<_>>()?,
            v: shapes.iter().map(zeros).collect::<Result<_>>()?,
            step: 0,
        })
    }

    pub fn adam_step(
        &mut self,
        b: &B,
        grads: &[B::Tensor],
        st: &mut AdamState<B::Tensor>,
        cfg: &AdamConfig,
    ) -> Result<()> {
        st.step += 1;
        let step = st.step;
        for (((p, g), m), v) in self
            .params_mut()
            .into_iter()
            .zip(grads)
            .zip(st.m.iter_mut())
            .zip(st.v.iter_mut())
        {
            b.adam_step(p, g, m, v, cfg, step)?;
        }
        Ok(())
    }

    /// Every tensor by name (for model files and checkpoints).
    pub fn named(&self, b: &B) -> Result<BTreeMap<String, Tensor>> {
        let mut out = BTreeMap::new();
        for (k, l) in self.hidden.iter().enumerate() {
            out.insert(format!("hidden.{k}.weight"), b.download(&l.w)?);
            out.insert(format!("hidden.{k}.bias"), b.download(&l.b)?);
            if let Some(bn) = &l.bn {
                out.insert(format!("hidden.{k}.bn.weight"), b.download(&bn.gamma)?);
                out.insert(format!("hidden.{k}.bn.bias"), b.download(&bn.beta)?);
                out.insert(
                    format!("hidden.{k}.bn.running_mean"),
                    b.download(&bn.running_mean)?,
                );
                out.insert(
                    format!("hidden.{k}.bn.running_var"),
                    b.download(&bn.running_var)?,
                );
            }
        }
        out.insert("out.weight".into(), b.download(&self.out_w)?);
        out.insert("out.bias".into(), b.download(&self.out_b)?);
        Ok(out)
    }

    /// Restores every tensor from `named` (shapes must match this head).
    pub fn load_named(
        &mut self,
        b: &B,
        named: &BTreeMap<String, Tensor>,
        path: &std::path::Path,
    ) -> Result<()> {
        let get = |k: &str, like: &B::Tensor| -> Result<B::Tensor> {
            let t = named
                .get(k)
                .ok_or_else(|| file_err(path, format!("missing tensor {k}")))?;
            if t.shape() != b.shape(like) {
                return Err(file_err(
                    path,
                    format!(
                        "tensor {k} has shape {:?}, the head expects {:?}",
                        t.shape(),
                        b.shape(like)
                    ),
                ));
            }
            b.upload(t)
        };
        for (k, l) in self.hidden.iter_mut().enumerate() {
            l.w = get(&format!("hidden.{k}.weight"), &l.w)?;
            l.b = get(&format!("hidden.{k}.bias"), &l.b)?;
            if let Some(bn) = &mut l.bn {
                bn.gamma = get(&format!("hidden.{k}.bn.weight"), &bn.gamma)?;
                bn.beta = get(&format!("hidden.{k}.bn.bias"), &bn.beta)?;
                bn.running_mean = get(&format!("hidden.{k}.bn.running_mean"), &bn.running_mean)?;
                bn.running_var = get(&format!("hidden.{k}.bn.running_var"), &bn.running_var)?;
            }
        }
        self.out_w = get("out.weight", &self.out_w)?;
        self.out_b = get("out.bias", &self.out_b)?;
        Ok(())
    }
}
