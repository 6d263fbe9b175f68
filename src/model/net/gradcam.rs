//! What Grad-CAM needs from a [`Net`]: the map it explains ([`cam_slot`]: the last
//! convolutional block's output), the rest of the network run from that map ([`Tail::forward`],
//! evaluation mode) and the gradient of that rest's output with respect to the map
//! ([`Tail::backward`]). `pipeline::gradcam` builds the heat maps on top.
//!
//! The tail is interpreted here rather than taken from [`Net::forward`]/[`Net::backward`]:
//! `Net::backward` returns parameter gradients only, and a synthetic map (tests, a known answer)
//! must be able to enter the tail directly. The tail is small next to the trunk (global pooling
//! and the head; for VGG19 the max-pool and the two 4096-wide classifier layers, under 1% of its
//! multiply-adds), so running it a second time costs little.

use super::Net;
use super::graph::{Graph, Op};
use crate::backend::Backend;
use crate::error::{Result, invalid};

/// The slot Grad-CAM explains: the last ReLU before the map becomes a vector (global average
/// pool or flatten). ResNets: layer4's output (the map global pooling reads). VGG19: the last
/// convolution's ReLU output (`features.35`, 14x14 at 224x224), the map the Grad-CAM paper uses
/// for VGG, before the max-pool that halves it to the 7x7 the classifier flattens.
pub fn cam_slot(g: &Graph) -> Result<usize> {
    let flat = g
        .nodes
        .iter()
        .position(|n| matches!(n.op, Op::GlobalAvgPool | Op::Flatten))
        .ok_or_else(|| invalid("gradcam", "the network never pools or flattens a map"))?;
    let relu = g.nodes[..flat]
        .iter()
        .rposition(|n| n.op == Op::Relu)
        .ok_or_else(|| invalid("gradcam", "no ReLU before the network's pooling"))?;
    Ok(g.nodes[relu].output)
}

/// The nodes of a [`Net`] after the Grad-CAM map, up to the slot `out` (the logits, or the
/// features a separate head reads).
pub struct Tail<'a, B: Backend> {
    pub net: &'a Net<B>,
    /// The map's slot ([`cam_slot`]).
    pub map: usize,
    /// The slot whose gradient is taken.
    pub out: usize,
    /// Indices of the nodes between them, in execution order.
    nodes: Vec<usize>,
}

/// Values of a tail's slots from one forward pass (by slot; `None` for slots outside the tail).
pub struct TailValues<T> {
    values: Vec<Option<T>>,
}

impl<T> TailValues<T> {
    /// The value of a tail slot (the map, the output, anything between).
    pub fn get(&self, slot: usize) -> Option<&T> {
        self.values.get(slot).and_then(|v| v.as_ref())
    }
}

impl<'a, B: Backend> Tail<'a, B> {
    /// The tail of `net` from its [`cam_slot`] to `out`. Every node between must read only the
    /// map or slots computed after it (true of every backbone here; checked, so a graph where a
    /// skip connection bypasses the map is refused rather than explained wrongly).
    pub fn new(net: &'a Net<B>, out: usize) -> Result<Self> {
        let g = &net.graph;
        let map = cam_slot(g)?;
        let first = g
            .nodes
            .iter()
            .position(|n| n.output == map)
            .expect("cam_slot is a node's output")
            + 1;
        let last = g
            .nodes
            .iter()
            .position(|n| n.output == out)
            .filter(|&i| i >= first)
            .ok_or_else(|| invalid("gradcam", format!("slot {out} is not after the map")))?;
        let nodes: Vec<usize> = (first..=last).collect();
        let mut known = vec![false; g.slots];
        known[map] = true;
        for &i in &nodes {
            let n = &g.nodes[i];
            if let Some(s) = n.inputs.iter().find(|&&s| !known[s]) {
                return Err(invalid(
                    "gradcam",
                    format!("node {i} reads slot {s}, computed before the map {map}"),
                ));
            }
            known[n.output] = true;
        }
        Ok(Tail {
            net,
            map,
            out,
            nodes,
        })
    }

