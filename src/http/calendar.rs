//! The course calendar over HTTP: a student's own due date and credit
//! (`GET calendar/{course}/{section}/{assignment}`, what the Submit panel shows before a
//! submission), and the staff actions of the assignment page: extensions (one student or
//! a list), score overrides, and the release of held results. Staff actions have the same
//! 403 rules as every staff route (`staff::Staff`), need the page's XSRF token from a
//! browser, and are recorded in the calendar log with who did them.

use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::pages::{self, layout};
use super::staff_access::Staff;
use crate::calendar::staff::{self as actions, Moved};
use crate::calendar::views;
use crate::course::Assignment;
use crate::db::calendar::{AssignmentKey, DueView};
use crate::db::scores::StudentAssignment;
use crate::jupyterhub::HubUser;

/// The caller's calendar for one assignment: their due date (extension included), the
/// credit a submission now earns, and whether results are held.
#[utoipa::path(get, path = "/calendar/{course}/{section}/{assignment}", tag = "students",
    security(("hub_token" = []), ("hub_session" = [])),
    params(("course" = String, Path), ("section" = String, Path), ("assignment" = String, Path)),
    responses(
        (status = 200, description = "The caller's calendar for the assignment", body = DueView),
        (status = 303, description = "A browser without a session is sent to JupyterHub to log in",
            headers(("location" = String))),
        (status = 401, description = "No JupyterHub token or session", content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 403, description = "The token is not known, lacks the access scope, or the name is reserved", content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 404, description = "No such assignment in the course config", content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 500, description = "Internal error (the cause is logged)", content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 503, description = "JupyterHub could not be asked who the caller is", content((String = "text/plain"), (ErrorBody = "application/json"))),
    ))]
pub async fn due(
    State(app): State<AppState>,
    user: HubUser,
    Path((course, section, assignment)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let a = app
        .courses
        .find(&course, &section, &assignment)
        .map_err(|_| ApiError::NotFound)?;
    let calendar = a.calendar.clone();
    let key = StudentAssignment {
        user: user.name,
        course,
        section,
        assignment,
    };
    let now = app.clock.now();
    let view = app
        .db
        .read(move |c| views::due_view(c, calendar.as_deref(), &key, now))
        .await?;
    Ok(axum::Json(view).into_response())
}

/// The assignment a staff form names, once the XSRF check passed and the caller is staff
/// of its course.
async fn staff_assignment<'a>(
    app: &'a AppState,
    staff: &Staff,
    xsrf: &str,
    key: &AssignmentKey,
) -> Result<&'a Assignment, ApiError> {
    if !app.auth.xsrf_allows(&staff.user, xsrf) {
        return Err(ApiError::Forbidden(
            "this action must come from the dashboard's own form (XSRF check failed)".into(),
        ));
    }
    staff.of(&key.course)?;
    app.courses
        .find(&key.course, &key.section, &key.assignment)
        .map_err(|_| ApiError::NotFound)
}

fn reason_of(reason: &str) -> Result<String, ApiError> {
    crate::calendar::reason(reason).ok_or_else(|| {
        ApiError::BadRequest("say why (the reason is recorded with the action)".into())
    })
}

/// Users named in a form: separated by commas, spaces or lines.
fn users_of(text: &str) -> Result<Vec<String>, ApiError> {
    let mut users: Vec<String> = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .collect();
    users.sort();
    users.dedup();
    if users.is_empty() {
        return Err(ApiError::BadRequest("name at least one student".into()));
    }
    if users.len() > 1000 {
        return Err(ApiError::BadRequest(
            "at most 1,000 students in one request".into(),
        ));
    }
    if let Some(bad) = users.iter().find(|u| u.len() > 255) {
        return Err(ApiError::BadRequest(format!(
            "{:?}… is not a user name",
            bad.chars().take(20).collect::<String>()
        )));
    }
    Ok(users)
}

fn moved_line(m: &Moved) -> String {
    let pct = actions::percent;
    let posted = if m.posted {
        "; sent to the LMS again"
    } else {
        ""
    };
    if m.before == m.after {
        format!("{}: score that counts unchanged ({})", m.user, pct(m.after))
    } else {
        format!(
            "{}: score that counts {} → {}{posted}",
            m.user,
            pct(m.before),
            pct(m.after)
        )
    }
}

