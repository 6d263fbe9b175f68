//! Real JPEG and PNG images (raw bodies and multipart) classified as `infer` classifies the
//! same files, heat maps on request.

use crate::common::*;

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
