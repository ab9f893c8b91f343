//! Submissions pulled from an XQueue and the answers owed to it (`xqueue_items`).

use rusqlite::{Connection, OptionalExtension, params};

use super::submissions::{self, NewSubmission};
use super::{DbError, events};

/// What a pull became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pulled {
    /// A new submission, queued for grading.
    New { item: i64, submission_id: i64 },
    /// Refused before grading (answered as a 0 with the reason).
    Refused { item: i64 },
    /// XQueue served one we already have again (its lease ran out, or our answer never
    /// reached it): the newest header is kept for the answer; nothing is graded twice.
    Again { item: i64 },
}

/// What to store for one pull: the submission to grade, or why it was refused.
pub enum Take<'a> {
    Grade(&'a NewSubmission, i64),
    Refuse(&'a str),
}

/// Whether XQueue's submission `xqueue_id` of `queue` was pulled before.
pub fn known(conn: &Connection, queue: &str, xqueue_id: &str) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM xqueue_items WHERE queue = ?1 AND xqueue_id = ?2")?
        .query_row(params![queue, xqueue_id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Submissions of `queue` waiting for or in grading.
pub fn grading(conn: &Connection, queue: &str) -> Result<i64, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT COUNT(*) FROM xqueue_items x JOIN submissions s ON s.id = x.submission_id
              WHERE x.queue = ?1 AND x.state = 'waiting' AND s.state IN ('queued', 'grading')",
        )?
        .query_row([queue], |r| r.get(0))?)
}

