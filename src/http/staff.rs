//! Staff pages and actions under `{prefix}staff/`. Who is staff comes from JupyterHub: a
//! Hub admin is staff of every course, a member of a course's `staff_group` (course
//! config) of that course. Everyone else gets 403 on every staff route, before anything
//! is read or changed. Every action (regrade, repost, CSV download) is recorded in the
//! events table with who did it.
//!
//! Pages: `staff` (courses, assignments, the queue as `status` counts it),
//! `staff/assignments/{course}/{section}/{assignment}` (charts, recent, dead and flagged
//! submissions, edX posts, buttons), `staff/students/{user}`, `staff/submissions/{id}`
//! (hidden-test output and the timeline). Actions: `POST staff/regrade`,
//! `POST staff/repost`; download: `GET staff/grades.csv`.

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use maud::{Markup, PreEscaped, html};
use serde::Deserialize;

use super::AppState;
use super::charts;
use super::error::{ApiError, ErrorBody};
use super::pages::{self, Nav, layout, score, time};
pub use super::staff_access::Staff;
use crate::db::dashboard::{self, AssignmentDetail, AssignmentRow, Line};
use crate::db::grades::GradeFilter;
use crate::db::staff::{self as db_staff, RegradeRequest};
use crate::db::{events, format_ms, now_ms, submissions};
use crate::export::{self, Policy};

fn nav<'a>(app: &'a AppState, staff: &'a Staff) -> Nav<'a> {
    pages::nav(app, &staff.user.name)
}

/// The staff dashboard: the caller's courses' assignments, grader hosts and the queue.
///
/// `GET {prefix}staff`. While submissions wait, the page reloads itself every 5 seconds.
#[utoipa::path(get, path = "/staff", tag = "staff",
    security(("hub_token" = []), ("hub_session" = [])),
    responses(
        (status = 200, description = "The dashboard page", body = String, content_type = "text/html"),
        (status = 303, description = "A browser page load (`Accept: text/html`) without a valid session is sent to JupyterHub to log in",
            headers(("location" = String, description = "JupyterHub's OAuth authorize URL"),
                ("set-cookie" = String, description = "The signed OAuth state cookie"))),
        (status = 401, description = "No JupyterHub token, and no valid session cookie",
            headers(("www-authenticate" = String, description = "`token`")),
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 403, description = "The token is not known, lacks the access scope or names a reserved user, or the caller is not course staff",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 500, description = "Internal error (the cause is logged)",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 503, description = "JupyterHub could not be asked who the caller is or which groups they are in",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
    ))]
