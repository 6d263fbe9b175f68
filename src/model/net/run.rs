//! Forward and backward passes of a [`Net`].
//!
//! Memory: each activation is stored once and only while something still needs it. A slot that
//! no backward step reads is freed in the forward pass right after its last reader ran (a BN
//! output is gone once the ReLU after it ran, since ReLU's backward reads its own output: y > 0
//! exactly where x > 0). A slot that backward reads is freed in the backward pass right after the
//! first node (in forward order) that reads it was differentiated. [`Tape::peak_bytes`] reports
//! the most activation memory held at once.

use super::graph::Op;
use super::{BnMode, Net};
use crate::backend::Backend;
use crate::error::{Result, invalid};
use crate::ops::batchnorm::BnBatchStats;
use crate::ops::loss::Reduction;
use crate::tensor::ShapeFmt;
use std::collections::BTreeMap;

/// What a forward pass leaves for backward.
pub struct Tape<T> {
    /// Slot values still held (None once freed or never computed).
    pub values: Vec<Option<T>>,
    /// Shape of every computed slot.
    pub shapes: Vec<Vec<usize>>,
    /// Batch statistics of each training-mode BN node, by node index.
    pub stats: Vec<Option<BnBatchStats<T>>>,
    /// The first node that is differentiated (nodes before it ran frozen, BN in eval mode).
    pub from: usize,
    pub mode: BnMode,
    /// The most bytes of activations held at once during the forward pass, as stored (16-bit
    /// activations count 2 bytes a value).
    pub peak_bytes: usize,
    /// Bytes of every computed slot's value, as stored.
    stored: Vec<usize>,
    /// For each slot, the node after whose backward step its value can go (usize::MAX: never
    /// needed by backward).
    release_at: Vec<usize>,
}

impl<T> Tape<T> {
    /// A computed slot's value, while it is still held.
    pub fn value(&self, slot: usize) -> Option<&T> {
        self.values.get(slot).and_then(|v| v.as_ref())
    }
}

/// Bytes held at each step of a backward pass: (activations, which scale with the batch;
/// parameter gradients, which do not).
pub type MemoryProfile = Vec<(usize, usize)>;

/// Gradients of the trainable parameters by torchvision name.
pub type Grads<T> = BTreeMap<String, T>;

impl<B: Backend> Net<B> {
    /// Runs the network on `x` [N, 3, H, W]. Nodes from `from` on run in `mode` and record
    /// what backward needs; nodes before it run frozen (BN with running statistics) and keep
    /// only what a later node reads. The slots in `keep` (e.g. features, logits) are held to the
    /// end.
    pub fn forward(
        &self,
        b: &B,
        x: &B::Tensor,
        mode: BnMode,
        from: usize,
        keep: &[usize],
    ) -> Result<Tape<B::Tensor>> {
        b.run_on_workers(|| self.forward_here(b, x, mode, from, keep))
    }

