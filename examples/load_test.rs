//! A bounded load test of a running `skinengine serve` (loopback only; tools/load_test.sh
//! starts the server and runs this):
//!
//! ```sh
//! cargo run --example load_test -- --addr 127.0.0.1:8080 --image lesion.jpg \
//!     [--clients 4] [--seconds 20] [--pid SERVER_PID] [--heatmap]
//! ```
//!
//! `--clients` threads each POST the image to /v1/classify over a keep-alive connection, one
//! request at a time, for `--seconds` (at most 600) in two halves; prints throughput, latency
//! percentiles, answers by status (anything but 200 is an error: with clients <= queue the
//! queue never fills, so there must be none), and the server's resident memory (VmRSS of
//! `--pid`) after the warm-up and after each half, which should stay flat.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

struct Args {
    addr: SocketAddr,
    image: Vec<u8>,
    content_type: &'static str,
    clients: usize,
    seconds: f64,
    pid: Option<u32>,
    heatmap: bool,
}

fn args() -> Args {
    let mut a = std::env::args().skip(1);
    let (mut addr, mut image, mut clients, mut seconds, mut pid, mut heatmap) =
        (None, None, 4, 20.0f64, None, false);
    while let Some(k) = a.next() {
        let mut v = || a.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--addr" => addr = Some(v().parse::<SocketAddr>().expect("--addr HOST:PORT")),
            "--image" => image = Some(v()),
            "--clients" => clients = v().parse().expect("--clients N"),
            "--seconds" => seconds = v().parse().expect("--seconds S"),
            "--pid" => pid = Some(v().parse().expect("--pid PID")),
            "--heatmap" => heatmap = true,
            _ => panic!("unknown argument {k}"),
        }
    }
    let addr = addr.expect("--addr");
    assert!(addr.ip().is_loopback(), "loopback only: {addr}");
    let path = image.expect("--image");
    let image = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let content_type = if image.starts_with(b"\x89PNG") {
        "image/png"
    } else {
        "image/jpeg"
    };
    Args {
        addr,
        image,
        content_type,
        clients: clients.max(1),
        seconds: seconds.clamp(1.0, 600.0),
        pid,
        heatmap,
    }
}

/// One keep-alive connection.
struct Client {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
    request: Vec<u8>,
}

impl Client {
    fn new(a: &Args) -> Self {
        let path = if a.heatmap {
            "/v1/classify?heatmap=1"
        } else {
            "/v1/classify"
        };
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n",
            a.addr,
            a.content_type,
            a.image.len()
        )
        .into_bytes();
        request.extend_from_slice(&a.image);
        Client {
            addr: a.addr,
            conn: None,
            request,
        }
    }

    /// Sends the request; the status (0: the connection failed).
    fn post(&mut self) -> u16 {
        for _ in 0..2 {
            if self.conn.is_none() {
                match TcpStream::connect(self.addr) {
                    Ok(s) => {
                        let _ = s.set_nodelay(true);
                        let _ = s.set_read_timeout(Some(Duration::from_secs(120)));
                        self.conn = Some(BufReader::new(s));
                    }
                    Err(_) => return 0,
                }
            }
            match self.exchange() {
                Some(s) => return s,
                None => self.conn = None, // closed by the server: reconnect once
            }
        }
        0
    }

    fn exchange(&mut self) -> Option<u16> {
        let c = self.conn.as_mut()?;
        c.get_mut().write_all(&self.request).ok()?;
        let mut line = String::new();
        c.read_line(&mut line).ok()?;
        let status: u16 = line.get(9..12)?.parse().ok()?;
        let mut len = 0usize;
        let mut close = false;
        loop {
            line.clear();
            c.read_line(&mut line).ok()?;
            let l = line.trim_end().to_ascii_lowercase();
            if l.is_empty() {
                break;
            }
            if let Some(v) = l.strip_prefix("content-length:") {
                len = v.trim().parse().ok()?;
            }
            close |= l == "connection: close";
        }
        let mut body = vec![0u8; len];
        c.read_exact(&mut body).ok()?;
        if close {
            self.conn = None;
        }
        Some(status)
    }
}

fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let l = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    l.split_whitespace().nth(1)?.parse().ok()
}

/// Every client for `secs`: (latencies of the 200s, statuses).
fn phase(a: &Args, secs: f64) -> (Vec<Duration>, Vec<u16>) {
    let end = Instant::now() + Duration::from_secs_f64(secs);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..a.clients)
            .map(|_| {
                s.spawn(|| {
                    let mut c = Client::new(a);
                    let (mut lat, mut st) = (Vec::new(), Vec::new());
                    while Instant::now() < end {
                        let t0 = Instant::now();
                        let status = c.post();
                        if status == 200 {
                            lat.push(t0.elapsed());
                        }
                        st.push(status);
                    }
                    (lat, st)
                })
            })
            .collect();
        let (mut lat, mut st) = (Vec::new(), Vec::new());
        for h in hs {
            let (l, s) = h.join().unwrap();
            lat.extend(l);
            st.extend(s);
        }
        (lat, st)
    })
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

fn main() {
    let a = args();
    // Warm-up: the first requests fault in the model's buffers.
    let mut c = Client::new(&a);
    for _ in 0..3 {
        assert_eq!(
            c.post(),
            200,
            "warm-up request failed: is the server ready?"
        );
    }
    drop(c);
    let rss0 = rss_kib(a.pid);
    let t0 = Instant::now();
    let (mut lat, mut st) = phase(&a, a.seconds / 2.0);
    let rss1 = rss_kib(a.pid);
    let (l2, s2) = phase(&a, a.seconds / 2.0);
    let rss2 = rss_kib(a.pid);
    let wall = t0.elapsed().as_secs_f64();
    lat.extend(l2);
    st.extend(s2);
    lat.sort();
    let mut by_status = std::collections::BTreeMap::new();
    for s in &st {
        *by_status.entry(*s).or_insert(0u64) += 1;
    }
    let errors = st.iter().filter(|&&s| s != 200).count();
    let mib = |k: Option<u64>| k.map_or("-".to_string(), |k| format!("{:.1}", k as f64 / 1024.0));
    println!(
        "clients {} heatmap {} image {} bytes, {:.1} s",
        a.clients,
        a.heatmap,
        a.image.len(),
        wall
    );
    println!(
        "requests {} ok {} errors {} ({:?})",
        st.len(),
        lat.len(),
        errors,
        by_status
    );
    println!("throughput {:.1} images/s", lat.len() as f64 / wall);
    println!(
        "latency ms p50 {:.1} p90 {:.1} p99 {:.1} max {:.1}",
        pct(&lat, 50.0),
        pct(&lat, 90.0),
        pct(&lat, 99.0),
        pct(&lat, 100.0)
    );
    println!(
        "server RSS MiB after warm-up {} after first half {} at end {}",
        mib(rss0),
        mib(rss1),
        mib(rss2)
    );
    if errors > 0 {
        std::process::exit(1);
    }
}
