//! The service's side of the host API: its own listener (`hosts.bind`), each request
//! authenticated by a host token, every refusal a 4xx with a sentence.
//!
//! A claim is an ordinary claim of the durable queue, in the same round-robin order as
//! the service's own workers, with the host's name on the job; the grade a host returns
//! is stored by the very code that stores a local grade ([`GradeJob::store_outcome`]),
//! and its failures go through the same attempt rules ([`worker::settle`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, Notify, watch};

use super::protocol::{
    self, Claim, Completion, Refusal, Release, ReleaseAnswer, Released, Renewed, Stored, Work,
};
use crate::course::CourseConfig;
use crate::db::hosts::{self, Host, Seen};
use crate::db::states::{HostState, JobKind};
use crate::db::{Db, jobs, now_ms, submissions};
use crate::grading::GradeOutcome;
use crate::jobs::checks::AssignmentNames;
use crate::jobs::grade::{GradeJob, Phases};
use crate::metrics::Metrics;
use crate::openapi::{Documented, Schemas};
use crate::queue::worker::{self, Attempt, Job};
use crate::settings::HostsSettings;

/// What the host API's handlers reach.
pub struct HostApi {
    pub db: Db,
    /// The grade job of the service: builds requests, stores grades, knows the attempt rules.
    pub grade: Arc<GradeJob>,
    pub courses: Arc<CourseConfig>,
    /// Woken when a grade job is queued (shared with the service's own workers).
    pub notify: Arc<Notify>,
    pub settings: HostsSettings,
    pub metrics: Arc<Metrics>,
    /// True once the service is stopping: long polls answer at once.
    pub stopping: watch::Receiver<bool>,
    /// Autograder zips by path: (size, modified, SHA-256), so a claim does not hash.
    zips: Mutex<HashMap<PathBuf, (u64, std::time::SystemTime, String)>>,
}

type Api = Arc<HostApi>;

impl HostApi {
    pub fn new(
        db: Db,
        grade: Arc<GradeJob>,
        notify: Arc<Notify>,
        settings: HostsSettings,
        metrics: Arc<Metrics>,
        stopping: watch::Receiver<bool>,
    ) -> Self {
        Self {
            db,
            courses: grade.courses.clone(),
            grade,
            notify,
            settings,
            metrics,
            stopping,
            zips: Mutex::new(HashMap::new()),
        }
    }

    /// The SHA-256 of the zip at `path`, hashed again only when it changed on disk.
    async fn zip_sha256(&self, path: &std::path::Path) -> std::io::Result<String> {
        let meta = tokio::fs::metadata(path).await?;
        let stamp = (meta.len(), meta.modified()?);
        let mut zips = self.zips.lock().await;
        if let Some((len, modified, sha)) = zips.get(path)
            && (*len, *modified) == stamp
        {
            return Ok(sha.clone());
        }
        let bytes = tokio::fs::read(path).await?;
        let sha = hex::encode(Sha256::digest(&bytes));
        zips.insert(path.to_path_buf(), (stamp.0, stamp.1, sha.clone()));
        Ok(sha)
    }
}

/// The host API's routes, documented (`crate::openapi`), at the server's root: each
/// handler's annotated path starts with [`protocol::PREFIX`]. Without layers or state, so
/// the document can be made without a service.
pub fn documented() -> Documented<Api> {
    use utoipa_axum::routes;
    Documented::new("")
        .routes(routes!(claim))
        .routes(routes!(heartbeat))
        .routes(routes!(complete))
        .routes(routes!(release))
        .routes(routes!(autograder))
}

/// The host API's router (every request authenticated, bodies limited to
/// `hosts.max_result_bytes`), and what documents it.
pub fn router(api: Api) -> (Router, utoipa::openapi::path::Paths, Schemas) {
    let limit = api.settings.max_result_bytes;
    let (routes, paths, schemas) = documented().into_parts();
    let router = routes
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            api.clone(),
            authenticate,
        ))
        .with_state(api);
    (router, paths, schemas)
}

/// A refusal (4xx) or our failure (5xx, logged, no details to the host).
#[derive(Debug)]
pub enum Refused {
    Status(StatusCode, String),
    Internal(String),
}

impl Refused {
    fn new(code: StatusCode, why: impl Into<String>) -> Self {
        Refused::Status(code, why.into())
    }
}

