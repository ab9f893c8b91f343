//! The durable job queue, stored in the `jobs` table. Functions take a `&Connection` and
//! run inside the caller's write (see [`crate::db::Db::write`]), so a job is enqueued in
//! the same transaction as the row it works on.
//!
//! A claim is a lease: `locked_until` is renewed while the work runs, an expired lease
//! makes the job claimable again, and every later change checks the claim token, so a
//! result from a stale claim is never applied twice.

pub mod worker;

use rusqlite::{Connection, OptionalExtension, params};

use crate::db::{DbError, events};

/// Kinds of job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Grade a submission.
    Grade,
    /// Post a grade's score to edX.
    PostScore,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Grade => "grade",
            JobKind::PostScore => "post_score",
        }
    }
}

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

/// Add a job, runnable now.
pub fn enqueue(conn: &Connection, job: &NewJob, now: i64) -> Result<i64, DbError> {
    let id = conn
        .prepare_cached(
            "INSERT INTO jobs (kind, submission_id, grade_id, state, max_attempts, run_at,
                               give_up_at, created_at, updated_at)
             VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?6, ?5, ?5) RETURNING id",
        )?
        .query_row(
            params![
                job.kind.as_str(),
                job.submission_id,
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

/// Claim the next runnable job of `kind`: queued and due, or running with an expired
/// lease (its worker died). Increments `attempts`.
pub fn claim_next(
    conn: &Connection,
    kind: JobKind,
    now: i64,
    lease_ms: i64,
) -> Result<Option<ClaimedJob>, DbError> {
    let claim = uuid::Uuid::new_v4().to_string();
    let job = conn
        .prepare_cached(
            "UPDATE jobs SET state = 'running', claim = ?1, locked_until = ?2,
                    attempts = attempts + 1, updated_at = ?3
             WHERE id = (
                SELECT id FROM (
                    SELECT id, run_at FROM jobs
                     WHERE kind = ?4 AND state = 'queued' AND run_at <= ?3
                    UNION ALL
                    SELECT id, locked_until FROM jobs
                     WHERE kind = ?4 AND state = 'running' AND locked_until < ?3)
                ORDER BY run_at, id LIMIT 1)
             RETURNING id, submission_id, grade_id, attempts, max_attempts",
        )?
        .query_row(params![claim, now + lease_ms, now, kind.as_str()], |r| {
            Ok(ClaimedJob {
                id: r.get(0)?,
                kind,
                submission_id: r.get(1)?,
                grade_id: r.get(2)?,
                attempt: r.get(3)?,
                max_attempts: r.get(4)?,
                claim: claim.clone(),
            })
        })
        .optional()?;
    if let Some(j) = &job {
        let detail = format!("attempt {}", j.attempt);
        events::record(
            conn,
            now,
            Some(j.submission_id),
            Some(j.id),
            "job_claimed",
            &detail,
        )?;
    }
    Ok(job)
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
/// worker took the job over, and only one result may be applied.
pub fn finish(conn: &Connection, job: &ClaimedJob, now: i64) -> Result<bool, DbError> {
    let n = conn
        .prepare_cached(
            "UPDATE jobs SET state = 'done', claim = NULL, locked_until = NULL, last_error = NULL,
                    updated_at = ?1
             WHERE id = ?2 AND claim = ?3 AND state = 'running'",
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
            "SELECT give_up_at FROM jobs WHERE id = ?1 AND claim = ?2 AND state = 'running'",
            params![job.id, job.claim],
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
        FailOutcome::Retry { run_at } => ("queued", run_at),
        _ => ("dead", now),
    };
    conn.prepare_cached(
        "UPDATE jobs SET state = ?1, run_at = ?2, claim = NULL, locked_until = NULL,
                last_error = ?3, updated_at = ?4 WHERE id = ?5",
    )?
    .execute(params![state, at, error, now, job.id])?;
    let event = if state == "dead" {
        "job_dead"
    } else {
        "job_retry"
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
pub fn requeue_expired(conn: &Connection, now: i64) -> Result<usize, DbError> {
    let n = conn.execute(
        "UPDATE jobs SET state = 'queued', claim = NULL, locked_until = NULL, run_at = ?1,
                updated_at = ?1
         WHERE state = 'running' AND locked_until < ?1",
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
        .query_row([kind.as_str()], |r| r.get(0))?;
    Ok(n as u64)
}

/// When the next queued job of `kind` is due (ms), if any.
pub fn next_due(conn: &Connection, kind: JobKind) -> Result<Option<i64>, DbError> {
    Ok(conn
        .prepare_cached("SELECT MIN(run_at) FROM jobs WHERE kind = ?1 AND state = 'queued'")?
        .query_row([kind.as_str()], |r| r.get(0))?)
}

#[cfg(test)]
mod tests;
