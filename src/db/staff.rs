//! What staff commands read and change: regrade, repost, status. The CLI only prints.

use rusqlite::{Connection, OptionalExtension, params};

use super::grades::GradeFilter;
use super::jobs;
use super::states::{JobKind, JobState};
use super::{DbError, events, submissions};

const FILTER_SQL: &str = "(?1 IS NULL OR s.course = ?1) AND (?2 IS NULL OR s.section = ?2)
     AND (?3 IS NULL OR s.assignment = ?3) AND (?4 IS NULL OR s.user = ?4)";

/// Which submissions a regrade covers.
#[derive(Debug, Clone, Default)]
pub struct RegradeRequest {
    pub filter: GradeFilter,
    /// Only these submission ids (empty: all that match the filter).
    pub ids: Vec<i64>,
    /// Only submissions whose grading is dead.
    pub dead_only: bool,
    /// Who asked, for the event log.
    pub by: String,
}

/// Queue grading again for the matching submissions that are not queued or grading now
/// and still have their notebook (see [`super::retention`]). Returns their ids. A regrade
/// never changes which submission counts: under `latest`, an older submission's new grade
/// does not displace a newer submission's.
pub fn regrade(
    conn: &Connection,
    r: &RegradeRequest,
    max_attempts: i64,
    now: i64,
) -> Result<Vec<i64>, DbError> {
    let f = &r.filter;
    let sql = format!(
        "SELECT s.id FROM submissions s WHERE {FILTER_SQL} AND (?5 = 0 OR s.state = 'dead')
           AND s.state NOT IN ('queued', 'grading') AND s.pruned_at IS NULL ORDER BY s.id"
    );
    let mut ids: Vec<i64> = conn
        .prepare(&sql)?
        .query_map(
            params![f.course, f.section, f.assignment, f.user, r.dead_only],
            |row| row.get(0),
        )?
        .collect::<Result<_, _>>()?;
    if !r.ids.is_empty() {
        ids.retain(|id| r.ids.contains(id));
    }
    for id in &ids {
        let job = submissions::enqueue_grade(conn, *id, max_attempts, now)?;
        jobs::set_priority(conn, job, jobs::REGRADE)?;
        events::record(conn, now, Some(*id), None, "regrade_requested", &r.by)?;
    }
    Ok(ids)
}

/// Queue posting to edX again for every student assignment (matching `filter`) whose post
/// is dead, or (with `all`) that has any grade posted or dead. The post sends whatever
/// counts when it runs. Returns how many student assignments were queued.
pub fn repost(
    conn: &Connection,
    filter: &GradeFilter,
    all: bool,
    by: &str,
    horizon_ms: i64,
    now: i64,
) -> Result<usize, DbError> {
    let f = filter;
    // One row per student assignment: its newest grade in a post state to redo.
    let sql = format!(
        "SELECT MAX(g.id), MAX(s.id) FROM grades g JOIN submissions s ON s.id = g.submission_id
         WHERE {FILTER_SQL} AND (g.post_state = 'dead' OR (?5 AND g.post_state = 'posted'))
         GROUP BY s.user, s.course, s.section, s.assignment"
    );
    let rows: Vec<(i64, i64)> = conn
        .prepare(&sql)?
        .query_map(
            params![f.course, f.section, f.assignment, f.user, all],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .collect::<Result<_, _>>()?;
    for (grade_id, submission_id) in &rows {
        let key = super::scores::student_assignment(conn, *submission_id)?;
        super::scores::record_requeued(conn, &key, all)?;
        jobs::queue_post(conn, *submission_id, *grade_id, horizon_ms, now)?;
        events::record(
            conn,
            now,
            Some(*submission_id),
            None,
            "repost_requested",
            by,
        )?;
    }
    Ok(rows.len())
}

/// An assignment whose autograder failed its check.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BrokenAutograder {
    pub course: String,
    pub section: String,
    pub assignment: String,
    pub runner: String,
    pub detail: String,
    pub checked_at: i64,
}

/// A grade the trusted evaluator flagged, as `status` lists it.
#[derive(Debug, Clone)]
pub struct FlaggedGrade {
    pub submission_id: i64,
    pub user: String,
    /// course/section/assignment
    pub assignment: String,
    /// How grading ended (`graded`, `refused`...).
    pub status: String,
    /// The reasons, `; `-separated.
    pub reasons: String,
}

/// What `status` shows.
#[derive(Debug, Clone)]
pub struct Status {
    /// Job counts per kind and state.
    pub jobs: Vec<(JobKind, JobState, i64)>,
    /// The oldest queued job: id, kind, queued at (ms).
    pub oldest_waiting: Option<(i64, JobKind, i64)>,
    pub dead_submissions: i64,
    /// Dead submissions by their grade job's last error, most first.
    pub dead_reasons: Vec<(String, i64)>,
    /// Grades whose edX post is dead, by reason, most first.
    pub dead_posts: Vec<(String, i64)>,
    /// Autograders whose latest check failed.
    pub broken_autograders: Vec<BrokenAutograder>,
    /// Size of the database file, in bytes.
    pub database_bytes: i64,
    /// Grades the trusted evaluator flagged.
    pub flagged_grades: i64,
    /// The newest of them, with their reasons.
    pub flagged_recent: Vec<FlaggedGrade>,
    /// Assignments whose tests rely on what cannot cross as plain data.
    pub audits: Vec<super::checks::Audit>,
}

