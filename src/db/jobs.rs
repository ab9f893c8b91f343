//! The durable job queue, stored in the `jobs` table. Functions take a `&Connection` and
//! run inside the caller's write (see [`crate::db::Db::write`]), so a job is queued in the
//! same transaction as the row it works on.
//!
//! A claim is a lease: `locked_until` is renewed while the work runs, an expired lease
//! makes the job claimable again, and every later change checks the claim token, so a
//! result from a stale claim is never applied twice. Every claim counts as an attempt,
//! including one whose worker died (a lease that expired): a submission that crashes the
//! service ends `dead` after `max_attempts` instead of being retried forever.
//!
//! Post jobs carry a `post_key`, one per student and assignment: at most one of them runs
//! at a time, so an older post can never land at edX after a newer one.

use rusqlite::{Connection, OptionalExtension, params};

use super::states::{JobKind, JobState};
use super::{DbError, events};

/// A job to add.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: JobKind,
    pub submission_id: i64,
    pub grade_id: Option<i64>,
    pub max_attempts: i64,
    /// No retries are scheduled after this time (ms); `None` = only `max_attempts` bounds.
    pub give_up_at: Option<i64>,
}

/// A job this worker holds.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: i64,
    pub kind: JobKind,
    pub submission_id: i64,
    pub grade_id: Option<i64>,
    /// This attempt's number, from 1.
    pub attempt: i64,
    pub max_attempts: i64,
    /// Token of this claim; changes on every claim.
    pub claim: String,
}

/// The post key of a submission's student and assignment (a JSON array, so no name can
/// make two keys collide).
const POST_KEY_SQL: &str =
    "(SELECT json_array(user, course, section, assignment) FROM submissions WHERE id = ?1)";

/// Add a job, runnable now.
pub fn enqueue(conn: &Connection, job: &NewJob, now: i64) -> Result<i64, DbError> {
    let key_sql = if job.kind == JobKind::PostScore {
        POST_KEY_SQL
    } else {
        "NULL"
    };
    let id = conn
        .prepare_cached(&format!(
            "INSERT INTO jobs (kind, submission_id, grade_id, state, max_attempts, run_at,
                               give_up_at, created_at, updated_at, post_key, user)
             VALUES (?2, ?1, ?3, 'queued', ?4, ?5, ?6, ?5, ?5, {key_sql},
                     (SELECT user FROM submissions WHERE id = ?1)) RETURNING id"
        ))?
        .query_row(
            params![
                job.submission_id,
                job.kind,
                job.grade_id,
                job.max_attempts,
                now,
                job.give_up_at
            ],
            |r| r.get(0),
        )?;
    events::record(
        conn,
        now,
        Some(job.submission_id),
        Some(id),
        "job_queued",
        job.kind.as_str(),
    )?;
    Ok(id)
}

/// The one way to ask for a post to edX: make sure a post job for the student and
/// assignment of `submission_id` will run after now. A post job that is still waiting
/// already covers the new grade (it reads what counts when it runs), so none is added
/// then; one that is running may have read too early, so another one is queued behind it.
pub fn queue_post(
    conn: &Connection,
    submission_id: i64,
    grade_id: i64,
    horizon_ms: i64,
    now: i64,
) -> Result<i64, DbError> {
    let waiting: Option<i64> = conn
        .prepare_cached(&format!(
            "SELECT id FROM jobs WHERE kind = 'post_score' AND state = 'queued'
               AND post_key = {POST_KEY_SQL} LIMIT 1"
        ))?
        .query_row([submission_id], |r| r.get(0))
        .optional()?;
    if let Some(id) = waiting {
        // Due now (it may be waiting out a backoff for an older grade) and alive as long
        // as a fresh post would be.
        conn.prepare_cached(
            "UPDATE jobs SET run_at = MIN(run_at, ?2), give_up_at = MAX(give_up_at, ?3),
                    grade_id = ?4, updated_at = ?2 WHERE id = ?1",
        )?
        .execute(params![id, now, now + horizon_ms, grade_id])?;
        return Ok(id);
    }
    let job = NewJob {
        kind: JobKind::PostScore,
        submission_id,
        grade_id: Some(grade_id),
        max_attempts: i64::MAX,
        give_up_at: Some(now + horizon_ms),
    };
    enqueue(conn, &job, now)
}

