//! `{prefix}api/v1/`: the platform API. Every request carries a platform's token
//! (`Authorization: Bearer otp_...`); a platform submits only to the courses it was
//! granted, for users in its own namespace, and sees only its own submissions (anyone
//! else's is "not found", as if it did not exist). Errors are problem details (RFC 9457):
//! `application/problem+json` with `title`, `status`, `detail` (a sentence naming what was
//! wrong) and `code` (a fixed word, the `/metrics` refusal reason).
//!
//! - `POST submissions`: JSON `{course, section, assignment, user, notebook,
//!   idempotency_key?, priority?}` or multipart (the same fields, the notebook as a file
//!   part); `Idempotency-Key` may be a header instead. 202 with the submission when it was
//!   queued; 200 when the key was used before for the same submission, or an identical
//!   notebook of that user is still waiting (`outcome` says which).
//! - `GET submissions/{id}`, `GET users/{user}/submissions`, `POST submissions/{id}/cancel`.

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Multipart, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use crate::db::platforms::{self, Cancel, Owned, Platform, PlatformSubmission, Taken};
use crate::db::states::SubmissionState;
use crate::db::submissions::{self, Accepted, NewSubmission, QuestionScore};
use crate::db::waiting::QueuePlace;
use crate::db::{notebooks, now_ms};
use crate::http::error::ApiError;
use crate::http::{AppState, take_into_queue};
use crate::notebook::{Name, NotebookMetadata, Submission};

/// The routes, under `{prefix}api/v1/`.
pub fn router(app: AppState) -> Router {
    let base = format!("{}api/v1/", app.settings.server.prefix);
    Router::new()
        .route(&format!("{base}submissions"), post(submit))
        .route(&format!("{base}submissions/{{id}}"), get(one))
        .route(&format!("{base}submissions/{{id}}/cancel"), post(cancel))
        .route(&format!("{base}users/{{user}}/submissions"), get(of_user))
        .route(&format!("{base}{{*rest}}"), axum::routing::any(not_found))
        // Our own limit (with its clear 413) applies; axum's default 2 MB must not cut in.
        .layer(axum::extract::DefaultBodyLimit::max(
            app.settings.server.max_body_bytes + 64 * 1024,
        ))
        .with_state(app)
}

/// An error as a problem details document (RFC 9457).
pub struct Problem(pub ApiError);

impl From<ApiError> for Problem {
    fn from(e: ApiError) -> Self {
        Problem(e)
    }
}

impl From<crate::db::DbError> for Problem {
    fn from(e: crate::db::DbError) -> Self {
        Problem(e.into())
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let code = self.0.reason();
        let detail = self.0.to_string();
        // The status and headers (Retry-After) the service gives this error anywhere.
        let (mut parts, _) = self.0.into_response().into_parts();
        let title = parts.status.canonical_reason().unwrap_or("Error");
        let body = serde_json::json!({
            "type": "about:blank",
            "title": title,
            "status": parts.status.as_u16(),
            "detail": detail,
            "code": code,
        });
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if parts.status == StatusCode::UNAUTHORIZED {
            parts
                .headers
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        Response::from_parts(parts, body.to_string().into())
    }
}

async fn not_found() -> Problem {
    Problem(ApiError::NotFound)
}

/// The platform a request's token belongs to.
pub struct Caller(pub Platform);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Problem> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "no platform token: send `Authorization: Bearer <token>` with the token \
                     `otter-service platforms add` printed"
                        .into(),
                )
            })?;
        let sha = super::token_sha256(token);
        let found = app.db.read(move |c| platforms::by_token(c, &sha)).await?;
        match found {
            Some(p) if p.revoked => Err(ApiError::Unauthorized(format!(
                "the token of platform {:?} was revoked; ask the service's operator for a new one",
                p.name
            ))
            .into()),
            Some(p) => Ok(Caller(p)),
            None => Err(ApiError::Unauthorized("this platform token is not known".into()).into()),
        }
    }
}

/// One question's score (no test output: it may hold hidden tests).
#[derive(Debug, Clone, Serialize)]
pub struct GradeOut {
    /// `graded`, or how grading ended without results (`timeout`, `out_of_memory`, ...).
    pub status: String,
    pub score: f64,
    pub max_score: f64,
    pub fraction: f64,
    pub questions: Vec<QuestionScore>,
    /// What the notebook's public tests printed (hidden tests never appear).
    pub public_feedback: String,
    pub message: Option<String>,
    pub graded_at: String,
}