    fn forward_here(
        &self,
        b: &B,
        x: &B::Tensor,
        mode: BnMode,
        from: usize,
        keep: &[usize],
    ) -> Result<Tape<B::Tensor>> {
        let g = &self.graph;
        let nodes = &g.nodes;
        let from = from.min(nodes.len());
        // Which slots backward reads, and after which node's backward step each can go.
        let mut release_at = vec![usize::MAX; g.slots];
        for (i, n) in nodes.iter().enumerate().skip(from) {
            let needed = match n.op {
                Op::Conv { .. } | Op::Bn { .. } | Op::MaxPool(_) | Op::Dense { .. } => {
                    Some(n.inputs[0])
                }
                Op::Relu => Some(n.output),
                Op::Add | Op::GlobalAvgPool | Op::Flatten | Op::Dropout { .. } => None,
            };
            if let Some(s) = needed {
                release_at[s] = release_at[s].min(i);
            }
        }
        // The last forward reader of each slot.
        let mut last_read = vec![0usize; g.slots];
        for (i, n) in nodes.iter().enumerate() {
            for &s in &n.inputs {
                last_read[s] = i;
            }
        }
        let mut tape = Tape {
            values: vec![None; g.slots],
            shapes: vec![Vec::new(); g.slots],
            stats: vec![None; nodes.len()],
            from,
            mode,
            peak_bytes: 0,
            stored: vec![0; g.slots],
            release_at,
        };
        tape.shapes[0] = b.shape(x).to_vec();
        tape.values[0] = Some(x.clone());
        tape.stored[0] = b.stored_bytes(x);
        let mut live = tape.stored[0];
        for (i, n) in nodes.iter().enumerate() {
            let input = |k: usize| {
                tape.values[n.inputs[k]]
                    .as_ref()
                    .expect("a slot is freed only after its last reader")
            };
            let train_bn = i >= from && mode == BnMode::Train;
            let y = match &n.op {
                Op::Conv { name, bias, p } => {
                    let w = &self.tensors[&format!("{name}.weight")];
                    let bias = bias.then(|| &self.tensors[&format!("{name}.bias")]);
                    if i >= from {
                        // A layer being trained: its weights change every step, so the CPU's
                        // Winograd path would re-transform them at every call, and its ~30x
                        // larger rounding error (cpu::winograd) would reach the loss and the
                        // gradients (measured: ResNet50 train-mode loss 1.8e-5 from PyTorch's
                        // vs < 1e-5 direct). Trained layers take the direct convolution.
                        crate::cpu::winograd::with_winograd(false, || {
                            b.conv2d(input(0), w, bias, p)
                        })?
                    } else {
                        b.conv2d(input(0), w, bias, p)?
                    }
                }
                Op::Bn { name } => {
                    let bn = &self.bns[name];
                    if train_bn {
                        let (y, stats) = b.batchnorm_train(input(0), bn)?;
                        tape.stats[i] = Some(stats);
                        y
                    } else {
                        b.batchnorm_inference(input(0), bn)?
                    }
                }
                Op::Relu => b.relu(input(0))?,
                Op::MaxPool(p) => b.maxpool2d(input(0), p)?,
                Op::Add => b.add(input(0), input(1))?,
                Op::GlobalAvgPool => b.global_avg_pool(input(0))?,
                Op::Flatten => {
                    let s = b.shape(input(0));
                    if g.arch == crate::model::arch::Arch::Vgg19 && s[2..] != [7, 7] {
                        return Err(invalid(
                            "vgg19",
                            format!(
                                "the feature map before the classifier is {}, VGG19's classifier needs 7x7 (224x224 inputs)",
                                ShapeFmt(s)
                            ),
                        ));
                    }
                    b.reshape(input(0), &[s[0], s[1..].iter().product()])?
                }
                Op::Dense { name } => {
                    let w = &self.tensors[&format!("{name}.weight")];
                    let bias = &self.tensors[&format!("{name}.bias")];
                    b.dense(input(0), w, Some(bias))?
                }
                // Frozen nodes (and every node of an inference pass) never drop.
                Op::Dropout { p } if i >= from => b.dropout(input(0), *p, self.dropout_seed(i))?,
                Op::Dropout { .. } => input(0).clone(),
            };
            tape.shapes[n.output] = b.shape(&y).to_vec();
            tape.stored[n.output] = b.stored_bytes(&y);
            live += tape.stored[n.output];
            tape.values[n.output] = Some(y);
            tape.peak_bytes = tape.peak_bytes.max(live);
            // Free what neither a later forward node nor backward reads.
            for &s in n.inputs.iter().chain([&n.output]) {
                let read_later = last_read[s] > i;
                if !read_later
                    && tape.release_at[s] == usize::MAX
                    && !keep.contains(&s)
                    && tape.values[s].take().is_some()
                {
                    live -= tape.stored[s];
                }
            }
        }
        Ok(tape)
    }

    /// Backward from `dy` = dL/d(slot `out`) through nodes `tape.from..`: the gradient of every
    /// trainable parameter of those nodes. Consumes the tape, freeing activations as it goes.
    pub fn backward(
        &self,
        b: &B,
        tape: Tape<B::Tensor>,
        out: usize,
        dy: B::Tensor,
    ) -> Result<Grads<B::Tensor>> {
        b.run_on_workers(|| self.backward_inner(b, tape, out, dy, None))
    }

    /// [`Net::backward`], and what it held at each step: (activation bytes, parameter-gradient
    /// bytes), where the activations (those still on the tape, gradients of slots in flight)
    /// scale with the batch and the parameter gradients do not. The largest sum is the
    /// backward pass's peak; the split lets a plan scale it to other batch sizes exactly.
    pub fn backward_profiled(
        &self,
        b: &B,
        tape: Tape<B::Tensor>,
        out: usize,
        dy: B::Tensor,
    ) -> Result<(Grads<B::Tensor>, MemoryProfile)> {
        let mut profile = MemoryProfile::new();
        let grads =
            b.run_on_workers(|| self.backward_inner(b, tape, out, dy, Some(&mut profile)))?;
        Ok((grads, profile))
    }