impl From<crate::db::DbError> for Refused {
    fn from(e: crate::db::DbError) -> Self {
        Refused::Internal(format!("database: {e}"))
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let (code, error) = match self {
            Refused::Status(code, why) => (code, why),
            Refused::Internal(e) => {
                tracing::error!(error = %e, "host API request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error of the service; try again".to_string(),
                )
            }
        };
        (code, axum::Json(Refusal { error })).into_response()
    }
}

/// Plain HTTP only from loopback (a TLS proxy on this machine) unless allowed; then the
/// bearer token, looked up by its hash. The host rides along in the request.
async fn authenticate(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    match who(&api, peer, request.headers()).await {
        Ok(host) => {
            request.extensions_mut().insert(host);
            next.run(request).await
        }
        Err(refused) => refused.into_response(),
    }
}

async fn who(api: &HostApi, peer: SocketAddr, headers: &HeaderMap) -> Result<Host, Refused> {
    if !peer.ip().is_loopback() && !api.settings.allow_plain_http {
        return Err(Refused::new(
            StatusCode::FORBIDDEN,
            "plain HTTP from another machine is refused: connect through the TLS proxy in \
             front of this port (docs/grader-hosts.md), or set hosts.allow_plain_http on a \
             private network",
        ));
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Refused::new(
                StatusCode::UNAUTHORIZED,
                "no host token: send Authorization: Bearer <token from `otter-service hosts add`>",
            )
        })?;
    let sha = hex::encode(Sha256::digest(token.as_bytes()));
    let host = api
        .db
        .read(move |c| hosts::by_token(c, &sha))
        .await?
        .ok_or_else(|| Refused::new(StatusCode::UNAUTHORIZED, "unknown host token"))?;
    if host.state == HostState::Revoked {
        return Err(Refused::new(
            StatusCode::FORBIDDEN,
            format!("host {} was revoked", host.name),
        ));
    }
    Ok(host)
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Refused> {
    serde_json::from_slice(body).map_err(|e| {
        Refused::new(
            StatusCode::BAD_REQUEST,
            format!("the request body is not what the host API expects: {e}"),
        )
    })
}

/// Claim a job: one within the long poll, else 204.
///
/// Answered within `wait_secs` (at most the service's `hosts.claim_wait_secs`, also the
/// default): at once when a job is queued for what this host offers (its tags and images).
#[utoipa::path(post, path = "/v1/claim", tag = "hosts",
    security(("host_token" = [])),
    request_body(content = Claim, content_type = "application/json",
        description = "The host's slots, version and images, and how long it will wait"),
    responses(
        (status = 200, description = "A job, leased to this host: renew the lease by heartbeat",
            body = Work, content_type = "application/json"),
        (status = 204, description = "No job within the wait (or the host is draining, or the service is stopping)"),
        (status = 400, description = "The body is not a claim, or slots are not 1 to 1024, or more than 1024 images",
            body = Refusal, content_type = "application/json"),
        (status = 401, description = "No host token, or an unknown one",
            body = Refusal, content_type = "application/json"),
        (status = 403, description = "The host was revoked, or plain HTTP from another machine than this one (hosts.allow_plain_http unset)",
            body = Refusal, content_type = "application/json"),
        (status = 413, description = "The body is larger than hosts.max_result_bytes",
            body = String, content_type = "text/plain"),
        (status = 500, description = "The service failed (no details); try again",
            body = Refusal, content_type = "application/json"),
    ))]