/// Claim the next runnable job of `kind`: first a running one whose lease expired (its
/// worker died), else a queued one that is due. Counts an attempt.
///
/// Grade jobs are taken round-robin across students: the student with the fewest jobs
/// running, then the one served longest ago, gets the next turn (their oldest due job),
/// so one student's fifty submissions delay another student's by at most one grade.
/// A post job is not claimed while another post for the same student and assignment is
/// running.
pub fn claim_next(
    conn: &Connection,
    kind: JobKind,
    now: i64,
    lease_ms: i64,
) -> Result<Option<ClaimedJob>, DbError> {
    claim_next_as(conn, kind, now, lease_ms, None, NO_EXCLUSIONS)
}

/// No assignment is skipped by a claim.
pub const NO_EXCLUSIONS: &str = "[]";

/// A condition that leaves out the jobs (`j`) of the assignments in the JSON array `?N`
/// of `[course, section, assignment]` (see `CourseConfig::excluded`), or nothing when
/// `exclude` is empty: then the statement reads no row the index does not hold (the
/// parameter is still bound, and unused).
fn not_excluded(n: u8, exclude: &str) -> String {
    if exclude == NO_EXCLUSIONS {
        return format!("AND ?{n} = ?{n}");
    }
    format!(
        "AND (SELECT json_array(s.course, s.section, s.assignment)
                FROM submissions s WHERE s.id = j.submission_id)
             NOT IN (SELECT value FROM json_each(?{n}))"
    )
}

/// [`claim_next`] for grader host `host` (`None`: a worker of the service itself),
/// skipping the jobs of the assignments in `exclude` (a JSON array of `[course, section,
/// assignment]`: those this grader cannot take). A host's claim can be finished, failed
/// or renewed only while its lease runs (see [`finish`]).
pub fn claim_next_as(
    conn: &Connection,
    kind: JobKind,
    now: i64,
    lease_ms: i64,
    host: Option<&str>,
    exclude: &str,
) -> Result<Option<ClaimedJob>, DbError> {
    let Some(id) = pick_next(conn, kind, now, exclude)? else {
        return Ok(None);
    };
    let claim = uuid::Uuid::new_v4().to_string();
    let job = conn
        .prepare_cached(
            "UPDATE jobs SET state = 'running', claim = ?1, locked_until = ?2,
                    attempts = attempts + 1, updated_at = ?3, host = ?5
             WHERE id = ?4
             RETURNING id, submission_id, grade_id, attempts, max_attempts, user",
        )?
        .query_row(params![claim, now + lease_ms, now, id, host], |r| {
            Ok((
                claimed_row(r, kind, &claim)?,
                r.get::<_, Option<String>>(5)?,
            ))
        })?;
    let (job, user) = job;
    if kind == JobKind::Grade
        && let Some(user) = user
    {
        conn.prepare_cached(
            "INSERT INTO grading_turns (user, last_claimed_at) VALUES (?1, ?2)
             ON CONFLICT (user) DO UPDATE SET last_claimed_at = excluded.last_claimed_at",
        )?
        .execute(params![user, now])?;
    }
    let detail = match host {
        Some(h) => format!("attempt {} on host {h}", job.attempt),
        None => format!("attempt {}", job.attempt),
    };
    events::record(
        conn,
        now,
        Some(job.submission_id),
        Some(job.id),
        "job_claimed",
        &detail,
    )?;
    Ok(Some(job))
}

