//! From an HTTP request to a model input: the query (`heatmap`, `class`), the body (a raw
//! JPEG/PNG or a multipart form with the image in it) read within the size and time limits, and
//! the image checked (format, whole file, dimensions from its header before decoding), decoded
//! and preprocessed exactly as `infer` preprocesses files.

use std::path::Path;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{FromRequest, Multipart};
use axum::http::{StatusCode, header, request::Parts};
use http_body_util::{BodyExt, Limited};

use super::config::Limits;
use super::reply::ApiError;
use super::worker::ModelInfo;
use crate::data::image::{Rgb, Transform, check_bytes, normalise_into, resize, shades_of_gray};
use crate::data::input::decode_view;

/// What the query asks for besides the probabilities.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub heatmap: bool,
    /// The code of the class the heat map explains (default: the predicted one); checked
    /// against the model's classes by [`Options::class_index`].
    pub class: Option<String>,
}

fn bad_request(m: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, m)
}

fn unprocessable(m: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m)
}

/// `heatmap=1|true|yes|0|false|no` and `class=CODE` (a code of the model's classes, any case,
/// checked by [`Options::class_index`]); anything else is a 400 naming the parameter.
pub fn parse_query(q: Option<&str>) -> Result<Options, ApiError> {
    let mut o = Options::default();
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "heatmap" => {
                o.heatmap = match v.to_ascii_lowercase().as_str() {
                    "" | "1" | "true" | "yes" => true,
                    "0" | "false" | "no" => false,
                    _ => {
                        return Err(bad_request(format!("heatmap={v:.40}: expected 1 or 0")));
                    }
                }
            }
            "class" => {
                o.class = Some(v.chars().take(40).collect());
                o.heatmap = true;
            }
            _ => {
                return Err(bad_request(format!(
                    "unknown query parameter '{k:.40}' (expected heatmap, class)"
                )));
            }
        }
    }
    Ok(o)
}

impl Options {
    /// The index of the asked class among `info`'s classes (codes in any case), or a 400
    /// listing them.
    pub fn class_index(&self, info: &ModelInfo) -> Result<Option<usize>, ApiError> {
        let Some(code) = &self.class else {
            return Ok(None);
        };
        let i = info
            .classes
            .iter()
            .position(|(c, _)| c.eq_ignore_ascii_case(code));
        i.map(Some).ok_or_else(|| {
            let codes: Vec<&str> = info.classes.iter().map(|(c, _)| c.as_str()).collect();
            bad_request(format!(
                "class={code}: unknown class code; expected one of {}",
                codes.join(", ")
            ))
        })
    }
}

/// How the body carries the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// The image file itself (image/jpeg, image/png, application/octet-stream).
    Raw,
    /// multipart/form-data with the image as a part.
    Multipart,
}

/// The body's kind from its Content-Type; any other type is a 415 saying what is accepted.
pub fn body_kind(parts: &Parts) -> Result<BodyKind, ApiError> {
    let ct = parts
        .headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let essence = ct
        .as_deref()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "image/jpeg" | "image/jpg" | "image/pjpeg" | "image/png" | "application/octet-stream" => {
            Ok(BodyKind::Raw)
        }
        "multipart/form-data" => Ok(BodyKind::Multipart),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Content-Type {}: send the image as image/jpeg or image/png (or \
                 application/octet-stream), or as a multipart/form-data field 'image'",
                match ct {
                    Some(c) => format!("'{c:.60}' is not accepted"),
                    None => "missing".to_string(),
                }
            ),
        )),
    }
}

/// The whole body, refused past `limits.max_body_bytes` (413; at once when Content-Length says
/// so) or when it has not all arrived by `deadline` (408).
pub async fn read_body(
    parts: &Parts,
    body: Body,
    limits: &Limits,
    deadline: Instant,
) -> Result<axum::body::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body larger than the limit of {} bytes (--max-body-bytes)",
                limits.max_body_bytes
            ),
        )
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return Err(too_large());
    }
    let collect = Limited::new(body, limits.max_body_bytes).collect();
    match tokio::time::timeout_at(deadline.into(), collect).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {} ms (--timeout-ms)",
                limits.timeout.as_millis()
            ),
        )),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err(bad_request(format!("cannot read the request body: {e}"))),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

/// The image file in a multipart body: the part named `image` or `file`, else the first part
/// with a file name.
pub async fn multipart_image(
    parts: Parts,
    body: axum::body::Bytes,
) -> Result<axum::body::Bytes, ApiError> {
    let req = axum::http::Request::from_parts(parts, Body::from(body));
    let mut mp = Multipart::from_request(req, &())
        .await
        .map_err(|e| bad_request(format!("malformed multipart body: {}", e.body_text())))?;
    let malformed = |e: axum::extract::multipart::MultipartError| {
        ApiError::new(
            e.status(),
            format!("malformed multipart body: {}", e.body_text()),
        )
    };
    while let Some(field) = mp.next_field().await.map_err(malformed)? {
        let named = matches!(field.name(), Some("image") | Some("file"));
        if named || field.file_name().is_some() {
            return field.bytes().await.map_err(malformed);
        }
    }
    Err(unprocessable(
        "the multipart body has no image: send the file as a field named 'image'",
    ))
}

