//! What `skinengine serve` runs with: the model, the device and the limits that keep one
//! server safe in front of untrusted clients (body size, image size, queue, timeouts).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::backend::select::{DeviceChoice, PrecisionChoice};
use crate::data::image::Decode;

/// A server run.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Model file written by `train` (either format).
    pub model: PathBuf,
    /// Backbone weights of a head model; `None`: the file the model records.
    pub weights: Option<PathBuf>,
    pub device: DeviceChoice,
    pub precision: PrecisionChoice,
    /// JPEG decoding, as `infer`'s (full size unless `--scaled-decode`).
    pub decode: Decode,
    /// Where to listen (port 0: any free port; [`super::Running::addr`] says which).
    pub addr: SocketAddr,
    pub limits: Limits,
    /// Stop on SIGTERM / ctrl-c (the CLI); tests stop the server with [`super::Running::shutdown`].
    pub handle_signals: bool,
    /// Test seam: while closed, the batching worker takes nothing from the queue (so a test can
    /// fill the queue, or hold a request past its timeout, deterministically).
    #[doc(hidden)]
    pub gate: Option<Gate>,
}

impl ServeConfig {
    /// The defaults of the command line for `model`, on 127.0.0.1:8080.
    pub fn new(model: PathBuf) -> Self {
        ServeConfig {
            model,
            weights: None,
            device: DeviceChoice::Auto,
            precision: PrecisionChoice::Auto,
            decode: Decode::default(),
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            limits: Limits::default(),
            handle_signals: false,
            gate: None,
        }
    }
}

/// The server's bounds. Every one is a flag of `serve`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Most images in one forward pass.
    pub max_batch: usize,
    /// How long the worker waits for more images once it has one (the latency a lone request
    /// pays for batching).
    pub max_wait: Duration,
    /// Decoded images waiting for the worker; one more is answered 503.
    pub queue: usize,
    /// Largest request body (413 past it).
    pub max_body_bytes: usize,
    /// Largest image, width x height, read from its header before any pixel is decoded (422
    /// past it). At most the decoder's own limit (`data::image::MAX_PIXELS`).
    pub max_pixels: u64,
    /// Per request: headers and body must arrive within it (else 408, or the connection is
    /// closed when the headers themselves stall), and the answer must be ready within it from
    /// the request's start (else 504).
    pub timeout: Duration,
    /// Images decoded at once (decoding runs beside the async runtime, on blocking threads).
    pub decoders: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_batch: 8,
            max_wait: Duration::from_millis(5),
            queue: 64,
            max_body_bytes: 20 << 20,
            max_pixels: 40_000_000,
            timeout: Duration::from_secs(30),
            decoders: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// A door the batching worker waits at (see [`ServeConfig::gate`]).
#[derive(Clone, Debug, Default)]
pub struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    /// A closed gate.
    pub fn closed() -> Self {
        Gate(Arc::new((Mutex::new(true), Condvar::new())))
    }

    pub fn open(&self) {
        *self.0.0.lock().unwrap_or_else(|e| e.into_inner()) = false;
        self.0.1.notify_all();
    }

    /// Blocks while the gate is closed.
    pub fn pass(&self) {
        let (m, cv) = &*self.0;
        let mut closed = m.lock().unwrap_or_else(|e| e.into_inner());
        while *closed {
            closed = cv.wait(closed).unwrap_or_else(|e| e.into_inner());
        }
    }
}
