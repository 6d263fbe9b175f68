//! A network as a straight-line program over numbered values ("slots"): each [`Node`] reads
//! slots and writes one new slot, in execution order. Slot 0 is the input image batch. The same
//! list runs forwards (train or eval mode) and, reversed, backwards; residual connections are
//! simply slots read by two nodes, whose gradients add.

use crate::model::arch::{Arch, Block, VGG19_CFG};
use crate::ops::conv2d::Conv2dParams;
use crate::ops::pool::Pool2dParams;

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Convolution with weight `{name}.weight` (and `{name}.bias` when `bias`).
    Conv {
        name: String,
        bias: bool,
        p: Conv2dParams,
    },
    /// Batch norm with parameters and running statistics under `{name}.*`.
    Bn {
        name: String,
    },
    Relu,
    MaxPool(Pool2dParams),
    /// Sum of two slots (the residual connection).
    Add,
    /// [N, C, H, W] -> [N, C].
    GlobalAvgPool,
    /// [N, C, H, W] -> [N, C*H*W] (VGG's classifier input).
    Flatten,
    /// Dense layer with `{name}.weight` [O, I] and `{name}.bias` [O].
    Dense {
        name: String,
    },
    /// Inverted dropout with drop probability `p` (training forward only; the identity in eval
    /// mode and in frozen nodes).
    Dropout {
        p: f64,
    },
}

/// How the backbone's last feature map becomes the head's input (ResNets).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Pool {
    /// Global average pool: [N, C] (torchvision's, the blog's described model).
    #[default]
    Avg,
    /// Flatten the whole map: [N, C*H*W] (the seed notebook's 7x7x2048 = 100,352 inputs).
    Flatten,
}

impl Pool {
    pub fn name(self) -> &'static str {
        match self {
            Pool::Avg => "avg",
            Pool::Flatten => "flatten",
        }
    }
}

/// A classifier head of our own in place of the ImageNet classifier: dense layers of widths
/// `hidden`, each followed by (optional) batch norm and ReLU, then `classes` logits; dropout
/// before the first dense layer when `dropout` > 0. Parameters are named `head.hidden.{k}.*`,
/// `head.hidden.{k}.bn.*` and `head.out.*`.
#[derive(Clone, Debug, PartialEq)]
pub struct HeadSpec {
    pub pool: Pool,
    pub hidden: Vec<usize>,
    pub batchnorm: bool,
    pub dropout: f64,
    pub classes: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<usize>,
    pub output: usize,
    /// Where the node sits ("stem", "layer1".."layer4", "head"): what `--fine-tune` names.
    pub stage: &'static str,
}

#[derive(Clone, Debug)]
pub struct Graph {
    pub arch: Arch,
    pub nodes: Vec<Node>,
    pub slots: usize,
    /// The slot holding the feature vector [N, F] the classifier reads.
    pub features: usize,
    /// The slot of the classifier's logits, when the graph includes one.
    pub logits: Option<usize>,
}

impl Graph {
    /// The network of `arch`, with its classifier (`fc` / `classifier.6`) when `classifier`.
    pub fn new(arch: Arch, classifier: bool) -> Graph {
        let mut g = Builder {
            nodes: Vec::new(),
            slots: 1,
            stage: "stem",
        };
        let features = match arch.resnet() {
            Some((block, counts)) => resnet(&mut g, block, counts),
            None => vgg19(&mut g),
        };
        g.stage = "head";
        let logits = classifier.then(|| {
            let name = arch.classifier().0.trim_end_matches(".weight").to_string();
            g.push(Op::Dense { name }, &[features])
        });
        Graph {
            arch,
            nodes: g.nodes,
            slots: g.slots,
            features,
            logits,
        }
    }

    /// The backbone of `arch` with a head of our own ([`HeadSpec`]) instead of its classifier.
    /// The head's nodes are in stage "head"; `logits` is the head's output.
    pub fn with_head(arch: Arch, head: &HeadSpec) -> Graph {
        let mut g = Builder {
            nodes: Vec::new(),
            slots: 1,
            stage: "stem",
        };
        let features = match arch.resnet() {
            Some((block, counts)) => {
                let map = resnet_trunk(&mut g, block, counts);
                let pool = match head.pool {
                    Pool::Avg => Op::GlobalAvgPool,
                    Pool::Flatten => Op::Flatten,
                };
                g.push(pool, &[map])
            }
            None => vgg19(&mut g),
        };
        g.stage = "head";
        let mut x = features;
        if head.dropout > 0.0 {
            x = g.push(Op::Dropout { p: head.dropout }, &[x]);
        }
        for k in 0..head.hidden.len() {
            let name = format!("head.hidden.{k}");
            x = g.push(Op::Dense { name: name.clone() }, &[x]);
            if head.batchnorm {
                x = g.bn(x, &format!("{name}.bn"));
            }
            x = g.relu(x);
        }
        let logits = g.push(
            Op::Dense {
                name: "head.out".into(),
            },
            &[x],
        );
        Graph {
            arch,
            nodes: g.nodes,
            slots: g.slots,
            features,
            logits: Some(logits),
        }
    }

