//! What students see: their submissions, as JSON or as HTML pages (maud templates, which
//! escape every value).

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::AppState;
use super::error::{ApiError, ErrorBody, wants_json};
use crate::db::now_ms;
use crate::db::states::{PostState, SubmissionState};
use crate::db::submissions::{self, GradeView, SubmissionView};
use crate::db::waiting::QueuePlace;
use crate::jupyterhub::HubUser;

/// Most submissions listed.
const LIST_LIMIT: i64 = 200;

/// The caller's own submissions (newest first), as JSON or as a page.
#[utoipa::path(get, path = "/", tag = "students",
    security(("hub_token" = []), ("hub_session" = [])),
    responses(
        (status = 200, description = "The caller's submissions: JSON when asked for, else the page",
            content((SubmissionList = "application/json"), (String = "text/html"))),
        (status = 303, description = "A browser without a session is sent to JupyterHub to log in",
            headers(("location" = String))),
        (status = 401, description = "No JupyterHub token or session", content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 403, description = "The token is not known, lacks the access scope, or the name is reserved", content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 503, description = "JupyterHub could not be asked who the caller is", content((String = "text/plain"), (ErrorBody = "application/json"))),
    ))]
pub async fn list(
    State(app): State<AppState>,
    user: HubUser,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let name = user.name.clone();
    let workers = app.settings.grading.workers;
    let waiting = app.db.waiting();
    let mut views = app
        .db
        .read({
            let policy = app.policy_for();
            let (courses, now) = (app.courses.clone(), app.clock.now());
            move |c| {
                let mut views = submissions::list_for_user(c, &name, LIST_LIMIT, policy)?;
                submissions::add_queue_places(c, &mut views, now_ms(), workers, &waiting)?;
                crate::calendar::views::apply(c, calendar_of(&courses), now, &mut views, false)?;
                Ok(views)
            }
        })
        .await?;
    for v in &mut views {
        for_student(&app, &headers, v);
    }
    if wants_json(&headers) {
        return Ok(axum::Json(SubmissionList {
            user: user.name,
            submissions: views,
        })
        .into_response());
    }
    let xsrf = app.auth.xsrf_token(&user.name);
    Ok(Html(list_page(&nav(&app, &user.name), &views, &xsrf)).into_response())
}

/// The caller's own submissions, as `GET {prefix}` gives them.
#[utoipa::path(get, path = "/submissions", tag = "students",
    security(("hub_token" = []), ("hub_session" = [])),
    responses(
        (status = 200, description = "The caller's submissions: JSON when asked for, else the page",
            content((SubmissionList = "application/json"), (String = "text/html"))),
        (status = 303, description = "A browser without a session is sent to JupyterHub to log in",
            headers(("location" = String))),
        (status = 401, description = "No JupyterHub token or session", content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 403, description = "The token is not known, lacks the access scope, or the name is reserved", content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 503, description = "JupyterHub could not be asked who the caller is", content((String = "text/plain"), (ErrorBody = "application/json"))),
    ))]
pub async fn list_submissions(
    state: State<AppState>,
    user: HubUser,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    list(state, user, headers).await
}

/// The caller's submissions as JSON.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct SubmissionList {
    pub user: String,
    pub submissions: Vec<SubmissionView>,
}

/// One submission, to its owner only (anyone else gets 404, as if it did not exist).
#[utoipa::path(get, path = "/submissions/{id}", tag = "students",
    security(("hub_token" = []), ("hub_session" = [])),
    params(("id" = String, Path, description = "The submission's number")),
    responses(
        (status = 200, description = "The submission: JSON when asked for, else its page",
            content((SubmissionView = "application/json"), (String = "text/html"))),
        (status = 303, description = "A browser without a session is sent to JupyterHub to log in",
            headers(("location" = String))),
        (status = 401, description = "No JupyterHub token or session", content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 403, description = "The token is not known, lacks the access scope, or the name is reserved", content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 404, description = "No such submission of the caller's", content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 503, description = "JupyterHub could not be asked who the caller is", content((String = "text/plain"), (ErrorBody = "application/json"))),
    ))]
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
    // LTI 1.3 platforms are not only edX: name the gradebook, not a vendor.
    let lms = match app
        .courses
        .find(&view.course, &view.section, &view.assignment)
        .ok()
        .and_then(|a| a.passback())
    {
        Some(crate::course::Passback::Ags) => "your course's gradebook",
        _ => "edX",
    };
    Ok(Html(detail_page(&nav(&app, &user.name), &view, lms)).into_response())
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
    let waiting = app.db.waiting();
    let mut view = app
        .db
        .read({
            let policy = app.policy_for();
            let (courses, now) = (app.courses.clone(), app.clock.now());
            move |c| {
                let Some(mut v) = submissions::view_for_owner(c, id, &name, policy)? else {
                    return Ok(None);
                };
                let one = std::slice::from_mut(&mut v);
                submissions::add_queue_places(c, one, now_ms(), workers, &waiting)?;
                crate::calendar::views::apply(c, calendar_of(&courses), now, one, true)?;
                Ok(Some(v))
            }
        })
        .await?
        .ok_or(ApiError::NotFound)?;
    for_student(app, headers, &mut view);
    Ok(view)
}

