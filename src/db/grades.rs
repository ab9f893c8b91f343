//! Grade rows: written by the grade job, read by status pages, dump-grades and posting.

use rusqlite::{Connection, params};

use super::{DbError, events};
use crate::grading::GradeOutcome;

/// Insert the grade for `outcome` of submission `submission_id`'s job `job_id`.
/// `post_state` is `pending` when a post job follows, else `not_configured`.
pub fn insert(
    conn: &Connection,
    submission_id: i64,
    job_id: i64,
    outcome: &GradeOutcome,
    post_state: &str,
    now: i64,
) -> Result<i64, DbError> {
    let (status, score, max_score, fraction, tests, feedback, message, log_tail) = match outcome {
        GradeOutcome::Graded(r) => (
            "graded",
            r.score,
            r.max_score,
            r.fraction(),
            serde_json::to_string(&r.tests).map_err(|e| DbError::Invalid(e.to_string()))?,
            r.public_feedback.as_str(),
            None,
            None,
        ),
        GradeOutcome::Failed {
            fault,
            message,
            log_tail,
        } => (
            fault.as_str(),
            0.0,
            0.0,
            0.0,
            "[]".to_string(),
            "",
            Some(message.as_str()),
            Some(log_tail.as_str()),
        ),
    };
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO grades (submission_id, job_id, status, score, max_score, fraction, tests,
                                 public_feedback, message, log_tail, graded_at, post_state)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) RETURNING id",
        )?
        .query_row(
            params![
                submission_id,
                job_id,
                status,
                score,
                max_score,
                fraction,
                tests,
                feedback,
                message,
                log_tail,
                now,
                post_state
            ],
            |r| r.get(0),
        )?;
    let detail = format!("{status} {score}/{max_score}");
    events::record(
        conn,
        now,
        Some(submission_id),
        Some(job_id),
        "graded",
        &detail,
    )?;
    Ok(id)
}

/// Set a grade's posting state (and the reason, for dead or retrying posts).
pub fn set_post_state(
    conn: &Connection,
    grade_id: i64,
    state: &str,
    detail: Option<&str>,
    posted_score: Option<f64>,
) -> Result<(), DbError> {
    conn.prepare_cached(
        "UPDATE grades SET post_state = ?1, post_detail = ?2,
                posted_score = COALESCE(?3, posted_score) WHERE id = ?4",
    )?
    .execute(params![state, detail, posted_score, grade_id])?;
    Ok(())
}

/// One grade row for export.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GradeRecord {
    pub grade_id: i64,
    pub submission_id: i64,
    pub user: String,
    pub course: String,
    pub section: String,
    pub assignment: String,
    pub status: String,
    pub score: f64,
    pub max_score: f64,
    pub fraction: f64,
    pub graded_at: i64,
    pub post_state: String,
}

/// Every grade, oldest first, filtered by course/section/assignment when given.
pub fn all(
    conn: &Connection,
    course: Option<&str>,
    section: Option<&str>,
    assignment: Option<&str>,
) -> Result<Vec<GradeRecord>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT g.id, s.id, s.user, s.course, s.section, s.assignment, g.status, g.score,
                g.max_score, g.fraction, g.graded_at, g.post_state
         FROM grades g JOIN submissions s ON s.id = g.submission_id
         WHERE (?1 IS NULL OR s.course = ?1) AND (?2 IS NULL OR s.section = ?2)
           AND (?3 IS NULL OR s.assignment = ?3)
         ORDER BY g.graded_at, g.id",
    )?;
    let rows = stmt.query_map(params![course, section, assignment], |r| {
        Ok(GradeRecord {
            grade_id: r.get(0)?,
            submission_id: r.get(1)?,
            user: r.get(2)?,
            course: r.get(3)?,
            section: r.get(4)?,
            assignment: r.get(5)?,
            status: r.get(6)?,
            score: r.get(7)?,
            max_score: r.get(8)?,
            fraction: r.get(9)?,
            graded_at: r.get(10)?,
            post_state: r.get(11)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
