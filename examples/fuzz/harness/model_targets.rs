//! The model files `infer` reads (`train::model_file::load_model`: `skinengine-head-v1` heads
//! and `skinengine-net-v1` fine-tuned networks) and the checkpoints `--resume` reads
//! (`train::checkpoint::load_checkpoint`, `train::finetune::checkpoint::resume`). Seeds are
//! files our writers write.
//!
//! A whole network is tens of MB (ResNet18, the smallest, is 47 MB), too slow to read a
//! million times; the network targets therefore fuzz *skeleton* files: the metadata, the head
//! and the first backbone tensors of a real file, so every check up to the backbone's
//! completeness runs on each input, and the backbone check refuses the rest.

use super::tensor_targets::{join_file, mutate_header, ramp, split_file};
use super::{Target, scratch};
use skinengine::model::arch::Arch;
use skinengine::model::init::random_weights;
use skinengine::model::net::{Graph, HeadSpec, Net, Pool};
use skinengine::reference::ReferenceBackend;
use skinengine::train::checkpoint::{load_checkpoint, save_checkpoint};
use skinengine::train::finetune::checkpoint as ft_checkpoint;
use skinengine::train::head::{AdamState, Head};
use skinengine::train::loss_scale::{LossScaleConfig, LossScaleMode, LossScaler};
use skinengine::train::model_file::{load_model, save_model, save_net_model};
use skinengine::train::optim::{Group, OptimConfig, Optimizer, Schedule};
use skinengine::train::{FeatureNorm, TrainConfig};
use skinengine::{Rng, classes};
use std::path::{Path, PathBuf};
use tempfile::TempDir;

const B: ReferenceBackend = ReferenceBackend;

/// Metadata values worth trying in model files: every format, architecture and pooling name,
/// head widths that would allocate terabytes, sizes at and past every limit.
const VALUES: &[&str] = &[
    "skinengine-head-v1",
    "skinengine-net-v1",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "vgg19",
    "resnet",
    "avg",
    "flatten",
    "[8]",
    "[]",
    "[0]",
    "[8,8]",
    "[8,0,8]",
    "[1000000000]",
    "[1000000000,1000000000]",
    "[4294967296,4294967296]",
    "[18446744073709551615]",
    "[-1]",
    "[8.5]",
    "[\"8\"]",
    "true",
    "false",
    "crop",
    "squash",
    "0",
    "31",
    "32",
    "96",
    "224",
    "4294967295",
    "4294967296",
    "NaN",
    "-1",
    "1e308",
    "0.5",
    "MEL,NV,BCC,AKIEC,BKL,DF,VASC",
    "layer4",
    "all",
];

fn config(head: Vec<usize>, bn: bool) -> TrainConfig {
    let mut c = TrainConfig::new(PathBuf::from("data"), PathBuf::from("run"));
    c.head = head;
    c.batchnorm = bn;
    c
}

pub fn head_file(dir: &Path, arch: Arch, hidden: &[usize], bn: bool, drop_arch: bool) -> Vec<u8> {
    let f = arch.features();
    let head = Head::new(&B, f, hidden, bn, 1).unwrap();
    let norm = FeatureNorm {
        mean: ramp(&[f]).data().to_vec(),
        std: vec![1.5; f],
    };
    let p = dir.join("seed.safetensors");
    let id = ("random-init".to_string(), "random-init-seed0".to_string());
    save_model(
        &B,
        &p,
        &head,
        &norm,
        &config(hidden.to_vec(), bn),
        arch,
        &id,
    )
    .unwrap();
    let bytes = std::fs::read(&p).unwrap();
    if !drop_arch {
        return bytes;
    }
    // A file from before `arch` was recorded (ResNet50 features).
    let (mut h, data) = split_file(&bytes).unwrap();
    h.get_mut("__metadata__")
        .and_then(|m| m.as_object_mut())
        .unwrap()
        .remove("arch");
    join_file(&h, data, 0)
}

/// `load_model` on head model files.
pub struct HeadModel {
    dir: TempDir,
}

impl HeadModel {
    pub fn new() -> Self {
        HeadModel {
            dir: scratch("head-model"),
        }
    }
}

impl Target for HeadModel {
    fn name(&self) -> &'static str {
        "head-model"
    }
    fn seeds(&mut self) -> Vec<Vec<u8>> {
        let d = self.dir.path();
        vec![
            head_file(d, Arch::ResNet18, &[8], false, false),
            head_file(d, Arch::ResNet18, &[8, 4], true, false),
            head_file(d, Arch::ResNet18, &[], false, false),
            head_file(d, Arch::ResNet50, &[4], false, true),
        ]
    }
    fn mutate(&self, input: &[u8], rng: &mut Rng) -> Option<Vec<u8>> {
        mutate_header(input, rng, VALUES)
    }
    /// Most byte-level edits break the header's JSON; the loaders' own checks come after it.
    fn structured_percent(&self) -> usize {
        80
    }
    fn exec(&mut self, input: &[u8]) -> Result<(), String> {
        let p = self.dir.path().join("model.safetensors");
        std::fs::write(&p, input).unwrap();
        load_model(&B, &p).map(drop).map_err(|e| e.to_string())
    }
    fn names(&self) -> &Path {
        self.dir.path()
    }
}