/// A platform's submission as the platform sees it.
#[derive(Debug, Clone, Serialize)]
pub struct SubmissionOut {
    pub id: i64,
    /// The platform's own user id.
    pub user: String,
    pub course: String,
    pub section: String,
    pub assignment: String,
    pub received_at: String,
    /// `queued`, `grading`, `graded`, `failed` (a fault of the notebook: score 0),
    /// `dead` (our side could not grade it: staff act) or `cancelled`.
    pub state: SubmissionState,
    pub message: Option<String>,
    pub attempts: i64,
    /// Its place in the queue while it waits or is graded.
    pub queue: Option<QueuePlace>,
    pub priority: String,
    pub idempotency_key: Option<String>,
    pub grade: Option<GradeOut>,
}

/// Submission `id` as `platform` sees it (`None`: not one of its own).
pub fn view(
    conn: &rusqlite::Connection,
    app: &AppState,
    platform: &str,
    id: i64,
) -> Result<Option<SubmissionOut>, crate::db::DbError> {
    let Some(owned) = platforms::owned(conn, platform, id)? else {
        return Ok(None);
    };
    let user = crate::users::platform_user(platform, &owned.platform_user);
    let Some(mut v) = submissions::view_for_owner(conn, id, &user, app.policy_for())? else {
        return Ok(None);
    };
    submissions::add_queue_places(
        conn,
        std::slice::from_mut(&mut v),
        now_ms(),
        app.settings.grading.workers,
        &app.db.waiting(),
    )?;
    let Owned {
        platform_user,
        idempotency_key,
        priority,
    } = owned;
    Ok(Some(SubmissionOut {
        id: v.id,
        user: platform_user,
        course: v.course,
        section: v.section,
        assignment: v.assignment,
        received_at: v.received_at,
        state: v.state,
        message: v.message,
        attempts: v.attempts,
        queue: v.queue,
        priority,
        idempotency_key,
        grade: v.grade.map(|g| GradeOut {
            status: g.status.to_string(),
            score: g.score,
            max_score: g.max_score,
            fraction: g.fraction,
            questions: g.questions,
            public_feedback: crate::http::readable_feedback(&g.public_feedback),
            message: g.message,
            graded_at: g.graded_at,
        }),
    }))
}

async fn read_view(app: &AppState, platform: &str, id: i64) -> Result<SubmissionOut, Problem> {
    let (a, p) = (app.clone(), platform.to_string());
    app.db
        .read(move |c| view(c, &a, &p, id))
        .await?
        .ok_or(Problem(ApiError::NotFound))
}

/// The fields of a submission, from JSON or multipart.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fields {
    course: Option<String>,
    section: Option<String>,
    assignment: Option<String>,
    user: Option<String>,
    idempotency_key: Option<String>,
    priority: Option<String>,
    #[serde(skip)]
    notebook: Option<Vec<u8>>,
}

#[derive(Deserialize)]
struct JsonBody {
    #[serde(flatten)]
    fields: serde_json::Map<String, serde_json::Value>,
}

fn bad(msg: impl Into<String>) -> Problem {
    Problem(ApiError::BadRequest(msg.into()))
}

/// Read the request's fields and notebook (JSON or multipart), under the body limit.
async fn read_fields(app: &AppState, req: Request) -> Result<Fields, Problem> {
    let limit = app.settings.server.max_body_bytes;
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ct.starts_with("multipart/form-data") {
        return read_multipart(req, limit).await;
    }
    if !ct.starts_with("application/json") {
        return Err(Problem(ApiError::BadRequest(
            "send the submission as application/json or multipart/form-data".into(),
        )));
    }
    let bytes = axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| Problem(ApiError::TooLarge { limit }))?;
    let mut body: JsonBody = serde_json::from_slice(&bytes)
        .map_err(|e| bad(format!("the body is not a JSON object: {e}")))?;
    let notebook = body
        .fields
        .remove("notebook")
        .ok_or_else(|| bad("the submission has no `notebook` (the .ipynb's JSON)"))?;
    let notebook = match notebook {
        serde_json::Value::Object(_) => serde_json::to_vec(&notebook),
        serde_json::Value::String(text) => Ok(text.into_bytes()),
        _ => return Err(bad("`notebook` must be the notebook's JSON object")),
    }
    .map_err(|e| bad(format!("`notebook`: {e}")))?;
    let mut fields: Fields = serde_json::from_value(serde_json::Value::Object(body.fields))
        .map_err(|e| {
            bad(format!(
                "{e}; the fields are course, section, assignment, user, notebook, \
                 idempotency_key and priority"
            ))
        })?;
    fields.notebook = Some(notebook);
    Ok(fields)
}