pub async fn overview(State(app): State<AppState>, staff: Staff) -> Result<Response, ApiError> {
    let courses = staff.courses.clone();
    let (config, local) = (app.courses.clone(), app.settings.grading.workers > 0);
    let (rows, queue, hosts, stuck, platforms) = app
        .db
        .read(move |c| {
            let needs = |co: &str, s: &str, a: &str| config.grader_needs(co, s, a);
            let mut stuck = crate::db::hosts::unroutable(c, now_ms(), local, needs)?;
            stuck.retain(|u| courses.contains(&u.course));
            // The platforms that may submit to one of these courses.
            let mut platforms = crate::db::platforms::list(c)?;
            platforms.retain(|p| p.courses.iter().any(|pc| courses.contains(pc)));
            Ok((
                dashboard::assignments(c, &courses)?,
                db_staff::queue(c)?,
                crate::db::hosts::list(c)?,
                stuck,
                platforms,
            ))
        })
        .await?;
    let p = app.settings.server.prefix.as_str();
    let now = now_ms();
    let waiting = rows.iter().any(|r| r.queued + r.grading > 0);
    let body = html! {
        h1 { "Course staff" }
        p { "Staff of " (staff.courses.join(", ")) "." }
        h2 { "Queue" }
        table #queue {
            thead { tr { th { "job" } th { "state" } th { "count" } } }
            tbody {
                @for (kind, state, n) in &queue.jobs {
                    tr { td { (kind.as_str()) } td { (state.as_str()) } td.n { (n) } }
                }
            }
        }
        @for (kind, at) in &queue.oldest_queued {
            p { "Oldest waiting " (kind.as_str()) " job: " ((now - at) / 1000) " s." }
        }
        @for u in &stuck {
            p.dead #unroutable {
                "No grader can take " (u.jobs) " waiting submission(s) of " (u.course) " "
                (u.section) " " (u.assignment) ": they need a connected grader host offering "
                (u.needs.join(", ")) "."
            }
        }
        @if !hosts.is_empty() {
            h2 { "Grader hosts" }
            (hosts_table(&hosts, now))
        }
        @if !platforms.is_empty() {
            h2 { "Platforms" }
            table #platforms {
                thead { tr {
                    th { "platform" } th { "courses" } th { "submissions" }
                    th { "webhooks pending" } th { "delivered" } th { "failed" } th { "webhook" }
                } }
                tbody {
                    @for pl in &platforms {
                        tr {
                            td { (pl.name) @if pl.revoked { " (revoked)" } }
                            td { (pl.courses.join(", ")) }
                            td.n { (pl.submissions) }
                            td.n { (pl.pending) }
                            td.n { (pl.delivered) }
                            td.n.dead[pl.failed > 0] { (pl.failed) }
                            td {
                                @match (&pl.webhook_url, &pl.webhook_disabled) {
                                    (None, _) => { "none (it polls)" }
                                    (Some(_), None) => { "on" }
                                    (Some(_), Some(why)) => { span.dead { "disabled: " (why) } }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Assignments" }
        (assignment_table(p, &rows, now))
        @if waiting {
            p.note { "Submissions are waiting: this page refreshes every 5 seconds." }
            script { (PreEscaped("setTimeout(()=>location.reload(),5000)")) }
        }
    };
    Ok(Html(layout(&nav(&app, &staff), "Course staff", body)).into_response())
}

fn hosts_table(hosts: &[crate::db::hosts::HostView], now: i64) -> Markup {
    html! {
        table #hosts {
            thead { tr {
                th { "host" } th { "state" } th { "slots" } th { "in hand" } th { "graded" }
                th { "last contact" } th { "version" } th { "tags" } th { "images" }
            } }
            tbody {
                @for h in hosts {
                    tr {
                        td { (h.name) } td { (h.state.as_str()) } td.n { (h.slots) }
                        td.n { (h.in_flight) } td.n { (h.finished) }
                        td { @match h.last_seen_at {
                            Some(t) => { ((now - t) / 1000) " s ago" }
                            None => { "never" }
                        } }
                        td { (h.version.as_deref().unwrap_or("")) } td { (h.tags.join(", ")) }
                        td { (h.images.join(", ")) }
                    }
                }
            }
        }
    }
}

fn assignment_table(p: &str, rows: &[AssignmentRow], now: i64) -> Markup {
    html! {
        table #assignments {
            thead { tr {
                th { "assignment" } th { "students" } th { "submissions" } th { "waiting" }
                th { "grading" } th { "graded" } th { "failed" } th { "dead" } th { "flagged" }
                th { "oldest wait" }
            } }
            tbody {
                @for r in rows {
                    tr {
                        td { a href={ (p) "staff/assignments/" (r.course) "/" (r.section) "/" (r.assignment) } {
                            (r.course) " " (r.section) " " (r.assignment) } }
                        td.n { (r.students) } td.n { (r.submissions) } td.n.waiting { (r.queued) }
                        td.n { (r.grading) } td.n.graded { (r.graded) } td.n { (r.failed) }
                        td.n.dead { (r.dead) } td.n { (r.flagged) }
                        td { @if let Some(at) = r.oldest_waiting { ((now - at) / 1000) " s" } }
                    }
                }
            }
        }
    }
}

/// One assignment: charts, recent, dead and flagged submissions, edX posts, actions.
///
/// `GET {prefix}staff/assignments/{course}/{section}/{assignment}`, for staff of `course`.
#[utoipa::path(get, path = "/staff/assignments/{course}/{section}/{assignment}", tag = "staff",
    security(("hub_token" = []), ("hub_session" = [])),
    params(
        ("course" = String, Path, description = "The course (course config name)", min_length = 1),
        ("section" = String, Path, description = "The course's section", min_length = 1),
        ("assignment" = String, Path, description = "The assignment's name", min_length = 1),
    ),
    responses(
        (status = 200, description = "The assignment's page", body = String, content_type = "text/html"),
        (status = 303, description = "A browser page load (`Accept: text/html`) without a valid session is sent to JupyterHub to log in",
            headers(("location" = String, description = "JupyterHub's OAuth authorize URL"),
                ("set-cookie" = String, description = "The signed OAuth state cookie"))),
        (status = 400, description = "A path segment is not valid UTF-8 once percent-decoded (text/plain only)",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 401, description = "No JupyterHub token, and no valid session cookie",
            headers(("www-authenticate" = String, description = "`token`")),
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 403, description = "The token is not known, lacks the access scope or names a reserved user, or the caller is not staff of `course` (also when no such course exists)",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 404, description = "The course has no such section or assignment",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 500, description = "Internal error (the cause is logged)",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 503, description = "JupyterHub could not be asked who the caller is or which groups they are in",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
    ))]
pub async fn assignment(
    State(app): State<AppState>,
    staff: Staff,
    Path((course, section, name)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    staff.of(&course)?;
    let a = app
        .courses
        .find(&course, &section, &name)
        .map_err(|_| ApiError::NotFound)?;
    let policy = a.post_score.unwrap_or(app.settings.lti.post_score);
    let key = (course.clone(), section.clone(), name.clone());
    let akey = crate::db::calendar::AssignmentKey {
        course: course.clone(),
        section: section.clone(),
        assignment: name.clone(),
    };
    let (detail, cal) = app
        .db
        .read(move |c| {
            let d = dashboard::assignment(c, (&key.0, &key.1, &key.2), policy)?;
            Ok((d, super::calendar::StaffCalendar::read(c, &akey)?))
        })
        .await?;
    let xsrf = app.auth.xsrf_token(&staff.user.name);
    let p = app.settings.server.prefix.as_str();
    let mut body = assignment_page(p, &detail, &xsrf, &policy.to_string());
    let section_html = super::calendar::staff_section(
        p,
        &xsrf,
        a.calendar.as_deref(),
        &cal,
        &detail.counting,
        app.clock.now(),
    );
    body.0.push_str(&section_html.0);
    let title = format!("{course} {section} {name}");
    Ok(Html(layout(&nav(&app, &staff), &title, body)).into_response())
}

fn assignment_page(p: &str, d: &AssignmentDetail, xsrf: &str, policy: &str) -> Markup {
    let r = &d.row;
    let hours: Vec<String> = d
        .per_hour
        .iter()
        .map(|(at, _)| format_ms(*at).get(5..13).unwrap_or("").replace('T', " ") + "h")
        .collect();
    let per_hour: Vec<f64> = d.per_hour.iter().map(|(_, n)| *n as f64).collect();
    let fractions: Vec<f64> = d.counting.iter().map(|g| g.counted).collect();
    let tenth_labels: Vec<String> = (0..10)
        .map(|i| format!("{}-{}%", i * 10, if i == 9 { 100 } else { i * 10 + 9 }))
        .collect();
    let q_names: Vec<String> = d.questions.iter().map(|q| q.name.clone()).collect();
    let q_rates: Vec<f64> = d
        .questions
        .iter()
        .map(|q| 100.0 * q.passed as f64 / q.students.max(1) as f64)
        .collect();
    let csv = |policy: &str| {
        format!(
            "{p}staff/grades.csv?course={}&section={}&assignment={}&policy={policy}",
            enc(&r.course),
            enc(&r.section),
            enc(&r.assignment)
        )
    };
    let target = |extra: Markup| {
        html! {
            input type="hidden" name="_xsrf" value=(xsrf);
            input type="hidden" name="course" value=(r.course);
            input type="hidden" name="section" value=(r.section);
            input type="hidden" name="assignment" value=(r.assignment);
            (extra)
        }
    };
    html! {
        p { a href={ (p) "staff" } { "All assignments" } }
        h1 { (r.course) " " (r.section) " " (r.assignment) }
        p #numbers {
            (r.students) " students, " (r.submissions) " submissions: "
            span.waiting { (r.queued) " waiting" } ", " (r.grading) " grading, "
            (r.graded) " graded, " (r.failed) " failed, " span.dead { (r.dead) " dead" } ", "
            (r.flagged) " flagged."
        }
        p { "Download grades (CSV): "
            a #csv-latest href=(csv("latest")) { "the grade that counts (latest)" } " · "
            a href=(csv("best")) { "best" } " · " a href=(csv("all")) { "every grade" } }
        h2 { "Submissions over time" }
        (chart(charts::bars("Submissions per hour (UTC)", &hours, &per_hour, 1.0, "submissions")))
        h2 #distribution { "Score distribution" }
        p { "The grade that counts (" (policy) ") of each of " (d.counting.len()) " students." }
        (chart(charts::bars("Students by score", &tenth_labels, &charts::tenths(&fractions), 1.0, "students")))
        h2 { "Questions" }
        (chart(charts::bars("Full marks, % of students", &q_names, &q_rates, 100.0, "%")))
        table #questions {
            thead { tr { th { "question" } th { "full marks" } th { "students" } } }
            tbody { @for q in &d.questions { tr { td { (q.name) } td.n { (q.passed) } td.n { (q.students) } } } }
        }
        h2 { "edX" }
        table #posts {
            tbody { @for (state, n) in &d.posts { tr { td { (state) } td.n { (n) } } } }
        }
        form.action method="post" action={ (p) "staff/repost" }
            onsubmit="return confirm('Send the counting grades whose edX post is dead again?')" {
            (target(html! {}))
            button type="submit" { "Repost dead edX posts" }
        }
        h2 #dead { "Dead submissions" }
        (lines(p, &d.dead))
        @if !d.dead.is_empty() {
            form.action method="post" action={ (p) "staff/regrade" }
                onsubmit="return confirm('Grade every dead submission of this assignment again?')" {
                (target(html! { input type="hidden" name="dead_only" value="true"; }))
                button #regrade-dead type="submit" { "Regrade all dead" }
            }
        }
        h2 { "Integrity flags" }
        (lines(p, &d.flagged))
        h2 { "Recent submissions" }
        (lines(p, &d.recent))
        form.action method="post" action={ (p) "staff/regrade" }
            onsubmit="return confirm('Grade EVERY submission of this assignment again?')" {
            (target(html! {}))
            button type="submit" { "Regrade the whole assignment" }
        }
    }
}

