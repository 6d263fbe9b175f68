//! The routes: `POST /v1/classify`, `GET /` (the page), `GET /healthz`, `GET /metrics`; every
//! answer is counted in the metrics by route and status.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::config::Limits;
use super::metrics::{Metrics, route_label};
use super::reply::{ApiError, Timings, classified, json_response, png_data_url};
use super::request::{
    BodyKind, Prepared, body_kind, multipart_image, parse_query, prepare, read_body,
};
use super::worker::{Job, ModelInfo, Queue, SendError};
use crate::pipeline::heatmap::{overlay, seen_window};

/// The model's state as `/healthz` reports it.
#[derive(Clone, Debug)]
pub enum Readiness {
    Loading,
    Ready(ModelInfo),
    Failed(String),
}

/// What every handler shares.
pub struct AppState {
    pub limits: Limits,
    pub metrics: Arc<Metrics>,
    pub queue: Queue,
    /// Set once by the worker when the model is loaded (or failed to load).
    pub readiness: Arc<OnceLock<Readiness>>,
    /// Decode on the calling thread instead of a blocking thread (the fuzz harness: its
    /// per-thread allocation cap then covers decoding too).
    pub decode_inline: bool,
    /// Bounds the images decoded at once.
    pub decoders: tokio::sync::Semaphore,
}

impl AppState {
    pub fn model(&self) -> Option<&ModelInfo> {
        match self.readiness.get() {
            Some(Readiness::Ready(m)) => Some(m),
            _ => None,
        }
    }
}

/// The server's routes over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/classify", post(classify))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), count))
        // Multipart's own body limit (it reads a body already limited by read_body).
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes))
        .with_state(state)
}

/// Counts every answer by route and status, with its latency.
async fn count(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let t0 = Instant::now();
    let route = route_label(req.uri().path());
    let r = next.run(req).await;
    st.metrics.request(route, r.status().as_u16(), t0.elapsed());
    r
}

/// The page with the model's classes written in (see [`super::page::render`]).
async fn page(State(st): State<Arc<AppState>>) -> Response {
    let classes = st.model().map(|m| m.classes.as_slice());
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        super::page::render(classes),
    )
        .into_response()
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no route {} {:.80} (routes: GET /, GET /healthz, GET /metrics, POST /v1/classify)",
            req.method(),
            req.uri().path()
        ),
    )
}

async fn healthz(State(st): State<Arc<AppState>>) -> Response {
    match st.readiness.get() {
        Some(Readiness::Ready(m)) => json_response(
            StatusCode::OK,
            &json!({"status": "ready", "model": m.id, "kind": m.kind, "device": m.device}),
        ),
        Some(Readiness::Failed(e)) => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "failed", "error": e}),
        ),
        None | Some(Readiness::Loading) => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "loading"}),
        ),
    }
}

async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        st.metrics.render(st.model().is_some()),
    )
        .into_response()
}

async fn classify(State(st): State<Arc<AppState>>, req: Request) -> Response {
    match classify_inner(&st, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn classify_inner(st: &Arc<AppState>, req: Request) -> Result<Response, ApiError> {
    let t0 = Instant::now();
    let deadline = t0 + st.limits.timeout;
    let Some(info) = st.model().cloned() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the model is still loading (see GET /healthz)",
        ));
    };
    let (parts, body) = req.into_parts();
    let opts = parse_query(parts.uri.query())?;
    let class = opts.class_index(&info)?;
    let kind = body_kind(&parts)?;
    let bytes = read_body(&parts, body, &st.limits, deadline).await?;
    let bytes = match kind {
        BodyKind::Raw => bytes,
        BodyKind::Multipart => multipart_image(parts, bytes).await?,
    };
    let received = t0.elapsed();
    let prepared = decode(st, bytes, &info, opts.heatmap, deadline).await?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job = Job {
        x: prepared.x,
        heatmap: opts.heatmap.then_some(class),
        enqueued: Instant::now(),
        reply: tx,
    };
    st.queue.try_send(job).map_err(|e| match e {
        SendError::Full => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the queue is full ({} images waiting, --queue); retry later",
                st.limits.queue
            ),
        ),
        SendError::Stopped => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping")
        }
    })?;
    let answer = match tokio::time::timeout_at(deadline.into(), rx).await {
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "no answer within {} ms (--timeout-ms)",
                    st.limits.timeout.as_millis()
                ),
            ));
        }
        Ok(Err(_)) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server stopped before answering",
            ));
        }
        Ok(Ok(Err(e))) => return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e)),
        Ok(Ok(Ok(a))) => a,
    };
    // The heat map over the original image, encoded beside the runtime.
    let png = match (&answer.heatmap, prepared.original) {
        (Some((_, cam)), Some(img)) => {
            let cam = cam.clone();
            let window = seen_window(img.width, img.height, &info.preprocess, info.size);
            let draw = move || png_data_url(&overlay(&img, &cam, window));
            Some(if st.decode_inline {
                draw()?
            } else {
                tokio::task::spawn_blocking(draw).await.map_err(|e| {
                    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
                })??
            })
        }
        _ => None,
    };
    let t = Timings {
        receive: received.as_secs_f64() * 1e3,
        decode: prepared.decode.as_secs_f64() * 1e3,
        total: t0.elapsed().as_secs_f64() * 1e3,
    };
    let v = classified(
        &info,
        &answer,
        (prepared.width, prepared.height, prepared.format),
        &t,
        png,
    );
    Ok(json_response(StatusCode::OK, &v))
}

/// [`prepare`] on a blocking thread (at most `decoders` at once), or inline for the fuzzer.
async fn decode(
    st: &Arc<AppState>,
    bytes: axum::body::Bytes,
    info: &ModelInfo,
    keep: bool,
    deadline: Instant,
) -> Result<Prepared, ApiError> {
    let max = st.limits.max_pixels;
    if st.decode_inline {
        return prepare(&bytes, info, max, keep);
    }
    let timeout = || {
        ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "no answer within {} ms (--timeout-ms)",
                st.limits.timeout.as_millis()
            ),
        )
    };
    let _permit = tokio::time::timeout_at(deadline.into(), st.decoders.acquire())
        .await
        .map_err(|_| timeout())?
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping"))?;
    let info = info.clone();
    tokio::task::spawn_blocking(move || prepare(&bytes, &info, max, keep))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}