fn answered(
    app: &AppState,
    staff: &Staff,
    said: &str,
    lines: &[String],
    back: &AssignmentKey,
) -> Response {
    let p = app.settings.server.prefix.as_str();
    let body = html! {
        p #done { (said) }
        ul #moved { @for l in lines { li { (l) } } }
        p { a href={ (p) "staff/assignments/" (back.course) "/" (back.section) "/" (back.assignment) } { "Back to the assignment" } }
    };
    Html(layout(&pages::nav(app, &staff.user.name), "Done", body)).into_response()
}

/// A number field of a form: a browser sends an empty one as `""`, which means "not
/// given".
fn number_or_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let text: Option<String> = Option::deserialize(d)?;
    match text.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) => t
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("{t:?} is not a number"))),
    }
}

/// The extension form of the assignment page.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ExtensionForm {
    /// The page's XSRF token (a browser's form must carry it; a Hub token needs none).
    #[serde(default)]
    _xsrf: String,
    course: String,
    section: String,
    assignment: String,
    /// One student or several (separated by commas, spaces or lines).
    users: String,
    /// How much later their deadlines are: days, and/or hours (ignored with `remove`).
    #[serde(default, deserialize_with = "number_or_empty")]
    #[schema(nullable = false)]
    days: Option<f64>,
    #[serde(default, deserialize_with = "number_or_empty")]
    #[schema(nullable = false)]
    hours: Option<f64>,
    /// Or: the student's new due date (RFC 3339 with its zone); their late windows move
    /// with it.
    #[serde(default)]
    #[schema(nullable = false)]
    until: Option<String>,
    /// Why (recorded with the action).
    reason: String,
    /// Take their extensions back instead.
    #[serde(default)]
    remove: bool,
}

/// Grant (or remove) extensions for one student or a list: each shifts that student's
/// deadlines, restamps their submissions' credit, and sends their score that counts to
/// the LMS again when it moved.
#[utoipa::path(post, path = "/staff/extensions", tag = "staff",
    security(("hub_token" = []), ("hub_session" = [])),
    request_body(content = ExtensionForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Done: a page listing each student's score that counts before and after", body = String, content_type = "text/html"),
        (status = 400, description = "No length, a length of 0 or more than a year, no reason, no student, a bad `until`, or the assignment has no calendar",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 401, description = "No JupyterHub token, and no valid session cookie",
            headers(("www-authenticate" = String, description = "`token`")),
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 403, description = "Not staff of the course, or a session-cookie request without the page's XSRF token",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 404, description = "No such assignment", content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 413, description = "The body is over `server.max_body_bytes`", content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 415, description = "The body is not `application/x-www-form-urlencoded` (text/plain only)", content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 422, description = "A field could not be read (text/plain only)", content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 500, description = "Internal error (the cause is logged)", content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 503, description = "JupyterHub could not be asked who the caller is or which groups they are in", content((String = "text/plain"), (ErrorBody = "application/json"))),
    ))]
pub async fn extensions(
    State(app): State<AppState>,
    staff: Staff,
    axum::Form(f): axum::Form<ExtensionForm>,
) -> Result<Response, ApiError> {
    let key = AssignmentKey {
        course: f.course.clone(),
        section: f.section.clone(),
        assignment: f.assignment.clone(),
    };
    let a = staff_assignment(&app, &staff, &f._xsrf, &key)
        .await?
        .clone();
    let Some(cal) = a.calendar.clone() else {
        return Err(ApiError::BadRequest(format!(
            "{} has no calendar in the course config, so there is no deadline to extend",
            key.assignment
        )));
    };
    let users = users_of(&f.users)?;
    let reason = reason_of(&f.reason)?;
    let shift = if f.remove {
        None
    } else {
        let ms = crate::calendar::extension_ms(cal.due, f.days, f.hours, f.until.as_deref())
            .map_err(ApiError::BadRequest)?;
        Some(ms)
    };
    let by = staff.by();
    let (app2, by2) = (app.clone(), by.clone());
    let moved = app
        .db
        .write(move |c| {
            let scope = app2.calendar_scope(&a, &by2, app2.clock.now());
            let mut out = Vec::new();
            for u in &users {
                let student = key.student(u);
                match shift {
                    Some(ms) => out.push(Some(actions::grant(c, &scope, &student, ms, &reason)?)),
                    None => out.push(actions::revoke(c, &scope, &student, &reason)?),
                }
            }
            Ok((key, users, out))
        })
        .await?;
    let (key, users, out) = moved;
    let lines: Vec<String> = users
        .iter()
        .zip(&out)
        .map(|(u, m)| match m {
            Some(m) => moved_line(m),
            None => format!("{u}: had no extension"),
        })
        .collect();
    tracing::info!(by = %staff.user.name, count = lines.len(), remove = f.remove, "staff extensions");
    let said = match shift {
        Some(ms) => format!(
            "Extended {} student(s)' deadlines by {}.",
            lines.len(),
            crate::calendar::span(ms)
        ),
        None => format!(
            "Removed the extensions of {} student(s).",
            out.iter().flatten().count()
        ),
    };
    Ok(answered(&app, &staff, &said, &lines, &key))
}