    /// The backward pass; records the memory profile only when asked (training steps do not
    /// pay for it).
    fn backward_inner(
        &self,
        b: &B,
        mut tape: Tape<B::Tensor>,
        out: usize,
        dy: B::Tensor,
        mut profile: Option<&mut MemoryProfile>,
    ) -> Result<Grads<B::Tensor>> {
        let g = &self.graph;
        let held = |t: &Tape<B::Tensor>| -> usize {
            t.values
                .iter()
                .zip(&t.stored)
                .filter(|(v, _)| v.is_some())
                .map(|(_, &s)| s)
                .sum()
        };
        if let Some(p) = profile.as_deref_mut() {
            p.push((held(&tape), 0));
        }
        let from = tape.from;
        // Slots computed by a differentiated node carry a gradient (slot 0, the input, never).
        let mut trained_slot = vec![false; g.slots];
        for n in &g.nodes[from..] {
            trained_slot[n.output] = true;
        }
        let produced_by_trained = |s: usize| trained_slot[s];
        let mut grads: Vec<Option<B::Tensor>> = vec![None; g.slots];
        grads[out] = Some(dy);
        // ReLU after BN: the ReLU's backward is fused into the BN's (one pass less over the
        // activations). Where a BN output's only reader is a ReLU, that ReLU hands its dy on
        // unmasked, and its output here, for the BN node to apply the mask itself.
        let mut readers = vec![0usize; g.slots];
        let mut produced_by_bn = vec![false; g.slots];
        for n in &g.nodes {
            for &s in &n.inputs {
                readers[s] += 1;
            }
            produced_by_bn[n.output] = matches!(n.op, Op::Bn { .. });
        }
        let mut relu_out_of: Vec<Option<B::Tensor>> = vec![None; g.slots];
        let mut pg = Grads::new();
        let acc = |b: &B, slot: &mut Option<B::Tensor>, d: B::Tensor| -> Result<()> {
            *slot = Some(match slot.take() {
                Some(prev) => b.add(&prev, &d)?,
                None => d,
            });
            Ok(())
        };
        for i in (from..g.nodes.len()).rev() {
            let n = &g.nodes[i];
            let Some(dy) = grads[n.output].take() else {
                continue;
            };
            let want_dx = produced_by_trained(n.inputs[0]);
            let val = |s: usize| {
                tape.values[s]
                    .as_ref()
                    .expect("backward's inputs are held until used")
            };
            match &n.op {
                Op::Conv { name, bias, p } => {
                    let x = val(n.inputs[0]);
                    let w = &self.tensors[&format!("{name}.weight")];
                    let dw = b.conv2d_backward_weight(&dy, x, b.shape(w), p)?;
                    pg.insert(format!("{name}.weight"), dw);
                    if *bias {
                        pg.insert(format!("{name}.bias"), b.conv2d_backward_bias(&dy)?);
                    }
                    if want_dx {
                        let dx = b.conv2d_backward_data(&dy, w, &tape.shapes[n.inputs[0]], p)?;
                        acc(b, &mut grads[n.inputs[0]], dx)?;
                    }
                }
                Op::Bn { name } => {
                    let x = val(n.inputs[0]);
                    let bn = &self.bns[name];
                    let (dx, dgamma, dbeta) = match (&tape.stats[i], relu_out_of[n.output].take()) {
                        (Some(stats), None) => b.batchnorm_train_backward(&dy, x, bn, stats)?,
                        (None, None) => b.batchnorm_inference_backward(&dy, x, bn)?,
                        (Some(stats), Some(r)) => {
                            b.batchnorm_relu_train_backward(&dy, &r, x, bn, stats)?
                        }
                        (None, Some(r)) => b.batchnorm_relu_inference_backward(&dy, &r, x, bn)?,
                    };
                    pg.insert(format!("{name}.weight"), dgamma);
                    pg.insert(format!("{name}.bias"), dbeta);
                    if want_dx {
                        acc(b, &mut grads[n.inputs[0]], dx)?;
                    }
                }
                Op::Relu => {
                    let s = n.inputs[0];
                    if want_dx && produced_by_bn[s] && readers[s] == 1 {
                        // Fused into the BN below: its only reader is this ReLU, so dy is the
                        // whole gradient of s. The output moves along (this is its last
                        // backward reader) or, should another reader remain, is copied.
                        let y = if tape.release_at[n.output] == i {
                            tape.values[n.output].take()
                        } else {
                            tape.values[n.output].clone()
                        };
                        relu_out_of[s] = Some(y.expect("backward's inputs are held until used"));
                        grads[s] = Some(dy);
                    } else if want_dx {
                        let dx = b.relu_backward(&dy, val(n.output))?;
                        acc(b, &mut grads[s], dx)?;
                    }
                }
                Op::MaxPool(p) => {
                    if want_dx {
                        let dx = b.maxpool2d_backward(&dy, val(n.inputs[0]), p)?;
                        acc(b, &mut grads[n.inputs[0]], dx)?;
                    }
                }
                Op::Add => {
                    for &s in &n.inputs {
                        if produced_by_trained(s) {
                            acc(b, &mut grads[s], dy.clone())?;
                        }
                    }
                }
                Op::GlobalAvgPool => {
                    if want_dx {
                        let dx = b.global_avg_pool_backward(&dy, &tape.shapes[n.inputs[0]])?;
                        acc(b, &mut grads[n.inputs[0]], dx)?;
                    }
                }
                Op::Flatten => {
                    if want_dx {
                        let dx = b.reshape(&dy, &tape.shapes[n.inputs[0]])?;
                        acc(b, &mut grads[n.inputs[0]], dx)?;
                    }
                }
                Op::Dropout { p } => {
                    if want_dx {
                        let dx = b.dropout_backward(&dy, *p, self.dropout_seed(i))?;
                        acc(b, &mut grads[n.inputs[0]], dx)?;
                    }
                }
                Op::Dense { name } => {
                    let x = val(n.inputs[0]);
                    let w = &self.tensors[&format!("{name}.weight")];
                    let d = b.dense_backward(&dy, x, w)?;
                    pg.insert(format!("{name}.weight"), d.dw);
                    pg.insert(format!("{name}.bias"), d.db);
                    if want_dx {
                        acc(b, &mut grads[n.inputs[0]], d.dx)?;
                    }
                }
            }
            // What is held now, before this node's inputs go (its dy included).
            if let Some(p) = profile.as_deref_mut() {
                let in_flight: usize = grads
                    .iter()
                    .chain(&relu_out_of)
                    .flatten()
                    .map(|t| b.stored_bytes(t))
                    .sum();
                let params: usize = pg.values().map(|t| b.stored_bytes(t)).sum();
                p.push((held(&tape) + in_flight + tape.stored[n.output], params));
            }
            // Activations whose last backward reader was this node.
            for &s in n.inputs.iter().chain([&n.output]) {
                if tape.release_at[s] == i {
                    tape.values[s] = None;
                }
            }
        }
        Ok(pg)
    }