async fn read_multipart(req: Request, limit: usize) -> Result<Fields, Problem> {
    let mut mp = Multipart::from_request(req, &())
        .await
        .map_err(|e| bad(format!("the multipart upload is malformed: {e}")))?;
    let mut f = Fields::default();
    let too_large = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem(ApiError::TooLarge { limit })
        } else {
            bad(format!(
                "the multipart upload is malformed: {}",
                e.body_text()
            ))
        }
    };
    while let Some(field) = mp.next_field().await.map_err(too_large)? {
        let name = field.name().unwrap_or("").to_string();
        if name == "notebook" {
            f.notebook = Some(field.bytes().await.map_err(too_large)?.to_vec());
            continue;
        }
        let text = field.text().await.map_err(too_large)?;
        let slot = match name.as_str() {
            "course" => &mut f.course,
            "section" => &mut f.section,
            "assignment" => &mut f.assignment,
            "user" => &mut f.user,
            "idempotency_key" => &mut f.idempotency_key,
            "priority" => &mut f.priority,
            other => {
                return Err(bad(format!(
                    "unknown field {:?}; the fields are course, section, assignment, user, \
                     notebook (a file), idempotency_key and priority",
                    other.chars().take(40).collect::<String>()
                )));
            }
        };
        *slot = Some(text);
    }
    Ok(f)
}

fn required(v: Option<String>, name: &str) -> Result<String, Problem> {
    v.filter(|s| !s.is_empty())
        .ok_or_else(|| bad(format!("the submission has no `{name}`")))
}

/// `POST {prefix}api/v1/submissions`.
async fn submit(
    State(app): State<AppState>,
    caller: Result<Caller, Problem>,
    req: Request,
) -> Result<Response, Problem> {
    let result = match caller {
        Ok(Caller(platform)) => take(&app, platform, req).await,
        Err(e) => Err(e),
    };
    if let Err(Problem(e)) = &result {
        app.metrics.rejected(e.reason());
    }
    result
}

async fn take(app: &AppState, platform: Platform, req: Request) -> Result<Response, Problem> {
    let header_key = req
        .headers()
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .map(|s| s.trim_matches('"').to_string())
                .map_err(|_| bad("the Idempotency-Key header is not text"))
        })
        .transpose()?;
    let f = read_fields(app, req).await?;
    let key = match (header_key, f.idempotency_key) {
        (Some(h), Some(b)) if h != b => {
            return Err(bad(
                "the Idempotency-Key header and the idempotency_key field differ; send one",
            ));
        }
        (h, b) => h.or(b),
    };
    if let Some(k) = &key
        && (k.is_empty() || k.len() > 255 || !k.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(bad(
            "an idempotency key is 1 to 255 printable ASCII characters without spaces",
        ));
    }
    let user = required(f.user, "user")?;
    super::valid_name("user id", &user).map_err(bad)?;
    let name = |kind: &'static str, v: Option<String>| -> Result<Name, Problem> {
        Name::parse(kind, &required(v, kind)?).map_err(|e| bad(e.to_string()))
    };
    let meta = NotebookMetadata {
        course: name("course", f.course)?,
        section: name("section", f.section)?,
        assignment: name("assignment", f.assignment)?,
    };
    // The grant is checked before the course config is, so a platform learns nothing of
    // courses it was not granted.
    if !platform.courses.iter().any(|c| c == meta.course.as_str()) {
        return Err(Problem(ApiError::Forbidden(format!(
            "platform {:?} is not granted course {:?}",
            platform.name,
            meta.course.as_str()
        ))));
    }
    let priority = match f.priority {
        None => platform
            .priorities
            .first()
            .cloned()
            .unwrap_or("normal".into()),
        Some(p) if platform.priorities.contains(&p) => p,
        Some(p) => {
            return Err(Problem(ApiError::Forbidden(format!(
                "platform {:?} may submit with priority {} only (asked: {:?})",
                platform.name,
                platform.priorities.join(" or "),
                p.chars().take(40).collect::<String>()
            ))));
        }
    };
    let class = super::priority_class(&priority)
        .ok_or_else(|| bad(format!("unknown priority class {priority:?}")))?;
    let notebook = f
        .notebook
        .ok_or_else(|| bad("the submission has no `notebook` (the .ipynb)"))?;
    let read = Submission::read_as(&notebook, meta.clone())
        .map_err(|e| bad(format!("`notebook`: {e}")))?;
    let assignment = app
        .courses
        .lookup(&meta)
        .map_err(|e| Problem(ApiError::Unprocessable(e.to_string())))?;
    if !assignment.autograder_zip.is_file() {
        return Err(Problem(ApiError::Unprocessable(format!(
            "assignment {:?} has no autograder on the server yet, so it cannot be graded \
             (nothing was stored)",
            meta.assignment.as_str()
        ))));
    }
    let new = NewSubmission {
        user: crate::users::platform_user(&platform.name, &user),
        course: meta.course.to_string(),
        section: meta.section.to_string(),
        assignment: meta.assignment.to_string(),
        notebook: read.notebook,
        notebook_path: None,
    };
    let ps = PlatformSubmission {
        platform: platform.name.clone(),
        platform_user: user.clone(),
        idempotency_key: key,
        priority: (priority, class),
    };
    let stored = notebooks::pack(&new.notebook);
    let taken = take_into_queue(
        app,
        move |c, rules| platforms::submit(c, &ps, &new, &stored, rules, now_ms()),
        |t| match t {
            Taken::Accepted(a) => Some(*a),
            Taken::Again(_) | Taken::KeyReused(_) => None,
        },
    )
    .await?;
    let (status, outcome) = match taken {
        Taken::Accepted(Accepted::New(id)) => {
            tracing::info!(submission_id = id, platform = %platform.name, %user,
                course = %meta.course, assignment = %meta.assignment, "platform submission accepted");
            (StatusCode::ACCEPTED, "queued")
        }
        Taken::Accepted(Accepted::Duplicate(_)) => (StatusCode::OK, "identical_waiting"),
        Taken::Again(_) => (StatusCode::OK, "idempotent_replay"),
        Taken::KeyReused(_) => {
            return Err(Problem(ApiError::Unprocessable(
                "this idempotency key was already used for a different submission (another \
                 notebook, user or assignment); use a new key for a new submission"
                    .into(),
            )));
        }
    };
    let v = read_view(app, &platform.name, taken.id()).await?;
    let mut body = serde_json::to_value(&v).map_err(|e| Problem(ApiError::Internal(e.into())))?;
    if let Some(o) = body.as_object_mut() {
        o.insert("outcome".into(), outcome.into());
    }
    let location = format!(
        "{}api/v1/submissions/{}",
        app.settings.server.prefix,
        taken.id()
    );
    let mut resp = (status, axum::Json(body)).into_response();
    if let Ok(loc) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(resp)
}