/// Record a pull in one write: the item and (for a new one) its submission and grade job.
#[allow(clippy::too_many_arguments)]
pub fn record_pull(
    conn: &Connection,
    queue: &str,
    xqueue_id: &str,
    header: &str,
    anon_id: &str,
    take: Take<'_>,
    now: i64,
) -> Result<Pulled, DbError> {
    let known: Option<(i64, String)> = conn
        .prepare_cached("SELECT id, state FROM xqueue_items WHERE queue = ?1 AND xqueue_id = ?2")?
        .query_row(params![queue, xqueue_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((item, state)) = known {
        // The newest pull key answers. An item XQueue serves again after we answered it
        // (or gave up on answering) is still waited for: answer it again.
        conn.prepare_cached(
            "UPDATE xqueue_items SET header = ?2,
                    state = CASE WHEN state IN ('answered', 'failed') THEN 'waiting'
                                 ELSE state END,
                    next_try_at = ?3
              WHERE id = ?1",
        )?
        .execute(params![item, header, now])?;
        let sub: Option<i64> = conn.query_row(
            "SELECT submission_id FROM xqueue_items WHERE id = ?1",
            [item],
            |r| r.get(0),
        )?;
        let detail = if state != "waiting" {
            "XQueue served this submission again after our answer; it is answered again"
        } else {
            "XQueue served this submission again (its lease ran out); still one grade"
        };
        events::record(conn, now, sub, None, "xqueue_served_again", detail)?;
        return Ok(Pulled::Again { item });
    }
    let (submission_id, refusal) = match take {
        Take::Grade(s, max_attempts) => {
            (Some(submissions::accept(conn, s, max_attempts, now)?), None)
        }
        Take::Refuse(why) => (None, Some(why)),
    };
    let item: i64 = conn
        .prepare_cached(
            "INSERT INTO xqueue_items (queue, xqueue_id, header, anon_id, submission_id, refusal,
                                       state, next_try_at, pulled_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'waiting', ?7, ?7) RETURNING id",
        )?
        .query_row(
            params![
                queue,
                xqueue_id,
                header,
                anon_id,
                submission_id,
                refusal,
                now
            ],
            |r| r.get(0),
        )?;
    Ok(match submission_id {
        Some(submission_id) => {
            events::record(
                conn,
                now,
                Some(submission_id),
                None,
                "xqueue_pulled",
                &format!("pulled from XQueue {queue} (its submission {xqueue_id})"),
            )?;
            Pulled::New {
                item,
                submission_id,
            }
        }
        None => Pulled::Refused { item },
    })
}

/// An answer that is due: the item, its header, and the grade (or refusal) to answer with.
#[derive(Debug, Clone)]
pub struct Due {
    pub item: i64,
    pub header: String,
    pub attempts: i64,
    pub pulled_at: i64,
    pub refusal: Option<String>,
    pub submission_id: Option<i64>,
    /// The submission's state and its message for the student (failed, dead).
    pub state: Option<String>,
    pub message: Option<String>,
    pub grade: Option<DueGrade>,
}

/// The newest grade of the submission.
#[derive(Debug, Clone)]
pub struct DueGrade {
    pub id: i64,
    pub status: String,
    pub score: f64,
    pub max_score: f64,
    pub fraction: f64,
    pub tests_json: String,
    pub public_feedback: String,
    pub message: Option<String>,
}

/// Answers of `queue` due now: refused pulls, and submissions whose grading has ended.
pub fn due(conn: &Connection, queue: &str, now: i64, limit: i64) -> Result<Vec<Due>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT x.id, x.header, x.attempts, x.pulled_at, x.refusal, x.submission_id, s.state,
                s.message, g.id, g.status, g.score, g.max_score, g.fraction, g.tests,
                g.public_feedback, g.message
           FROM xqueue_items x
           LEFT JOIN submissions s ON s.id = x.submission_id
           LEFT JOIN grades g ON g.id = (SELECT MAX(id) FROM grades WHERE submission_id = s.id)
          WHERE x.queue = ?1 AND x.state = 'waiting' AND x.next_try_at <= ?2
            AND (x.refusal IS NOT NULL OR s.state IN ('graded', 'failed', 'dead'))
          ORDER BY x.next_try_at LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![queue, now, limit], |r| {
        let grade = match r.get::<_, Option<i64>>(8)? {
            Some(id) => Some(DueGrade {
                id,
                status: r.get(9)?,
                score: r.get(10)?,
                max_score: r.get(11)?,
                fraction: r.get(12)?,
                tests_json: r.get(13)?,
                public_feedback: r.get(14)?,
                message: r.get(15)?,
            }),
            None => None,
        };
        Ok(Due {
            item: r.get(0)?,
            header: r.get(1)?,
            attempts: r.get(2)?,
            pulled_at: r.get(3)?,
            refusal: r.get(4)?,
            submission_id: r.get(5)?,
            state: r.get(6)?,
            message: r.get(7)?,
            grade,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// XQueue took the answer.
pub fn answered(conn: &Connection, d: &Due, score: f64, now: i64) -> Result<(), DbError> {
    let grade = d.grade.as_ref().map(|g| g.id);
    conn.prepare_cached(
        "UPDATE xqueue_items SET state = 'answered', answered_grade_id = ?2, noted_grade_id = ?2,
                answered_at = ?3, last_error = NULL, attempts = attempts + 1
          WHERE id = ?1",
    )?
    .execute(params![d.item, grade, now])?;
    events::record(
        conn,
        now,
        d.submission_id,
        None,
        "xqueue_answered",
        &format!("XQueue took the answer (score {score})"),
    )
}

/// An answer that did not go through: try again at `next`, or give up (`failed`).
pub fn not_answered(
    conn: &Connection,
    d: &Due,
    error: &str,
    next: Option<i64>,
    now: i64,
) -> Result<(), DbError> {
    conn.prepare_cached(
        "UPDATE xqueue_items SET attempts = attempts + 1, last_error = ?2,
                state = CASE WHEN ?3 IS NULL THEN 'failed' ELSE 'waiting' END,
                next_try_at = COALESCE(?3, next_try_at)
          WHERE id = ?1",
    )?
    .execute(params![d.item, error, next])?;
    let event = if next.is_some() {
        "xqueue_answer_retry"
    } else {
        "xqueue_answer_failed"
    };
    events::record(conn, now, d.submission_id, None, event, error)
}

/// Regrades of submissions XQueue no longer waits for: recorded once each (XQueue takes
/// one answer per submission; it is not sent again). Returns how many were noted.
pub fn note_unsent_regrades(conn: &Connection, now: i64) -> Result<usize, DbError> {
    let rows: Vec<(i64, i64, i64)> = conn
        .prepare_cached(
            "SELECT x.id, x.submission_id, g.id FROM xqueue_items x
               JOIN grades g ON g.id = (SELECT MAX(id) FROM grades WHERE submission_id = x.submission_id)
              WHERE x.state = 'answered' AND g.id > COALESCE(x.noted_grade_id, 0)",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    for (item, sub, grade) in &rows {
        conn.prepare_cached("UPDATE xqueue_items SET noted_grade_id = ?2 WHERE id = ?1")?
            .execute(params![item, grade])?;
        events::record(
            conn,
            now,
            Some(*sub),
            None,
            "xqueue_regrade_not_sent",
            "regraded after XQueue took its answer; XQueue no longer waits for this \
             submission, so the new grade is not sent (it is in dump-grades)",
        )?;
    }
    Ok(rows.len())
}

/// Items per queue and state, for `status` and `/metrics`.
pub fn counts(conn: &Connection) -> Result<Vec<(String, String, i64)>, DbError> {
    let rows = conn
        .prepare_cached(
            "SELECT queue, state, COUNT(*) FROM xqueue_items GROUP BY queue, state ORDER BY 1, 2",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}
