//! Which grade counts, and what edX holds. [`ScorePolicy::order_sql`] is the one
//! definition of "the grade that counts" for a student's assignment; the post job, the
//! export, the student's page and the staff views all read it through this module.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::states::{PostState, ScorePolicy};
use super::{DbError, events, format_ms};

/// A student's assignment: whose grades compete for what edX holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StudentAssignment {
    pub user: String,
    pub course: String,
    pub section: String,
    pub assignment: String,
}

/// The grade that counts for one student's assignment, and the score it makes.
#[derive(Debug, Clone, PartialEq)]
pub struct Counted {
    pub grade_id: i64,
    pub submission_id: i64,
    /// The fraction that counts: the staff override's, else the raw fraction times the
    /// submission's late credit.
    pub fraction: f64,
    /// Points that count and possible (LTI 1.3 posts points; LTI 1.1 the fraction).
    pub score: f64,
    pub max_score: f64,
    /// The grade's own fraction, before credit or override.
    pub raw_fraction: f64,
    /// The submission's late credit (percent; `None`: the assignment has no calendar).
    pub credit: Option<f64>,
    /// How long after the student's due date it came (0: on time).
    pub late_ms: Option<i64>,
    /// The score staff set, which counts instead.
    pub overridden: Option<Override>,
    /// When the counting submission was received (ms): the LMS's "submitted at".
    pub received_at: i64,
    /// The newest grade id of the student's assignment when this was read: grades up to
    /// it were considered.
    pub newest_grade_id: i64,
}

/// A score staff set for a student's assignment (`crate::calendar`): it counts instead of
/// any grade.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Override {
    pub user: String,
    pub score: f64,
    pub max_score: f64,
    pub reason: String,
    pub set_by: String,
    pub set_at: String,
}

pub(super) fn override_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Override> {
    Ok(Override {
        user: r.get(0)?,
        score: r.get(1)?,
        max_score: r.get(2)?,
        reason: r.get(3)?,
        set_by: r.get(4)?,
        set_at: format_ms(r.get(5)?),
    })
}

/// The score staff set for a student's assignment, if any.
pub fn override_of(
    conn: &Connection,
    key: &StudentAssignment,
) -> Result<Option<Override>, DbError> {
    let sql = "SELECT user, score, max_score, reason, set_by, set_at FROM score_overrides
         WHERE course = ?1 AND section = ?2 AND assignment = ?3 AND user = ?4";
    Ok(conn
        .prepare_cached(sql)?
        .query_row(
            params![key.course, key.section, key.assignment, key.user],
            override_row,
        )
        .optional()?)
}

/// The fraction that counts: a staff override's (score, most possible), else the raw
/// fraction times the late credit (percent; none: no calendar). The one rule for posts,
/// exports, pages and the dashboard.
pub fn counts(raw: f64, credit: Option<f64>, overridden: Option<(f64, f64)>) -> f64 {
    match (overridden, credit) {
        (Some((score, max)), _) if max > 0.0 => (score / max).clamp(0.0, 1.0),
        (Some(_), _) => 0.0,
        (None, Some(credit)) => raw * credit / 100.0,
        (None, None) => raw,
    }
}

/// The student and assignment of a submission.
pub fn student_assignment(
    conn: &Connection,
    submission_id: i64,
) -> Result<StudentAssignment, DbError> {
    Ok(conn
        .prepare_cached("SELECT user, course, section, assignment FROM submissions WHERE id = ?1")?
        .query_row([submission_id], |r| {
            Ok(StudentAssignment {
                user: r.get(0)?,
                course: r.get(1)?,
                section: r.get(2)?,
                assignment: r.get(3)?,
            })
        })?)
}

const SAME_STUDENT: &str = "s.user = ?1 AND s.course = ?2 AND s.section = ?3 AND s.assignment = ?4";

/// The grade that counts for `key` under `policy`, if the student has any grade.
pub fn counted(
    conn: &Connection,
    key: &StudentAssignment,
    policy: ScorePolicy,
) -> Result<Option<Counted>, DbError> {
    let sql = format!(
        "SELECT g.id, s.id, g.fraction, g.score, g.max_score, s.received_at,
                (SELECT MAX(g2.id) FROM grades g2 JOIN submissions s ON s.id = g2.submission_id
                  WHERE {SAME_STUDENT}), s.credit, s.late_ms
         FROM grades g JOIN submissions s ON s.id = g.submission_id
         WHERE {SAME_STUDENT} ORDER BY {} LIMIT 1",
        policy.order_sql()
    );
    let Some(mut c) = conn
        .prepare_cached(&sql)?
        .query_row(
            params![key.user, key.course, key.section, key.assignment],
            |r| {
                Ok(Counted {
                    grade_id: r.get(0)?,
                    submission_id: r.get(1)?,
                    fraction: r.get(2)?,
                    raw_fraction: r.get(2)?,
                    score: r.get(3)?,
                    max_score: r.get(4)?,
                    received_at: r.get(5)?,
                    newest_grade_id: r.get(6)?,
                    credit: r.get(7)?,
                    late_ms: r.get(8)?,
                    overridden: None,
                })
            },
        )
        .optional()?
    else {
        return Ok(None);
    };
    c.overridden = override_of(conn, key)?;
    c.fraction = counts(
        c.raw_fraction,
        c.credit,
        c.overridden.as_ref().map(|o| (o.score, o.max_score)),
    );
    if let Some(o) = &c.overridden {
        c.max_score = o.max_score;
    }
    c.score = c.fraction * c.max_score;
    Ok(Some(c))
}