fn parse_id(id: &str) -> Result<i64, Problem> {
    id.parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or(Problem(ApiError::NotFound))
}

/// `GET {prefix}api/v1/submissions/{id}`.
async fn one(
    State(app): State<AppState>,
    Caller(platform): Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<SubmissionOut>, Problem> {
    let id = parse_id(&id)?;
    Ok(axum::Json(read_view(&app, &platform.name, id).await?))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<i64>,
}

/// `GET {prefix}api/v1/users/{user}/submissions?limit=N`: newest first (default 50, at
/// most 500).
async fn of_user(
    State(app): State<AppState>,
    Caller(platform): Caller,
    Path(user): Path<String>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<serde_json::Value>, Problem> {
    let Query(q) = query.map_err(|e| bad(format!("the query is malformed: {}", e.body_text())))?;
    super::valid_name("user id", &user).map_err(bad)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(bad("`limit` is from 1 to 500"));
    }
    let a = app.clone();
    let views = app
        .db
        .read(move |c| {
            let ids = platforms::of_user(c, &platform.name, &user, limit)?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(v) = view(c, &a, &platform.name, id)? {
                    out.push(v);
                }
            }
            Ok(out)
        })
        .await?;
    Ok(axum::Json(serde_json::json!({ "submissions": views })))
}

/// `POST {prefix}api/v1/submissions/{id}/cancel`: 200 with the cancelled submission; 409
/// if it is no longer waiting (being graded or ended).
async fn cancel(
    State(app): State<AppState>,
    Caller(platform): Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let id = parse_id(&id)?;
    let name = platform.name.clone();
    let done = app
        .db
        .write(move |c| {
            if platforms::owned(c, &name, id)?.is_none() {
                return Ok(None);
            }
            platforms::cancel(c, &name, id, now_ms()).map(Some)
        })
        .await?
        .ok_or(Problem(ApiError::NotFound))?;
    if let Cancel::TooLate(state) = done {
        let mut resp = Problem(ApiError::BadRequest(format!(
            "submission {id} is {state}, no longer waiting, so it cannot be cancelled"
        )))
        .into_response();
        *resp.status_mut() = StatusCode::CONFLICT;
        if let Some(body) = conflict_body(id, state) {
            *resp.body_mut() = body.into();
        }
        return Ok(resp);
    }
    let v = read_view(&app, &platform.name, id).await?;
    Ok((StatusCode::OK, axum::Json(v)).into_response())
}

/// The problem document of a 409 (the error type has no 409 of its own).
fn conflict_body(id: i64, state: SubmissionState) -> Option<String> {
    Some(
        serde_json::json!({
            "type": "about:blank",
            "title": "Conflict",
            "status": 409,
            "detail": format!(
                "submission {id} is {state}, no longer waiting, so it cannot be cancelled"
            ),
            "code": "not_waiting",
        })
        .to_string(),
    )
}