/// An image ready for the worker.
pub struct Prepared {
    /// [3, size, size] planar, normalised.
    pub x: Vec<f32>,
    pub width: u32,
    pub height: u32,
    pub format: &'static str,
    /// The decoded image (at the DCT scale decoding chose), kept when a heat map will be drawn
    /// over it.
    pub original: Option<Rgb>,
    pub decode: Duration,
}

/// What errors about the body call it (messages read "image: truncated JPEG ...").
const NAME: &str = "image";

/// Checks, decodes and preprocesses an uploaded image: the checks of `data::image` (a
/// recognised format, the whole file: a cut-short JPEG or PNG is refused as "truncated",
/// dimensions from the header, before any pixel buffer exists), then the server's own pixel
/// limit, then `infer`'s preprocessing (colour constancy if the model uses it, resize, ImageNet
/// normalisation). Every refusal is a 422 naming the problem.
pub fn prepare(
    bytes: &[u8],
    info: &ModelInfo,
    max_pixels: u64,
    keep_original: bool,
) -> Result<Prepared, ApiError> {
    let t0 = Instant::now();
    if bytes.is_empty() {
        return Err(unprocessable(
            "the request body is empty: send a JPEG or PNG image",
        ));
    }
    let path = Path::new(NAME);
    let (w, h) = check_bytes(path, bytes).map_err(|e| unprocessable(e.to_string()))?;
    if w as u64 * h as u64 > max_pixels {
        return Err(unprocessable(format!(
            "{NAME}: too large ({w} x {h} = {:.1} megapixels; this server's limit is {:.1}, --max-pixels)",
            (w as u64 * h as u64) as f64 / 1e6,
            max_pixels as f64 / 1e6
        )));
    }
    let format = if bytes.starts_with(&[0x89, b'P', b'N', b'G']) {
        "png"
    } else {
        "jpeg"
    };
    // infer's decoding: full size by default (`--scaled-decode`: DCT-scaled JPEGs).
    let decoded = decode_view(
        path,
        bytes,
        &Transform::IDENTITY,
        &info.preprocess,
        info.size,
    )
    .map_err(|e| unprocessable(e.to_string()))?;
    let x = model_input(&decoded, info).map_err(|e| unprocessable(e.to_string()))?;
    Ok(Prepared {
        x,
        width: w,
        height: h,
        format,
        original: keep_original.then_some(decoded),
        decode: t0.elapsed(),
    })
}

/// `infer`'s preprocessing of a decoded image (data::input::view_into with the identity view):
/// colour constancy when the model was trained with it, resize, normalise.
pub fn model_input(img: &Rgb, info: &ModelInfo) -> crate::Result<Vec<f32>> {
    let resized = if info.preprocess.color_constancy {
        let mut im = img.clone();
        shades_of_gray(&mut im, 6.0);
        resize(&im, info.preprocess.resize, info.size)?
    } else {
        resize(img, info.preprocess.resize, info.size)?
    };
    let s = info.size as usize;
    let mut x = vec![0f32; 3 * s * s];
    normalise_into(&resized, &mut x);
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_parsed_or_refused_naming_the_parameter() {
        assert_eq!(parse_query(None).unwrap(), Options::default());
        assert_eq!(
            parse_query(Some("heatmap=1")).unwrap(),
            Options {
                heatmap: true,
                class: None
            }
        );
        let o = parse_query(Some("heatmap=1&class=mel")).unwrap();
        assert_eq!(
            o,
            Options {
                heatmap: true,
                class: Some("mel".into())
            }
        );
        assert!(!parse_query(Some("heatmap=0")).unwrap().heatmap);
        assert!(parse_query(Some("heatmap=maybe")).is_err());
        assert!(
            parse_query(Some("tta=8"))
                .unwrap_err()
                .message
                .contains("tta")
        );
    }

    #[test]
    fn content_types_pick_the_body_kind_or_are_refused_with_415() {
        let parts = |ct: Option<&str>| {
            let mut r = axum::http::Request::builder();
            if let Some(c) = ct {
                r = r.header(header::CONTENT_TYPE, c);
            }
            r.body(()).unwrap().into_parts().0
        };
        assert_eq!(
            body_kind(&parts(Some("image/jpeg"))).unwrap(),
            BodyKind::Raw
        );
        assert_eq!(
            body_kind(&parts(Some("IMAGE/PNG; q=1"))).unwrap(),
            BodyKind::Raw
        );
        assert_eq!(
            body_kind(&parts(Some("multipart/form-data; boundary=x"))).unwrap(),
            BodyKind::Multipart
        );
        for ct in [Some("text/plain"), Some("application/json"), None] {
            let e = body_kind(&parts(ct)).unwrap_err();
            assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
            assert!(e.message.contains("image/jpeg"), "{}", e.message);
        }
    }
}
