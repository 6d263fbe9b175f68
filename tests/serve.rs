//! `skinengine serve` over real HTTP on 127.0.0.1 (a raw std TcpStream client, so every byte a
//! bad client might send can be sent): real JPEG/PNG images classified exactly as `infer`
//! classifies the same files, heat maps, every kind of bad input with its status and message,
//! slow clients, concurrency with dynamic batching, a full queue, metrics, graceful shutdown
//! (in process and by SIGTERM to the binary). The model is a random-init ResNet18 with a linear
//! head at 32x32 (`testing::tiny_model`): a forward pass takes milliseconds on 2 cores.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use skinengine::backend::select::DeviceChoice;
use skinengine::classes::CODES;
use skinengine::pipeline::infer::{InferConfig, infer};
use skinengine::pipeline::tta::Tta;
use skinengine::serve::{Gate, Limits, Running, ServeConfig, start};

/// A model and images made once for the whole test binary.
struct Fixture {
    _dir: tempfile::TempDir,
    model: PathBuf,
    /// (file, content type)
    images: Vec<(PathBuf, &'static str)>,
    /// `infer`'s probabilities per file name.
    want: Vec<(String, Vec<f32>)>,
}

fn fixture() -> &'static Fixture {
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

fn server(limits: Limits, gate: Option<Gate>) -> Running {
    let mut cfg = ServeConfig::new(fixture().model.clone());
    cfg.device = DeviceChoice::Cpu;
    cfg.addr = SocketAddr::from(([127, 0, 0, 1], 0));
    cfg.limits = limits;
    cfg.gate = gate;
    let s = start(&cfg).unwrap();
    s.wait_ready(Duration::from_secs(60)).unwrap();
    s
}

fn limits() -> Limits {
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

struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn error(&self) -> String {
        self.json()["error"].as_str().unwrap().to_string()
    }
}

/// Reads a whole response (the request said Connection: close).
fn read_reply(mut s: TcpStream) -> Reply {
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
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
fn send(addr: SocketAddr, raw: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(raw).unwrap();
    read_reply(s)
}

fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (k, v) in headers {
        r += &format!("{k}: {v}\r\n");
    }
    r += &format!("Content-Length: {}\r\n\r\n", body.len());
    let mut r = r.into_bytes();
    r.extend_from_slice(body);
    r
}

fn post(addr: SocketAddr, path: &str, ct: &str, body: &[u8]) -> Reply {
    send(addr, &request("POST", path, &[("Content-Type", ct)], body))
}

fn get(addr: SocketAddr, path: &str) -> Reply {
    send(addr, &request("GET", path, &[], b""))
}

fn multipart(field: &str, filename: &str, ct: &str, data: &[u8]) -> (String, Vec<u8>) {
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
fn probs_of(v: &Value) -> Vec<f32> {
    let codes = v["classes"].as_array().unwrap();
    codes
        .iter()
        .map(|c| v["probabilities"][c.as_str().unwrap()].as_f64().unwrap() as f32)
        .collect()
}

fn want_for(file: &Path) -> Vec<f32> {
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
const TOL: f32 = 1e-6;

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: class count");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= TOL, "{what}: {got:?} vs infer {want:?}");
    }
}

#[test]
fn real_images_are_classified_as_infer_classifies_them_with_heat_maps_on_request() {
    let f = fixture();
    let s = server(limits(), None);
    let addr = s.addr();
    let health = get(addr, "/healthz");
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ready");
    let page = get(addr, "/");
    assert_eq!(page.status, 200);
    assert!(
        page.head
            .to_ascii_lowercase()
            .contains("content-type: text/html")
    );
    assert!(page.text().contains("/v1/classify?heatmap=1"));
    let hash = skinengine::train::features::file_hash(&f.model).unwrap();
    for (file, ct) in &f.images {
        let bytes = std::fs::read(file).unwrap();
        let r = post(addr, "/v1/classify", ct, &bytes);
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        let want = want_for(file);
        assert_close(&probs_of(&v), &want, &file.display().to_string());
        let sum: f32 = probs_of(&v).iter().sum();
        assert!((sum - 1.0).abs() < 1e-5);
        let best = (0..want.len())
            .max_by(|&a, &b| want[a].total_cmp(&want[b]))
            .unwrap();
        assert_eq!(v["predicted"]["class"], CODES[best]);
        assert_eq!(v["model"]["id"], format!("model.safetensors@{hash}"));
        assert_eq!(v["model"]["kind"], "fine-tuned resnet18");
        let codes: Vec<&str> = v["classes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(codes, CODES);
        assert!(v["timings_ms"]["total"].as_f64().unwrap() > 0.0);
        assert!(v.get("heatmap").is_none());
        let img = image::open(file).unwrap();
        assert_eq!(v["image"]["width"], img.width());
        // The same file in a multipart form.
        let (mct, body) = multipart("image", "lesion.jpg", ct, &bytes);
        let m = post(addr, "/v1/classify", &mct, &body);
        assert_eq!(m.status, 200, "{}", m.text());
        assert_close(&probs_of(&m.json()), &want, "multipart");
        // With a heat map: a PNG of the original's size, of the predicted or the asked class.
        for (query, class) in [("heatmap=1", CODES[best]), ("heatmap=1&class=vasc", "VASC")] {
            let h = post(addr, &format!("/v1/classify?{query}"), ct, &bytes).json();
            assert_close(&probs_of(&h), &want, "with a heat map");
            assert_eq!(h["heatmap"]["class"], class);
            let url = h["heatmap"]["png"].as_str().unwrap();
            let b64 = url.strip_prefix("data:image/png;base64,").unwrap();
            let png = decode_base64(b64);
            let over = image::load_from_memory_with_format(&png, image::ImageFormat::Png).unwrap();
            assert_eq!((over.width(), over.height()), (img.width(), img.height()));
            // The overlay differs from the image (the colour map is blended everywhere).
            assert_ne!(over.to_rgb8().into_raw(), img.to_rgb8().into_raw());
        }
    }
    s.shutdown().unwrap();
}

fn decode_base64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    } as u32;
    let mut out = Vec::new();
    for chunk in s.as_bytes().chunks(4) {
        let n = chunk.iter().filter(|&&c| c != b'=').count();
        let mut v = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            v |= if c == b'=' { 0 } else { val(c) } << (18 - 6 * i);
        }
        out.extend_from_slice(&v.to_be_bytes()[1..n]);
    }
    out
}