/// A job from a row `id, submission_id, grade_id, attempts, max_attempts, ...`.
fn claimed_row(r: &rusqlite::Row<'_>, kind: JobKind, claim: &str) -> rusqlite::Result<ClaimedJob> {
    Ok(ClaimedJob {
        id: r.get(0)?,
        kind,
        submission_id: r.get(1)?,
        grade_id: r.get(2)?,
        attempt: r.get(3)?,
        max_attempts: r.get(4)?,
        claim: claim.to_string(),
    })
}

/// The id of the job [`claim_next`] should take.
fn pick_next(
    conn: &Connection,
    kind: JobKind,
    now: i64,
    exclude: &str,
) -> Result<Option<i64>, DbError> {
    let expired: Option<i64> = conn
        .prepare_cached(&format!(
            "SELECT id FROM jobs j WHERE kind = ?1 AND state = 'running' AND locked_until < ?2
               AND attempts < max_attempts {}
             ORDER BY locked_until, id LIMIT 1",
            not_excluded(3, exclude)
        ))?
        .query_row(params![kind, now, exclude], |r| r.get(0))
        .optional()?;
    if expired.is_some() {
        return Ok(expired);
    }
    if kind == JobKind::PostScore {
        return pick_post(conn, kind, now);
    }
    // Students' submissions first; staff regrades only when none is due.
    for class in [STUDENT, REGRADE] {
        if let Some(id) = pick_grade(conn, kind, now, exclude, class)? {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// Priority classes of grade jobs (`jobs.priority`): a student's submission.
pub const STUDENT: i64 = 0;
/// A staff regrade: claimed only when no student's job is due.
pub const REGRADE: i64 = 1;

/// Put job `id` in priority class `class`.
pub fn set_priority(conn: &Connection, id: i64, class: i64) -> Result<(), DbError> {
    conn.prepare_cached("UPDATE jobs SET priority = ?2 WHERE id = ?1")?
        .execute(params![id, class])?;
    Ok(())
}

/// The post job whose turn it is: the oldest due one whose student and assignment has
/// no post running.
fn pick_post(conn: &Connection, kind: JobKind, now: i64) -> Result<Option<i64>, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT id FROM jobs j
              WHERE kind = ?1 AND state = 'queued' AND run_at <= ?2
                AND attempts < max_attempts
                AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.post_key = j.post_key
                                   AND r.state = 'running')
              ORDER BY run_at, id LIMIT 1",
        )?
        .query_row(params![kind, now], |r| r.get(0))
        .optional()?)
}

/// The grade job of priority class `class` whose turn it is.
fn pick_grade(
    conn: &Connection,
    kind: JobKind,
    now: i64,
    exclude: &str,
    class: i64,
) -> Result<Option<i64>, DbError> {
    // Each student with a due job once, from the waiting jobs' index alone (no row is
    // read unless some assignments are excluded); then their running jobs (few: at most
    // the graders' slots) and when they were last served.
    let user: Option<Option<String>> = conn
        .prepare_cached(&format!(
            "WITH due AS (
                SELECT j.user, MIN(j.run_at) AS first FROM jobs j INDEXED BY jobs_waiting_by_class
                 WHERE j.kind = ?1 AND j.priority = ?4 AND j.state = 'queued'
                   AND j.run_at <= ?2 {}
                 GROUP BY j.user),
              busy AS (
                SELECT user, COUNT(*) AS n FROM jobs
                 WHERE kind = ?1 AND state = 'running' GROUP BY user)
             SELECT due.user FROM due
               LEFT JOIN busy ON busy.user IS due.user
               LEFT JOIN grading_turns t ON t.user = due.user
              ORDER BY COALESCE(busy.n, 0), COALESCE(t.last_claimed_at, 0), due.first
              LIMIT 1",
            not_excluded(3, exclude)
        ))?
        .query_row(params![kind, now, exclude, class], |r| r.get(0))
        .optional()?;
    let Some(user) = user else {
        return Ok(None);
    };
    Ok(conn
        .prepare_cached(&format!(
            "SELECT id FROM jobs j WHERE kind = ?1 AND state = 'queued' AND run_at <= ?2
               AND attempts < max_attempts AND user IS ?3 AND priority = ?5 {}
             ORDER BY run_at, id LIMIT 1",
            not_excluded(4, exclude)
        ))?
        .query_row(params![kind, now, user, exclude, class], |r| r.get(0))
        .optional()?)
}

