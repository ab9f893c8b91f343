//! What staff do to a course's calendar: extensions, score overrides, releases of held
//! results. Each runs in one write transaction, is recorded in the calendar log with who
//! did it, and leaves the LMS with the score that counts: when a student's counting score
//! changes, a post is queued (the post job reads what counts when it runs, and holds it
//! while the results are held). The dashboard (`http::staff`) and the CLI
//! (`otter-service calendar`) both come here.

use rusqlite::Connection;

use super::Calendar;
use crate::db::calendar::{self as store, AssignmentKey};
use crate::db::scores::{self, Counted, StudentAssignment};
use crate::db::states::ScorePolicy;
use crate::db::{DbError, jobs};
use crate::users::is_hub_user;

/// How an action reaches one assignment.
#[derive(Debug, Clone)]
pub struct Scope<'a> {
    pub calendar: Option<&'a Calendar>,
    pub policy: ScorePolicy,
    /// The LMS post's horizon (ms) when the assignment posts scores, else `None`.
    pub post_horizon_ms: Option<i64>,
    /// Who, for the log (`staff NAME (dashboard)`, `cli`).
    pub by: &'a str,
    /// Now by the calendar's clock (`crate::clock`).
    pub now: i64,
}

/// What an action did to one student's score that counts.
#[derive(Debug, Clone, PartialEq)]
pub struct Moved {
    pub user: String,
    /// The fraction that counted before and after (`None`: no grade).
    pub before: Option<f64>,
    pub after: Option<f64>,
    /// Whether a post to the LMS was queued.
    pub posted: bool,
}

/// Stamp every submission of `key` again under the calendar and the student's extension.
fn restamp(
    conn: &Connection,
    calendar: Option<&Calendar>,
    key: &StudentAssignment,
) -> Result<(), DbError> {
    let shift = store::shift_of(conn, key)?;
    for (id, at) in store::received(conn, key)? {
        store::stamp(conn, id, calendar.map(|c| c.stamp_for(at, shift)))?;
    }
    Ok(())
}

/// Run `change` for `key`, stamp its submissions again, and queue a post when the score
/// that counts moved.
fn changing(
    conn: &Connection,
    scope: &Scope<'_>,
    key: &StudentAssignment,
    change: impl FnOnce(&Connection) -> Result<(), DbError>,
) -> Result<Moved, DbError> {
    let before = scores::counted(conn, key, scope.policy)?.map(|c| c.fraction);
    change(conn)?;
    restamp(conn, scope.calendar, key)?;
    let after = scores::counted(conn, key, scope.policy)?;
    let mut posted = false;
    // Only JupyterHub users' scores go to the LMS (XQueue answers edX itself; platforms
    // get webhooks): the grade job's rule (`crate::users`).
    if let (Some(horizon), Some(c)) = (scope.post_horizon_ms, &after)
        && before != Some(c.fraction)
        && is_hub_user(&key.user)
    {
        store::mark_pending(
            conn,
            c.grade_id,
            "the score that counts changed (course calendar)",
        )?;
        queue_post(conn, c, horizon)?;
        posted = true;
    }
    Ok(Moved {
        user: key.user.clone(),
        before,
        after: after.map(|c| c.fraction),
        posted,
    })
}

/// Queue the LMS post of `c`'s student. Jobs run by the system clock, not the calendar's.
fn queue_post(conn: &Connection, c: &Counted, horizon_ms: i64) -> Result<(), DbError> {
    jobs::queue_post(
        conn,
        c.submission_id,
        c.grade_id,
        horizon_ms,
        crate::db::now_ms(),
    )?;
    Ok(())
}

/// [`changing`], then record `action` in the calendar log with `detail` and the move.
fn logged(
    conn: &Connection,
    scope: &Scope<'_>,
    key: &StudentAssignment,
    action: &str,
    detail: String,
    change: impl FnOnce(&Connection) -> Result<(), DbError>,
) -> Result<Moved, DbError> {
    let moved = changing(conn, scope, key, change)?;
    let a = AssignmentKey::of(key);
    let detail = with_move(detail, &moved);
    store::log(
        conn,
        scope.now,
        scope.by,
        &a,
        Some(&key.user),
        action,
        &detail,
    )?;
    Ok(moved)
}