    /// The dropout mask seed of node `i` in the current step: the step's seed
    /// ([`Net::step_seed`], set by the trainer before each forward) mixed with the node index, so
    /// forward and backward of one step draw the same mask and every step a new one.
    fn dropout_seed(&self, i: usize) -> u64 {
        crate::rng::Rng::new(self.step_seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .next_u64()
    }

    /// Running-statistics update of every BN that ran in training mode (PyTorch's momentum
    /// update, unbiased variance).
    pub fn update_running(&mut self, b: &B, tape: &Tape<B::Tensor>, momentum: f64) -> Result<()> {
        for (i, stats) in tape.stats.iter().enumerate() {
            if let (Some(stats), Op::Bn { name }) = (stats, &self.graph.nodes[i].op) {
                let bn = self
                    .bns
                    .get_mut(name)
                    .expect("every BN node has parameters");
                b.batchnorm_update_running(bn, stats, momentum)?;
            }
        }
        Ok(())
    }

    /// Mean cross-entropy of the classifier's logits against `labels`, and the gradient of
    /// every parameter (what `skinengine grads` writes). BN runs in `mode`; running statistics
    /// are not updated.
    pub fn loss_and_grads(
        &self,
        b: &B,
        x: &B::Tensor,
        labels: &[usize],
        mode: BnMode,
    ) -> Result<(f64, Grads<B::Tensor>)> {
        let Some(logits) = self.graph.logits else {
            return Err(invalid(
                "grads",
                "the network has no classifier to take a loss over",
            ));
        };
        let tape = self.forward(b, x, mode, 0, &[logits])?;
        let z = tape.value(logits).expect("kept");
        let k = b.shape(z)[1];
        let ones = vec![1.0f32; k];
        // Normalized with unit weights is the plain mean over the batch.
        let (loss, dz) = b.weighted_cross_entropy(z, labels, &ones, Reduction::Normalized)?;
        let grads = self.backward(b, tape, logits, dz)?;
        Ok((loss, grads))
    }
}
