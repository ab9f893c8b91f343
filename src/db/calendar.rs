//! The course calendar's storage: extensions, score overrides, result releases, the log of
//! every calendar action, and the lateness stamped on submissions. The rules (what a
//! deadline means, what an extension does) are `crate::calendar`'s.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

pub use super::scores::{Override, override_of};
use super::scores::{StudentAssignment, override_row};
use super::{DbError, format_ms};

/// An assignment: course, section, assignment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct AssignmentKey {
    pub course: String,
    pub section: String,
    pub assignment: String,
}

impl AssignmentKey {
    pub fn of(key: &StudentAssignment) -> Self {
        AssignmentKey {
            course: key.course.clone(),
            section: key.section.clone(),
            assignment: key.assignment.clone(),
        }
    }

    pub fn student(&self, user: &str) -> StudentAssignment {
        StudentAssignment {
            user: user.to_string(),
            course: self.course.clone(),
            section: self.section.clone(),
            assignment: self.assignment.clone(),
        }
    }
}

/// When a submission came, as the calendar judged it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lateness {
    /// Percent of the raw score that counts.
    pub credit: f64,
    /// How long after the student's due date (0: on time).
    pub late_ms: i64,
}

/// A student's extension.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Extension {
    pub user: String,
    pub shift_ms: i64,
    pub reason: String,
    pub granted_by: String,
    pub granted_at: String,
}

/// A staff release of held results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Release {
    pub released_at: String,
    pub released_by: String,
}

/// One calendar action.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogEntry {
    pub at: String,
    pub actor: String,
    pub user: Option<String>,
    pub action: String,
    pub detail: String,
}

const KEY: &str = "course = ?1 AND section = ?2 AND assignment = ?3";
const STUDENT: &str = "course = ?1 AND section = ?2 AND assignment = ?3 AND user = ?4";

/// Record a calendar action.
pub fn log(
    conn: &Connection,
    now: i64,
    actor: &str,
    a: &AssignmentKey,
    user: Option<&str>,
    action: &str,
    detail: &str,
) -> Result<(), DbError> {
    conn.prepare_cached(
        "INSERT INTO calendar_log (at, actor, course, section, assignment, user, action, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        now,
        actor,
        a.course,
        a.section,
        a.assignment,
        user,
        action,
        detail
    ])?;
    Ok(())
}

