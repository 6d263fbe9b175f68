//! Clients that stall: a body that stops (408) and headers that stop (connection closed).

use crate::common::*;

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
