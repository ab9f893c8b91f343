//! What students see: their submissions, as JSON or as a small HTML page.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};

use super::AppState;
use super::error::{ApiError, wants_json};
use crate::db::now_ms;
use crate::db::states::{PostState, SubmissionState};
use crate::db::submissions::{self, SubmissionView};
use crate::db::waiting::QueuePlace;
use crate::jupyterhub::HubUser;

/// Most submissions listed.
const LIST_LIMIT: i64 = 200;

/// `GET {prefix}` and `GET {prefix}submissions`: the caller's own submissions.
pub async fn list(
    State(app): State<AppState>,
    user: HubUser,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let name = user.name.clone();
    let workers = app.settings.grading.workers;
    let mut views = app
        .db
        .read({
            let policy = app.policy_for();
            move |c| {
                let mut views = submissions::list_for_user(c, &name, LIST_LIMIT, policy)?;
                submissions::add_queue_places(c, &mut views, now_ms(), workers)?;
                Ok(views)
            }
        })
        .await?;
    for v in &mut views {
        v.url = Some(submission_url(&app, &headers, v.id));
    }
    if wants_json(&headers) {
        return Ok(
            axum::Json(serde_json::json!({"user": user.name, "submissions": views}))
                .into_response(),
        );
    }
    let xsrf = app.auth.xsrf_token(&user.name);
    Ok(Html(list_page(
        &app.settings.server.prefix,
        &user.name,
        &views,
        &xsrf,
    ))
    .into_response())
}

/// `GET {prefix}submissions/{id}`: one submission, to its owner only (others get 404).
pub async fn detail(
    State(app): State<AppState>,
    user: HubUser,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id: i64 = id.parse().map_err(|_| ApiError::NotFound)?;
    let view = view_of(&app, &headers, id, &user.name).await?;
    if wants_json(&headers) {
        return Ok(axum::Json(view).into_response());
    }
    Ok(Html(detail_page(&app.settings.server.prefix, &view)).into_response())
}

/// Submission `id` as its owner `user` sees it, with its queue place and URL; anyone
/// else gets `NotFound`.
pub(super) async fn view_of(
    app: &AppState,
    headers: &HeaderMap,
    id: i64,
    user: &str,
) -> Result<SubmissionView, ApiError> {
    let name = user.to_string();
    let workers = app.settings.grading.workers;
    let mut view = app
        .db
        .read({
            let policy = app.policy_for();
            move |c| {
                let Some(mut v) = submissions::view_for_owner(c, id, &name, policy)? else {
                    return Ok(None);
                };
                submissions::add_queue_places(c, std::slice::from_mut(&mut v), now_ms(), workers)?;
                Ok(Some(v))
            }
        })
        .await?
        .ok_or(ApiError::NotFound)?;
    view.url = Some(submission_url(app, headers, id));
    Ok(view)
}

/// The page of submission `id`: under `server.public_url` when set, else under the URL
/// the request reached us at.
pub(super) fn submission_url(app: &AppState, headers: &HeaderMap, id: i64) -> String {
    let origin = match &app.settings.server.public_url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => origin(headers),
    };
    format!("{origin}{}submissions/{id}", app.settings.server.prefix)
}

/// The URL the client reached us at, without a path: from the proxy's `X-Forwarded-Proto`
/// and `X-Forwarded-Host` (JupyterHub's proxy sets them), else `Host`. Empty when the
/// request names no host (then links stay relative).
fn origin(headers: &HeaderMap) -> String {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let proto = match get("x-forwarded-proto") {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    let host = get("x-forwarded-host").or_else(|| get("host"));
    // A host header is attacker-chosen text: keep it only if it looks like a host[:port].
    match host {
        Some(h)
            if h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c)) =>
        {
            format!("{proto}://{h}")
        }
        _ => String::new(),
    }
}

