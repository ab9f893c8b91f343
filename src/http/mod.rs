//! The HTTP API, under the service prefix (default `/services/otter_grade/`).

mod auth;
mod calendar;
mod charts;
pub mod error;
mod oversize;
mod pages;
mod staff;
mod staff_access;
mod state;
mod submit;

pub use error::message_of;
pub use oversize::refuse_oversize;
pub use pages::readable_feedback;
pub use state::{App, AppState};
pub use submit::take_into_queue;

use axum::Router;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::db::jobs;
use crate::db::staff::{self as db_staff, BrokenAutograder};
use crate::db::states::JobKind;
use crate::openapi::Documented;
use error::{ApiError, ErrorBody};

/// Every route of the students' and staff's API, documented (`crate::openapi`): those
/// under `prefix`, and `/metrics` and `/healthz` at the server's root.
pub fn documented(prefix: &str) -> Documented<AppState> {
    use utoipa_axum::routes;
    let under_prefix = Documented::new(prefix)
        .routes(routes!(pages::list, submit::submit))
        .routes(routes!(pages::list_submissions))
        .routes(routes!(pages::detail))
        .routes(routes!(auth::oauth_callback))
        .routes(routes!(auth::logout))
        .routes(routes!(health))
        .routes(routes!(jwks))
        .routes(routes!(document))
        .routes(routes!(staff::overview))
        .routes(routes!(staff::assignment))
        .routes(routes!(staff::student))
        .routes(routes!(staff::submission))
        .routes(routes!(staff::regrade))
        .routes(routes!(staff::repost))
        .routes(routes!(staff::grades_csv))
        .routes(routes!(calendar::due))
        .routes(routes!(calendar::extensions))
        .routes(routes!(calendar::overrides))
        .routes(routes!(calendar::release));
    let root = Documented::new("").routes(routes!(metrics));
    let mut all = under_prefix.merge(root);
    let bare = prefix.trim_end_matches('/');
    if !bare.is_empty() {
        // The Hub may send the prefix without its trailing slash; probes ask the root.
        all = all
            .alias(bare, get(pages::list).post(submit::submit))
            .alias("/healthz", get(health));
    }
    all
}

/// The router of [`documented`] with its layers: `POST {prefix}` submit, `GET
/// {prefix}[submissions[/{id}]]`, the OAuth callback, staff pages, `/healthz` (also under
/// the prefix, for checks through the Hub's proxy) and `/metrics`.
pub fn router(app: AppState) -> Router {
    let prefix = app.settings.server.prefix.clone();
    // Our own limit (with its clear 413) applies; axum's default 2 MB must not cut in first.
    let limit = app.settings.server.max_body_bytes + 64 * 1024;
    let (router, _, _) = documented(&prefix).into_parts();
    router
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            oversize::refuse_oversize,
        ))
        .layer(axum::middleware::from_fn(error::json_errors))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(app)
}

/// The service's OpenAPI document as JSON (made in `crate::app` and handed to the
/// router as an extension).
#[derive(Clone)]
pub struct OpenApiJson(pub std::sync::Arc<String>);

/// This document: every HTTP endpoint of the service, OpenAPI 3.1.
#[utoipa::path(get, path = "/openapi.json", tag = "service",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = serde_json::Value,
        content_type = "application/json")))]
async fn document(axum::Extension(doc): axum::Extension<OpenApiJson>) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        doc.0.as_str().to_owned(),
    )
        .into_response()
}

/// The tool's public key set (LTI 1.3 platforms check our client assertions against it).
/// Public: it holds public keys only.
#[utoipa::path(get, path = "/lti13/jwks.json", tag = "service",
    responses(
        (status = 200, description = "The JSON Web Key Set", body = serde_json::Value, content_type = "application/json"),
        (status = 404, description = "LTI 1.3 is not configured", content((String = "text/plain"), (ErrorBody = "application/json"))),
    ))]
async fn jwks(State(app): State<AppState>) -> Result<Response, ApiError> {
    // Not configured: 404 (no key set to offer).
    let Some(keys) = &app.tool_keys else {
        return Err(ApiError::NotFound);
    };
    let body = serde_json::to_string(keys.jwks()).map_err(anyhow::Error::from)?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "application/json"),
            // Short: a rotation reaches platforms that cache the set within minutes.
            (axum::http::header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response())
}

