//! HTTP request handling of `skinengine serve`: raw bytes as a client sends them (request line,
//! headers, a body with its Content-Length or in chunks, raw images and multipart uploads,
//! several requests on one keep-alive connection) through the server's own connection code
//! (`serve::serve_connection`: hyper's HTTP/1 parser, the axum router, our body, multipart,
//! query and image handling) over an in-memory pipe, with the real batching worker and a tiny
//! model behind it. Decoding runs on the calling thread (`decode_inline`), so the per-thread
//! allocation cap covers it.
//!
//! An execution's outcome is the first response's status and error message. A 5xx answer is a
//! finding (reported as an error that "does not name the file": the server blamed itself for
//! a client's bytes), as are panics, slow executions and allocations past the cap.

use super::image_target::Image;
use super::{Target, mutate, scratch};
use skinengine::Rng;
use skinengine::backend::select::DeviceChoice;
use skinengine::serve::{Limits, ServeConfig, app, serve_connection};
use std::io::Cursor;
use std::path::Path;
use std::time::Duration;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The server's per-request timeout here (headers and body come at once from the pipe).
const TIMEOUT: Duration = Duration::from_secs(5);

pub struct Http {
    dir: TempDir,
    rt: tokio::runtime::Runtime,
    app: axum::Router,
    _worker: std::thread::JoinHandle<()>,
    image: Image,
}