async fn claim(
    State(api): State<Api>,
    axum::Extension(host): axum::Extension<Host>,
    body: Bytes,
) -> Result<Response, Refused> {
    let claim: Claim = parse(&body)?;
    if claim.slots == 0 || claim.slots > 1024 || claim.images.len() > 1024 {
        return Err(Refused::new(
            StatusCode::BAD_REQUEST,
            "slots must be 1 to 1024, with at most 1024 images",
        ));
    }
    let seen = Seen {
        slots: claim.slots.into(),
        version: claim.version.chars().take(64).collect(),
        images: claim.images.clone(),
    };
    let wait = Duration::from_secs(
        claim
            .wait_secs
            .unwrap_or(api.settings.claim_wait_secs)
            .min(api.settings.claim_wait_secs),
    );
    let deadline = Instant::now() + wait;
    let mut stopping = api.stopping.clone();
    if host.state == HostState::Draining {
        let name = host.name.clone();
        api.db
            .write(move |c| hosts::seen(c, &name, &seen, now_ms()))
            .await?;
        // Nothing for it, after the whole poll: a drained host's slots would otherwise
        // ask again at once, in a loop.
        tokio::select! {
            _ = tokio::time::sleep_until(deadline.into()) => {}
            _ = stopping.changed() => {}
        }
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    // Recorded in the first look's write (one transaction per claim, not two).
    let mut seen = Some(seen);
    // What this host offers: its tags (given by staff) and the images it has; it is given
    // only jobs whose assignment needs no more.
    let offers: Vec<String> = host.tags.iter().chain(&claim.images).cloned().collect();
    let exclude = api
        .courses
        .excluded(|a| a.needs().iter().all(|n| offers.contains(n)));
    loop {
        // Register for a wake-up before looking, so a job queued in between is not missed.
        let notified = api.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(work) = take_one(&api, &host.name, &exclude, seen.take()).await? {
            return Ok(axum::Json(work).into_response());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || *stopping.borrow() {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        // Retries fall due and leases expire without a wake-up: look at least every second.
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(left.min(Duration::from_secs(1))) => {}
            _ = stopping.changed() => {}
        }
    }
}

/// Claim the next job for `host` and describe it; jobs that cannot be described (their
/// assignment left the course config, its zip is missing) are settled as the service's
/// own workers would and the next is tried.
async fn take_one(
    api: &Api,
    host: &str,
    exclude: &str,
    mut seen: Option<Seen>,
) -> Result<Option<Work>, Refused> {
    let lease_ms = (api.settings.lease_secs.max(3) * 1000) as i64;
    loop {
        let (h, grade, ex) = (host.to_string(), api.grade.clone(), exclude.to_string());
        let said = seen.take();
        let claimed = api
            .db
            .write(move |c| {
                let now = now_ms();
                if let Some(said) = &said {
                    hosts::seen(c, &h, said, now)?;
                }
                for dead in jobs::reap_exhausted(c, JobKind::Grade, now)? {
                    grade.on_failure(c, &dead, jobs::WORKER_STOPPED, true)?;
                }
                let Some(job) = hosts::claim(c, &h, now, lease_ms, &ex)? else {
                    return Ok(None);
                };
                let sub = submissions::to_grade(c, job.submission_id)?;
                Ok(Some((job, sub, now)))
            })
            .await?;
        let Some((job, sub, claimed_at)) = claimed else {
            return Ok(None);
        };
        let described = match api.grade.request_for(&job, claimed_at, sub) {
            Ok((request, names, _post)) => describe(api, &job, request, names).await,
            Err(attempt) => Err(attempt),
        };
        match described {
            Ok(work) => {
                tracing::info!(
                    host,
                    job_id = job.id,
                    submission_id = job.submission_id,
                    attempt = job.attempt,
                    "job given to a grader host"
                );
                return Ok(Some(work));
            }
            Err(attempt) => {
                worker::settle(&api.db, &api.grade, &api.metrics, &job, attempt).await;
            }
        }
    }
}

async fn describe(
    api: &Api,
    job: &jobs::ClaimedJob,
    request: crate::grading::GradeRequest,
    names: AssignmentNames,
) -> Result<Work, Attempt> {
    let sha256 = api.zip_sha256(&request.autograder_zip).await.map_err(|e| {
        Attempt::Retry(format!(
            "the autograder {} is missing on the server: {e}",
            request.autograder_zip.display()
        ))
    })?;
    Ok(Work {
        lease: job.claim.clone(),
        lease_secs: api.settings.lease_secs.max(3),
        job_id: job.id,
        submission_id: job.submission_id,
        attempt: job.attempt,
        notebook_base64: base64::engine::general_purpose::STANDARD.encode(&request.notebook),
        autograder: protocol::Autograder {
            sha256,
            course: names.course,
            section: names.section,
            assignment: names.assignment,
        },
        limits: (&request.limits).into(),
    })
}

/// Renew a lease: the job is still being graded.
///
/// Renew before `lease_secs` pass (every third of it); a 409 means stop grading the job.
/// Any request body is ignored.
#[utoipa::path(post, path = "/v1/leases/{lease}/heartbeat", tag = "hosts",
    security(("host_token" = [])),
    params(("lease" = String, Path, min_length = 1, description = "The lease of a claimed job (`Work.lease`)")),
    responses(
        (status = 200, description = "Renewed for `lease_secs` more seconds",
            body = Renewed, content_type = "application/json"),
        (status = 400, description = "The lease in the path is not valid percent-encoded UTF-8",
            body = String, content_type = "text/plain"),
        (status = 401, description = "No host token, or an unknown one",
            body = Refusal, content_type = "application/json"),
        (status = 403, description = "The host was revoked, or plain HTTP from another machine than this one (hosts.allow_plain_http unset)",
            body = Refusal, content_type = "application/json"),
        (status = 409, description = "The lease is not this host's any more (expired, taken over, revoked, or no such lease): stop grading",
            body = Refusal, content_type = "application/json"),
        (status = 500, description = "The service failed (no details); try again",
            body = Refusal, content_type = "application/json"),
    ))]