    /// Runs the tail on `map` in evaluation mode (BN with running statistics, dropout the
    /// identity): the same ops, in the same order, as [`Net::forward`] in evaluation mode, so the
    /// output equals the whole network's bit for bit.
    pub fn forward(&self, b: &B, map: B::Tensor) -> Result<TailValues<B::Tensor>> {
        let net = self.net;
        let mut values: Vec<Option<B::Tensor>> = vec![None; net.graph.slots];
        values[self.map] = Some(map);
        for &i in &self.nodes {
            let n = &net.graph.nodes[i];
            let input = |k: usize| values[n.inputs[k]].as_ref().expect("checked in new");
            let y = match &n.op {
                Op::Conv { name, bias, p } => {
                    let w = &net.tensors[&format!("{name}.weight")];
                    let bias = bias.then(|| &net.tensors[&format!("{name}.bias")]);
                    b.conv2d(input(0), w, bias, p)?
                }
                Op::Bn { name } => b.batchnorm_inference(input(0), &net.bns[name])?,
                Op::Relu => b.relu(input(0))?,
                Op::MaxPool(p) => b.maxpool2d(input(0), p)?,
                Op::Add => b.add(input(0), input(1))?,
                Op::GlobalAvgPool => b.global_avg_pool(input(0))?,
                Op::Flatten => {
                    let s = b.shape(input(0));
                    b.reshape(input(0), &[s[0], s[1..].iter().product()])?
                }
                Op::Dense { name } => {
                    let w = &net.tensors[&format!("{name}.weight")];
                    b.dense(input(0), w, Some(&net.tensors[&format!("{name}.bias")]))?
                }
                Op::Dropout { .. } => input(0).clone(),
            };
            values[n.output] = Some(y);
        }
        Ok(TailValues { values })
    }

    /// d(out . dy)/d(map): the gradient of the output, weighted by `dy` (e.g. one-hot rows to
    /// pick each image's class logit), with respect to the map, back through every tail node in
    /// evaluation mode.
    pub fn backward(&self, b: &B, v: &TailValues<B::Tensor>, dy: B::Tensor) -> Result<B::Tensor> {
        let net = self.net;
        let mut grads: Vec<Option<B::Tensor>> = vec![None; net.graph.slots];
        grads[self.out] = Some(dy);
        let val = |s: usize| {
            v.values[s]
                .as_ref()
                .expect("forward computed every tail slot")
        };
        let shape = |s: usize| b.shape(val(s)).to_vec();
        for &i in self.nodes.iter().rev() {
            let n = &net.graph.nodes[i];
            let Some(dy) = grads[n.output].take() else {
                continue;
            };
            let x = n.inputs[0];
            let dx = match &n.op {
                Op::Conv { name, p, .. } => {
                    let w = &net.tensors[&format!("{name}.weight")];
                    b.conv2d_backward_data(&dy, w, &shape(x), p)?
                }
                Op::Bn { name } => {
                    b.batchnorm_inference_backward(&dy, val(x), &net.bns[name])?
                        .0
                }
                Op::Relu => b.relu_backward(&dy, val(n.output))?,
                Op::MaxPool(p) => b.maxpool2d_backward(&dy, val(x), p)?,
                Op::Add => {
                    accumulate(b, &mut grads[n.inputs[1]], dy.clone())?;
                    dy
                }
                Op::GlobalAvgPool => b.global_avg_pool_backward(&dy, &shape(x))?,
                Op::Flatten => b.reshape(&dy, &shape(x))?,
                Op::Dense { name } => {
                    b.dense_backward(&dy, val(x), &net.tensors[&format!("{name}.weight")])?
                        .dx
                }
                Op::Dropout { .. } => dy,
            };
            accumulate(b, &mut grads[x], dx)?;
        }
        grads[self.map]
            .take()
            .ok_or_else(|| invalid("gradcam", "the output does not depend on the map"))
    }
}

fn accumulate<B: Backend>(b: &B, slot: &mut Option<B::Tensor>, d: B::Tensor) -> Result<()> {
    *slot = Some(match slot.take() {
        Some(prev) => b.add(&prev, &d)?,
        None => d,
    });
    Ok(())
}
