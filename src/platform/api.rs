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
use serde::{Deserialize, Serialize};

use crate::db::platforms::{self, Cancel, Owned, Platform, PlatformSubmission, Taken};
use crate::db::states::SubmissionState;
use crate::db::submissions::{self, Accepted, NewSubmission, QuestionScore};
use crate::db::waiting::QueuePlace;
use crate::db::{notebooks, now_ms};
use crate::http::error::ApiError;
use crate::http::{AppState, take_into_queue};
use crate::notebook::{Name, NotebookMetadata, Submission};
use crate::openapi::Documented;

/// The routes, documented (`crate::openapi`), under `prefix`.
pub fn documented(prefix: &str) -> Documented<AppState> {
    use utoipa_axum::routes;
    Documented::new(prefix)
        .routes(routes!(submit))
        .routes(routes!(one))
        .routes(routes!(cancel))
        .routes(routes!(of_user))
        // Any other path under the API's base is a problem document too.
        .alias(
            &format!("{prefix}api/v1/{{*rest}}"),
            axum::routing::any(not_found),
        )
}

/// The routes under `{prefix}api/v1/`, with their layers.
pub fn router(app: AppState) -> Router {
    let (routes, _, _) = documented(&app.settings.server.prefix).into_parts();
    routes
        // Our own limit (with its clear 413) applies; axum's default 2 MB must not cut in.
        .layer(axum::extract::DefaultBodyLimit::max(
            app.settings.server.max_body_bytes + 64 * 1024,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::http::refuse_oversize,
        ))
        .layer(axum::middleware::from_fn(problem_details))
        .layer(tower_http::trace::TraceLayer::new_for_http())
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
        let (parts, _) = self.0.into_response().into_parts();
        problem(parts, &detail, code)
    }
}

/// Errors made by the shared layers (the oversize check) as problem details too.
async fn problem_details(req: Request, next: axum::middleware::Next) -> Response {
    let resp = next.run(req).await;
    let Some(detail) = crate::http::message_of(&resp) else {
        return resp;
    };
    let (parts, _) = resp.into_parts();
    let code = reason_of(parts.status);
    problem(parts, &detail, code)
}

/// The refusal word of a status made by a shared layer.
fn reason_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::BAD_REQUEST => "bad_request",
        _ => "error",
    }
}

/// A problem details response from `parts` (status and headers kept).
fn problem(mut parts: axum::http::response::Parts, detail: &str, code: &str) -> Response {
    let body = ProblemBody {
        kind: "about:blank".into(),
        title: parts.status.canonical_reason().unwrap_or("Error").into(),
        status: parts.status.as_u16(),
        detail: detail.into(),
        code: code.into(),
    };
    let body = serde_json::to_string(&body).expect("a problem document serialises");
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
    // Not an ApiError's any more: no layer rewrites it again.
    parts.extensions.clear();
    Response::from_parts(parts, body.into())
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

/// An error: a problem details document (RFC 9457).
#[derive(Serialize, utoipa::ToSchema)]
pub struct ProblemBody {
    /// Always `about:blank`: `code` says which problem.
    #[serde(rename = "type")]
    pub kind: String,
    /// The status's reason phrase.
    pub title: String,
    pub status: u16,
    /// What was wrong, in a sentence.
    pub detail: String,
    /// A fixed word for the kind of refusal (`bad_request`, `unauthorized`, `forbidden`,
    /// `not_found`, `too_large`, `unprocessable`, `too_many_waiting`, `queue_full`,
    /// `not_waiting`, ...).
    pub code: String,
}

/// A submission (JSON; `notebook` is the .ipynb's JSON object).
#[derive(Deserialize, utoipa::ToSchema)]
#[allow(dead_code)] // documentation: the handler reads the fields one by one
pub struct SubmitJson {
    pub course: String,
    pub section: String,
    pub assignment: String,
    /// The platform's own id of the student: 1 to 64 letters, digits, `-`, `_`, `.`, `@`.
    pub user: String,
    /// The notebook (the .ipynb file's JSON).
    pub notebook: serde_json::Map<String, serde_json::Value>,
    /// A retry with the same key returns the same submission (also as the
    /// `Idempotency-Key` header).
    pub idempotency_key: Option<String>,
    /// One of the priority classes the platform was granted (default: its first).
    pub priority: Option<String>,
}

/// A submission (multipart: the same fields, the notebook as a file part).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documentation only
pub struct SubmitForm {
    pub course: String,
    pub section: String,
    pub assignment: String,
    pub user: String,
    #[schema(format = Binary, value_type = String)]
    pub notebook: Vec<u8>,
    pub idempotency_key: Option<String>,
    pub priority: Option<String>,
}

/// The answer to a submission: the submission and what became of the request.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Submitted {
    #[serde(flatten)]
    pub submission: SubmissionOut,
    /// `queued` (202), `identical_waiting` (an identical notebook of that user still
    /// waits: that one) or `idempotent_replay` (the key was used before: that one).
    pub outcome: String,
}

