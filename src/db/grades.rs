//! Grade rows: written by the grade job, read by status pages, dump-grades and posting.

use rusqlite::{Connection, params};

use super::states::{GradeStatus, PostState, ScorePolicy};
use super::{DbError, events};

/// A grade to store: plain data, made by the grade job from the runner's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct NewGrade {
    pub status: GradeStatus,
    pub score: f64,
    pub max_score: f64,
    /// The score as a fraction in [0, 1] (what edX gets).
    pub fraction: f64,
    /// Per-question scores as JSON (the student may see them).
    pub tests_json: String,
    /// The public tests' output: what the student may see.
    pub public_feedback: String,
    /// For the student: why it failed.
    pub message: Option<String>,
    /// For staff: the end of the run's log.
    pub log_tail: Option<String>,
    /// For staff: why the trusted evaluator flagged it (`; `-separated), if it did.
    pub integrity_flags: Option<String>,
}

#[cfg(test)]
impl NewGrade {
    /// A graded result of `score` out of `max_score`, with no questions (tests).
    pub(crate) fn sample(score: f64, max_score: f64) -> Self {
        NewGrade {
            status: GradeStatus::Graded,
            score,
            max_score,
            fraction: if max_score > 0.0 {
                score / max_score
            } else {
                0.0
            },
            tests_json: "[]".into(),
            public_feedback: String::new(),
            message: None,
            log_tail: None,
            integrity_flags: None,
        }
    }
}

/// Insert grade `g` for submission `submission_id`'s job `job_id`. `post_state` is
/// `pending` when a post follows, else `not_configured`.
pub fn insert(
    conn: &Connection,
    submission_id: i64,
    job_id: i64,
    g: &NewGrade,
    post_state: PostState,
    now: i64,
) -> Result<i64, DbError> {
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO grades (submission_id, job_id, status, score, max_score, fraction, tests,
                                 public_feedback, message, log_tail, graded_at, post_state,
                                 integrity_flags)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) RETURNING id",
        )?
        .query_row(
            params![
                submission_id,
                job_id,
                g.status,
                g.score,
                g.max_score,
                g.fraction,
                g.tests_json,
                g.public_feedback,
                g.message,
                g.log_tail,
                now,
                post_state,
                g.integrity_flags
            ],
            |r| r.get(0),
        )?;
    let detail = format!("{} {}/{}", g.status, g.score, g.max_score);
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

/// Which grades a staff query covers.
#[derive(Debug, Clone, Default)]
pub struct GradeFilter {
    pub course: Option<String>,
    pub section: Option<String>,
    pub assignment: Option<String>,
    pub user: Option<String>,
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
    pub status: GradeStatus,
    pub score: f64,
    pub max_score: f64,
    pub fraction: f64,
    pub graded_at: i64,
    pub post_state: PostState,
    /// Why the trusted evaluator flagged it, if it did (staff only).
    pub integrity_flags: Option<String>,
    /// The submission's late credit (percent) and lateness (ms after the student's due
    /// date), when the assignment has a calendar.
    pub credit: Option<f64>,
    pub late_ms: Option<i64>,
    /// The student's extension (ms), if any.
    pub extension_ms: Option<i64>,
    /// The score staff set (score, most possible, reason): only on the grade that counts.
    pub overridden: Option<(f64, f64, String)>,
    /// The fraction that counts: the override's, else `fraction` times the credit.
    pub counted: f64,
}

/// Grades matching `filter`, oldest first: every one (`policy` `None`), or only the one
/// that counts per student and assignment under `policy` (see [`ScorePolicy::order_sql`]).
pub fn select(
    conn: &Connection,
    filter: &GradeFilter,
    policy: Option<ScorePolicy>,
) -> Result<Vec<GradeRecord>, DbError> {
    let rank = match policy {
        None => "1".to_string(),
        Some(p) => format!(
            "ROW_NUMBER() OVER (PARTITION BY s.user, s.course, s.section, s.assignment
                                ORDER BY {})",
            p.order_sql()
        ),
    };
    let sql = format!(
        "SELECT * FROM (
            SELECT g.id, s.id, s.user, s.course, s.section, s.assignment, g.status, g.score,
                   g.max_score, g.fraction, g.graded_at, g.post_state, g.integrity_flags,
                   s.credit, s.late_ms, x.shift_ms, o.score, o.max_score, o.reason,
                   {rank} AS rank
            FROM grades g JOIN submissions s ON s.id = g.submission_id
            LEFT JOIN extensions x ON x.course = s.course AND x.section = s.section
                 AND x.assignment = s.assignment AND x.user = s.user
            LEFT JOIN score_overrides o ON ?5 AND o.course = s.course AND o.section = s.section
                 AND o.assignment = s.assignment AND o.user = s.user
            WHERE (?1 IS NULL OR s.course = ?1) AND (?2 IS NULL OR s.section = ?2)
              AND (?3 IS NULL OR s.assignment = ?3) AND (?4 IS NULL OR s.user = ?4))
         WHERE rank = 1 ORDER BY 11, 1"
    );
    let mut stmt = conn.prepare(&sql)?;
    let f = filter;
    let counting = policy.is_some();
    let rows = stmt.query_map(
        params![f.course, f.section, f.assignment, f.user, counting],
        |r| {
            let fraction: f64 = r.get(9)?;
            let credit: Option<f64> = r.get(13)?;
            let over: Option<f64> = r.get(16)?;
            let overridden = match (
                over,
                r.get::<_, Option<f64>>(17)?,
                r.get::<_, Option<String>>(18)?,
            ) {
                (Some(s), Some(m), Some(why)) => Some((s, m, why)),
                _ => None,
            };
            let counted =
                super::scores::counts(fraction, credit, overridden.as_ref().map(|o| (o.0, o.1)));
            Ok(GradeRecord {
                credit,
                late_ms: r.get(14)?,
                extension_ms: r.get(15)?,
                overridden,
                counted,
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
                integrity_flags: r.get(12)?,
            })
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}