#[test]
fn bad_input_is_refused_with_a_status_and_a_message_naming_the_problem() {
    let f = fixture();
    let s = server(limits(), None);
    let addr = s.addr();
    let jpeg = std::fs::read(&f.images[0].0).unwrap();
    let png = std::fs::read(&f.images[1].0).unwrap();
    let big = {
        // 1200 x 900 = 1.08 megapixels > the 1.0 limit; a few KB as PNG.
        let img = image::GrayImage::from_pixel(1200, 900, image::Luma([7]));
        let mut b = std::io::Cursor::new(Vec::new());
        img.write_to(&mut b, image::ImageFormat::Png).unwrap();
        b.into_inner()
    };
    let cases: Vec<(&str, String, Vec<u8>, u16, &str)> = vec![
        ("empty body", "image/jpeg".into(), vec![], 422, "empty"),
        (
            "text as text",
            "text/plain".into(),
            b"hello".to_vec(),
            415,
            "text/plain",
        ),
        (
            "no content type",
            String::new(),
            jpeg.clone(),
            415,
            "missing",
        ),
        (
            "text as a JPEG",
            "image/jpeg".into(),
            b"hello there".to_vec(),
            422,
            "not an image",
        ),
        (
            "truncated JPEG",
            "image/jpeg".into(),
            jpeg[..jpeg.len() / 2].to_vec(),
            422,
            "truncated",
        ),
        (
            "truncated PNG",
            "image/png".into(),
            png[..png.len() - 20].to_vec(),
            422,
            "truncated",
        ),
        (
            "too many pixels",
            "image/png".into(),
            big,
            422,
            "too large (1200 x 900",
        ),
        (
            "over the body limit",
            "image/jpeg".into(),
            vec![0xFF; (1 << 20) + 1],
            413,
            "--max-body-bytes",
        ),
    ];
    for (what, ct, body, status, says) in cases {
        let headers: Vec<(&str, &str)> = if ct.is_empty() {
            vec![]
        } else {
            vec![("Content-Type", ct.as_str())]
        };
        let r = send(addr, &request("POST", "/v1/classify", &headers, &body));
        assert_eq!(r.status, status, "{what}: {}", r.text());
        assert!(
            r.head
                .to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{what}"
        );
        assert!(r.error().contains(says), "{what}: {}", r.error());
        assert_eq!(r.json()["status"], status);
    }
    // A chunked body over the limit (no Content-Length to refuse it early).
    let mut raw = b"POST /v1/classify HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..20 {
        raw.extend_from_slice(format!("{:x}\r\n", 1 << 16).as_bytes());
        raw.extend(std::iter::repeat_n(b'x', 1 << 16));
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let r = send(addr, &raw);
    assert_eq!(r.status, 413, "{}", r.text());
    // Multipart without an image, and broken multipart.
    let (mct, body) = multipart("other", "", "text/plain", b"x");
    let body = String::from_utf8(body)
        .unwrap()
        .replace("; filename=\"\"", "");
    let r = post(addr, "/v1/classify", &mct, body.as_bytes());
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.error().contains("no image"), "{}", r.error());
    let r = post(
        addr,
        "/v1/classify",
        "multipart/form-data; boundary=zzz",
        b"garbage",
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.error().contains("multipart"), "{}", r.error());
    let r = post(addr, "/v1/classify", "multipart/form-data", b"garbage");
    assert_eq!(r.status, 400, "{}", r.text());
    // Query, route and method mistakes.
    let r = post(addr, "/v1/classify?class=XYZ", "image/jpeg", &jpeg);
    assert_eq!(r.status, 400);
    assert!(r.error().contains("MEL, NV"), "{}", r.error());
    let r = get(addr, "/nothing/here");
    assert_eq!(r.status, 404);
    assert!(r.error().contains("POST /v1/classify"));
    assert_eq!(get(addr, "/v1/classify").status, 405);
    // Not HTTP at all: hyper answers 400 and closes.
    let r = send(
        addr,
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03garbage\r\n\r\n",
    );
    assert_eq!(r.status, 400);
    // The server still answers.
    assert_eq!(post(addr, "/v1/classify", "image/jpeg", &jpeg).status, 200);
    s.shutdown().unwrap();
}

