//! Many clients at once: batched together, each answered as `infer` would answer.

use crate::common::*;

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