/// Escape text for HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>body{{font-family:system-ui,sans-serif;max-width:50rem;margin:2rem auto;padding:0 1rem}}\
         table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #ddd;padding:.4rem;text-align:left}}\
         pre{{background:#f6f6f6;padding:1rem;overflow:auto;white-space:pre-wrap}}\
         .state{{font-weight:bold}}.failed,.dead{{color:#a00}}.graded{{color:#060}}</style></head><body>{body}</body></html>",
        esc(title)
    )
}

/// One line summary of where a submission stands.
fn summary(v: &SubmissionView) -> String {
    match (&v.grade, v.state) {
        (Some(g), SubmissionState::Graded) => format!("{} / {}", g.score, g.max_score),
        (_, SubmissionState::Queued) => "waiting to be graded".into(),
        (_, SubmissionState::Grading) => "being graded now".into(),
        (_, SubmissionState::Failed) => "could not be graded".into(),
        (_, SubmissionState::Dead) => "grading failed on our side".into(),
        (None, SubmissionState::Graded) => "graded".into(),
    }
}

/// Where a waiting submission stands, in words.
fn wait_sentence(q: &QueuePlace) -> String {
    let wait = match q.expected_wait_secs {
        Some(s) if s < 60.0 => format!(", about {} seconds", s.ceil().max(1.0)),
        Some(s) => format!(", about {} minutes", (s / 60.0).ceil()),
        None => String::new(),
    };
    match q.position {
        0 => format!("Being graded now{wait}."),
        1 => format!("Next in line{wait}."),
        n => format!("Number {n} in line{wait}."),
    }
}

fn list_page(prefix: &str, user: &str, views: &[SubmissionView], xsrf: &str) -> String {
    let rows: String = views
        .iter()
        .map(|v| {
            format!(
                "<tr><td><a href=\"{p}submissions/{id}\">{id}</a></td><td>{c} {s} {a}</td><td>{t}</td>\
                 <td class=\"state {st}\">{sum}</td></tr>",
                p = esc(prefix), id = v.id, c = esc(&v.course), s = esc(&v.section), a = esc(&v.assignment),
                t = esc(&v.received_at), st = v.state, sum = esc(&summary(v))
            )
        })
        .collect();
    let body = format!(
        "<h1>Your submissions</h1><p>Logged in as <b>{u}</b>.</p>\
         <table><thead><tr><th>#</th><th>Assignment</th><th>Received</th><th>Result</th></tr></thead>\
         <tbody>{rows}</tbody></table>\
         <h2>Submit a notebook</h2><form id=\"upload\" method=\"post\" enctype=\"multipart/form-data\" action=\"{p}\">\
         <input type=\"file\" name=\"notebook\" accept=\".ipynb\" required> <button type=\"submit\">Submit</button></form>\
         <p id=\"upload-result\"></p>\
         <script>document.getElementById('upload').addEventListener('submit',async e=>{{e.preventDefault();\
         const r=await fetch('{p}',{{method:'POST',body:new FormData(e.target),headers:{{'X-XSRFToken':'{x}'}}}});\
         document.getElementById('upload-result').textContent=await r.text();if(r.ok)setTimeout(()=>location.reload(),1500);}});</script>",
        u = esc(user),
        p = esc(prefix),
        x = esc(xsrf)
    );
    page("Your submissions", &body)
}

fn detail_page(prefix: &str, v: &SubmissionView) -> String {
    let mut body = format!(
        "<p><a href=\"{p}\">All submissions</a></p><h1>Submission {id}: {a}</h1>\
         <p>{c}, section {s}. Received {t}.</p><p class=\"state {st}\" id=\"state\">{sum}</p>",
        p = esc(prefix),
        id = v.id,
        a = esc(&v.assignment),
        c = esc(&v.course),
        s = esc(&v.section),
        t = esc(&v.received_at),
        st = v.state,
        sum = esc(&summary(v))
    );
    if let Some(q) = &v.queue {
        body += &format!("<p id=\"queue\">{}</p>", esc(&wait_sentence(q)));
    }
    if let Some(m) = &v.message {
        body += &format!("<p id=\"message\">{}</p>", esc(m));
    }
    if let Some(g) = &v.grade {
        let rows: String = g
            .questions
            .iter()
            .map(|q| {
                format!(
                    "<tr><td>{}</td><td>{} / {}</td></tr>",
                    esc(&q.name),
                    q.score,
                    q.max_score
                )
            })
            .collect();
        body += &format!(
            "<h2>Score: {} / {}</h2><table><tbody>{rows}</tbody></table>",
            g.score, g.max_score
        );
        if !g.public_feedback.is_empty() {
            body += &format!(
                "<h2>Public test results</h2><pre>{}</pre>",
                esc(&g.public_feedback)
            );
        }
        let post = match g.post_state {
            PostState::Posted => "Your score has reached edX.".to_string(),
            PostState::Pending => format!(
                "Sending your score to edX{}.",
                g.post_detail
                    .as_deref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            ),
            PostState::Dead => format!(
                "Your score could not be sent to edX: {}. Course staff can see this.",
                g.post_detail.as_deref().unwrap_or("unknown reason")
            ),
            PostState::Superseded => format!(
                "This score is not the one edX holds: {}.",
                g.post_detail
                    .as_deref()
                    .unwrap_or("another submission's score counts")
            ),
            PostState::NotConfigured => "This assignment's score is not sent to edX.".to_string(),
        };
        let counts = if g.counts {
            "This is the grade that counts for this assignment."
        } else {
            "Another of your submissions' grades counts for this assignment."
        };
        body += &format!("<p id=\"counts\">{counts}</p>");
        body += &format!("<p id=\"edx\">{}</p>", esc(&post));
    } else if matches!(v.state, SubmissionState::Queued | SubmissionState::Grading) {
        body += "<script>setTimeout(()=>location.reload(),3000)</script>";
    }
    page(&format!("Submission {}", v.id), &body)
}
