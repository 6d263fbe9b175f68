//! `skinengine serve`: the HTTP server (see `crate::serve` and README "serve").

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::{DeviceChoice, PrecisionChoice};
use crate::error::Result;
use crate::serve::{Limits, ServeConfig, start};

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Model file written by `train` (RUN/model.safetensors; a head or a fine-tuned network).
    #[arg(long)]
    pub model: PathBuf,
    /// Backbone weights of a head model (default: the file the model records).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Address to listen on. The default takes connections from this machine only; use
    /// 0.0.0.0 to serve others (behind a proxy with TLS).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port (0: any free port; the one chosen is printed).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    #[arg(long, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    #[arg(long, value_enum, default_value_t = PrecisionChoice::Auto)]
    pub precision: PrecisionChoice,
    /// Most images in one forward pass (dynamic batching).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_batch: u32,
    /// Once an image is waiting, how long to wait for more before running the batch.
    #[arg(long, default_value_t = 5)]
    pub max_wait_ms: u64,
    /// Images waiting for the model at most; one more is answered 503.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub queue: u32,
    /// Largest request body in bytes (413 past it).
    #[arg(long, default_value_t = 20 << 20)]
    pub max_body_bytes: usize,
    /// Largest image in pixels (width x height, read from the header before decoding; 422
    /// past it). At most 64 000 000.
    #[arg(long, default_value_t = 40_000_000, value_parser = clap::value_parser!(u64).range(1..=64_000_000))]
    pub max_pixels: u64,
    /// Per request: headers and body must arrive within it (else 408 / the connection is
    /// closed), and the answer must be ready within it (else 504).
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: u64,
    /// As `infer`: decode JPEGs at the smallest DCT scale (1/2, 1/4, 1/8) that still leaves the image at
    /// least the input size, then resize. Default: full-size decoding, as Pillow does (on the
    /// CPUs measured it was also the faster one; README, "Scaled JPEG decoding").
    #[arg(long, conflicts_with = "full_decode")]
    pub scaled_decode: bool,
    /// Decode JPEGs at full size: the default, accepted so that scripts passing it keep working.
    #[arg(long, hide = true)]
    pub full_decode: bool,
    /// Threads for the model's compute (0 = one per logical core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

impl ServeArgs {
    pub fn config(&self) -> ServeConfig {
        let mut cfg = ServeConfig::new(self.model.clone());
        cfg.weights = self.weights.clone();
        cfg.device = self.device;
        cfg.precision = self.precision;
        cfg.decode = crate::data::image::Decode::from_scaled_flag(self.scaled_decode);
        cfg.addr = SocketAddr::new(self.host, self.port);
        cfg.limits = Limits {
            max_batch: self.max_batch as usize,
            max_wait: Duration::from_millis(self.max_wait_ms),
            queue: self.queue as usize,
            max_body_bytes: self.max_body_bytes,
            max_pixels: self.max_pixels,
            timeout: Duration::from_millis(self.timeout_ms),
            ..Limits::default()
        };
        cfg.handle_signals = true;
        cfg
    }
}

pub fn run(args: &ServeArgs) -> Result<()> {
    super::set_threads(args.threads);
    let cfg = args.config();
    let server = start(&cfg)?;
    // On stdout, so a script that asked for port 0 can read the port.
    println!("serve: listening on http://{}", server.addr());
    eprintln!("serve: loading {}", cfg.model.display());
    if let Err(e) = server.wait_ready(Duration::from_secs(24 * 3600)) {
        let _ = server.shutdown();
        return Err(e);
    }
    eprintln!(
        "serve: model ready; POST images to http://{}/v1/classify",
        server.addr()
    );
    server.join()?;
    eprintln!("serve: stopped");
    Ok(())
}