async fn heartbeat(
    State(api): State<Api>,
    axum::Extension(host): axum::Extension<Host>,
    Path(lease): Path<String>,
) -> Result<Response, Refused> {
    let lease_secs = api.settings.lease_secs.max(3);
    let name = host.name.clone();
    let renewed = api
        .db
        .write(move |c| {
            let now = now_ms();
            hosts::renew(c, &name, &lease, now, now + lease_secs as i64 * 1000)
        })
        .await?;
    if !renewed {
        return Err(lost());
    }
    Ok(axum::Json(Renewed { lease_secs }).into_response())
}

fn lost() -> Refused {
    Refused::new(
        StatusCode::CONFLICT,
        "this lease is not yours any more (it expired, was taken over, or your host was \
         revoked): stop grading it; its result would be refused",
    )
}

/// The job `host` holds under `lease`, or `None` if it already ended it (a repeat, answered
/// 200 with [`Stored::REPEAT`]), else 409.
async fn held_or_repeat(
    api: &Api,
    host: &str,
    lease: &str,
) -> Result<Option<jobs::ClaimedJob>, Refused> {
    let (h, l) = (host.to_string(), lease.to_string());
    let found = api
        .db
        .read(move |c| {
            let held = hosts::held(c, &h, &l, now_ms())?;
            let ended = held.is_none() && hosts::ended(c, &h, &l)?;
            Ok((held, ended))
        })
        .await?;
    match found {
        (Some(job), _) => Ok(Some(job)),
        (None, true) => Ok(None),
        (None, false) => Err(lost()),
    }
}

/// Return how a job ended: its grade, or a failure of the host's side.
///
/// A repeated completion of an ended lease (its answer was lost) is answered as before and
/// changes nothing.
#[utoipa::path(post, path = "/v1/leases/{lease}/complete", tag = "hosts",
    security(("host_token" = [])),
    params(("lease" = String, Path, min_length = 1, description = "The lease of a claimed job (`Work.lease`)")),
    request_body(content = Completion, content_type = "application/json",
        description = "The outcome (`graded`), or why there is none (`retry`, `fatal`)"),
    responses(
        (status = 200, description = "Taken: the grade stored (`stored`: true), a retry or fatal failure settled (`stored`: false), or a repeat (`repeat`: true)",
            body = Stored, content_type = "application/json"),
        (status = 400, description = "The body is not a completion (JSON), or the lease in the path is not valid percent-encoded UTF-8 (text)",
            content((Refusal = "application/json"), (String = "text/plain"))),
        (status = 401, description = "No host token, or an unknown one",
            body = Refusal, content_type = "application/json"),
        (status = 403, description = "The host was revoked, or plain HTTP from another machine than this one (hosts.allow_plain_http unset)",
            body = Refusal, content_type = "application/json"),
        (status = 409, description = "The lease is not this host's any more (expired, taken over, revoked, or no such lease): nothing stored",
            body = Refusal, content_type = "application/json"),
        (status = 413, description = "The body is larger than hosts.max_result_bytes",
            body = String, content_type = "text/plain"),
        (status = 422, description = "A score of the grade is not a finite non-negative number: nothing stored",
            body = Refusal, content_type = "application/json"),
        (status = 500, description = "The service failed (no details); try again",
            body = Refusal, content_type = "application/json"),
    ))]