/// An assignment's calendar, by its names.
fn calendar_of(
    courses: &crate::course::CourseConfig,
) -> impl Fn(&str, &str, &str) -> Option<std::sync::Arc<crate::calendar::Calendar>> + '_ {
    |c, s, a| courses.find(c, s, a).ok().and_then(|a| a.calendar.clone())
}

/// The last touches on a view before its owner sees it: its URL, and feedback without
/// the grading machine's paths.
fn for_student(app: &AppState, headers: &HeaderMap, v: &mut SubmissionView) {
    v.url = Some(submission_url(app, headers, v.id));
    if let Some(g) = &mut v.grade {
        g.public_feedback = readable_feedback(&g.public_feedback);
    }
}

pub(super) fn nav<'a>(app: &'a AppState, user: &'a str) -> Nav<'a> {
    Nav {
        prefix: &app.settings.server.prefix,
        hub_prefix: &app.settings.hub.browser_hub_prefix,
        user,
    }
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

/// The frame of every page: a header like JupyterHub's (back to the Hub, this service,
/// who is logged in, log out), then `body`. Times in `<time>` are shown in the reader's
/// own time zone by the one small script; without it they read as UTC.
pub(super) fn layout(nav: &Nav<'_>, title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header.hub {
                    a.brand href={ (nav.hub_prefix) "home" } { "JupyterHub" }
                    a href=(nav.prefix) { "Grading" }
                    span.spacer {}
                    span.user { (nav.user) }
                    a.logout href={ (nav.prefix) "logout" } { "Logout" }
                }
                main { (body) }
                script { (PreEscaped(LOCAL_TIMES)) }
            }
        }
    }
    .into_string()
}