/// edX now holds `counted`'s score: that grade is `posted`, and every other grade of the
/// student's assignment that was considered (up to `counted.newest_grade_id`) and was
/// waiting for or holding the post is `superseded`. Grades stored after the read stay
/// `pending`: the post queued behind this one covers them.
pub fn record_posted(
    conn: &Connection,
    key: &StudentAssignment,
    counted: &Counted,
    score: f64,
    now: i64,
) -> Result<(), DbError> {
    conn.prepare_cached(
        "UPDATE grades SET post_state = 'posted', post_detail = NULL, posted_score = ?2
         WHERE id = ?1",
    )?
    .execute(params![counted.grade_id, score])?;
    let detail = format!(
        "submission {}'s score counts for edX instead",
        counted.submission_id
    );
    let sql = format!(
        "UPDATE grades SET post_state = 'superseded', post_detail = ?5
         WHERE id IN (SELECT g.id FROM grades g JOIN submissions s ON s.id = g.submission_id
                      WHERE {SAME_STUDENT} AND g.id <= ?6 AND g.id != ?7
                        AND g.post_state IN ('pending', 'posted', 'dead'))"
    );
    conn.prepare_cached(&sql)?.execute(params![
        key.user,
        key.course,
        key.section,
        key.assignment,
        detail,
        counted.newest_grade_id,
        counted.grade_id
    ])?;
    let what = format!("{score} (grade {})", counted.grade_id);
    events::record(
        conn,
        now,
        Some(counted.submission_id),
        None,
        "posted",
        &what,
    )?;
    Ok(())
}

/// The post for `key` failed for now (`dead` false: retrying) or for good: every grade of
/// the student's assignment up to `newest_grade_id` still waiting for it says so.
pub fn record_post_failure(
    conn: &Connection,
    key: &StudentAssignment,
    newest_grade_id: i64,
    dead: bool,
    detail: &str,
) -> Result<(), DbError> {
    let state = if dead {
        PostState::Dead
    } else {
        PostState::Pending
    };
    let sql = format!(
        "UPDATE grades SET post_state = ?5, post_detail = ?6
         WHERE id IN (SELECT g.id FROM grades g JOIN submissions s ON s.id = g.submission_id
                      WHERE {SAME_STUDENT} AND g.id <= ?7 AND g.post_state IN ('pending', 'dead'))"
    );
    conn.prepare_cached(&sql)?.execute(params![
        key.user,
        key.course,
        key.section,
        key.assignment,
        state,
        detail,
        newest_grade_id
    ])?;
    Ok(())
}

/// Staff queued the post of `key` again: its dead grades (and with `posted`, its posted
/// ones) wait for it.
pub fn record_requeued(
    conn: &Connection,
    key: &StudentAssignment,
    posted: bool,
) -> Result<(), DbError> {
    let sql = format!(
        "UPDATE grades SET post_state = 'pending', post_detail = 'queued again by staff'
         WHERE id IN (SELECT g.id FROM grades g JOIN submissions s ON s.id = g.submission_id
                      WHERE {SAME_STUDENT}
                        AND (g.post_state = 'dead' OR (?5 AND g.post_state = 'posted')))"
    );
    conn.prepare_cached(&sql)?.execute(params![
        key.user,
        key.course,
        key.section,
        key.assignment,
        posted
    ])?;
    Ok(())
}

/// The assignment no longer posts to edX: its waiting grades say so.
pub fn record_not_configured(
    conn: &Connection,
    key: &StudentAssignment,
    detail: &str,
) -> Result<(), DbError> {
    let sql = format!(
        "UPDATE grades SET post_state = 'not_configured', post_detail = ?5
         WHERE id IN (SELECT g.id FROM grades g JOIN submissions s ON s.id = g.submission_id
                      WHERE {SAME_STUDENT} AND g.post_state = 'pending')"
    );
    conn.prepare_cached(&sql)?.execute(params![
        key.user,
        key.course,
        key.section,
        key.assignment,
        detail
    ])?;
    Ok(())
}

#[cfg(test)]
#[path = "scores_tests.rs"]
mod tests;