/// A user's submissions, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UserSubmissions {
    pub submissions: Vec<SubmissionOut>,
}

/// One question's score (no test output: it may hold hidden tests).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
    /// The late credit (percent of the raw score that counts), when the assignment has a
    /// course calendar (docs/calendar.md).
    pub credit: Option<f64>,
    /// How long after the due date it came (0: on time), when the assignment has one.
    pub late_secs: Option<i64>,
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
        credit: v.credit,
        late_secs: v.late_secs,
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
#[derive(Debug, Default)]
struct Fields {
    course: Option<String>,
    section: Option<String>,
    assignment: Option<String>,
    user: Option<String>,
    idempotency_key: Option<String>,
    priority: Option<String>,
    notebook: Option<Vec<u8>>,
}

/// A JSON submission as sent: the notebook is kept as the bytes it came as (checked and
/// stored without being parsed into values and written out again).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonBody<'a> {
    course: Option<String>,
    section: Option<String>,
    assignment: Option<String>,
    user: Option<String>,
    idempotency_key: Option<String>,
    priority: Option<String>,
    #[serde(borrow)]
    notebook: Option<&'a serde_json::value::RawValue>,
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
    let body: JsonBody<'_> = serde_json::from_slice(&bytes).map_err(|e| {
        bad(format!(
            "the submission's JSON: {e}; the fields are course, section, assignment, user, \
             notebook, idempotency_key and priority"
        ))
    })?;
    let raw = body
        .notebook
        .ok_or_else(|| bad("the submission has no `notebook` (the .ipynb's JSON)"))?
        .get();
    let notebook = match raw.as_bytes().first() {
        Some(b'{') => raw.as_bytes().to_vec(),
        // The notebook as a JSON string (the .ipynb file's text).
        Some(b'"') => serde_json::from_str::<String>(raw)
            .map_err(|e| bad(format!("`notebook`: {e}")))?
            .into_bytes(),
        _ => return Err(bad("`notebook` must be the notebook's JSON object")),
    };
    Ok(Fields {
        course: body.course,
        section: body.section,
        assignment: body.assignment,
        user: body.user,
        idempotency_key: body.idempotency_key,
        priority: body.priority,
        notebook: Some(notebook),
    })
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