/// Where the header's links go, and who is logged in.
pub(super) struct Nav<'a> {
    pub prefix: &'a str,
    pub hub_prefix: &'a str,
    pub user: &'a str,
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#222}\
header.hub{display:flex;gap:1.2rem;align-items:center;padding:.6rem 1.2rem;border-bottom:1px solid #e7e7e7;background:#f8f8f8}\
header.hub a{color:#333;text-decoration:none}header.hub a:hover{text-decoration:underline}\
header.hub .brand{font-weight:600;color:#f37726}header.hub .spacer{flex:1}header.hub .user{color:#555}\
main{max-width:52rem;margin:1.5rem auto;padding:0 1rem}\
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.4rem;text-align:left}\
pre{background:#f6f6f6;padding:1rem;overflow:auto;white-space:pre-wrap}\
.state{font-weight:600}.failed,.dead{color:#a00}\
.score-full{color:#1a7f37}.score-partial{color:#b35900}.score-zero{color:#a00}\
td.n{text-align:right}figure.chart{margin:0}figure.chart svg{max-width:100%;height:auto}\
form.action{display:inline-block;margin:.3rem .5rem .3rem 0}.note{color:#555}";

/// `<time datetime>` in the reader's time zone.
const LOCAL_TIMES: &str = "for(const t of document.querySelectorAll('time[datetime]')){\
const d=new Date(t.getAttribute('datetime'));if(!isNaN(d))t.textContent=d.toLocaleString();}";

/// An RFC 3339 time as `<time>`, readable without the script too.
pub(super) fn time(rfc3339: &str) -> Markup {
    let readable = match rfc3339.split_once('T') {
        Some((day, rest)) => format!("{day} {} UTC", rest.get(..5).unwrap_or(rest)),
        None => rfc3339.to_string(),
    };
    html! { time datetime=(rfc3339) { (readable) } }
}

/// A score coloured by how it went.
pub(super) fn score(score: f64, max: f64) -> Markup {
    let class = if max > 0.0 && score >= max {
        "score-full"
    } else if score > 0.0 {
        "score-partial"
    } else {
        "score-zero"
    };
    html! { span class=(class) { (score) " / " (max) } }
}

/// A submission's lateness in words: "on time", "late by 2 hours: 80% credit"; empty
/// when the assignment has no calendar.
pub(super) fn lateness(v: &SubmissionView) -> String {
    match (v.credit, v.late_secs) {
        (Some(c), Some(0)) if c >= 100.0 => "on time".into(),
        (Some(c), Some(late)) => format!(
            "late by {}: {c}% credit",
            crate::calendar::span(late * 1000)
        ),
        _ => String::new(),
    }
}

/// One line on where a submission stands (the score itself for a graded one).
fn summary(v: &SubmissionView) -> Markup {
    match (&v.grade, v.state) {
        (Some(g), SubmissionState::Graded) => score(g.score, g.max_score),
        (_, SubmissionState::Queued) => html! { "waiting to be graded" },
        (_, SubmissionState::Grading) => html! { "being graded now" },
        (_, SubmissionState::Failed) => html! { "could not be graded" },
        (_, SubmissionState::Dead) => html! { "grading failed on our side" },
        (_, SubmissionState::Cancelled) => html! { "cancelled before grading" },
        (None, SubmissionState::Graded) if v.results_held => html! { "graded; results held" },
        (None, SubmissionState::Graded) => html! { "graded" },
    }
}

fn list_page(nav: &Nav<'_>, views: &[SubmissionView], xsrf: &str) -> String {
    let p = nav.prefix;
    // The upload form posts with the page's XSRF token; the result is shown, then the
    // list reloads.
    let upload = format!(
        "document.getElementById('upload').addEventListener('submit',async e=>{{e.preventDefault();\
         const r=await fetch({p},{{method:'POST',body:new FormData(e.target),headers:{{'X-XSRFToken':{x}}}}});\
         document.getElementById('upload-result').textContent=await r.text();if(r.ok)setTimeout(()=>location.reload(),1500);}});",
        p = serde_json::Value::from(p),
        x = serde_json::Value::from(xsrf),
    );
    let body = html! {
        h1 { "Your submissions" }
        p { "Logged in as " b { (nav.user) } "." }
        table {
            thead { tr { th { "#" } th { "Assignment" } th { "Received" } th { "Result" } th { "Credit" } } }
            tbody {
                @for v in views {
                    tr {
                        td { a href={ (p) "submissions/" (v.id) } { (v.id) } }
                        td { (v.course) " " (v.section) " " (v.assignment) }
                        td { (time(&v.received_at)) }
                        td class={ "state " (v.state) } { (summary(v)) }
                        td.credit { (lateness(v)) }
                    }
                }
            }
        }
        h2 { "Submit a notebook" }
        form #upload method="post" enctype="multipart/form-data" action=(p) {
            input type="file" name="notebook" accept=".ipynb" required;
            " "
            button type="submit" { "Submit" }
        }
        p #upload-result {}
        script { (PreEscaped(upload.replace("</", "<\\/"))) }
    };
    layout(nav, "Your submissions", body)
}

/// What the LMS (`lms`: edX, or an LTI 1.3 course's gradebook) holds of a grade, in words.
fn edx_sentence(g: &GradeView, lms: &str) -> String {
    match g.post_state {
        PostState::Posted => format!("Your score has reached {lms}."),
        PostState::Pending => format!(
            "Sending your score to {lms}{}.",
            g.post_detail
                .as_deref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        ),
        PostState::Dead => format!(
            "Your score could not be sent to {lms}: {}. Course staff can see this.",
            g.post_detail.as_deref().unwrap_or("unknown reason")
        ),
        PostState::Superseded => format!(
            "This score is not the one {lms} holds: {}.",
            g.post_detail
                .as_deref()
                .unwrap_or("another submission's score counts")
        ),
        PostState::NotConfigured => format!("This assignment's score is not sent to {lms}."),
        PostState::Held => {
            format!("Your score is sent to {lms} when course staff release results.")
        }
    }
}

fn detail_page(nav: &Nav<'_>, v: &SubmissionView, lms: &str) -> String {
    let waiting = matches!(v.state, SubmissionState::Queued | SubmissionState::Grading);
    let body = html! {
        p { a href=(nav.prefix) { "All submissions" } }
        h1 { "Submission " (v.id) ": " (v.assignment) }
        p { (v.course) ", section " (v.section) ". Received " (time(&v.received_at)) "." }
        @if let Some(d) = &v.due { p #due { (d.sentence) } }
        @let late = lateness(v);
        @if !late.is_empty() { p #lateness { "This submission came " (late) "." } }
        @if let Some(g) = &v.grade {
            h2 #score { "Score: " (score(g.score, g.max_score)) }
            @if let Some(c) = v.credit.filter(|c| *c < 100.0) {
                p #credited { "With " (c) "% credit, " (score(g.score * c / 100.0, g.max_score)) " counts." }
            }
            @if let Some(m) = &g.message { p #message { (m) } }
            table.questions {
                tbody {
                    @for q in &g.questions {
                        tr { td { (q.name) } td { (score(q.score, q.max_score)) } }
                    }
                }
            }
            @if !g.public_feedback.is_empty() {
                h2 { "Public test results" }
                pre #feedback { (g.public_feedback) }
            }
            p #counts {
                @if g.counts { "This is the grade that counts for this assignment." }
                @else { "Another of your submissions' grades counts for this assignment." }
            }
            p #edx { (edx_sentence(g, lms)) }
        } @else {
            p #state class={ "state " (v.state) } { (summary(v)) }
            @if let Some(q) = &v.queue { p #queue { (wait_sentence(q)) } }
            @if let Some(m) = &v.message { p #message { (m) } }
        }
        @if waiting { script { (PreEscaped("setTimeout(()=>location.reload(),3000)")) } }
    };
    layout(nav, &format!("Submission {}", v.id), body)
}

/// Public feedback as a student reads it: each traceback folded to the exception it ends
/// with (the frames are the grader's internals), and no paths of the grading machine.
pub fn readable_feedback(text: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let mut folding: Option<usize> = None;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        if let Some(at) = folding {
            if indent > at || line.trim().is_empty() {
                continue;
            }
            folding = None;
        }
        if line
            .trim_start()
            .starts_with("Traceback (most recent call last):")
        {
            folding = Some(indent);
            continue;
        }
        out.push(line);
    }
    without_paths(&out.join("\n"))
}

/// Feedback without the grading machine's paths: `/tmp/x/y/file.py` reads `file.py`.
fn without_paths(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('/') {
        let (before, from) = rest.split_at(i);
        out.push_str(before);
        let starts_word = before
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || "\"'(<[=:".contains(c));
        let end = from
            .find(|c: char| c.is_whitespace() || "\"'),>]:".contains(c))
            .unwrap_or(from.len());
        let path = &from[..end];
        if starts_word && path.matches('/').count() >= 2 && !path.starts_with("//") {
            out.push_str(path.rsplit('/').next().unwrap_or(path));
        } else {
            out.push_str(path);
        }
        rest = &from[end..];
        if end == 0 {
            // A lone '/' followed by a stop character.
            out.push('/');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feedback_names_files_not_the_grading_machines_paths() {
        let tb = "File \"/tmp/tmpab12/submission.py\", line 3, in <module>\n  \
                  /usr/lib/python3.11/doctest.py:1501: note\n\
                  q1 results: 2/3 passed (ratio 1/2) see /home";
        assert_eq!(
            without_paths(tb),
            "File \"submission.py\", line 3, in <module>\n  doctest.py:1501: note\n\
             q1 results: 2/3 passed (ratio 1/2) see /home"
        );
        assert_eq!(without_paths("a / b // c"), "a / b // c");
    }

    #[test]
    fn a_traceback_reads_as_the_exception_it_ends_with() {
        let fb = "q2 results:\n    Failed example:\n        assert square(3) == 9\n    \
                  Exception raised:\n        Traceback (most recent call last):\n          \
                  File \"/usr/lib/python3.11/doctest.py\", line 1353, in __run\n            \
                  exec(compile(example.source))\n        AssertionError\n\nq3 results: ok";
        assert_eq!(
            readable_feedback(fb),
            "q2 results:\n    Failed example:\n        assert square(3) == 9\n    \
             Exception raised:\n        AssertionError\n\nq3 results: ok"
        );
    }

    #[test]
    fn scores_are_coloured_by_how_they_went() {
        assert!(score(5.0, 5.0).into_string().contains("score-full"));
        assert!(score(3.0, 5.0).into_string().contains("score-partial"));
        assert!(score(0.0, 5.0).into_string().contains("score-zero"));
    }

    #[test]
    fn times_read_as_utc_before_the_script_makes_them_local() {
        let t = time("2026-11-24T13:40:05.123Z").into_string();
        assert_eq!(
            t,
            "<time datetime=\"2026-11-24T13:40:05.123Z\">2026-11-24 13:40 UTC</time>"
        );
    }
}