/// Percent-encode a query value.
fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn chart(svg: Option<String>) -> Markup {
    match svg {
        // plotters' output: SVG it wrote, with the labels escaped as SVG text.
        Some(svg) => html! { figure.chart { (PreEscaped(svg)) } },
        None => html! {},
    }
}

fn lines(p: &str, lines: &[Line]) -> Markup {
    if lines.is_empty() {
        return html! { p.none { "None." } };
    }
    html! {
        table.lines {
            thead { tr { th { "#" } th { "student" } th { "received" } th { "state" } th { "score" } th { "detail" } } }
            tbody {
                @for l in lines {
                    tr {
                        td { a href={ (p) "staff/submissions/" (l.submission_id) } { (l.submission_id) } }
                        td { a href={ (p) "staff/students/" (enc(&l.user)) } { (l.user) } }
                        td { (time(&l.received_at)) }
                        td class={ "state " (l.state) } { (l.state) }
                        td { @if let Some((s, m)) = l.score { (score(s, m)) } }
                        td.detail { (l.detail.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
    }
}

/// One student's submissions in the caller's courses, with regrade buttons.
///
/// `GET {prefix}staff/students/{user}`. A user with no submissions there gets a page that
/// says so (not 404).
#[utoipa::path(get, path = "/staff/students/{user}", tag = "staff",
    security(("hub_token" = []), ("hub_session" = [])),
    params(("user" = String, Path, description = "The student's user name", min_length = 1)),
    responses(
        (status = 200, description = "The student's page", body = String, content_type = "text/html"),
        (status = 303, description = "A browser page load (`Accept: text/html`) without a valid session is sent to JupyterHub to log in",
            headers(("location" = String, description = "JupyterHub's OAuth authorize URL"),
                ("set-cookie" = String, description = "The signed OAuth state cookie"))),
        (status = 400, description = "The path segment is not valid UTF-8 once percent-decoded (text/plain only)",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 401, description = "No JupyterHub token, and no valid session cookie",
            headers(("www-authenticate" = String, description = "`token`")),
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 403, description = "The token is not known, lacks the access scope or names a reserved user, or the caller is not course staff",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 500, description = "Internal error (the cause is logged)",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 503, description = "JupyterHub could not be asked who the caller is or which groups they are in",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
    ))]
pub async fn student(
    State(app): State<AppState>,
    staff: Staff,
    Path(user): Path<String>,
) -> Result<Response, ApiError> {
    let name = user.clone();
    let mut views = app
        .db
        .read({
            let policy = app.policy_for();
            move |c| submissions::list_for_user(c, &name, 1000, policy)
        })
        .await?;
    views.retain(|v| staff.courses.contains(&v.course));
    let p = app.settings.server.prefix.as_str();
    let xsrf = app.auth.xsrf_token(&staff.user.name);
    let body = html! {
        p { a href={ (p) "staff" } { "All assignments" } }
        h1 { "Student " (user) }
        @if views.is_empty() { p { "No submissions in your courses." } }
        table.lines {
            thead { tr { th { "#" } th { "assignment" } th { "received" } th { "state" }
                th { "score" } th { "counts" } th { "edX" } } }
            tbody {
                @for v in &views {
                    tr {
                        td { a href={ (p) "staff/submissions/" (v.id) } { (v.id) } }
                        td { (v.course) " " (v.section) " " (v.assignment) }
                        td { (time(&v.received_at)) }
                        td class={ "state " (v.state) } { (v.state) }
                        @if let Some(g) = &v.grade {
                            td { (score(g.score, g.max_score)) }
                            td { @if g.counts { "counts" } }
                            td { (g.post_state) }
                        } @else { td {} td {} td {} }
                    }
                }
            }
        }
        @for v in views.iter().filter(|v| v.grade.as_ref().is_some_and(|g| g.counts)) {
            form.action method="post" action={ (p) "staff/regrade" }
                onsubmit="return confirm('Grade this student\\'s submissions of this assignment again?')" {
                input type="hidden" name="_xsrf" value=(xsrf);
                input type="hidden" name="course" value=(v.course);
                input type="hidden" name="section" value=(v.section);
                input type="hidden" name="assignment" value=(v.assignment);
                input type="hidden" name="user" value=(user);
                button type="submit" { "Regrade " (user) "'s " (v.assignment) }
            }
        }
    };
    Ok(Html(layout(&nav(&app, &staff), &format!("Student {user}"), body)).into_response())
}

/// Everything about one submission, hidden-test output and the timeline included.
///
/// `GET {prefix}staff/submissions/{id}`, for staff of the submission's course.
#[utoipa::path(get, path = "/staff/submissions/{id}", tag = "staff",
    security(("hub_token" = []), ("hub_session" = [])),
    params(("id" = i64, Path, description = "The submission's number (anything else is 404)")),
    responses(
        (status = 200, description = "The submission's page", body = String, content_type = "text/html"),
        (status = 303, description = "A browser page load (`Accept: text/html`) without a valid session is sent to JupyterHub to log in",
            headers(("location" = String, description = "JupyterHub's OAuth authorize URL"),
                ("set-cookie" = String, description = "The signed OAuth state cookie"))),
        (status = 400, description = "The path segment is not valid UTF-8 once percent-decoded (text/plain only)",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 401, description = "No JupyterHub token, and no valid session cookie",
            headers(("www-authenticate" = String, description = "`token`")),
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 403, description = "The token is not known, lacks the access scope or names a reserved user, or the caller is not staff of the submission's course",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 404, description = "No such submission (or `id` is not a number)",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 500, description = "Internal error (the cause is logged)",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 503, description = "JupyterHub could not be asked who the caller is or which groups they are in",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
    ))]
pub async fn submission(
    State(app): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: i64 = id.parse().map_err(|_| ApiError::NotFound)?;
    // One read: the staff-only parts, the owner's view of it, and its timeline.
    let (extras, view, timeline) = app
        .db
        .read({
            let policy = app.policy_for();
            move |c| {
                let Some(extras) = dashboard::staff_extras(c, id)? else {
                    return Ok(None);
                };
                let Some(view) = submissions::view_for_owner(c, id, &extras.user, policy)? else {
                    return Ok(None);
                };
                Ok(Some((extras, view, events::for_submission(c, id)?)))
            }
        })
        .await?
        .ok_or(ApiError::NotFound)?;
    staff.of(&view.course)?;
    let p = app.settings.server.prefix.as_str();
    let xsrf = app.auth.xsrf_token(&staff.user.name);
    let outputs: Vec<serde_json::Value> = extras
        .tests_json
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default();
    let body = html! {
        p { a href={ (p) "staff/assignments/" (view.course) "/" (view.section) "/" (view.assignment) } {
            "Assignment " (view.assignment) } " · "
            a href={ (p) "staff/students/" (enc(&view.user)) } { "Student " (view.user) } }
        h1 { "Submission " (view.id) " of " (view.user) }
        p { (view.course) " " (view.section) " " (view.assignment) ". Received " (time(&view.received_at))
            ". State: " span class={ "state " (view.state) } { (view.state) } "." }
        @if let Some(m) = &view.message { p { (m) } }
        @if let Some(g) = &view.grade {
            h2 { "Score: " (score(g.score, g.max_score)) }
            p { @if g.counts { "This grade counts. " } "edX: " (g.post_state)
                @if let Some(d) = &g.post_detail { " (" (d) ")" } }
        }
        @if let Some(f) = &extras.integrity_flags { h2 { "Integrity flags" } pre { (f) } }
        h2 { "Every test's output (hidden tests included; staff only)" }
        @if outputs.is_empty() { p.none { "None stored." } }
        @for t in &outputs {
            h3 { (t["name"].as_str().unwrap_or("?")) ": " (t["score"]) " / " (t["max_score"]) }
            @if let Some(out) = t["staff_output"].as_str().filter(|o| !o.is_empty()) { pre { (out) } }
        }
        @if let Some(log) = &extras.log_tail { h2 { "Grader log / staff notes" } pre { (log) } }
        h2 { "Timeline" }
        table #timeline {
            tbody { @for e in &timeline { tr { td { (time(&e.at)) } td { (e.event) } td { (e.detail) } } } }
        }
        form.action method="post" action={ (p) "staff/regrade" }
            onsubmit="return confirm('Grade this submission again?')" {
            input type="hidden" name="_xsrf" value=(xsrf);
            input type="hidden" name="id" value=(view.id);
            button #regrade-one type="submit" { "Regrade this submission" }
        }
    };
    Ok(Html(layout(
        &nav(&app, &staff),
        &format!("Submission {id}"),
        body,
    ))
    .into_response())
}

/// The form of the regrade and repost buttons: one submission (`id`), or a course's
/// submissions (narrowed by `section`, `assignment`, `user`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ActionForm {
    /// The dashboard page's XSRF token: required with a session cookie, ignored with a
    /// Hub token.
    #[serde(default)]
    _xsrf: String,
    /// One submission (its course must be one of the caller's).
    #[schema(nullable = false)]
    id: Option<i64>,
    /// A course of the caller's (ignored when `id` is given).
    #[schema(nullable = false)]
    course: Option<String>,
    /// Only this section of `course`.
    #[schema(nullable = false)]
    section: Option<String>,
    /// Only this assignment.
    #[schema(nullable = false)]
    assignment: Option<String>,
    /// Only this student's submissions.
    #[schema(nullable = false)]
    user: Option<String>,
    /// Regrade only dead submissions (regrade only; repost ignores it).
    #[serde(default)]
    dead_only: bool,
}

impl ActionForm {
    /// The submissions it names: one (`id`), or a course's (narrowed by section,
    /// assignment, user), once the form passed the XSRF check (a browser's form must
    /// carry the page's token; a Hub token needs none) and the course is one of the
    /// staff's.
    async fn filter(&self, app: &AppState, staff: &Staff) -> Result<GradeFilter, ApiError> {
        if !app.auth.xsrf_allows(&staff.user, &self._xsrf) {
            return Err(ApiError::Forbidden(
                "this action must come from the dashboard's own button (XSRF check failed)".into(),
            ));
        }
        let course = match (self.id, &self.course) {
            (Some(id), _) => app
                .db
                .read(move |c| dashboard::course_of(c, id))
                .await?
                .ok_or(ApiError::NotFound)?,
            (None, Some(c)) => c.clone(),
            (None, None) => {
                return Err(ApiError::BadRequest(
                    "say which submissions: a submission id or a course".into(),
                ));
            }
        };
        staff.of(&course)?;
        Ok(GradeFilter {
            course: Some(course),
            section: self.section.clone(),
            assignment: self.assignment.clone(),
            user: self.user.clone(),
        })
    }
}

/// Queue grading again: one submission, or a course's (or only its dead ones).
///
/// `POST {prefix}staff/regrade`, the dashboard's regrade buttons. Answers with a page
/// (200), not a redirect.
#[utoipa::path(post, path = "/staff/regrade", tag = "staff",
    security(("hub_token" = []), ("hub_session" = [])),
    request_body(content = ActionForm, content_type = "application/x-www-form-urlencoded",
        description = "Which submissions: `id`, or `course` (with optional `section`, `assignment`, `user`, `dead_only`)"),
    responses(
        (status = 200, description = "Done: a page saying how many were queued", body = String, content_type = "text/html"),
        (status = 400, description = "Neither `id` nor `course` was given (or the body could not be read)",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 401, description = "No JupyterHub token, and no valid session cookie",
            headers(("www-authenticate" = String, description = "`token`")),
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 403, description = "The token is not known, lacks the access scope or names a reserved user; the caller is not course staff, or not staff of the course named; or a session-cookie request without the page's XSRF token",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 404, description = "No submission `id`",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 413, description = "The body is over `server.max_body_bytes`",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 415, description = "The body is not `application/x-www-form-urlencoded` (text/plain only)",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 422, description = "A field could not be read (e.g. `id` not an integer, `dead_only` not `true`/`false`; text/plain only)",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 500, description = "Internal error (the cause is logged)",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 503, description = "JupyterHub could not be asked who the caller is or which groups they are in",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
    ))]
pub async fn regrade(
    State(app): State<AppState>,
    staff: Staff,
    axum::Form(form): axum::Form<ActionForm>,
) -> Result<Response, ApiError> {
    let filter = form.filter(&app, &staff).await?;
    let request = RegradeRequest {
        filter,
        ids: form.id.into_iter().collect(),
        dead_only: form.dead_only,
        by: staff.by(),
    };
    let max_attempts = app.settings.grading.max_attempts;
    let ids = app
        .db
        .write(move |c| db_staff::regrade(c, &request, max_attempts, now_ms()))
        .await?;
    // Wake every idle worker (and leave a wake-up for one that is about to wait).
    app.grade_notify.notify_waiters();
    app.grade_notify.notify_one();
    tracing::info!(by = %staff.user.name, count = ids.len(), "staff regrade");
    let said = format!("Queued {} submission(s) for grading again.", ids.len());
    Ok(done(&app, &staff, &said))
}

/// Send the counting grades whose edX post is dead to edX again.
///
/// `POST {prefix}staff/repost`, the dashboard's repost button. Answers with a page (200),
/// not a redirect.
#[utoipa::path(post, path = "/staff/repost", tag = "staff",
    security(("hub_token" = []), ("hub_session" = [])),
    request_body(content = ActionForm, content_type = "application/x-www-form-urlencoded",
        description = "Which grades: those of submission `id`, or of `course` (with optional `section`, `assignment`, `user`); `dead_only` is ignored"),
    responses(
        (status = 200, description = "Done: a page saying how many were queued", body = String, content_type = "text/html"),
        (status = 400, description = "Neither `id` nor `course` was given (or the body could not be read)",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 401, description = "No JupyterHub token, and no valid session cookie",
            headers(("www-authenticate" = String, description = "`token`")),
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 403, description = "The token is not known, lacks the access scope or names a reserved user; the caller is not course staff, or not staff of the course named; or a session-cookie request without the page's XSRF token",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 404, description = "No submission `id`",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 413, description = "The body is over `server.max_body_bytes`",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 415, description = "The body is not `application/x-www-form-urlencoded` (text/plain only)",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 422, description = "A field could not be read (e.g. `id` not an integer, `dead_only` not `true`/`false`; text/plain only)",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 500, description = "Internal error (the cause is logged)",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 503, description = "JupyterHub could not be asked who the caller is or which groups they are in",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
    ))]
