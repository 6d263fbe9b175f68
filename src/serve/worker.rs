//! Dynamic batching: one thread owns the backend and the model. Requests put their decoded,
//! preprocessed image into a bounded queue ([`Queue::try_send`]; full -> the caller answers
//! 503); the worker takes the first waiting image, then more until it has `max_batch` or
//! `max_wait` has passed since the first, runs them as one forward pass (and one backward
//! through the classifier when any asked for a heat map) and answers each request on its own
//! channel.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::config::{Gate, Limits, ServeConfig};
use super::metrics::Metrics;
use crate::backend::Backend;
use crate::data::image::Preprocess;
use crate::error::Result;
use crate::pipeline::FrozenBackbone;
use crate::pipeline::gradcam::{CamModel, Explainer, grad_cam};
use crate::pipeline::heatmap::Cam;
use crate::tensor::Tensor;
use crate::train::features::file_hash;

/// What the loaded model is; the handlers preprocess images with it.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    /// "<file name>@<content hash>": changes whenever the model file does.
    pub id: String,
    /// "fine-tuned resnet18", "head on resnet50 features", ...
    pub kind: String,
    /// Side of the square input.
    pub size: u32,
    pub preprocess: Preprocess,
    /// The backend the worker runs on.
    pub device: String,
    /// (code, name) of each output, in the model's order.
    pub classes: Vec<(String, String)>,
}

/// One image waiting for the worker.
pub struct Job {
    /// The preprocessed image, [3, size, size] planar.
    pub x: Vec<f32>,
    /// `Some(class)`: a heat map of `class` (`None`: of the predicted class) is wanted.
    pub heatmap: Option<Option<usize>>,
    pub enqueued: Instant,
    pub reply: oneshot::Sender<std::result::Result<Answer, String>>,
}

/// The worker's answer to one job.
#[derive(Clone, Debug)]
pub struct Answer {
    /// One per class of [`ModelInfo::classes`].
    pub probs: Vec<f32>,
    /// The class explained and its Grad-CAM map, when asked for.
    pub heatmap: Option<(usize, Cam)>,
    /// Images in the forward pass this one ran in.
    pub batch: usize,
    pub queued: Duration,
    pub compute: Duration,
}

/// The sending side of the bounded queue.
#[derive(Clone)]
pub struct Queue {
    tx: SyncSender<Job>,
    metrics: Arc<Metrics>,
}

pub enum SendError {
    Full,
    Stopped,
}

impl Queue {
    pub fn try_send(&self, job: Job) -> std::result::Result<(), SendError> {
        // Counted before the send: the worker may take the job (and count it down) at once.
        self.metrics.queued(1);
        self.tx.try_send(job).map_err(|e| {
            self.metrics.queued(-1);
            match e {
                TrySendError::Full(_) => SendError::Full,
                TrySendError::Disconnected(_) => SendError::Stopped,
            }
        })
    }
}

/// Starts the worker thread: it resolves the device, loads the model and reports the outcome on
/// `ready` (the error message when loading failed), then serves the queue until every
/// [`Queue`] is dropped.
pub fn spawn(
    cfg: &ServeConfig,
    metrics: Arc<Metrics>,
    ready: impl FnOnce(std::result::Result<ModelInfo, String>) + Send + 'static,
) -> std::io::Result<(Queue, std::thread::JoinHandle<()>)> {
    let (tx, rx) = mpsc::sync_channel(cfg.limits.queue);
    let cfg = cfg.clone();
    let m = metrics.clone();
    let join = std::thread::Builder::new()
        .name("serve-worker".into())
        .spawn(move || {
            let resolved = match cfg.device.resolve_at(cfg.precision) {
                Ok(r) => r,
                Err(e) => return ready(Err(e.to_string())),
            };
            let device = match &resolved {
                crate::backend::select::ResolvedBackend::Cpu => "cpu".to_string(),
                crate::backend::select::ResolvedBackend::Reference => "reference".to_string(),
                crate::backend::select::ResolvedBackend::Cuda(_) => "cuda".to_string(),
            };
            crate::with_backend!(resolved, |b| {
                let loaded = Explainer::load(b, &cfg.model, cfg.weights.as_deref())
                    .and_then(|ex| Ok((info(&cfg, &ex, device.clone())?, ex)));
                match loaded {
                    Err(e) => ready(Err(e.to_string())),
                    Ok((info, ex)) => {
                        ready(Ok(info));
                        serve_queue(b, &ex, &rx, &cfg.limits, cfg.gate.as_ref(), &m);
                    }
                }
            })
        })?;
    Ok((Queue { tx, metrics }, join))
}

fn info<B: Backend>(cfg: &ServeConfig, ex: &Explainer<B>, device: String) -> Result<ModelInfo> {
    let model = cfg.model.as_path();
    let name = model
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let kind = match &ex.model {
        CamModel::Net(net) => format!("fine-tuned {}", net.graph.arch.name()),
        CamModel::Head { backbone, .. } => {
            let arch = match backbone {
                FrozenBackbone::Folded(m) => m.arch,
                FrozenBackbone::Net(net) => net.graph.arch,
            };
            format!("head on {} features", arch.name())
        }
    };
    Ok(ModelInfo {
        id: format!("{name}@{}", file_hash(model)?),
        kind,
        size: ex.size,
        preprocess: Preprocess {
            decode: cfg.decode,
            ..ex.preprocess
        },
        device,
        // The model file's own list (ISIC 2018's 7, ISIC 2019's 8, ...): the answer's codes and
        // names, the `class=` codes accepted and the page's bars all come from here.
        classes: ex
            .classes
            .classes()
            .iter()
            .map(|c| (c.code.clone(), c.name.clone()))
            .collect(),
    })
}