/// Why a reaped job is dead.
pub const WORKER_STOPPED: &str =
    "the service stopped while working on this job in every allowed attempt";

/// Make `dead` every job of `kind` whose worker stopped mid-attempt (lease expired, or
/// re-queued at start) and that has no attempts left. Returns them, so the caller can
/// update the rows they worked on in the same write.
pub fn reap_exhausted(
    conn: &Connection,
    kind: JobKind,
    now: i64,
) -> Result<Vec<ClaimedJob>, DbError> {
    let mut stmt = conn.prepare_cached(
        "UPDATE jobs SET state = 'dead', claim = NULL, locked_until = NULL, last_error = ?3,
                updated_at = ?2
         WHERE kind = ?1 AND state = 'running' AND locked_until < ?2
           AND attempts >= max_attempts
         RETURNING id, submission_id, grade_id, attempts, max_attempts",
    )?;
    let reaped: Vec<ClaimedJob> = stmt
        .query_map(params![kind, now, WORKER_STOPPED], |r| {
            claimed_row(r, kind, "")
        })?
        .collect::<Result<_, _>>()?;
    for j in &reaped {
        events::record(
            conn,
            now,
            Some(j.submission_id),
            Some(j.id),
            "job_dead",
            WORKER_STOPPED,
        )?;
    }
    Ok(reaped)
}

/// Extend a held lease. False when the claim is no longer ours.
pub fn renew(conn: &Connection, job: &ClaimedJob, until: i64) -> Result<bool, DbError> {
    let n = conn
        .prepare_cached(
            "UPDATE jobs SET locked_until = ?1 WHERE id = ?2 AND claim = ?3 AND state = 'running'",
        )?
        .execute(params![until, job.id, job.claim])?;
    Ok(n == 1)
}

/// Mark a held job done. False (and nothing changed) when the claim is stale: another
/// worker took the job over, and only one result may be applied. A grader host's claim is
/// also stale once its lease has expired, taken over or not: a host that missed its
/// heartbeats may have been cut off, and its job may already run elsewhere.
pub fn finish(conn: &Connection, job: &ClaimedJob, now: i64) -> Result<bool, DbError> {
    let n = conn
        .prepare_cached(
            "UPDATE jobs SET state = 'done', claim = NULL, locked_until = NULL, last_error = NULL,
                    updated_at = ?1, ended_lease = CASE WHEN host IS NULL THEN NULL ELSE claim END
             WHERE id = ?2 AND claim = ?3 AND state = 'running'
               AND (host IS NULL OR locked_until >= ?1)",
        )?
        .execute(params![now, job.id, job.claim])?;
    if n == 1 {
        events::record(
            conn,
            now,
            Some(job.submission_id),
            Some(job.id),
            "job_done",
            "",
        )?;
    }
    Ok(n == 1)
}

/// What became of a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Queued again for `run_at`.
    Retry { run_at: i64 },
    /// Out of attempts or time: the job is dead.
    Dead,
    /// The claim was stale; nothing changed.
    Stale,
}

