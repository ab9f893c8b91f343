//! Uploads over the size limit get a 413 the client can read. A server that answers and
//! closes while the client is still sending makes the client see a connection reset, not
//! the sentence: so a client that asked first (`Expect: 100-continue`) is answered before
//! it sends the body, and any other oversize body is read and dropped, up to a bound,
//! before the answer.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use super::AppState;
use super::error::ApiError;

/// Most bytes of an oversize body read and dropped before answering.
const DRAIN_BYTES: u64 = 256 * 1024 * 1024;
/// Longest time spent reading an oversize body before answering.
const DRAIN_TIME: Duration = Duration::from_secs(30);

/// Middleware: refuse a POST whose declared length is over `server.max_body_bytes`
/// before authentication or parsing.
pub async fn refuse_oversize(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let limit = app.settings.server.max_body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if req.method() != Method::POST || declared.is_none_or(|n| n <= limit as u64) {
        return next.run(req).await;
    }
    let asked_first = req
        .headers()
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    if !asked_first {
        drain(req.into_body()).await;
    }
    tracing::info!(declared, limit, "refused an oversize upload");
    let mut resp = ApiError::TooLarge { limit }.into_response();
    resp.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    resp
}

/// Read and drop up to [`DRAIN_BYTES`] of `body`, for at most [`DRAIN_TIME`].
pub async fn drain(mut body: Body) {
    let read = async {
        let mut seen = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len() as u64);
            if seen > DRAIN_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, read).await;
}