/// A ResNet18 with a small head, its head spec and the names of its head parameters.
fn small_net(pool: Pool, hidden: Vec<usize>, bn: bool) -> (Net<ReferenceBackend>, HeadSpec) {
    let spec = HeadSpec {
        pool,
        hidden,
        batchnorm: bn,
        dropout: 0.25,
        classes: classes::COUNT,
    };
    let arch = Arch::ResNet18;
    let mut sd = random_weights(arch, 0, None);
    let (cw, cb) = arch.classifier();
    sd.remove(cw);
    sd.remove(cb);
    let input = spec.in_features(arch, 64).unwrap();
    sd.extend(spec.init(input, 0).unwrap());
    let net = Net::from_graph(&B, Graph::with_head(arch, &spec), &sd).unwrap();
    (net, spec)
}

/// A real file cut down to its metadata, every `head.` / `opt.` tensor and the first
/// backbone tensors.
fn skeleton(bytes: &[u8], keep_backbone: usize) -> Vec<u8> {
    let (h, data) = split_file(bytes).unwrap();
    let mut names: Vec<(String, serde_json::Value)> = h.into_iter().collect();
    // The smallest backbone tensors (BN vectors), so a skeleton stays a few KB.
    let size = |v: &serde_json::Value| {
        v["data_offsets"][1].as_u64().unwrap_or(0) - v["data_offsets"][0].as_u64().unwrap_or(0)
    };
    names.sort_by(|a, b| size(&a.1).cmp(&size(&b.1)).then(a.0.cmp(&b.0)));
    let mut out = serde_json::Map::new();
    let mut kept = Vec::new();
    let mut backbone = 0;
    for (k, mut v) in names {
        if k == "__metadata__" {
            out.insert(k, v);
            continue;
        }
        let is_head = ["head.", "net.head.", "opt."]
            .iter()
            .any(|p| k.starts_with(p));
        if !is_head {
            if backbone >= keep_backbone {
                continue;
            }
            backbone += 1;
        }
        let (a, b) = (
            v["data_offsets"][0].as_u64().unwrap() as usize,
            v["data_offsets"][1].as_u64().unwrap() as usize,
        );
        let start = kept.len();
        kept.extend_from_slice(&data[a..b]);
        v["data_offsets"] = serde_json::json!([start, kept.len()]);
        out.insert(k, v);
    }
    join_file(&out, &kept, 0)
}

/// `load_model` on skeletons of `skinengine-net-v1` files.
pub struct NetModel {
    dir: TempDir,
}

impl NetModel {
    pub fn new() -> Self {
        NetModel {
            dir: scratch("net-model"),
        }
    }
}

impl Target for NetModel {
    fn name(&self) -> &'static str {
        "net-model"
    }
    fn seeds(&mut self) -> Vec<Vec<u8>> {
        let p = self.dir.path().join("seed.safetensors");
        let mut out = Vec::new();
        for (pool, hidden, bn) in [(Pool::Avg, vec![8], true), (Pool::Flatten, vec![], false)] {
            let (net, spec) = small_net(pool, hidden.clone(), bn);
            let mut cfg = config(hidden, bn);
            cfg.fine.image_size = 64;
            let origin = (
                "random-init".to_string(),
                "random-init-resnet18-seed0".to_string(),
            );
            save_net_model(&B, &p, &net, &spec, &cfg, &origin).unwrap();
            out.push(skeleton(&std::fs::read(&p).unwrap(), 4));
        }
        out
    }
    fn mutate(&self, input: &[u8], rng: &mut Rng) -> Option<Vec<u8>> {
        mutate_header(input, rng, VALUES)
    }
    /// Most byte-level edits break the header's JSON; the loaders' own checks come after it.
    fn structured_percent(&self) -> usize {
        80
    }
    fn exec(&mut self, input: &[u8]) -> Result<(), String> {
        let p = self.dir.path().join("model.safetensors");
        std::fs::write(&p, input).unwrap();
        match load_model(&B, &p) {
            // A skeleton must not load: the backbone is incomplete.
            Ok(_) => Err("loaded".into()),
            Err(e) => Err(e.to_string()),
        }
    }
    fn seeds_load(&self) -> bool {
        false
    }
    fn names(&self) -> &Path {
        self.dir.path()
    }
}

/// `--resume` of a head run: `load_checkpoint` into a head of the run's shape.
pub struct Checkpoint {
    dir: TempDir,
    head: Head<ReferenceBackend>,
    adam: AdamState<skinengine::Tensor>,
    scaler: LossScaler,
}