/// The worker's loop: batches until the queue's senders are all gone.
fn serve_queue<B: Backend>(
    b: &B,
    ex: &Explainer<B>,
    rx: &Receiver<Job>,
    limits: &Limits,
    gate: Option<&Gate>,
    metrics: &Metrics,
) {
    loop {
        if let Some(g) = gate {
            g.pass();
        }
        let Ok(first) = rx.recv() else { return };
        let mut jobs = vec![first];
        let deadline = Instant::now() + limits.max_wait;
        while jobs.len() < limits.max_batch.max(1) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(j) => jobs.push(j),
                Err(RecvTimeoutError::Timeout) => break,
                // Shutting down: finish what was taken.
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        metrics.queued(-(jobs.len() as i64));
        // A request that timed out (its handler gone) is not computed.
        jobs.retain(|j| !j.reply.is_closed());
        if jobs.is_empty() {
            continue;
        }
        metrics.batch(jobs.len());
        let t0 = Instant::now();
        let result =
            catch_unwind(AssertUnwindSafe(|| run_batch(b, ex, &jobs))).unwrap_or_else(|p| {
                let msg = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Err(crate::error::invalid(
                    "serve",
                    format!("the model panicked: {msg}"),
                ))
            });
        let compute = t0.elapsed();
        let n = jobs.len();
        match result {
            Ok(answers) => {
                for (j, (probs, heatmap)) in jobs.into_iter().zip(answers) {
                    let _ = j.reply.send(Ok(Answer {
                        probs,
                        heatmap,
                        batch: n,
                        queued: t0.duration_since(j.enqueued),
                        compute,
                    }));
                }
            }
            Err(e) => {
                for j in jobs {
                    let _ = j.reply.send(Err(e.to_string()));
                }
            }
        }
    }
}

type Classified = (Vec<f32>, Option<(usize, Cam)>);

/// One forward pass over the jobs' images (the same ops as `infer`, through the map Grad-CAM
/// reads), softmax, and when any job wants a heat map one backward pass of the wanted rows'
/// class logits to the map.
fn run_batch<B: Backend>(b: &B, ex: &Explainer<B>, jobs: &[Job]) -> Result<Vec<Classified>> {
    let s = ex.size as usize;
    let mut x = Vec::with_capacity(jobs.len() * 3 * s * s);
    for j in jobs {
        x.extend_from_slice(&j.x);
    }
    let n = jobs.len();
    let map = ex.map(b, &b.upload(&Tensor::new(&[n, 3, s, s], x)?)?)?;
    let from = ex.logits_from_map(b, map.clone())?;
    let probs = b.download(&b.softmax(&from.logits)?)?;
    let k = probs.shape()[1];
    let mut out: Vec<Classified> = probs
        .data()
        .chunks(k)
        .map(|row| (row.to_vec(), None))
        .collect();
    if jobs.iter().all(|j| j.heatmap.is_none()) {
        return Ok(out);
    }
    // One-hot rows of the explained classes (zero rows for jobs without a heat map: the
    // images are independent in evaluation mode, so they add nothing to the others).
    let mut dy = vec![0f32; n * k];
    let mut classes = vec![None; n];
    for (i, j) in jobs.iter().enumerate() {
        if let Some(asked) = j.heatmap {
            let p = &out[i].0;
            // The argmax `infer` counts (ties: the last maximum).
            let c = asked.unwrap_or_else(|| argmax(p));
            if c >= k {
                return Err(crate::error::invalid(
                    "serve",
                    format!("class {c} is not one of the model's {k} classes"),
                ));
            }
            dy[i * k + c] = 1.0;
            classes[i] = Some(c);
        }
    }
    let dmap = ex.map_gradient(b, &from, b.upload(&Tensor::new(&[n, k], dy)?)?)?;
    let (a, da) = (b.download(&map)?, b.download(&dmap)?);
    let &[_, ch, h, w] = a.shape() else {
        return Err(crate::error::invalid(
            "serve",
            "the map is not [N, C, h, w]",
        ));
    };
    let per = ch * h * w;
    for (i, c) in classes.into_iter().enumerate() {
        if let Some(c) = c {
            let at = i * per;
            let (_, cam) = grad_cam(&a.data()[at..at + per], &da.data()[at..at + per], ch, h, w);
            out[i].1 = Some((c, cam));
        }
    }
    Ok(out)
}

/// The most probable class (ties: the last maximum, as `infer`'s summary counts).
pub fn argmax(p: &[f32]) -> usize {
    (0..p.len())
        .max_by(|&a, &b| p[a].total_cmp(&p[b]))
        .unwrap_or(0)
}