    /// Index of the first node of `stage` (nodes before it are "below" it).
    pub fn first_of(&self, stage: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.stage == stage)
    }

    /// Names of the trainable parameters of nodes `from..`, in node order.
    pub fn params_from(&self, from: usize) -> Vec<String> {
        let mut v = Vec::new();
        for n in &self.nodes[from..] {
            match &n.op {
                Op::Conv { name, bias, .. } => {
                    v.push(format!("{name}.weight"));
                    if *bias {
                        v.push(format!("{name}.bias"));
                    }
                }
                Op::Bn { name } | Op::Dense { name } => {
                    v.push(format!("{name}.weight"));
                    v.push(format!("{name}.bias"));
                }
                _ => {}
            }
        }
        v
    }
}

struct Builder {
    nodes: Vec<Node>,
    slots: usize,
    stage: &'static str,
}

impl Builder {
    fn push(&mut self, op: Op, inputs: &[usize]) -> usize {
        let output = self.slots;
        self.slots += 1;
        self.nodes.push(Node {
            op,
            inputs: inputs.to_vec(),
            output,
            stage: self.stage,
        });
        output
    }
    fn conv(&mut self, x: usize, name: &str, stride: usize, pad: usize) -> usize {
        let op = Op::Conv {
            name: name.to_string(),
            bias: false,
            p: Conv2dParams::square(stride, pad),
        };
        self.push(op, &[x])
    }
    fn bn(&mut self, x: usize, name: &str) -> usize {
        self.push(
            Op::Bn {
                name: name.to_string(),
            },
            &[x],
        )
    }
    fn relu(&mut self, x: usize) -> usize {
        self.push(Op::Relu, &[x])
    }
}

const STAGES: [&str; 4] = ["layer1", "layer2", "layer3", "layer4"];

fn resnet(g: &mut Builder, block: Block, counts: [usize; 4]) -> usize {
    let map = resnet_trunk(g, block, counts);
    g.push(Op::GlobalAvgPool, &[map])
}

/// A ResNet up to its last feature map (before pooling).
fn resnet_trunk(g: &mut Builder, block: Block, counts: [usize; 4]) -> usize {
    let x = g.conv(0, "conv1", 2, 3);
    let x = g.bn(x, "bn1");
    let x = g.relu(x);
    let mut h = g.push(Op::MaxPool(Pool2dParams::square(3, 2, 1)), &[x]);
    let mut cin = 64;
    for (l, &n) in counts.iter().enumerate() {
        g.stage = STAGES[l];
        let out = match block {
            Block::Basic => 64 << l,
            Block::Bottleneck => 256 << l,
        };
        for i in 0..n {
            let p = format!("layer{}.{i}", l + 1);
            let stride = if l > 0 && i == 0 { 2 } else { 1 };
            let shortcut = if i == 0 && (l > 0 || cin != out) {
                let s = g.conv(h, &format!("{p}.downsample.0"), stride, 0);
                g.bn(s, &format!("{p}.downsample.1"))
            } else {
                h
            };
            let last = match block {
                Block::Basic => {
                    let t = g.conv(h, &format!("{p}.conv1"), stride, 1);
                    let t = g.bn(t, &format!("{p}.bn1"));
                    let t = g.relu(t);
                    let t = g.conv(t, &format!("{p}.conv2"), 1, 1);
                    g.bn(t, &format!("{p}.bn2"))
                }
                Block::Bottleneck => {
                    let t = g.conv(h, &format!("{p}.conv1"), 1, 0);
                    let t = g.bn(t, &format!("{p}.bn1"));
                    let t = g.relu(t);
                    let t = g.conv(t, &format!("{p}.conv2"), stride, 1);
                    let t = g.bn(t, &format!("{p}.bn2"));
                    let t = g.relu(t);
                    let t = g.conv(t, &format!("{p}.conv3"), 1, 0);
                    g.bn(t, &format!("{p}.bn3"))
                }
            };
            let sum = g.push(Op::Add, &[last, shortcut]);
            h = g.relu(sum);
            cin = out;
        }
    }
    h
}

/// VGG19's stages for `--fine-tune`, named like a ResNet's so the same flags pick comparable
/// depths: the first conv block (64 channels) is the stem, the next four are layer1..layer4, and
/// the two hidden classifier layers (the 4096-d features) belong to layer4. torchvision's dropout
/// after them is left out (the seed replaced that classifier; `--dropout` adds one before the head).
fn vgg19(g: &mut Builder) -> usize {
    let mut x = 0;
    let mut idx = 0;
    let mut block = 0;
    g.stage = "stem";
    for &c in &VGG19_CFG {
        if c == 0 {
            x = g.push(Op::MaxPool(Pool2dParams::square(2, 2, 0)), &[x]);
            idx += 1;
            block += 1;
            g.stage = STAGES[block.clamp(1, 4) - 1];
            continue;
        }
        let conv = Op::Conv {
            name: format!("features.{idx}"),
            bias: true,
            p: Conv2dParams::square(1, 1),
        };
        x = g.push(conv, &[x]);
        x = g.relu(x);
        idx += 2;
    }
    // torchvision's AdaptiveAvgPool2d((7, 7)) is the identity on the 7x7 map of a 224x224
    // input, the size VGG19 is used at; the forward pass checks for it.
    x = g.push(Op::Flatten, &[x]);
    for name in ["classifier.0", "classifier.3"] {
        x = g.push(
            Op::Dense {
                name: name.to_string(),
            },
            &[x],
        );
        x = g.relu(x);
    }
    x
}