/// A loss scaler that is on and has a history (a back-off and a growth step), so checkpoints
/// carry its metadata for the mutator to damage.
fn scaler() -> LossScaler {
    let cfg = LossScaleConfig {
        mode: LossScaleMode::Dynamic,
        init: 1024.0,
        growth_interval: 4,
    };
    let mut s = LossScaler::new(&cfg, Default::default()).unwrap();
    s.update(true);
    s.update(false);
    s
}

impl Checkpoint {
    pub fn new() -> Self {
        let mut head = Head::new(&B, 512, &[8], true, 0).unwrap();
        let adam = head.adam_init(&B).unwrap();
        Checkpoint {
            dir: scratch("checkpoint"),
            head,
            adam,
            scaler: scaler(),
        }
    }
}

impl Target for Checkpoint {
    fn name(&self) -> &'static str {
        "checkpoint"
    }
    fn seeds(&mut self) -> Vec<Vec<u8>> {
        let p = self
            .dir
            .path()
            .join(skinengine::train::checkpoint::CHECKPOINT);
        let mut out = Vec::new();
        for (epoch, best) in [(3, (2, 0.5)), (0, (0, f64::NEG_INFINITY))] {
            save_checkpoint(
                &B,
                self.dir.path(),
                &self.head,
                &self.adam,
                &self.scaler,
                epoch,
                best,
            )
            .unwrap();
            out.push(std::fs::read(&p).unwrap());
        }
        out
    }
    fn mutate(&self, input: &[u8], rng: &mut Rng) -> Option<Vec<u8>> {
        mutate_header(input, rng, VALUES)
    }
    /// Most byte-level edits break the header's JSON; the loaders' own checks come after it.
    fn structured_percent(&self) -> usize {
        80
    }
    fn exec(&mut self, input: &[u8]) -> Result<(), String> {
        let p = self
            .dir
            .path()
            .join(skinengine::train::checkpoint::CHECKPOINT);
        std::fs::write(&p, input).unwrap();
        load_checkpoint(
            &B,
            self.dir.path(),
            &mut self.head,
            &mut self.adam,
            &mut self.scaler,
        )
        .map(drop)
        .map_err(|e| e.to_string())
    }
    fn names(&self) -> &Path {
        self.dir.path()
    }
}

/// `--resume` of a fine-tuning run, on skeleton checkpoints (every optimiser tensor, the
/// head and the first backbone tensors of a real one).
pub struct FineTuneCheckpoint {
    dir: TempDir,
    net: Option<(Net<ReferenceBackend>, Optimizer<ReferenceBackend>)>,
}

impl FineTuneCheckpoint {
    pub fn new() -> Self {
        FineTuneCheckpoint {
            dir: scratch("finetune-checkpoint"),
            net: None,
        }
    }
}

impl Target for FineTuneCheckpoint {
    fn name(&self) -> &'static str {
        "finetune-checkpoint"
    }
    fn seeds(&mut self) -> Vec<Vec<u8>> {
        let (net, _) = small_net(Pool::Avg, vec![8], false);
        // The head and the last block train (as `--fine-tune layer4` would, in part).
        let params: Vec<(String, Group, Vec<usize>)> = [
            "head.hidden.0.weight",
            "head.out.weight",
            "layer4.1.bn2.weight",
        ]
        .iter()
        .filter_map(|n| {
            let t = net.param(n)?;
            let g = if n.starts_with("head.") {
                Group::Head
            } else {
                Group::Backbone
            };
            Some((n.to_string(), g, t.shape().to_vec()))
        })
        .collect();
        assert!(
            params.len() >= 2,
            "fine-tune checkpoint target: parameter names changed"
        );
        let ocfg = OptimConfig::adam(Default::default(), 1e-4);
        let opt = Optimizer::new(&B, ocfg, Schedule::constant(), &params).unwrap();
        let p = self
            .dir
            .path()
            .join(skinengine::train::checkpoint::CHECKPOINT);
        ft_checkpoint::save(&B, self.dir.path(), &net, &opt, &scaler(), 2, (1, 0.25)).unwrap();
        let seed = skeleton(&std::fs::read(&p).unwrap(), 6);
        self.net = Some((net, opt));
        vec![seed]
    }
    fn mutate(&self, input: &[u8], rng: &mut Rng) -> Option<Vec<u8>> {
        mutate_header(input, rng, VALUES)
    }
    /// Most byte-level edits break the header's JSON; the loaders' own checks come after it.
    fn structured_percent(&self) -> usize {
        80
    }
    fn exec(&mut self, input: &[u8]) -> Result<(), String> {
        let p = self
            .dir
            .path()
            .join(skinengine::train::checkpoint::CHECKPOINT);
        std::fs::write(&p, input).unwrap();
        let (net, opt) = self.net.as_mut().expect("seeds first");
        match ft_checkpoint::resume(&B, self.dir.path(), net, opt, &mut scaler()) {
            Ok(_) => Err("resumed".into()),
            Err(e) => Err(e.to_string()),
        }
    }
    fn seeds_load(&self) -> bool {
        false
    }
    fn names(&self) -> &Path {
        self.dir.path()
    }
}
