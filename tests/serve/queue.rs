//! A full queue (503) and an answer past the timeout (504), made deterministic by holding the
//! worker.

use crate::common::*;

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
