//! `POST {prefix}`: accept a notebook. Three body forms: `{"nb": <notebook>}` (gofer_submit,
//! otter-submit), a raw notebook, or a multipart upload of an `.ipynb` file.

use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, ErrorBody, wants_json};
use super::{AppState, pages};
use std::sync::atomic::Ordering;

use crate::db::submissions::Accepted;
use crate::db::{DbError, notebooks, submissions};
use crate::jupyterhub::HubUser;
use crate::notebook::{NotebookMetadata, Submission};

/// A browser's or a script's upload (documentation only).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct Upload {
    /// The .ipynb file (the first part with a file name is taken).
    #[schema(format = Binary, value_type = String)]
    file: Vec<u8>,
}

/// The body forms.
enum BodyKind {
    Json,
    Multipart,
    Other,
}

fn body_kind(headers: &HeaderMap) -> BodyKind {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ct.starts_with("application/json") {
        BodyKind::Json
    } else if ct.starts_with("multipart/form-data") {
        BodyKind::Multipart
    } else {
        BodyKind::Other
    }
}

/// A cookie-authenticated request must be JSON (a cross-site form cannot send that) or
/// carry our XSRF token; a token-authenticated one needs neither.
fn check_xsrf(
    app: &AppState,
    user: &HubUser,
    headers: &HeaderMap,
    kind: &BodyKind,
) -> Result<(), ApiError> {
    if matches!(kind, BodyKind::Json) {
        return Ok(());
    }
    let token = headers
        .get("x-xsrftoken")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if app.auth.xsrf_allows(user, token) {
        return Ok(());
    }
    Err(ApiError::Forbidden(
        "a browser upload must come from the grading service's own page (XSRF check failed); \
         use the upload form at the service's page or send Content-Type: application/json"
            .into(),
    ))
}

/// Read the whole body, refusing more than `limit` bytes with a clear 413.
async fn body_bytes(req: Request, limit: usize) -> Result<bytes::Bytes, ApiError> {
    axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| ApiError::TooLarge { limit })
}

/// The first file part of a multipart upload.
async fn multipart_file(req: Request, limit: usize) -> Result<bytes::Bytes, ApiError> {
    let mut mp = Multipart::from_request(req, &())
        .await
        .map_err(|e| ApiError::BadRequest(format!("the multipart upload is malformed: {e}")))?;
    while let Some(field) = mp
        .next_field()
        .await
        .map_err(|e| multipart_error(e, limit))?
    {
        if field.file_name().is_some() {
            return field.bytes().await.map_err(|e| multipart_error(e, limit));
        }
    }
    Err(ApiError::BadRequest(
        "the multipart upload has no file; attach the .ipynb notebook as a file field".into(),
    ))
}

fn multipart_error(e: axum::extract::multipart::MultipartError, limit: usize) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge { limit }
    } else {
        ApiError::BadRequest(format!(
            "the multipart upload is malformed: {}",
            e.body_text()
        ))
    }
}

/// The 202 answer as JSON: the submission's view and where to follow it.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct SubmitAnswer {
    #[serde(flatten)]
    pub view: crate::db::submissions::SubmissionView,
    pub submission_id: i64,
    pub status_url: String,
    /// True when an identical notebook of the caller's was still waiting: that one.
    pub duplicate: bool,
    pub message: String,
}

/// Submit a notebook for grading: `{"nb": <notebook>}` (gofer_submit, otter-submit), the
/// notebook itself, or a multipart upload of the .ipynb file. Its metadata names the
/// course, section and assignment. Every answer is counted in `/metrics`, refusals by
/// their reason.
#[utoipa::path(post, path = "/", tag = "students",
    security(("hub_token" = []), ("hub_session" = [])),
    request_body(description = "The notebook: `{\"nb\": <notebook>}`, the notebook's JSON, or a multipart upload (a browser's upload also sends `X-XSRFToken`)",
        content((serde_json::Value = "application/json"), (Upload = "multipart/form-data"),
                (String = "application/x-ipynb+json"))),
    responses(
        (status = 202, description = "Stored and queued (or an identical notebook still waiting): JSON when asked for, else a sentence",
            content((SubmitAnswer = "application/json"), (String = "text/plain"))),
        (status = 400, description = "Not a notebook, or its metadata names no known assignment", content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 401, description = "No JupyterHub token or session", content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 403, description = "The token is not known or lacks the scope, the name is reserved, or a browser upload failed the XSRF check", content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 413, description = "Larger than `server.max_body_bytes`", content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 422, description = "The assignment has no autograder on the server yet", content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 429, description = "The caller already has the most submissions waiting that one may",
            headers(("retry-after" = u64)), content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 503, description = "The queue is full, or JupyterHub could not be asked who the caller is",
            headers(("retry-after" = u64)), content((String = "text/plain"), (ErrorBody = "application/json"))),
    ))]
pub async fn submit(
    State(app): State<AppState>,
    user: Result<HubUser, ApiError>,
    req: Request,
) -> Result<Response, ApiError> {
    let result = match user {
        Ok(user) => receive(&app, user, req).await,
        Err(e) => Err(e),
    };
    if let Err(e) = &result {
        app.metrics.rejected(e.reason());
    }
    result
}

