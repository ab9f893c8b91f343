//! The append-only event log: every state change of a submission or job, for staff.

use rusqlite::{Connection, params};

use super::DbError;

/// Append one event.
pub fn record(
    conn: &Connection,
    now: i64,
    submission_id: Option<i64>,
    job_id: Option<i64>,
    event: &str,
    detail: &str,
) -> Result<(), DbError> {
    conn.prepare_cached(
        "INSERT INTO events (at, submission_id, job_id, event, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![now, submission_id, job_id, event, detail])?;
    Ok(())
}

/// One logged event.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Event {
    pub at: String,
    /// `at` in ms since the epoch.
    pub at_ms: i64,
    pub job_id: Option<i64>,
    pub event: String,
    pub detail: String,
}

/// A submission's events in the order they happened (a grading attempt's phases are
/// written when it is stored, after they happened).
pub fn for_submission(conn: &Connection, submission_id: i64) -> Result<Vec<Event>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT at, job_id, event, COALESCE(detail, '') FROM events
         WHERE submission_id = ?1 ORDER BY at, id",
    )?;
    let rows = stmt.query_map([submission_id], |r| {
        Ok(Event {
            at: super::format_ms(r.get(0)?),
            at_ms: r.get(0)?,
            job_id: r.get(1)?,
            event: r.get(2)?,
            detail: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