/// Submit a notebook for one of the platform's users. The same validation, size limit,
/// per-user cap and fairness as the JupyterHub door.
#[utoipa::path(post, path = "/api/v1/submissions", tag = "platforms",
    security(("platform_token" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key returns the same submission")),
    request_body(content((SubmitJson = "application/json"), (SubmitForm = "multipart/form-data"))),
    responses(
        (status = 202, description = "Stored and queued", body = Submitted, headers(("location" = String))),
        (status = 200, description = "The key was used before for this submission, or an identical notebook of the user still waits: that submission",
            body = Submitted, headers(("location" = String))),
        (status = 400, description = "A field is missing or malformed, or the notebook is not one", content((ProblemBody = "application/problem+json"))),
        (status = 401, description = "No platform token, an unknown one, or a revoked one", content((ProblemBody = "application/problem+json"))),
        (status = 403, description = "A course or priority the platform was not granted", content((ProblemBody = "application/problem+json"))),
        (status = 413, description = "Larger than the service's upload limit", content((ProblemBody = "application/problem+json"))),
        (status = 422, description = "No such assignment, no autograder yet, or the key was used for another submission", content((ProblemBody = "application/problem+json"))),
        (status = 429, description = "The user already has the most submissions waiting that one may", headers(("retry-after" = u64)), content((ProblemBody = "application/problem+json"))),
        (status = 503, description = "The queue is full", headers(("retry-after" = u64)), content((ProblemBody = "application/problem+json"))),
    ))]
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
    let mut new = NewSubmission {
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
    // Packed here, off the writer; only the compressed copy waits for it.
    let stored = notebooks::pack(&std::mem::take(&mut new.notebook));
    // The same calendar as the JupyterHub door: one rule per assignment, whichever door.
    let (calendar, clock) = (assignment.calendar.clone(), app.clock.clone());
    let taken = take_into_queue(
        app,
        move |c, rules| {
            let judge =
                |c: &rusqlite::Connection| -> Result<submissions::Received, crate::db::DbError> {
                    let at = clock.now();
                    let lateness =
                        crate::calendar::admit(c, calendar.as_deref(), &new.student(), at)?;
                    Ok(submissions::Received { at, lateness })
                };
            platforms::submit(c, &ps, &new, &stored, rules, judge, crate::db::now_ms())
        },
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
    let body = Submitted {
        submission: v,
        outcome: outcome.into(),
    };
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

/// One of the platform's submissions: state, queue place, score, per-question results
/// and public feedback (hidden tests never).
#[utoipa::path(get, path = "/api/v1/submissions/{id}", tag = "platforms",
    security(("platform_token" = [])),
    params(("id" = String, Path, description = "The submission's number")),
    responses(
        (status = 200, description = "The submission", body = SubmissionOut),
        (status = 401, description = "No platform token, an unknown one, or a revoked one", content((ProblemBody = "application/problem+json"))),
        (status = 404, description = "Not one of the platform's submissions", content((ProblemBody = "application/problem+json"))),
    ))]
async fn one(
    State(app): State<AppState>,
    Caller(platform): Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<SubmissionOut>, Problem> {
    let id = parse_id(&id)?;
    Ok(axum::Json(read_view(&app, &platform.name, id).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// At most this many (1 to 500; default 50).
    limit: Option<i64>,
}

/// A user's submissions through this platform, newest first (default 50, at most 500).
#[utoipa::path(get, path = "/api/v1/users/{user}/submissions", tag = "platforms",
    security(("platform_token" = [])),
    params(("user" = String, Path, description = "The platform's own id of the user"), ListQuery),
    responses(
        (status = 200, description = "The submissions", body = UserSubmissions),
        (status = 400, description = "A malformed user id or limit", content((ProblemBody = "application/problem+json"))),
        (status = 401, description = "No platform token, an unknown one, or a revoked one", content((ProblemBody = "application/problem+json"))),
    ))]
async fn of_user(
    State(app): State<AppState>,
    Caller(platform): Caller,
    Path(user): Path<String>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<UserSubmissions>, Problem> {
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
    Ok(axum::Json(UserSubmissions { submissions: views }))
}

/// Cancel a submission that is still waiting: it ends `cancelled`, ungraded, without a
/// webhook.
#[utoipa::path(post, path = "/api/v1/submissions/{id}/cancel", tag = "platforms",
    security(("platform_token" = [])),
    params(("id" = String, Path, description = "The submission's number")),
    responses(
        (status = 200, description = "Cancelled", body = SubmissionOut),
        (status = 401, description = "No platform token, an unknown one, or a revoked one", content((ProblemBody = "application/problem+json"))),
        (status = 404, description = "Not one of the platform's submissions", content((ProblemBody = "application/problem+json"))),
        (status = 409, description = "No longer waiting (being graded, or ended)", content((ProblemBody = "application/problem+json"))),
    ))]
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
        let (parts, _) = StatusCode::CONFLICT.into_response().into_parts();
        let detail =
            format!("submission {id} is {state}, no longer waiting, so it cannot be cancelled");
        return Ok(problem(parts, &detail, "not_waiting"));
    }
    let v = read_view(&app, &platform.name, id).await?;
    Ok((StatusCode::OK, axum::Json(v)).into_response())
}