async fn receive(app: &AppState, user: HubUser, req: Request) -> Result<Response, ApiError> {
    let headers = req.headers().clone();
    let kind = body_kind(&headers);
    check_xsrf(app, &user, &headers, &kind)?;
    let limit = app.settings.server.max_body_bytes;
    let bytes = match kind {
        BodyKind::Multipart => multipart_file(req, limit).await?,
        _ => body_bytes(req, limit).await?,
    };
    // Hashed and compressed here, on this request's worker, not on the single writer, and
    // from the body where it lies. Only the compressed copy waits for the writer: the body
    // is let go first (200 requests waiting on a commit held 12 MiB more with it).
    let (stored, meta) = {
        let read = Submission::read_in_place(&bytes)?;
        (notebooks::pack(&read.notebook), read.metadata)
    };
    drop(bytes);
    let assignment = app.courses.lookup(&meta)?;
    if !assignment.autograder_zip.is_file() {
        tracing::error!(zip = %assignment.autograder_zip.display(), "autograder zip missing");
        return Err(ApiError::Unprocessable(format!(
            "assignment {:?} has no autograder on the server yet, so it cannot be graded; \
             tell the course staff (nothing was stored)",
            meta.assignment.as_str()
        )));
    }
    let new = submissions::NewSubmission {
        user: user.name.clone(),
        course: meta.course.to_string(),
        section: meta.section.to_string(),
        assignment: meta.assignment.to_string(),
        // Packed above: `submissions::submit` stores `stored`.
        notebook: Vec::new(),
        notebook_path: headers
            .get("x-otter-notebook-path")
            .and_then(|v| v.to_str().ok())
            .map(|p| p.chars().take(500).collect()),
    };
    let (calendar, clock) = (assignment.calendar.clone(), app.clock.clone());
    let taken = take_into_queue(
        app,
        move |c, rules| {
            // The calendar judges the commit's time, on the writer; what it judged comes
            // back with the answer (no second read for the 202's sentence).
            let mut judged = None;
            let judge = |c: &rusqlite::Connection| -> Result<submissions::Received, DbError> {
                let at = clock.now();
                let lateness = crate::calendar::admit(c, calendar.as_deref(), &new.student(), at)?;
                judged = lateness;
                Ok(submissions::Received { at, lateness })
            };
            let taken = submissions::submit(c, &new, &stored, rules, judge, crate::db::now_ms())?;
            Ok((taken, judged))
        },
        |t| Some(t.0),
    )
    .await?;
    let (taken, judged) = taken;
    match taken {
        Accepted::New(id) => {
            tracing::info!(submission_id = id, user = %user.name, course = %meta.course,
                assignment = %meta.assignment, "submission accepted");
        }
        Accepted::Duplicate(id) => {
            tracing::info!(submission_id = id, user = %user.name, "identical resubmission");
        }
    }
    accepted(app, &headers, taken, judged, &meta, &user.name).await
}

/// Reserve a place in the queue (refusing when it is full), run `write` on the writer (it
/// takes the submission under the intake rules), and give the place back unless it queued
/// something new; count the answer and wake a grader. `accepted` says what the write took:
/// a new or an identical waiting submission, or `None` for nothing (an idempotent retry).
/// Every door that takes notebooks (JupyterHub, the platform API) goes through here.
pub async fn take_into_queue<T, W>(
    app: &AppState,
    write: W,
    accepted: impl Fn(&T) -> Option<Accepted>,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    W: FnOnce(&rusqlite::Connection, &submissions::IntakeRules) -> Result<T, DbError>
        + Send
        + 'static,
{
    let depth = app.queue_depth.fetch_add(1, Ordering::Relaxed);
    if depth >= app.settings.server.max_queue_depth {
        app.queue_depth.fetch_sub(1, Ordering::Relaxed);
        return Err(DbError::QueueFull { depth }.into());
    }
    let rules = submissions::IntakeRules {
        max_attempts: app.settings.grading.max_attempts,
        per_student: app.settings.grading.max_queued_per_student,
    };
    let taken = app
        .db
        .write(move |c| write(c, &rules))
        .await
        .inspect_err(|_| {
            app.queue_depth.fetch_sub(1, Ordering::Relaxed);
        })?;
    match accepted(&taken) {
        Some(Accepted::New(_)) => {
            app.metrics.accepted(false);
            app.grade_notify.notify_one();
        }
        Some(Accepted::Duplicate(_)) => {
            app.metrics.accepted(true);
            app.queue_depth.fetch_sub(1, Ordering::Relaxed);
        }
        None => {
            app.queue_depth.fetch_sub(1, Ordering::Relaxed);
        }
    }
    Ok(taken)
}

/// 202 with the submission: JSON (its view, as `GET submissions/{id}` gives it, plus
/// `submission_id`, `status_url`, `duplicate` and `message`) when asked for, else a sentence
/// for `alert()`.
async fn accepted(
    app: &AppState,
    headers: &HeaderMap,
    taken: Accepted,
    judged: Option<crate::db::calendar::Lateness>,
    meta: &NotebookMetadata,
    user: &str,
) -> Result<Response, ApiError> {
    let id = taken.id();
    let status_url = pages::submission_url(app, headers, id);
    let message = match taken {
        Accepted::New(_) => format!(
            "Your submission of {} was received (number {id}) and is queued for grading. \
             See your result at {status_url}",
            meta.assignment
        ),
        Accepted::Duplicate(_) => format!(
            "This exact notebook of {} is already waiting to be graded (submission {id}); \
             it was not queued twice. See your result at {status_url}",
            meta.assignment
        ),
    };
    let message = match judged {
        Some(l) if l.late_ms == 0 => format!("{message} It is on time."),
        Some(l) => format!(
            "{message} It came {} after your due date: {}% of its score counts.",
            crate::calendar::span(l.late_ms),
            l.credit
        ),
        None => message,
    };
    if !wants_json(headers) {
        return Ok((StatusCode::ACCEPTED, format!("{message}\n")).into_response());
    }
    let view = pages::view_of(app, headers, id, user).await?;
    let body = SubmitAnswer {
        view,
        submission_id: id,
        status_url,
        duplicate: matches!(taken, Accepted::Duplicate(_)),
        message,
    };
    Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response())
}