/// Record a failed attempt: retry after `delay_ms` unless attempts or the horizon are
/// used up, or `permanent`, in which case the job is dead with `error` as its reason.
pub fn fail_with_backoff(
    conn: &Connection,
    job: &ClaimedJob,
    error: &str,
    delay_ms: i64,
    permanent: bool,
    now: i64,
) -> Result<FailOutcome, DbError> {
    let give_up_at: Option<Option<i64>> = conn
        .query_row(
            "SELECT give_up_at FROM jobs WHERE id = ?1 AND claim = ?2 AND state = 'running'
               AND (host IS NULL OR locked_until >= ?3)",
            params![job.id, job.claim, now],
            |r| r.get(0),
        )
        .optional()?;
    let Some(give_up_at) = give_up_at else {
        return Ok(FailOutcome::Stale);
    };
    let run_at = now + delay_ms;
    let out_of_attempts = job.attempt >= job.max_attempts;
    let out_of_time = give_up_at.is_some_and(|g| run_at > g);
    let outcome = if permanent || out_of_attempts || out_of_time {
        FailOutcome::Dead
    } else {
        FailOutcome::Retry { run_at }
    };
    let (state, at) = match outcome {
        FailOutcome::Retry { run_at } => (JobState::Queued, run_at),
        _ => (JobState::Dead, now),
    };
    conn.prepare_cached(
        "UPDATE jobs SET state = ?1, run_at = ?2, claim = NULL, locked_until = NULL,
                last_error = ?3, updated_at = ?4,
                ended_lease = CASE WHEN host IS NULL THEN NULL ELSE claim END
          WHERE id = ?5",
    )?
    .execute(params![state, at, error, now, job.id])?;
    let event = match state {
        JobState::Dead => "job_dead",
        _ => "job_retry",
    };
    events::record(
        conn,
        now,
        Some(job.submission_id),
        Some(job.id),
        event,
        error,
    )?;
    Ok(outcome)
}

/// At start: make every job whose lease has expired claimable now. Returns how many.
/// Their attempts stay counted; one with no attempt left stays an expired claim, which
/// the next claim's [`reap_exhausted`] ends `dead`.
///
/// Every queued job has an attempt left: the claim's fairness query relies on it (it
/// reads only the waiting jobs' index). A queued job without one, which older versions
/// could leave, is turned into such an expired claim here.
pub fn requeue_expired(conn: &Connection, now: i64) -> Result<usize, DbError> {
    conn.execute(
        "UPDATE jobs SET state = 'running', locked_until = 0, updated_at = ?1
         WHERE state = 'queued' AND attempts >= max_attempts",
        [now],
    )?;
    let n = conn.execute(
        "UPDATE jobs SET state = 'queued', claim = NULL, locked_until = NULL, run_at = ?1,
                updated_at = ?1
         WHERE state = 'running' AND locked_until < ?1 AND attempts < max_attempts",
        [now],
    )?;
    Ok(n)
}

/// Ids of jobs that are queued or running (their containers are not orphans).
pub fn live_job_ids(conn: &Connection) -> Result<Vec<i64>, DbError> {
    let mut stmt = conn.prepare("SELECT id FROM jobs WHERE state IN ('queued', 'running')")?;
    let ids = stmt.query_map([], |r| r.get(0))?;
    Ok(ids.collect::<Result<_, _>>()?)
}

/// Jobs of `kind` waiting or running.
pub fn depth(conn: &Connection, kind: JobKind) -> Result<u64, DbError> {
    let n: i64 = conn
        .prepare_cached(
            "SELECT (SELECT COUNT(*) FROM jobs WHERE kind = ?1 AND state = 'queued')
              + (SELECT COUNT(*) FROM jobs WHERE kind = ?1 AND state = 'running')",
        )?
        .query_row([kind], |r| r.get(0))?;
    Ok(n as u64)
}

/// When the next queued job of `kind` is due (ms), if any.
pub fn next_due(conn: &Connection, kind: JobKind) -> Result<Option<i64>, DbError> {
    Ok(conn
        .prepare_cached("SELECT MIN(run_at) FROM jobs WHERE kind = ?1 AND state = 'queued'")?
        .query_row([kind], |r| r.get(0))?)
}

#[cfg(test)]
#[path = "jobs_tests.rs"]
mod tests;