#[test]
fn slow_clients_time_out() {
    let s = server(
        Limits {
            timeout: Duration::from_millis(400),
            ..limits()
        },
        None,
    );
    let addr = s.addr();
    // The body stalls after 10 of 1000 bytes: 408 at the deadline.
    let t0 = Instant::now();
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"POST /v1/classify HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: image/jpeg\r\nContent-Length: 1000\r\n\r\n0123456789").unwrap();
    let r = read_reply(c.try_clone().unwrap());
    assert_eq!(r.status, 408, "{}", r.text());
    assert!(
        r.error().contains("did not arrive within 400 ms"),
        "{}",
        r.error()
    );
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(390) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // Headers that stall: the connection is closed at the header-read timeout.
    let t0 = Instant::now();
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"POST /v1/classify HTTP/1.1\r\nHost: t\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let _ = c.read_to_end(&mut buf);
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(390) && took < Duration::from_secs(5),
        "{took:?}"
    );
    if !buf.is_empty() {
        assert!(
            String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 408"),
            "{:?}",
            String::from_utf8_lossy(&buf)
        );
    }
    s.shutdown().unwrap();
}

#[test]
fn concurrent_clients_are_batched_and_each_answered_as_infer_would() {
    let f = fixture();
    let s = server(
        Limits {
            max_batch: 8,
            // Long enough that clients started together share batches.
            max_wait: Duration::from_millis(100),
            ..limits()
        },
        None,
    );
    let addr = s.addr();
    let replies: Vec<(PathBuf, Reply)> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let (file, ct) = f.images[i % f.images.len()].clone();
                sc.spawn(move || {
                    let bytes = std::fs::read(&file).unwrap();
                    let r = post(addr, "/v1/classify", ct, &bytes);
                    (file, r)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut largest = 0;
    for (file, r) in &replies {
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        assert_close(&probs_of(&v), &want_for(file), "concurrent");
        largest = largest.max(v["batch_size"].as_u64().unwrap());
    }
    assert!(
        largest > 1,
        "no two of 16 concurrent requests shared a batch"
    );
    let m = get(addr, "/metrics").text();
    assert!(
        m.contains("skinengine_http_requests_total{route=\"/v1/classify\",status=\"200\"} 16\n"),
        "{m}"
    );
    assert!(m.contains("skinengine_batch_size_sum 16\n"), "{m}");
    assert!(m.contains("skinengine_images_total 16\n"), "{m}");
    assert!(
        m.contains("skinengine_http_request_duration_seconds_count{route=\"/v1/classify\"} 16\n"),
        "{m}"
    );
    assert!(m.contains("skinengine_queue_depth 0\n"), "{m}");
    assert!(m.contains("skinengine_model_ready 1\n"), "{m}");
    s.shutdown().unwrap();
}

fn queue_depth(addr: SocketAddr) -> i64 {
    let m = get(addr, "/metrics").text();
    let line = m
        .lines()
        .find(|l| l.starts_with("skinengine_queue_depth "))
        .unwrap();
    line.split(' ').nth(1).unwrap().parse().unwrap()
}

fn wait_for_depth(addr: SocketAddr, n: i64) {
    let t0 = Instant::now();
    while queue_depth(addr) != n {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "queue never reached {n}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_full_queue_is_answered_503_and_an_answer_past_the_timeout_504() {
    let f = fixture();
    let jpeg = std::fs::read(&f.images[0].0).unwrap();
    let want = want_for(&f.images[0].0);
    // The worker held at its gate: two images fill a queue of two, the third is refused.
    let gate = Gate::closed();
    let s = server(
        Limits {
            queue: 2,
            max_batch: 1,
            ..limits()
        },
        Some(gate.clone()),
    );
    let addr = s.addr();
    std::thread::scope(|sc| {
        let waiting: Vec<_> = (0..2)
            .map(|_| sc.spawn(|| post(addr, "/v1/classify", "image/jpeg", &jpeg)))
            .collect();
        wait_for_depth(addr, 2);
        let r = post(addr, "/v1/classify", "image/jpeg", &jpeg);
        assert_eq!(r.status, 503, "{}", r.text());
        assert!(r.error().contains("queue is full"), "{}", r.error());
        assert!(r.head.to_ascii_lowercase().contains("retry-after: 1"));
        gate.open();
        for w in waiting {
            let r = w.join().unwrap();
            assert_eq!(r.status, 200, "{}", r.text());
            assert_close(&probs_of(&r.json()), &want, "after the gate opened");
        }
    });
    let m = get(addr, "/metrics").text();
    assert!(
        m.contains("skinengine_http_requests_total{route=\"/v1/classify\",status=\"503\"} 1\n"),
        "{m}"
    );
    s.shutdown().unwrap();

    let gate = Gate::closed();
    let s = server(
        Limits {
            timeout: Duration::from_millis(300),
            ..limits()
        },
        Some(gate.clone()),
    );
    let r = post(s.addr(), "/v1/classify", "image/jpeg", &jpeg);
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(
        r.error().contains("no answer within 300 ms"),
        "{}",
        r.error()
    );
    gate.open();
    s.shutdown().unwrap();
}

#[test]
fn shutdown_answers_the_requests_in_flight_then_stops_listening() {
    let f = fixture();
    let jpeg = std::fs::read(&f.images[0].0).unwrap();
    // A long batching window keeps the request in flight when shutdown starts.
    let s = server(
        Limits {
            max_wait: Duration::from_millis(600),
            ..limits()
        },
        None,
    );
    let addr = s.addr();
    let r = std::thread::scope(|sc| {
        let h = sc.spawn(|| post(addr, "/v1/classify", "image/jpeg", &jpeg));
        wait_for_depth(addr, 0);
        std::thread::sleep(Duration::from_millis(150));
        s.shutdown().unwrap();
        h.join().unwrap()
    });
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        TcpStream::connect(addr).is_err(),
        "still listening after shutdown"
    );
}

#[cfg(unix)]
#[test]
fn the_binary_serves_until_sigterm_and_then_exits_cleanly() {
    use std::io::BufRead;
    let f = fixture();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_skinengine"))
        .args(["serve", "--model"])
        .arg(&f.model)
        .args([
            "--port",
            "0",
            "--device",
            "cpu",
            "--threads",
            "2",
            "--max-batch",
            "2",
        ])
        .args(["--max-wait-ms", "1", "--queue", "4", "--timeout-ms", "5000"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("serve: listening on http://")
        .unwrap_or_else(|| panic!("{line}"))
        .parse()
        .unwrap();
    assert!(
        addr.ip().is_loopback(),
        "binds 127.0.0.1 by default: {addr}"
    );
    let t0 = Instant::now();
    while get(addr, "/healthz").status != 200 {
        assert!(t0.elapsed() < Duration::from_secs(60), "never ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (file, ct) = &f.images[1];
    let r = post(addr, "/v1/classify", ct, &std::fs::read(file).unwrap());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_close(&probs_of(&r.json()), &want_for(file), "the binary");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {err}", out.status);
    assert!(err.contains("SIGTERM") && err.contains("stopped"), "{err}");
}