pub async fn repost(
    State(app): State<AppState>,
    staff: Staff,
    axum::Form(form): axum::Form<ActionForm>,
) -> Result<Response, ApiError> {
    let filter = form.filter(&app, &staff).await?;
    let by = staff.by();
    let horizon = app.settings.lti.retry_horizon_secs as i64 * 1000;
    let n = app
        .db
        .write(move |c| db_staff::repost(c, &filter, false, &by, horizon, now_ms()))
        .await?;
    tracing::info!(by = %staff.user.name, count = n, "staff repost");
    Ok(done(
        &app,
        &staff,
        &format!("Queued {n} grade(s) for posting to edX again."),
    ))
}

pub(super) fn done(app: &AppState, staff: &Staff, said: &str) -> Response {
    let p = app.settings.server.prefix.as_str();
    let body = html! {
        p #done { (said) }
        p { a href={ (p) "staff" } { "Back to the dashboard" } }
    };
    Html(layout(&nav(app, staff), "Done", body)).into_response()
}

/// The query of `GET {prefix}staff/grades.csv`: `dump-grades`'s filters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CsvQuery {
    /// The course (one of the caller's).
    course: String,
    /// Only this section.
    section: Option<String>,
    /// Only this assignment.
    assignment: Option<String>,
    /// Only this student.
    user: Option<String>,
    /// Which grades: `all`, `latest` (the default), `best` or `latest_on_time`; anything
    /// else is 400.
    #[param(inline, value_type = Option<CsvPolicy>)]
    policy: Option<String>,
}