/// Prometheus metrics (OpenMetrics text), for the monitoring system that scrapes the pod
/// (z2jh's Prometheus annotations); not through the Hub's proxy (403 to a forwarded
/// request). The queue and database size are read now.
#[utoipa::path(get, path = "/metrics", tag = "service",
    responses(
        (status = 200, description = "The metrics", body = String,
            content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        (status = 403, description = "A request forwarded by a proxy", content((String = "text/plain"), (ErrorBody = "application/json"))),
    ))]
async fn metrics(State(app): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if headers.contains_key("x-forwarded-for") {
        return Err(ApiError::Forbidden(
            "metrics are served to the monitoring system directly, not through the proxy".into(),
        ));
    }
    let (courses, local) = (app.courses.clone(), app.settings.grading.workers > 0);
    let (queue, unroutable) = app
        .db
        .read(move |c| {
            let needs = |c: &str, s: &str, a: &str| courses.grader_needs(c, s, a);
            let now = crate::db::now_ms();
            Ok((
                db_staff::queue(c)?,
                crate::db::hosts::unroutable(c, now, local, needs)?,
            ))
        })
        .await?;
    let stuck = unroutable.iter().map(|u| u.jobs).sum();
    let body = app.metrics.encode(&queue, stuck, crate::db::now_ms());
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response())
}

/// Database and runner readiness; 503 when either is not ready. The details (runner,
/// database errors, broken autograders) only for a caller on this machine that no proxy
/// forwarded (operators, probes in the pod); everyone else, the Hub's proxy included,
/// gets the status word alone. Also served at `/healthz`.
#[utoipa::path(get, path = "/healthz", tag = "service",
    responses(
        (status = 200, description = "Ready (`ok`, or `degraded`: some assignment cannot be graded)",
            body = serde_json::Value, content_type = "application/json"),
        (status = 503, description = "Not ready (`unavailable`)", body = serde_json::Value,
            content_type = "application/json"),
    ))]
async fn health(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> impl IntoResponse {
    let local = peer.ip().is_loopback() && !headers.contains_key("x-forwarded-for");
    let db = app
        .db
        .read(|c| {
            Ok((
                jobs::depth(c, JobKind::Grade)?,
                db_staff::broken_autograders(c)?,
            ))
        })
        .await;
    let runner = app.runner.readiness().await;
    let ok = db.is_ok() && runner.ready;
    // Courses with their own grader image: one that cannot grade fails its course only.
    let mut course_images: Vec<serde_json::Value> = Vec::new();
    if runner.ready {
        let mut images: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
        for (c, s, a, assignment) in app.courses.assignments() {
            if let Some(image) = assignment.image() {
                images
                    .entry(image)
                    .or_default()
                    .push(format!("{c}/{s}/{a}"));
            }
        }
        for (image, assignments) in images {
            let ready = app.runner.image_readiness(image).await;
            if !ready.ready {
                course_images.push(serde_json::json!({
                    "image": image, "assignments": assignments, "detail": ready.detail,
                }));
            }
        }
    }
    let (depth, broken): (Option<u64>, Vec<BrokenAutograder>) = match &db {
        Ok((d, b)) => (Some(*d), b.clone()),
        Err(_) => (None, Vec::new()),
    };
    // A broken autograder fails its own assignment only: the service stays up (200) and
    // says which (submissions to it wait, are not charged, and end dead for staff).
    let status = match (ok, broken.is_empty() && course_images.is_empty()) {
        (false, _) => "unavailable",
        (true, false) => "degraded",
        (true, true) => "ok",
    };
    let broken: Vec<_> = broken
        .iter()
        .map(|b| {
            serde_json::json!({
                "course": b.course, "section": b.section, "assignment": b.assignment,
                "detail": b.detail,
            })
        })
        .collect();
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    if !local {
        return (code, axum::Json(serde_json::json!({ "status": status })));
    }
    let body = serde_json::json!({
        "status": status,
        "database": match &db { Ok(_) => "ok".to_string(), Err(e) => e.to_string() },
        "runner": { "name": app.runner.name(), "ready": runner.ready, "detail": runner.detail },
        "queue_depth": depth,
        "broken_autograders": broken,
        "course_images_not_ready": course_images,
        "lti": app.lti_enabled,
    });
    (code, axum::Json(body))
}