/// The queue and the database size: what `/metrics` reads at every scrape.
pub struct Queue {
    /// Job counts per kind and state.
    pub jobs: Vec<(JobKind, JobState, i64)>,
    /// When the oldest queued job of each kind was queued (ms).
    pub oldest_queued: Vec<(JobKind, i64)>,
    /// Size of the database file, in bytes.
    pub database_bytes: i64,
    /// The grader hosts' capacity.
    pub hosts: super::hosts::Capacity,
    /// XQueue items per queue and state.
    pub xqueue: Vec<(String, String, i64)>,
    /// Webhook deliveries per platform and state.
    pub webhooks: Vec<(String, String, i64)>,
}

/// Read the queue's state and the database size.
pub fn queue(conn: &Connection) -> Result<Queue, DbError> {
    let jobs = conn
        .prepare_cached(
            "SELECT kind, state, COUNT(*) FROM jobs GROUP BY kind, state ORDER BY kind, state",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let oldest_queued = conn
        .prepare_cached(
            "SELECT kind, MIN(created_at) FROM jobs WHERE state = 'queued' GROUP BY kind",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let database_bytes = conn.query_row(
        "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
        [],
        |r| r.get(0),
    )?;
    Ok(Queue {
        jobs,
        oldest_queued,
        database_bytes,
        hosts: super::hosts::capacity(conn, super::now_ms())?,
        xqueue: super::xqueue::counts(conn)?,
        webhooks: super::platforms::counts(conn)?,
    })
}

/// Read the queue's and the grades' state.
pub fn status(conn: &Connection) -> Result<Status, DbError> {
    let Queue {
        jobs,
        database_bytes,
        ..
    } = queue(conn)?;
    let oldest_waiting = conn
        .query_row(
            "SELECT id, kind, created_at FROM jobs WHERE state = 'queued'
             ORDER BY created_at LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let dead_submissions = conn.query_row(
        "SELECT COUNT(*) FROM submissions WHERE state = 'dead'",
        [],
        |r| r.get(0),
    )?;
    let dead_reasons = conn
        .prepare(
            "SELECT COALESCE(j.last_error, ''), COUNT(DISTINCT s.id)
               FROM submissions s JOIN jobs j ON j.submission_id = s.id AND j.kind = 'grade'
              WHERE s.state = 'dead' AND j.state = 'dead'
              GROUP BY j.last_error ORDER BY COUNT(DISTINCT s.id) DESC, j.last_error",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let dead_posts = conn
        .prepare(
            "SELECT COALESCE(post_detail, ''), COUNT(*) FROM grades WHERE post_state = 'dead'
             GROUP BY post_detail ORDER BY COUNT(*) DESC, post_detail",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(Status {
        jobs,
        oldest_waiting,
        dead_submissions,
        dead_reasons,
        dead_posts,
        broken_autograders: broken_autograders(conn)?,
        audits: super::checks::audits(conn)?,
        database_bytes,
        flagged_grades: conn.query_row(
            "SELECT COUNT(*) FROM grades WHERE integrity_flags IS NOT NULL",
            [],
            |r| r.get(0),
        )?,
        flagged_recent: flagged_recent(conn, 5)?,
    })
}

/// The newest `limit` flagged grades.
fn flagged_recent(conn: &Connection, limit: i64) -> Result<Vec<FlaggedGrade>, DbError> {
    let rows = conn
        .prepare(
            "SELECT s.id, s.user, s.course || '/' || s.section || '/' || s.assignment,
                    g.status, g.integrity_flags
               FROM grades g JOIN submissions s ON s.id = g.submission_id
              WHERE g.integrity_flags IS NOT NULL
              ORDER BY g.id DESC LIMIT ?1",
        )?
        .query_map([limit], |r| {
            Ok(FlaggedGrade {
                submission_id: r.get(0)?,
                user: r.get(1)?,
                assignment: r.get(2)?,
                status: r.get(3)?,
                reasons: r.get(4)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Autograders whose most recent check failed (a newer passing check of the same
/// assignment clears it).
pub fn broken_autograders(conn: &Connection) -> Result<Vec<BrokenAutograder>, DbError> {
    let rows = conn
        .prepare(
            "SELECT course, section, assignment, runner, detail, checked_at
             FROM autograder_checks c
             WHERE ok = 0 AND checked_at = (
                SELECT MAX(checked_at) FROM autograder_checks c2
                 WHERE c2.course = c.course AND c2.section = c.section
                   AND c2.assignment = c.assignment AND c2.runner = c.runner)
             ORDER BY course, section, assignment",
        )?
        .query_map([], |r| {
            Ok(BrokenAutograder {
                course: r.get(0)?,
                section: r.get(1)?,
                assignment: r.get(2)?,
                runner: r.get(3)?,
                detail: r.get(4)?,
                checked_at: r.get(5)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}