// For the OpenAPI document only: the handler reads `policy` as a string (to answer 400).
/// Which grades the CSV holds (as `dump-grades --policy`).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
enum CsvPolicy {
    All,
    Latest,
    Best,
    #[schema(rename = "latest_on_time")]
    LatestOnTime,
}

/// The `dump-grades` CSV of one course, as an attachment.
///
/// `GET {prefix}staff/grades.csv`, for staff of `course`. Each download is recorded in the
/// events table.
#[utoipa::path(get, path = "/staff/grades.csv", tag = "staff",
    security(("hub_token" = []), ("hub_session" = [])),
    params(CsvQuery),
    responses(
        (status = 200, description = "The CSV (`text/csv; charset=utf-8`)", body = String, content_type = "text/csv",
            headers(("content-disposition" = String, description = "`attachment; filename=\"grades-<course>.csv\"`"))),
        (status = 303, description = "A browser page load (`Accept: text/html`) without a valid session is sent to JupyterHub to log in",
            headers(("location" = String, description = "JupyterHub's OAuth authorize URL"),
                ("set-cookie" = String, description = "The signed OAuth state cookie"))),
        (status = 400, description = "`course` is missing or the query cannot be read (text/plain only), or `policy` is not all, latest, best or latest_on_time",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 401, description = "No JupyterHub token, and no valid session cookie",
            headers(("www-authenticate" = String, description = "`token`")),
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 403, description = "The token is not known, lacks the access scope or names a reserved user, or the caller is not staff of `course` (also when no such course exists)",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 500, description = "Internal error (the cause is logged)",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 503, description = "JupyterHub could not be asked who the caller is or which groups they are in",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
    ))]