/// Give `key`'s student an extension of `shift_ms` (replacing theirs).
pub fn grant(
    conn: &Connection,
    scope: &Scope<'_>,
    key: &StudentAssignment,
    shift_ms: i64,
    reason: &str,
) -> Result<Moved, DbError> {
    let detail = format!("{} more; reason: {reason}", super::span(shift_ms));
    logged(conn, scope, key, "extension granted", detail, |c| {
        store::set_extension(c, key, shift_ms, reason, scope.by, scope.now)
    })
}

/// Take `key`'s extension back; `None` when there was none.
pub fn revoke(
    conn: &Connection,
    scope: &Scope<'_>,
    key: &StudentAssignment,
    reason: &str,
) -> Result<Option<Moved>, DbError> {
    if store::extension_of(conn, key)?.is_none() {
        return Ok(None);
    }
    let detail = format!("reason: {reason}");
    logged(conn, scope, key, "extension removed", detail, |c| {
        store::remove_extension(c, key).map(|_| ())
    })
    .map(Some)
}

/// Set `key`'s score to `score` out of `max_score`; an error when the student has no
/// grade for it (an override replaces a grade's score; regrade or ask for a submission).
pub fn set_override(
    conn: &Connection,
    scope: &Scope<'_>,
    key: &StudentAssignment,
    score: f64,
    max_score: f64,
    reason: &str,
) -> Result<Moved, DbError> {
    if !(max_score > 0.0 && (0.0..=max_score).contains(&score)) {
        return Err(DbError::Invalid(format!(
            "a score must be between 0 and the most possible ({score} of {max_score})"
        )));
    }
    if scores::counted(conn, key, scope.policy)?.is_none() {
        return Err(DbError::Invalid(format!(
            "{} has no grade for {} yet: an override replaces the score of graded work \
             (regrade their submission, or ask them to submit)",
            key.user, key.assignment
        )));
    }
    let detail = format!("{score}/{max_score}; reason: {reason}");
    logged(conn, scope, key, "score overridden", detail, |c| {
        store::set_override(c, key, score, max_score, reason, scope.by, scope.now)
    })
}

/// Remove `key`'s override (its grades count again); `None` when there was none.
pub fn clear_override(
    conn: &Connection,
    scope: &Scope<'_>,
    key: &StudentAssignment,
    reason: &str,
) -> Result<Option<Moved>, DbError> {
    if store::override_of(conn, key)?.is_none() {
        return Ok(None);
    }
    let detail = format!("reason: {reason}");
    logged(conn, scope, key, "override removed", detail, |c| {
        store::remove_override(c, key).map(|_| ())
    })
    .map(Some)
}

/// Release an assignment's held results: every graded student's post is queued, in the
/// order their first grades were stored. `None` when they were released before; an error
/// when the assignment holds no results (a release would be recorded for good, and a
/// hold added later would never hold).
pub fn release(
    conn: &Connection,
    scope: &Scope<'_>,
    a: &AssignmentKey,
) -> Result<Option<usize>, DbError> {
    if scope
        .calendar
        .is_none_or(|c| c.results == super::Results::Shown)
    {
        return Err(DbError::Invalid(format!(
            "{} does not hold its results (its calendar has no hold_results), so there is \
             nothing to release",
            a.assignment
        )));
    }
    if !store::record_release(conn, a, scope.by, scope.now)? {
        return Ok(None);
    }
    let students = store::graded_students(conn, a)?;
    show_and_log(conn, scope, a, &students, "results released", |n, posts| {
        format!("results of {n} student(s) shown; {posts} post(s) to the LMS queued")
    })?;
    Ok(Some(students.len()))
}