/// The override form of the assignment page.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct OverrideForm {
    /// The page's XSRF token (a browser's form must carry it; a Hub token needs none).
    #[serde(default)]
    _xsrf: String,
    course: String,
    section: String,
    assignment: String,
    user: String,
    /// Points that count, out of `max_score` (ignored with `remove`).
    #[serde(default, deserialize_with = "number_or_empty")]
    #[schema(nullable = false)]
    score: Option<f64>,
    #[serde(default, deserialize_with = "number_or_empty")]
    #[schema(nullable = false)]
    max_score: Option<f64>,
    /// Why (recorded with the action; the student does not see it).
    reason: String,
    /// Remove the override instead: the student's grades count again.
    #[serde(default)]
    remove: bool,
}

/// Set (or remove) the score that counts for one student's assignment, instead of their
/// grades; it survives regrades, is exported and posted, and the student sees it as
/// set by staff.
#[utoipa::path(post, path = "/staff/overrides", tag = "staff",
    security(("hub_token" = []), ("hub_session" = [])),
    request_body(content = OverrideForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Done: a page with the score that counts before and after", body = String, content_type = "text/html"),
        (status = 400, description = "No reason, no score, a score outside 0 to `max_score`, or the student has no grade to override",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 401, description = "No JupyterHub token, and no valid session cookie",
            headers(("www-authenticate" = String, description = "`token`")),
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 403, description = "Not staff of the course, or a session-cookie request without the page's XSRF token",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 404, description = "No such assignment", content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 413, description = "The body is over `server.max_body_bytes`", content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 415, description = "The body is not `application/x-www-form-urlencoded` (text/plain only)", content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 422, description = "A field could not be read (text/plain only)", content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 500, description = "Internal error (the cause is logged)", content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 503, description = "JupyterHub could not be asked who the caller is or which groups they are in", content((String = "text/plain"), (ErrorBody = "application/json"))),
    ))]
pub async fn overrides(
    State(app): State<AppState>,
    staff: Staff,
    axum::Form(f): axum::Form<OverrideForm>,
) -> Result<Response, ApiError> {
    let key = AssignmentKey {
        course: f.course.clone(),
        section: f.section.clone(),
        assignment: f.assignment.clone(),
    };
    let a = staff_assignment(&app, &staff, &f._xsrf, &key)
        .await?
        .clone();
    let user = users_of(&f.user)?;
    let [user] = user.as_slice() else {
        return Err(ApiError::BadRequest(
            "an override is for one student".into(),
        ));
    };
    let reason = reason_of(&f.reason)?;
    let score = match (f.remove, f.score, f.max_score) {
        (true, _, _) => None,
        (false, Some(s), Some(m)) if s.is_finite() && m.is_finite() => Some((s, m)),
        _ => {
            return Err(ApiError::BadRequest(
                "give the score and the most possible (score and max_score)".into(),
            ));
        }
    };
    let by = staff.by();
    let student = key.student(user);
    let (app2, by2) = (app.clone(), by.clone());
    let moved = app
        .db
        .write(move |c| {
            let scope = app2.calendar_scope(&a, &by2, app2.clock.now());
            match score {
                Some((s, m)) => actions::set_override(c, &scope, &student, s, m, &reason).map(Some),
                None => actions::clear_override(c, &scope, &student, &reason),
            }
        })
        .await
        .map_err(|e| match e {
            crate::db::DbError::Invalid(why) => ApiError::BadRequest(why),
            other => other.into(),
        })?;
    tracing::info!(by = %staff.user.name, user = %user, remove = f.remove, "staff override");
    let (said, lines) = match &moved {
        Some(m) if f.remove => ("Removed the override.".to_string(), vec![moved_line(m)]),
        Some(m) => (
            "Set the score that counts.".to_string(),
            vec![moved_line(m)],
        ),
        None => (format!("{user} had no override."), vec![]),
    };
    Ok(answered(&app, &staff, &said, &lines, &key))
}