/// The newest `limit` calendar actions on an assignment, newest first.
pub fn log_of(conn: &Connection, a: &AssignmentKey, limit: i64) -> Result<Vec<LogEntry>, DbError> {
    let sql = format!(
        "SELECT at, actor, user, action, detail FROM calendar_log WHERE {KEY}
         ORDER BY id DESC LIMIT ?4"
    );
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(params![a.course, a.section, a.assignment, limit], |r| {
            Ok(LogEntry {
                at: format_ms(r.get(0)?),
                actor: r.get(1)?,
                user: r.get(2)?,
                action: r.get(3)?,
                detail: r.get(4)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// How far a student's deadlines are shifted (0: no extension).
pub fn shift_of(conn: &Connection, key: &StudentAssignment) -> Result<i64, DbError> {
    let sql = format!("SELECT shift_ms FROM extensions WHERE {STUDENT}");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(
            params![key.course, key.section, key.assignment, key.user],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0))
}

fn extension_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Extension> {
    Ok(Extension {
        user: r.get(0)?,
        shift_ms: r.get(1)?,
        reason: r.get(2)?,
        granted_by: r.get(3)?,
        granted_at: format_ms(r.get(4)?),
    })
}

/// A student's extension, if any.
pub fn extension_of(
    conn: &Connection,
    key: &StudentAssignment,
) -> Result<Option<Extension>, DbError> {
    let sql = format!(
        "SELECT user, shift_ms, reason, granted_by, granted_at FROM extensions WHERE {STUDENT}"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(
            params![key.course, key.section, key.assignment, key.user],
            extension_row,
        )
        .optional()?)
}

/// Every extension on an assignment, by user.
pub fn extensions(conn: &Connection, a: &AssignmentKey) -> Result<Vec<Extension>, DbError> {
    let sql = format!(
        "SELECT user, shift_ms, reason, granted_by, granted_at FROM extensions WHERE {KEY}
         ORDER BY user"
    );
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(params![a.course, a.section, a.assignment], extension_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Give a student an extension of `shift_ms` (replacing theirs).
pub fn set_extension(
    conn: &Connection,
    key: &StudentAssignment,
    shift_ms: i64,
    reason: &str,
    by: &str,
    now: i64,
) -> Result<(), DbError> {
    conn.prepare_cached(
        "INSERT INTO extensions (course, section, assignment, user, shift_ms, reason, granted_by,
                                 granted_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (course, section, assignment, user) DO UPDATE SET
             shift_ms = excluded.shift_ms, reason = excluded.reason,
             granted_by = excluded.granted_by, granted_at = excluded.granted_at",
    )?
    .execute(params![
        key.course,
        key.section,
        key.assignment,
        key.user,
        shift_ms,
        reason,
        by,
        now
    ])?;
    Ok(())
}

/// Remove a student's extension; whether there was one.
pub fn remove_extension(conn: &Connection, key: &StudentAssignment) -> Result<bool, DbError> {
    let sql = format!("DELETE FROM extensions WHERE {STUDENT}");
    Ok(conn.prepare_cached(&sql)?.execute(params![
        key.course,
        key.section,
        key.assignment,
        key.user
    ])? > 0)
}

/// Every override on an assignment, by user.
pub fn overrides(conn: &Connection, a: &AssignmentKey) -> Result<Vec<Override>, DbError> {
    let sql = format!(
        "SELECT user, score, max_score, reason, set_by, set_at FROM score_overrides
         WHERE {KEY} ORDER BY user"
    );
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(params![a.course, a.section, a.assignment], override_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Set a student's score (replacing an earlier override).
#[allow(clippy::too_many_arguments)]
pub fn set_override(
    conn: &Connection,
    key: &StudentAssignment,
    score: f64,
    max_score: f64,
    reason: &str,
    by: &str,
    now: i64,
) -> Result<(), DbError> {
    conn.prepare_cached(
        "INSERT INTO score_overrides (course, section, assignment, user, score, max_score,
                                      reason, set_by, set_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (course, section, assignment, user) DO UPDATE SET
             score = excluded.score, max_score = excluded.max_score, reason = excluded.reason,
             set_by = excluded.set_by, set_at = excluded.set_at",
    )?
    .execute(params![
        key.course,
        key.section,
        key.assignment,
        key.user,
        score,
        max_score,
        reason,
        by,
        now
    ])?;
    Ok(())
}

/// Remove a student's override; whether there was one.
pub fn remove_override(conn: &Connection, key: &StudentAssignment) -> Result<bool, DbError> {
    let sql = format!("DELETE FROM score_overrides WHERE {STUDENT}");
    Ok(conn.prepare_cached(&sql)?.execute(params![
        key.course,
        key.section,
        key.assignment,
        key.user
    ])? > 0)
}

/// Whether (and when, by whom) an assignment's held results were released.
pub fn release_of(conn: &Connection, a: &AssignmentKey) -> Result<Option<Release>, DbError> {
    let sql = format!("SELECT released_at, released_by FROM result_releases WHERE {KEY}");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![a.course, a.section, a.assignment], |r| {
            Ok(Release {
                released_at: format_ms(r.get(0)?),
                released_by: r.get(1)?,
            })
        })
        .optional()?)
}

/// Record the release of an assignment's results; false when they were released before.
pub fn record_release(
    conn: &Connection,
    a: &AssignmentKey,
    by: &str,
    now: i64,
) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached(
            "INSERT INTO result_releases (course, section, assignment, released_at, released_by)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
        )?
        .execute(params![a.course, a.section, a.assignment, now, by])?
        > 0)
}

/// XQueue's submissions are judged by edX's own due dates, never by the calendar (our
/// `received_at` is the pull time, not the learner's).
const NOT_XQUEUE: &str = "user NOT LIKE 'xqueue:%'";

/// A student's submissions of the assignment that the calendar judges: id and when each
/// was committed.
pub fn received(conn: &Connection, key: &StudentAssignment) -> Result<Vec<(i64, i64)>, DbError> {
    let sql = format!(
        "SELECT id, received_at FROM submissions WHERE {STUDENT} AND {NOT_XQUEUE} ORDER BY id"
    );
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(
            params![key.course, key.section, key.assignment, key.user],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// The students with submissions of the assignment that the calendar judges, by name.
pub fn judged_students(conn: &Connection, a: &AssignmentKey) -> Result<Vec<String>, DbError> {
    let sql =
        format!("SELECT DISTINCT user FROM submissions WHERE {KEY} AND {NOT_XQUEUE} ORDER BY user");
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(params![a.course, a.section, a.assignment], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Stamp a submission with its lateness (`None`: the assignment has no calendar).
pub fn stamp(conn: &Connection, submission_id: i64, l: Option<Lateness>) -> Result<(), DbError> {
    conn.prepare_cached("UPDATE submissions SET credit = ?2, late_ms = ?3 WHERE id = ?1")?
        .execute(params![
            submission_id,
            l.map(|l| l.credit),
            l.map(|l| l.late_ms)
        ])?;
    Ok(())
}

/// A submission's stamped lateness.
pub fn lateness_of(conn: &Connection, submission_id: i64) -> Result<Option<Lateness>, DbError> {
    let row: Option<(Option<f64>, Option<i64>)> = conn
        .prepare_cached("SELECT credit, late_ms FROM submissions WHERE id = ?1")?
        .query_row([submission_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(match row {
        Some((Some(credit), Some(late_ms))) => Some(Lateness { credit, late_ms }),
        _ => None,
    })
}

/// Students with at least one grade on the assignment, in the order their first grade
/// was stored.
pub fn graded_students(conn: &Connection, a: &AssignmentKey) -> Result<Vec<String>, DbError> {
    students_with_grades(conn, a, "")
}

/// Students with a grade on the assignment that also meets `and` (SQL on `g`, the grade,
/// starting with `AND`, or empty), in the order their first such grade was stored.
fn students_with_grades(
    conn: &Connection,
    a: &AssignmentKey,
    and: &str,
) -> Result<Vec<String>, DbError> {
    let sql = format!(
        "SELECT s.user FROM grades g JOIN submissions s ON s.id = g.submission_id
         WHERE s.{} {and} GROUP BY s.user ORDER BY MIN(g.id)",
        KEY.replace(" AND ", " AND s.")
    );
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(params![a.course, a.section, a.assignment], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// The fingerprint of the calendar the assignment's stamps were made with.
pub fn fingerprint(conn: &Connection, a: &AssignmentKey) -> Result<Option<String>, DbError> {
    let sql = format!("SELECT fingerprint FROM calendar_stamps WHERE {KEY}");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![a.course, a.section, a.assignment], |r| r.get(0))
        .optional()?)
}

/// Remember the calendar the assignment's stamps were made with.
pub fn set_fingerprint(conn: &Connection, a: &AssignmentKey, f: &str) -> Result<(), DbError> {
    conn.prepare_cached(
        "INSERT INTO calendar_stamps (course, section, assignment, fingerprint)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (course, section, assignment) DO UPDATE SET fingerprint = excluded.fingerprint",
    )?
    .execute(params![a.course, a.section, a.assignment, f])?;
    Ok(())
}

/// Students with held grades on the assignment, in the order their first grade was stored.
pub fn held_students(conn: &Connection, a: &AssignmentKey) -> Result<Vec<String>, DbError> {
    students_with_grades(conn, a, "AND g.post_state = 'held'")
}

/// Held grades of a student's assignment wait for a post again (after a release).
pub fn unhold(conn: &Connection, key: &StudentAssignment) -> Result<(), DbError> {
    conn.prepare_cached(
        "UPDATE grades SET post_state = 'pending', post_detail = 'results released'
         WHERE post_state = 'held' AND submission_id IN (
             SELECT id FROM submissions
              WHERE course = ?1 AND section = ?2 AND assignment = ?3 AND user = ?4)",
    )?
    .execute(params![key.course, key.section, key.assignment, key.user])?;
    Ok(())
}

/// A student's grades waiting for the post are held: the post waits for the release.
pub fn hold(conn: &Connection, key: &StudentAssignment) -> Result<(), DbError> {
    conn.prepare_cached(
        "UPDATE grades SET post_state = 'held',
                post_detail = 'results are held until course staff release them'
         WHERE post_state = 'pending' AND submission_id IN (
             SELECT id FROM submissions
              WHERE course = ?1 AND section = ?2 AND assignment = ?3 AND user = ?4)",
    )?
    .execute(params![key.course, key.section, key.assignment, key.user])?;
    Ok(())
}

/// A grade waits for a post again (its counting score changed).
pub fn mark_pending(conn: &Connection, grade_id: i64, why: &str) -> Result<(), DbError> {
    conn.prepare_cached(
        "UPDATE grades SET post_state = 'pending', post_detail = ?2
         WHERE id = ?1 AND post_state != 'not_configured'",
    )?
    .execute(params![grade_id, why])?;
    Ok(())
}

/// A student's calendar for one assignment, as they see it (built by
/// `crate::calendar::views`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DueView {
    /// `none` (the assignment has no dates), `not_yet` (not open), `open` (on time),
    /// `late` (open for late credit) or `closed`.
    pub state: String,
    /// The student's due date, their extension included (RFC 3339, the course's zone).
    pub due: Option<String>,
    /// The student's extension, if they have one.
    pub extension_secs: Option<i64>,
    /// When the assignment opens, if it has a release date.
    pub opens: Option<String>,
    /// The credit (percent) a submission made now earns; `None` when none is taken.
    pub credit_now: Option<f64>,
    /// When that credit ends (`None`: it does not end, or none is taken).
    pub credit_until: Option<String>,
    /// Whether results wait for course staff to release them.
    pub results_held: bool,
    /// The score course staff set for the student, which counts instead of their grades.
    pub overridden: Option<OverriddenScore>,
    /// All of it in one sentence, for people (the Submit panel shows it).
    pub sentence: String,
    /// A few words for beside the Submit button: "due in 3 hours", "late: 80% credit for
    /// 5 hours", "closed", "opens in 2 days" (empty without dates).
    pub short: String,
}

/// A score set by course staff, as the student sees it (not the reason: it may be
/// private).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct OverriddenScore {
    pub score: f64,
    pub max_score: f64,
    pub set_at: String,
}