/// Show `students`' held results and send their scores ([`post_all`]), and write it in
/// the calendar log as `what`, with `detail(students, posts queued)`.
fn show_and_log(
    conn: &Connection,
    scope: &Scope<'_>,
    a: &AssignmentKey,
    students: &[String],
    what: &str,
    detail: impl FnOnce(usize, usize) -> String,
) -> Result<(), DbError> {
    let posts = post_all(conn, scope, a, students)?;
    let detail = detail(students.len(), posts);
    store::log(conn, scope.now, scope.by, a, None, what, &detail)
}

/// Unhold `students`' grades and queue the posts of the JupyterHub users among them (in
/// the order given); how many posts were queued.
fn post_all(
    conn: &Connection,
    scope: &Scope<'_>,
    a: &AssignmentKey,
    students: &[String],
) -> Result<usize, DbError> {
    let mut posts = 0;
    for user in students {
        let key = a.student(user);
        store::unhold(conn, &key)?;
        if !is_hub_user(user) {
            continue;
        }
        if let (Some(horizon), Some(c)) = (
            scope.post_horizon_ms,
            scores::counted(conn, &key, scope.policy)?,
        ) {
            queue_post(conn, &c, horizon)?;
            posts += 1;
        }
    }
    Ok(posts)
}

/// Grades still held on an assignment whose results are now shown (staff took the hold
/// out of the course config): unhold them and send their scores, so none waits for a
/// release that can no longer come. How many students.
pub fn unhold_shown(
    conn: &Connection,
    scope: &Scope<'_>,
    a: &AssignmentKey,
) -> Result<usize, DbError> {
    if scope
        .calendar
        .is_some_and(|c| c.results != super::Results::Shown)
    {
        return Ok(0);
    }
    let students = store::held_students(conn, a)?;
    if students.is_empty() {
        return Ok(0);
    }
    show_and_log(
        conn,
        scope,
        a,
        &students,
        "results no longer held",
        |n, posts| {
            format!(
                "the course config no longer holds results: {n} student(s)' held results shown; \
             {posts} post(s) to the LMS queued"
            )
        },
    )?;
    Ok(students.len())
}

/// Stamp the assignment's submissions again when its calendar changed since they were
/// stamped (the course config was edited), and queue posts for the students whose score
/// that counts moved. Returns how many students' scores moved.
pub fn restamp_assignment(
    conn: &Connection,
    scope: &Scope<'_>,
    a: &AssignmentKey,
) -> Result<usize, DbError> {
    let fingerprint = Calendar::fingerprint(scope.calendar);
    let known = store::fingerprint(conn, a)?;
    if known.as_deref() == Some(fingerprint.as_str()) {
        return Ok(0);
    }
    if known.is_none() && scope.calendar.is_none() {
        // Never stamped: its submissions carry no lateness, as an assignment without a
        // calendar's should.
        store::set_fingerprint(conn, a, &fingerprint)?;
        return Ok(0);
    }
    let users = store::judged_students(conn, a)?;
    let mut moved = 0;
    for user in &users {
        let m = changing(conn, scope, &a.student(user), |_| Ok(()))?;
        if m.before != m.after {
            moved += 1;
        }
    }
    store::set_fingerprint(conn, a, &fingerprint)?;
    if known.is_some() || !users.is_empty() {
        let detail = format!(
            "the course config's calendar changed: {} student(s)' submissions stamped again, \
             {moved} score(s) that count moved",
            users.len()
        );
        store::log(
            conn,
            scope.now,
            scope.by,
            a,
            None,
            "calendar changed",
            &detail,
        )?;
    }
    Ok(moved)
}

/// A fraction that counts, for people: "72.0%", or "no grade".
pub fn percent(f: Option<f64>) -> String {
    f.map_or("no grade".to_string(), |f| format!("{:.1}%", f * 100.0))
}

fn with_move(detail: String, m: &Moved) -> String {
    let pct = percent;
    if m.before == m.after {
        format!("{detail}; score that counts unchanged ({})", pct(m.after))
    } else {
        format!(
            "{detail}; score that counts {} -> {}",
            pct(m.before),
            pct(m.after)
        )
    }
}

#[cfg(test)]
#[path = "staff_tests.rs"]
mod tests;