/// The release form of the assignment page.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ReleaseForm {
    /// The page's XSRF token (a browser's form must carry it; a Hub token needs none).
    #[serde(default)]
    _xsrf: String,
    course: String,
    section: String,
    assignment: String,
}

/// Release an assignment's held results: students see them, and every graded student's
/// score that counts is sent to the LMS, in the order they were graded.
#[utoipa::path(post, path = "/staff/release", tag = "staff",
    security(("hub_token" = []), ("hub_session" = [])),
    request_body(content = ReleaseForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Done (or released before): a page saying how many students' results were released", body = String, content_type = "text/html"),
        (status = 400, description = "The assignment holds no results (its calendar has no `hold_results`), or the body could not be read (text/plain only)", content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 401, description = "No JupyterHub token, and no valid session cookie",
            headers(("www-authenticate" = String, description = "`token`")),
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 403, description = "Not staff of the course, or a session-cookie request without the page's XSRF token",
            content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 404, description = "No such assignment", content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 413, description = "The body is over `server.max_body_bytes`", content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 415, description = "The body is not `application/x-www-form-urlencoded` (text/plain only)", content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 422, description = "A field could not be read (text/plain only)", content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 500, description = "Internal error (the cause is logged)", content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 503, description = "JupyterHub could not be asked who the caller is or which groups they are in", content((String = "text/plain"), (ErrorBody = "application/json"))),
    ))]
pub async fn release(
    State(app): State<AppState>,
    staff: Staff,
    axum::Form(f): axum::Form<ReleaseForm>,
) -> Result<Response, ApiError> {
    let key = AssignmentKey {
        course: f.course.clone(),
        section: f.section.clone(),
        assignment: f.assignment.clone(),
    };
    let a = staff_assignment(&app, &staff, &f._xsrf, &key)
        .await?
        .clone();
    let by = staff.by();
    let (app2, k2) = (app.clone(), key.clone());
    let released = app
        .db
        .write(move |c| {
            let scope = app2.calendar_scope(&a, &by, app2.clock.now());
            actions::release(c, &scope, &k2)
        })
        .await
        .map_err(|e| match e {
            crate::db::DbError::Invalid(why) => ApiError::BadRequest(why),
            other => other.into(),
        })?;
    tracing::info!(by = %staff.user.name, assignment = %key.assignment, ?released, "staff release");
    let said = match released {
        Some(n) => format!("Released the results of {n} student(s)."),
        None => "These results were released before.".into(),
    };
    Ok(answered(&app, &staff, &said, &[], &key))
}

/// What the assignment page shows of the calendar.
pub struct StaffCalendar {
    pub key: AssignmentKey,
    pub extensions: Vec<crate::db::calendar::Extension>,
    pub release: Option<crate::db::calendar::Release>,
    pub log: Vec<crate::db::calendar::LogEntry>,
}

impl StaffCalendar {
    pub fn read(c: &rusqlite::Connection, key: &AssignmentKey) -> Result<Self, crate::db::DbError> {
        use crate::db::calendar as store;
        Ok(StaffCalendar {
            extensions: store::extensions(c, key)?,
            release: store::release_of(c, key)?,
            log: store::log_of(c, key, 100)?,
            key: key.clone(),
        })
    }
}