async fn complete(
    State(api): State<Api>,
    axum::Extension(host): axum::Extension<Host>,
    Path(lease): Path<String>,
    body: Bytes,
) -> Result<Response, Refused> {
    let completion: Completion = parse(&body)?;
    let Some(job) = held_or_repeat(&api, &host.name, &lease).await? else {
        return Ok(axum::Json(Stored::REPEAT).into_response());
    };
    let not_stored = Stored {
        stored: false,
        repeat: false,
    };
    let (outcome, ready_after, finished_after) = match completion {
        Completion::Retry { reason } => {
            let attempt = Attempt::Retry(format!("on host {}: {}", host.name, cap(&reason)));
            worker::settle(&api.db, &api.grade, &api.metrics, &job, attempt).await;
            return Ok(axum::Json(not_stored).into_response());
        }
        Completion::Fatal { reason } => {
            let attempt = Attempt::Fatal(format!("on host {}: {}", host.name, cap(&reason)));
            worker::settle(&api.db, &api.grade, &api.metrics, &job, attempt).await;
            return Ok(axum::Json(not_stored).into_response());
        }
        Completion::Graded {
            outcome,
            sandbox_ready_after_ms,
            finished_after_ms,
        } => (outcome, sandbox_ready_after_ms, finished_after_ms),
    };
    check_outcome(&outcome).map_err(|e| Refused::new(StatusCode::UNPROCESSABLE_ENTITY, e))?;
    let sub = job.submission_id;
    let (course, section, assignment, user) =
        api.db.read(move |c| hosts::assignment_of(c, sub)).await?;
    let names = AssignmentNames {
        course,
        section,
        assignment,
    };
    // The phases on the service's clock: the host's are only durations since it got the job.
    let now = now_ms();
    let claimed = now - finished_after.min(86_400_000) as i64;
    let phases = Phases {
        claimed,
        container_started: ready_after
            .filter(|r| *r <= finished_after)
            .map(|r| claimed + r as i64),
        grading_finished: now,
    };
    // XQueue carries its learners' scores; only Hub users' are posted over LTI.
    let post = api.grade.posts(&names) && crate::users::is_hub_user(&user);
    match api.grade.store_outcome(&job, outcome, post, phases).await {
        Ok(true) => {
            tracing::info!(host = %host.name, job_id = job.id, submission_id = job.submission_id,
                "grade from a grader host stored");
            Ok(axum::Json(Stored {
                stored: true,
                repeat: false,
            })
            .into_response())
        }
        Ok(false) => Err(lost()),
        Err(e) => Err(Refused::Internal(e)),
    }
}

/// A host's reason, kept short in the job's last error.
fn cap(reason: &str) -> String {
    reason.chars().take(2_000).collect()
}

/// What a grade from a host must be before it is stored: finite, non-negative scores.
fn check_outcome(outcome: &GradeOutcome) -> Result<(), String> {
    let GradeOutcome::Graded(r) = outcome else {
        return Ok(());
    };
    let sane = |x: f64| x.is_finite() && x >= 0.0;
    if !sane(r.score) || !sane(r.max_score) {
        return Err(format!(
            "the grade's score {} / {} is not a finite non-negative number",
            r.score, r.max_score
        ));
    }
    if let Some(t) = r
        .tests
        .iter()
        .find(|t| !sane(t.score) || !sane(t.max_score))
    {
        return Err(format!("test {:?} has an invalid score", t.name));
    }
    Ok(())
}

/// Give a job back without a result (the host is stopping): back to the queue at once.
///
/// The attempt counts as the service's, not the student's. A repeat of a release or
/// completion of the same lease is answered as a repeated completion is.
#[utoipa::path(post, path = "/v1/leases/{lease}/release", tag = "hosts",
    security(("host_token" = [])),
    params(("lease" = String, Path, min_length = 1, description = "The lease of a claimed job (`Work.lease`)")),
    request_body(content = Release, content_type = "application/json",
        description = "Why the job is given back"),
    responses(
        (status = 200, description = "Released (`released`: true), or a repeat (`stored` and `repeat`: true)",
            body = ReleaseAnswer, content_type = "application/json"),
        (status = 400, description = "The body is not a release (JSON), or the lease in the path is not valid percent-encoded UTF-8 (text)",
            content((Refusal = "application/json"), (String = "text/plain"))),
        (status = 401, description = "No host token, or an unknown one",
            body = Refusal, content_type = "application/json"),
        (status = 403, description = "The host was revoked, or plain HTTP from another machine than this one (hosts.allow_plain_http unset)",
            body = Refusal, content_type = "application/json"),
        (status = 409, description = "The lease is not this host's any more (expired, taken over, revoked, or no such lease)",
            body = Refusal, content_type = "application/json"),
        (status = 413, description = "The body is larger than hosts.max_result_bytes",
            body = String, content_type = "text/plain"),
        (status = 500, description = "The service failed (no details); try again",
            body = Refusal, content_type = "application/json"),
    ))]
