//! What the server answers: JSON errors with their status, the classification JSON, and the
//! heat map as a PNG data URL.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::worker::{Answer, ModelInfo, argmax};
use crate::data::image::Rgb;

/// A request the server refuses or could not answer: the status and a message naming the
/// problem, sent as `{"error": message, "status": code}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = json_response(
            self.status,
            &json!({"error": self.message, "status": self.status.as_u16()}),
        );
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // The queue drains in milliseconds; a model still loading takes seconds.
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

pub fn json_response(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// Timings of one request, in milliseconds.
pub struct Timings {
    pub receive: f64,
    pub decode: f64,
    pub total: f64,
}

/// The classification JSON (README "serve" documents it).
pub fn classified(
    info: &ModelInfo,
    a: &Answer,
    image: (u32, u32, &str),
    t: &Timings,
    heatmap_png: Option<String>,
) -> Value {
    let best = argmax(&a.probs);
    let probs: serde_json::Map<String, Value> = info
        .classes
        .iter()
        .zip(&a.probs)
        .map(|((c, _), p)| (c.clone(), json!(p)))
        .collect();
    let codes: Vec<&str> = info.classes.iter().map(|(c, _)| c.as_str()).collect();
    let (code, name) = &info.classes[best];
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    let mut v = json!({
        "model": {"id": info.id, "kind": info.kind, "input_size": info.size, "device": info.device},
        "classes": codes,
        "probabilities": probs,
        "predicted": {"class": code, "name": name, "probability": a.probs[best]},
        "image": {"width": image.0, "height": image.1, "format": image.2},
        "batch_size": a.batch,
        "timings_ms": {
            "receive": t.receive,
            "decode": t.decode,
            "queue": ms(a.queued),
            "compute": ms(a.compute),
            "total": t.total,
        },
    });
    if let (Some((class, _)), Some(png)) = (&a.heatmap, heatmap_png) {
        v["heatmap"] = json!({
            "class": info.classes[*class].0,
            "png": png,
            "what": "Grad-CAM of the class logit on the last convolutional block, upsampled over the image (jet colour map, alpha 0.5)",
        });
    }
    v
}

/// `img` as a PNG data URL (`data:image/png;base64,...`).
pub fn png_data_url(img: &Rgb) -> Result<String, ApiError> {
    use image::ImageEncoder as _;
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(
            &img.pixels,
            img.width,
            img.height,
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot encode the heat map PNG: {e}"),
            )
        })?;
    Ok(format!("data:image/png;base64,{}", base64(&bytes)))
}

/// Standard base64 (RFC 4648, with padding).
pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_matches_rfc_4648_test_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }
}