impl Http {
    pub fn new() -> Self {
        let dir = scratch("http");
        let model = dir.path().join("model.safetensors");
        skinengine::testing::tiny_model::write_tiny_net_model(&model, 32, 3).unwrap();
        let mut cfg = ServeConfig::new(model);
        cfg.device = DeviceChoice::Cpu;
        cfg.limits = Limits {
            max_batch: 1,
            max_wait: Duration::ZERO,
            queue: 4,
            max_body_bytes: 256 << 10,
            max_pixels: 1 << 20,
            timeout: TIMEOUT,
            decoders: 1,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (app, state, worker) = {
            let _g = rt.enter();
            app(&cfg, true).unwrap()
        };
        let t0 = std::time::Instant::now();
        while state.model().is_none() {
            assert!(t0.elapsed() < Duration::from_secs(60), "model not loaded");
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(state);
        Http {
            dir,
            rt,
            app,
            _worker: worker,
            image: Image::new(),
        }
    }
}

fn encode(img: image::DynamicImage, f: image::ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, f).unwrap();
    out.into_inner()
}

fn images() -> (Vec<u8>, Vec<u8>) {
    let rgb = image::RgbImage::from_fn(20, 14, |x, y| {
        image::Rgb([(x * 12) as u8, (y * 17) as u8, ((x + y) * 5) as u8])
    });
    let img = image::DynamicImage::ImageRgb8(rgb);
    (
        encode(img.clone(), image::ImageFormat::Jpeg),
        encode(img, image::ImageFormat::Png),
    )
}

fn request(head: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!("{head}Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    r.extend_from_slice(body);
    r
}

const BOUNDARY: &str = "XyZfuzzBoundary42";

fn multipart(img: &[u8]) -> Vec<u8> {
    let mut b = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nx\r\n--{BOUNDARY}\r\n\
         Content-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
    )
    .into_bytes();
    b.extend_from_slice(img);
    b.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    b
}

fn chunked(head: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!("{head}Transfer-Encoding: chunked\r\n\r\n").into_bytes();
    for c in body.chunks(97) {
        r.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        r.extend_from_slice(c);
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(b"0\r\n\r\n");
    r
}

const POST: &str = "POST /v1/classify HTTP/1.1\r\nHost: fuzz\r\n";

/// Where the head ends and the body starts.
fn split_head(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

const PATHS: &[&str] = &[
    "/v1/classify",
    "/v1/classify?heatmap=1",
    "/v1/classify?heatmap=1&class=MEL",
    "/v1/classify?class=df",
    "/v1/classify?heatmap=2",
    "/v1/classify?x=%ff%00",
    "/v1/classify?heatmap",
    "/v1/classify?&&=&",
    "/",
    "/healthz",
    "/metrics",
    "/v1/classify/",
    "//v1//classify",
    "/%2e%2e/etc/passwd",
    "*",
    "http://fuzz/v1/classify",
    "",
];
const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "HEAD", "OPTIONS", "DELETE", "CONNECT", "P0ST", "",
];
const CONTENT_TYPES: &[&str] = &[
    "image/jpeg",
    "image/png",
    "application/octet-stream",
    "multipart/form-data; boundary=XyZfuzzBoundary42",
    "multipart/form-data; boundary=\"XyZfuzzBoundary42\"",
    "multipart/form-data; boundary=",
    "multipart/form-data",
    "multipart/mixed; boundary=XyZfuzzBoundary42",
    "text/plain",
    "image/jpeg; charset=\u{ff}",
    "",
];

impl Target for Http {
    fn name(&self) -> &'static str {
        "http"
    }

    fn seeds(&mut self) -> Vec<Vec<u8>> {
        let (jpeg, png) = images();
        let get = |p: &str| format!("GET {p} HTTP/1.1\r\nHost: fuzz\r\n\r\n").into_bytes();
        let mut keep_alive = get("/healthz");
        keep_alive.extend(request(
            &format!("{POST}Content-Type: image/jpeg\r\n"),
            &jpeg,
        ));
        vec![
            request(&format!("{POST}Content-Type: image/jpeg\r\n"), &jpeg),
            request(
                "POST /v1/classify?heatmap=1&class=BKL HTTP/1.1\r\nHost: fuzz\r\nContent-Type: image/png\r\n",
                &png,
            ),
            request(
                &format!("{POST}Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"),
                &multipart(&jpeg),
            ),
            chunked(&format!("{POST}Content-Type: image/png\r\n"), &png),
            get("/healthz"),
            get("/"),
            get("/metrics"),
            keep_alive,
        ]
    }

    fn mutate(&self, input: &[u8], rng: &mut Rng) -> Option<Vec<u8>> {
        let at = split_head(input)?;
        let (head, body) = input.split_at(at);
        let head = String::from_utf8_lossy(head).into_owned();
        let mut lines: Vec<String> = head
            .trim_end_matches("\r\n")
            .split("\r\n")
            .map(str::to_string)
            .collect();
        let mut body = body.to_vec();
        let mut fix_length = rng.below(4) != 0;
        match rng.below(8) {
            0 => {
                // The request line.
                let m = METHODS[rng.below(METHODS.len())];
                let p = PATHS[rng.below(PATHS.len())];
                let v = ["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1 x", ""][rng.below(5)];
                lines[0] = format!("{m} {p} {v}");
            }
            1 => {
                // Content-Type.
                lines.retain(|l| !l.to_ascii_lowercase().starts_with("content-type:"));
                let ct = CONTENT_TYPES[rng.below(CONTENT_TYPES.len())];
                lines.push(format!("Content-Type: {ct}"));
            }
            2 => {
                // Content-Length left wrong.
                lines.retain(|l| !l.to_ascii_lowercase().starts_with("content-length:"));
                let v = match rng.below(3) {
                    0 => mutate::token(rng).to_string(),
                    1 => (body.len() as i64 + rng.below(5) as i64 - 2).to_string(),
                    _ => format!("{}, {}", body.len(), body.len()),
                };
                lines.push(format!("Content-Length: {v}"));
                fix_length = false;
            }
            3 => {
                // A header dropped, doubled or added.
                let i = 1 + rng.below(lines.len().max(2) - 1);
                match rng.below(3) {
                    0 if i < lines.len() => {
                        lines.remove(i);
                    }
                    1 if i < lines.len() => lines.push(lines[i].clone()),
                    _ => lines.push(
                        [
                            "Transfer-Encoding: chunked",
                            "Expect: 100-continue",
                            "Connection: close",
                            "Connection: keep-alive",
                            "Content-Encoding: gzip",
                            "Host: ",
                            ": empty name",
                            "X: \u{7f}\u{1}",
                        ][rng.below(8)]
                        .to_string(),
                    ),
                }
            }
            4 | 5 => {
                // The image inside the body (raw or multipart) with image-aware mutations.
                let start = body
                    .windows(2)
                    .position(|w| w == [0xFF, 0xD8] || w == [0x89, b'P'])?;
                let end = body[start..]
                    .windows(4)
                    .position(|w| w == b"\r\n--")
                    .map_or(body.len(), |e| start + e);
                let m = self.image.mutate(&body[start..end], rng)?;
                body.splice(start..end, m);
            }
            6 => {
                // The multipart boundary in the body.
                let s = String::from_utf8_lossy(&body).into_owned();
                if !s.contains(BOUNDARY) {
                    return None;
                }
                let to = ["", "X", "XyZfuzzBoundary4", "--", "XyZfuzzBoundary42--"][rng.below(5)];
                let n = rng.below(3) + 1;
                body = String::from_utf8_lossy(&body)
                    .replacen(BOUNDARY, to, n)
                    .into_bytes();
            }
            _ => {
                // Line endings and header folding.
                let i = rng.below(lines.len());
                lines[i] = match rng.below(3) {
                    0 => lines[i].replace(": ", ":"),
                    1 => format!(" {}", lines[i]),
                    _ => lines[i].replace("\r", "").to_string() + "\n",
                };
            }
        }
        let chunked = lines
            .iter()
            .any(|l| l.to_ascii_lowercase().contains("transfer-encoding"));
        if fix_length && !chunked {
            for l in lines.iter_mut() {
                if l.to_ascii_lowercase().starts_with("content-length:") {
                    *l = format!("Content-Length: {}", body.len());
                }
            }
        }
        let mut out = lines.join("\r\n").into_bytes();
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(&body);
        Some(out)
    }

    fn exec(&mut self, input: &[u8]) -> Result<(), String> {
        let app = self.app.clone();
        let input = input.to_vec();
        let reply = self.rt.block_on(async move {
            let (mut client, server) = tokio::io::duplex(1 << 16);
            let conn = serve_connection(server, app, TIMEOUT);
            let talk = async move {
                // Writes as the server reads (a big body does not fit the pipe at once), then
                // closes the write side: the server answers what it got and closes.
                let (mut rd, mut wr) = tokio::io::split(&mut client);
                let write = async {
                    let _ = wr.write_all(&input).await;
                    let _ = wr.shutdown().await;
                };
                let mut out = Vec::new();
                let read = rd.read_to_end(&mut out);
                let _ = tokio::join!(write, read);
                out
            };
            // Both on this thread: a panic in a handler unwinds out of block_on, to the harness.
            let (_, out) = tokio::time::timeout(TIMEOUT * 3, async { tokio::join!(conn, talk) })
                .await
                .map_err(|_| "hang: no end of the connection within 15 s".to_string())?;
            Ok::<_, String>(out)
        })?;
        if reply.is_empty() {
            return Err("no response".into());
        }
        let head_end = split_head(&reply).unwrap_or(reply.len());
        let head = String::from_utf8_lossy(&reply[..head_end]);
        let status: u16 = head
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("not an HTTP response: {:.60}", head))?;
        if (200..300).contains(&status) {
            return Ok(());
        }
        let body = &reply[head_end..];
        let len = body
            .windows(4)
            .position(|w| w == b"HTTP")
            .unwrap_or(body.len());
        let msg = serde_json::from_slice::<serde_json::Value>(&body[..len])
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_default();
        Err(format!("HTTP {status}: {msg}"))
    }

    fn names(&self) -> &Path {
        self.dir.path()
    }

    /// A 5xx answer is the finding here; every 4xx names its problem by construction.
    fn names_file(&self, msg: &str) -> bool {
        !msg.starts_with("HTTP 5")
    }

    /// A decode of the 1-megapixel limit plus a forward and backward pass of the tiny model.
    fn time_limit(&self) -> Duration {
        Duration::from_secs(2)
    }

    /// A 1-megapixel image decoded (16-bit RGBA at most: 8 MB, plus its 8-bit RGB copy), the
    /// 256 KB body twice and hyper's buffers: far below 64 MB.
    fn alloc_cap(&self) -> usize {
        64 << 20
    }
}