async fn release(
    State(api): State<Api>,
    axum::Extension(host): axum::Extension<Host>,
    Path(lease): Path<String>,
    body: Bytes,
) -> Result<Response, Refused> {
    let release: Release = parse(&body)?;
    let Some(job) = held_or_repeat(&api, &host.name, &lease).await? else {
        return Ok(axum::Json(ReleaseAnswer::Repeat(Stored::REPEAT)).into_response());
    };
    let reason = format!(
        "host {} gave the job back: {}",
        host.name,
        cap(&release.reason)
    );
    let grade = api.grade.clone();
    api.db
        .write(move |c| {
            let out = jobs::fail_with_backoff(c, &job, &reason, 0, false, now_ms())?;
            if out != jobs::FailOutcome::Stale {
                grade.on_failure(c, &job, &reason, out == jobs::FailOutcome::Dead)?;
            }
            Ok(())
        })
        .await?;
    api.notify.notify_one();
    let released = ReleaseAnswer::Released(Released { released: true });
    Ok(axum::Json(released).into_response())
}

/// Fetch an autograder zip by its SHA-256 (`Work.autograder.sha256`).
///
/// The zip of an assignment of the course config with that hash. A zip changed on disk
/// between hashing and reading is sent as it is now: check its hash, and ask again.
#[utoipa::path(get, path = "/v1/autograders/{sha256}", tag = "hosts",
    security(("host_token" = [])),
    params(("sha256" = String, Path, pattern = "^[0-9a-fA-F]{64}$",
        description = "The SHA-256 of the zip, 64 hex digits")),
    responses(
        (status = 200, description = "The autograder zip", content(("application/zip"))),
        (status = 400, description = "Not 64 hex digits (JSON), or not valid percent-encoded UTF-8 (text)",
            content((Refusal = "application/json"), (String = "text/plain"))),
        (status = 401, description = "No host token, or an unknown one",
            body = Refusal, content_type = "application/json"),
        (status = 403, description = "The host was revoked, or plain HTTP from another machine than this one (hosts.allow_plain_http unset)",
            body = Refusal, content_type = "application/json"),
        (status = 404, description = "No assignment of the course config has an autograder with this hash",
            body = Refusal, content_type = "application/json"),
        (status = 500, description = "The service failed (no details); try again",
            body = Refusal, content_type = "application/json"),
    ))]
async fn autograder(
    State(api): State<Api>,
    Path(sha256): Path<String>,
) -> Result<Response, Refused> {
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Refused::new(
            StatusCode::BAD_REQUEST,
            "an autograder is named by the SHA-256 of its zip (64 hex digits)",
        ));
    }
    for (_, _, _, details) in api.courses.assignments() {
        let path = &details.autograder_zip;
        if api.zip_sha256(path).await.ok().as_deref() == Some(sha256.as_str()) {
            let bytes = tokio::fs::read(path)
                .await
                .map_err(|e| Refused::Internal(format!("reading {}: {e}", path.display())))?;
            // Changed between the hash and the read: the host checks the hash and asks again.
            return Ok(([(header::CONTENT_TYPE, "application/zip")], bytes).into_response());
        }
    }
    Err(Refused::new(
        StatusCode::NOT_FOUND,
        "no assignment of the course config has an autograder with this hash",
    ))
}

#[cfg(test)]
mod tests {
    use super::protocol::PREFIX;

    #[test]
    fn the_documented_paths_are_the_protocols() {
        let (_, paths, _) = super::documented().into_parts();
        let mut got: Vec<String> = paths.paths.keys().cloned().collect();
        got.sort();
        let mut want: Vec<String> = [
            "/claim",
            "/leases/{lease}/heartbeat",
            "/leases/{lease}/complete",
            "/leases/{lease}/release",
            "/autograders/{sha256}",
        ]
        .iter()
        .map(|p| format!("{PREFIX}{p}"))
        .collect();
        want.sort();
        assert_eq!(got, want);
    }
}
