//! Every kind of bad input answered with its status and a message naming the problem.

use crate::common::*;

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
