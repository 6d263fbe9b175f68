//! Graceful shutdown in process and by SIGTERM to the binary.

use crate::common::*;

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
