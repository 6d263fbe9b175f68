//! What every test of this binary shares: the fixture (a model and images made once), the
//! server, a raw HTTP client and `infer`'s answers to compare with. The imports are
//! re-exported so each test file needs only `use crate::common::*`.

pub use std::io::{Read, Write};
pub use std::net::{SocketAddr, TcpStream};
pub use std::path::{Path, PathBuf};
pub use std::sync::OnceLock;
pub use std::time::{Duration, Instant};

pub use serde_json::Value;
pub use skinengine::backend::select::DeviceChoice;
pub use skinengine::classes::CODES;
pub use skinengine::pipeline::infer::{InferConfig, infer};
pub use skinengine::pipeline::tta::Tta;
pub use skinengine::serve::{Gate, Limits, Running, ServeConfig, start};

/// A model and images made once for the whole test binary.
pub struct Fixture {
    _dir: tempfile::TempDir,
    pub model: PathBuf,
    /// (file, content type)
    pub images: Vec<(PathBuf, &'static str)>,
    /// `infer`'s probabilities per file name.
    pub want: Vec<(String, Vec<f32>)>,
}

pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model.safetensors");
        skinengine::testing::tiny_model::write_tiny_net_model(&model, 32, 7).unwrap();
        let imgs = dir.path().join("images");
        std::fs::create_dir(&imgs).unwrap();
        let mut images = Vec::new();
        for (i, (w, h, ext)) in [
            (64, 48, "jpg"),
            (80, 80, "png"),
            (45, 60, "jpg"),
            (33, 70, "png"),
        ]
        .into_iter()
        .enumerate()
        {
            let img = image::RgbImage::from_fn(w, h, |x, y| {
                let k = i as u32 + 1;
                image::Rgb([
                    ((x * 5 * k + y) % 256) as u8,
                    ((y * 3 + x * k) % 256) as u8,
                    ((x * y / k + 40 * k) % 256) as u8,
                ])
            });
            let p = imgs.join(format!("ISIC_{i:07}.{ext}"));
            img.save(&p).unwrap();
            images.push((
                p,
                if ext == "jpg" {
                    "image/jpeg"
                } else {
                    "image/png"
                },
            ));
        }
        let inferred = infer(
            &skinengine::CpuBackend,
            &InferConfig {
                model: model.clone(),
                weights: None,
                images: vec![imgs],
                tta: Tta::None,
                batch: 3,
                strict: true,
                shard: None,
                decode: Default::default(),
            },
        )
        .unwrap();
        let want = inferred
            .ids
            .into_iter()
            .zip(inferred.probs.iter().map(|p| p.to_vec()))
            .collect();
        Fixture {
            _dir: dir,
            model,
            images,
            want,
        }
    })
}

pub fn server(limits: Limits, gate: Option<Gate>) -> Running {
    let mut cfg = ServeConfig::new(fixture().model.clone());
    cfg.device = DeviceChoice::Cpu;
    cfg.addr = SocketAddr::from(([127, 0, 0, 1], 0));
    cfg.limits = limits;
    cfg.gate = gate;
    let s = start(&cfg).unwrap();
    s.wait_ready(Duration::from_secs(60)).unwrap();
    s
}

pub fn limits() -> Limits {
    Limits {
        max_batch: 4,
        max_wait: Duration::from_millis(2),
        queue: 16,
        max_body_bytes: 1 << 20,
        max_pixels: 1_000_000,
        timeout: Duration::from_secs(20),
        decoders: 2,
    }
}

pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap().to_string()
    }
}

/// Reads a whole response (the request said Connection: close).
pub fn read_reply(mut s: TcpStream) -> Reply {
    let mut buf = Vec::new();
    // A server that answered early and closed may reset the connection after its answer
    // (unread request bytes); what arrived before the reset is kept in `buf`.
    if let Err(e) = s.read_to_end(&mut buf) {
        assert!(!buf.is_empty(), "no answer: {e}");
    }
    let at = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&buf)));
    let head = String::from_utf8_lossy(&buf[..at]).into_owned();
    let status = head[9..12].parse().unwrap();
    Reply {
        status,
        head,
        body: buf[at + 4..].to_vec(),
    }
}

/// Sends `raw` (a whole request) and reads the reply.
pub fn send(addr: SocketAddr, raw: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    // The server may answer (413 from Content-Length) and close before the whole body is sent,
    // so the write can fail with a broken pipe; the answer is what the tests check.
    let _ = s.write_all(raw);
    read_reply(s)
}

pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (k, v) in headers {
        r += &format!("{k}: {v}\r\n");
    }
    r += &format!("Content-Length: {}\r\n\r\n", body.len());
    let mut r = r.into_bytes();
    r.extend_from_slice(body);
    r
}

pub fn post(addr: SocketAddr, path: &str, ct: &str, body: &[u8]) -> Reply {
    send(addr, &request("POST", path, &[("Content-Type", ct)], body))
}

pub fn get(addr: SocketAddr, path: &str) -> Reply {
    send(addr, &request("GET", path, &[], b""))
}

pub fn multipart(field: &str, filename: &str, ct: &str, data: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----skinengine-test-7MA4YWxkTrZu0gW";
    let mut b = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n\
         Content-Type: {ct}\r\n\r\n"
    )
    .into_bytes();
    b.extend_from_slice(data);
    b.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), b)
}

/// The probabilities in the order of the answer's class list (the model's).
pub fn probs_of(v: &Value) -> Vec<f32> {
    let codes = v["classes"].as_array().unwrap();
    codes
        .iter()
        .map(|c| v["probabilities"][c.as_str().unwrap()].as_f64().unwrap() as f32)
        .collect()
}

pub fn want_for(file: &Path) -> Vec<f32> {
    let id = file.file_stem().unwrap().to_str().unwrap();
    fixture()
        .want
        .iter()
        .find(|(i, _)| i == id)
        .unwrap()
        .1
        .clone()
}

/// The server runs the same ops as `infer` on the same pixels; only the batch it lands in may
/// differ, and images are independent in evaluation mode, so the probabilities agree to f32
/// rounding (measured: equal to the last bit in these runs); 1e-6 is far below any
/// preprocessing difference (a different resize or normalisation moves them by 1e-3 or more).
pub const TOL: f32 = 1e-6;

pub fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: class count");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= TOL, "{what}: {got:?} vs infer {want:?}");
    }
}

/// The server's queue depth, read from `/metrics`.
pub fn queue_depth(addr: SocketAddr) -> i64 {
    let m = get(addr, "/metrics").text();
    let line = m
        .lines()
        .find(|l| l.starts_with("skinengine_queue_depth "))
        .unwrap();
    line.split(' ').nth(1).unwrap().parse().unwrap()
}

/// Waits (up to 20 s) until `n` images wait in the queue.
pub fn wait_for_depth(addr: SocketAddr, n: i64) {
    let t0 = Instant::now();
    while queue_depth(addr) != n {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "queue never reached {n}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