pub async fn grades_csv(
    State(app): State<AppState>,
    staff: Staff,
    Query(q): Query<CsvQuery>,
) -> Result<Response, ApiError> {
    staff.of(&q.course)?;
    let asked = q.policy.as_deref().unwrap_or("latest");
    // The same names as `dump-grades --policy`.
    let policy = <Policy as clap::ValueEnum>::from_str(asked, false).map_err(|_| {
        ApiError::BadRequest(format!(
            "policy {asked:?}: use all, latest, best or latest_on_time"
        ))
    })?;
    let filter = GradeFilter {
        course: Some(q.course.clone()),
        section: q.section.clone(),
        assignment: q.assignment.clone(),
        user: q.user.clone(),
    };
    let detail = format!(
        "{}: grades.csv course={} section={} assignment={} user={} policy={policy:?}",
        staff.by(),
        q.course,
        q.section.as_deref().unwrap_or("*"),
        q.assignment.as_deref().unwrap_or("*"),
        q.user.as_deref().unwrap_or("*"),
    );
    let records = app
        .db
        .write(move |c| {
            events::record(c, now_ms(), None, None, "staff_export", &detail)?;
            crate::db::grades::select(c, &filter, policy.counting())
        })
        .await?;
    let mut csv = Vec::new();
    export::write_csv(&mut csv, &records).map_err(|e| ApiError::Internal(e.into()))?;
    let name = format!(
        "attachment; filename=\"grades-{}.csv\"",
        q.course.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, name),
        ],
        csv,
    )
        .into_response())
}