/// The assignment page's calendar: dates, the scores that count (raw, credit, override),
/// extensions and overrides with their forms, the release button, and the log.
pub fn staff_section(
    p: &str,
    xsrf: &str,
    cal: Option<&crate::calendar::Calendar>,
    d: &StaffCalendar,
    counting: &[crate::db::grades::GradeRecord],
    now: i64,
) -> maud::Markup {
    use crate::calendar::{AfterLast, Results, span};
    let k = &d.key;
    let hidden = html! {
        input type="hidden" name="_xsrf" value=(xsrf);
        input type="hidden" name="course" value=(k.course);
        input type="hidden" name="section" value=(k.section);
        input type="hidden" name="assignment" value=(k.assignment);
    };
    let pct = |f: f64| format!("{:.1}%", f * 100.0);
    html! {
        h2 #calendar { "Calendar" }
        @match cal {
            None => p #dates { "No calendar: submissions are taken at any time, at full credit, and results are shown when graded." },
            Some(c) => {
                ul #dates {
                    @if let Some(r) = c.release { li { "Opens " (r.human()) } }
                    li { "Due " (c.due.human()) " (100% credit)" }
                    @for w in &c.late { li { "Until " (w.until.human()) ": " (w.credit) "% credit" } }
                    li { @match c.after_last {
                        AfterLast::Closed => "Then closed: new submissions are refused.",
                        AfterLast::Credit(x) => { "Then " (x) "% credit." }
                    } }
                    li #results { @match (c.results, &d.release) {
                        (Results::Shown, _) => "Results are shown when graded.",
                        (_, Some(r)) => { "Results released " (pages::time(&r.released_at)) " by " (r.released_by) "." }
                        (Results::Held, None) => "Results are held until you release them.",
                        (Results::HeldUntil(t), None) => {
                            @if now >= t.ms { "Results are released at " (t.human()) " (now due)." }
                            @else { "Results are held until " (t.human()) " (or until you release them)." }
                        }
                    } }
                }
                @if c.results != Results::Shown && d.release.is_none() {
                    form.action #release-form method="post" action={ (p) "staff/release" }
                        onsubmit="return confirm('Show every student their results and send the scores to the LMS?')" {
                        (hidden)
                        button #release type="submit" { "Release results now" }
                    }
                }
                h3 { "Extensions" }
                @if d.extensions.is_empty() { p.none { "None." } } @else {
                    table #extensions {
                        thead { tr { th { "student" } th { "extra time" } th { "due for them" } th { "reason" } th { "granted by" } th { "at" } } }
                        tbody { @for e in &d.extensions { tr {
                            td { (e.user) } td { (span(e.shift_ms)) } td { (c.due.shifted(e.shift_ms).human()) }
                            td { (e.reason) } td { (e.granted_by) } td { (pages::time(&e.granted_at)) }
                        } } }
                    }
                }
                form.action #extension-form method="post" action={ (p) "staff/extensions" } {
                    (hidden)
                    label { "Students (one or a list) " textarea name="users" rows="2" required {} }
                    label { " days " input type="number" name="days" step="any" min="0"; }
                    label { " hours " input type="number" name="hours" step="any" min="0"; }
                    label { " or new due date " input type="text" name="until" placeholder=(c.due.rfc3339()); }
                    label { " reason " input type="text" name="reason" required; }
                    label { " " input type="checkbox" name="remove" value="true"; " remove instead" }
                    " " button #extend type="submit" { "Save extensions" }
                }
            }
        }
        h3 { "Scores that count" }
        @if counting.is_empty() { p.none { "No grades yet." } } @else {
            table #counting {
                thead { tr { th { "student" } th { "submission" } th { "raw" } th { "credit" } th { "late by" } th { "override" } th { "counts" } } }
                tbody { @for g in counting { tr {
                    td { (g.user) }
                    td { a href={ (p) "staff/submissions/" (g.submission_id) } { (g.submission_id) } }
                    td.n { (pct(g.fraction)) }
                    td.n { @if let Some(c) = g.credit { (c) "%" } }
                    td { @if let Some(l) = g.late_ms.filter(|l| *l > 0) { (span(l)) } }
                    td { @if let Some((s, m, why)) = &g.overridden { (s) " / " (m) " (" (why) ")" } }
                    td.n.counted { (pct(g.counted)) }
                } } }
            }
        }
        form.action #override-form method="post" action={ (p) "staff/overrides" } {
            (hidden)
            label { "Set the score of " input type="text" name="user" required; }
            label { " to " input type="number" name="score" step="any" min="0"; }
            label { " out of " input type="number" name="max_score" step="any" min="0"; }
            label { " reason " input type="text" name="reason" required; }
            label { " " input type="checkbox" name="remove" value="true"; " remove instead" }
            " " button #override type="submit" { "Save override" }
        }
        h3 { "Calendar log" }
        @if d.log.is_empty() { p.none { "Nothing yet." } } @else {
            table #calendar-log {
                thead { tr { th { "at" } th { "who" } th { "student" } th { "what" } th { "detail" } } }
                tbody { @for l in &d.log { tr {
                    td { (pages::time(&l.at)) } td { (l.actor) } td { (l.user.as_deref().unwrap_or("")) }
                    td { (l.action) } td { (l.detail) }
                } } }
            }
        }
    }
}
