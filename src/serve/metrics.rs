//! The server's Prometheus metrics (text exposition format 0.0.4, no client library: a few
//! counters and histograms behind one mutex, written out on `GET /metrics`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the request latency buckets.
const LATENCY_BOUNDS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Upper bounds of the batch size buckets.
const BATCH_BOUNDS: [f64; 8] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

#[derive(Default)]
struct Histogram {
    /// Per bucket (not cumulative; made cumulative when written), then +Inf.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], v: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; bounds.len() + 1];
        }
        let i = bounds.iter().position(|&b| v <= b).unwrap_or(bounds.len());
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cum = 0;
        for (i, b) in bounds.iter().enumerate() {
            cum += self.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cum}");
        }
        cum += self.counts.get(bounds.len()).copied().unwrap_or(0);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cum}");
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Default)]
struct Inner {
    /// (route, status) -> requests.
    requests: BTreeMap<(&'static str, u16), u64>,
    /// route -> latency.
    latency: BTreeMap<&'static str, Histogram>,
    batches: Histogram,
    images: u64,
}

/// Everything `/metrics` reports.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
    /// Images decoded and waiting for the worker.
    queue_depth: AtomicI64,
}

/// The route label of a request path: the server's routes, everything else "other" (so a
/// client cannot grow the label set).
pub fn route_label(path: &str) -> &'static str {
    match path {
        "/" => "/",
        "/v1/classify" => "/v1/classify",
        "/healthz" => "/healthz",
        "/metrics" => "/metrics",
        _ => "other",
    }
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn request(&self, route: &'static str, status: u16, took: Duration) {
        let mut m = self.lock();
        *m.requests.entry((route, status)).or_insert(0) += 1;
        m.latency
            .entry(route)
            .or_default()
            .observe(&LATENCY_BOUNDS, took.as_secs_f64());
    }

    pub fn batch(&self, size: usize) {
        let mut m = self.lock();
        m.batches.observe(&BATCH_BOUNDS, size as f64);
        m.images += size as u64;
    }

    pub fn queued(&self, n: i64) {
        self.queue_depth.fetch_add(n, Ordering::Relaxed);
    }

    pub fn queue_depth(&self) -> i64 {
        self.queue_depth.load(Ordering::Relaxed)
    }

    /// The text `GET /metrics` answers; `ready` is whether the model is loaded.
    pub fn render(&self, ready: bool) -> String {
        let m = self.lock();
        let mut out = String::new();
        out +=
            "# HELP skinengine_http_requests_total HTTP requests answered, by route and status.\n";
        out += "# TYPE skinengine_http_requests_total counter\n";
        for ((route, status), n) in &m.requests {
            let _ = writeln!(
                out,
                "skinengine_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out += "# HELP skinengine_http_request_duration_seconds Time from a request's start to its answer, by route.\n";
        out += "# TYPE skinengine_http_request_duration_seconds histogram\n";
        for (route, h) in &m.latency {
            h.write(
                &mut out,
                "skinengine_http_request_duration_seconds",
                &format!("route=\"{route}\""),
                &LATENCY_BOUNDS,
            );
        }
        out += "# HELP skinengine_queue_depth Decoded images waiting for the batching worker.\n";
        out += "# TYPE skinengine_queue_depth gauge\n";
        let _ = writeln!(out, "skinengine_queue_depth {}", self.queue_depth());
        out += "# HELP skinengine_batch_size Images per forward pass of the batching worker.\n";
        out += "# TYPE skinengine_batch_size histogram\n";
        m.batches
            .write(&mut out, "skinengine_batch_size", "", &BATCH_BOUNDS);
        out += "# HELP skinengine_images_total Images classified.\n";
        out += "# TYPE skinengine_images_total counter\n";
        let _ = writeln!(out, "skinengine_images_total {}", m.images);
        out += "# HELP skinengine_model_ready Whether the model is loaded (1) or not yet (0).\n";
        out += "# TYPE skinengine_model_ready gauge\n";
        let _ = writeln!(out, "skinengine_model_ready {}", ready as u8);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_counters_labelled() {
        let m = Metrics::default();
        m.request("/v1/classify", 200, Duration::from_millis(3));
        m.request("/v1/classify", 200, Duration::from_millis(70));
        m.request("/v1/classify", 503, Duration::from_millis(1));
        m.batch(3);
        m.batch(1);
        m.queued(2);
        let t = m.render(true);
        assert!(
            t.contains("skinengine_http_requests_total{route=\"/v1/classify\",status=\"200\"} 2\n")
        );
        assert!(
            t.contains("skinengine_http_requests_total{route=\"/v1/classify\",status=\"503\"} 1\n")
        );
        // 3 ms and 1 ms in the first bucket, 70 ms from le=0.1 on.
        assert!(t.contains("skinengine_http_request_duration_seconds_bucket{route=\"/v1/classify\",le=\"0.005\"} 2\n"));
        assert!(t.contains("skinengine_http_request_duration_seconds_bucket{route=\"/v1/classify\",le=\"0.05\"} 2\n"));
        assert!(t.contains(
            "skinengine_http_request_duration_seconds_bucket{route=\"/v1/classify\",le=\"0.1\"} 3\n"
        ));
        assert!(t.contains("skinengine_http_request_duration_seconds_bucket{route=\"/v1/classify\",le=\"+Inf\"} 3\n"));
        assert!(t.contains("skinengine_batch_size_bucket{le=\"1\"} 1\n"));
        assert!(t.contains("skinengine_batch_size_bucket{le=\"2\"} 1\n"));
        assert!(t.contains("skinengine_batch_size_bucket{le=\"4\"} 2\n"));
        assert!(t.contains("skinengine_batch_size_sum 4\n"));
        assert!(t.contains("skinengine_batch_size_count 2\n"));
        assert!(t.contains("skinengine_queue_depth 2\n"));
        assert!(t.contains("skinengine_images_total 4\n"));
        assert!(t.contains("skinengine_model_ready 1\n"));
        assert_eq!(route_label("/v1/classify"), "/v1/classify");
        assert_eq!(route_label("/etc/passwd"), "other");
    }
}
