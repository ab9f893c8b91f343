//! Autograder checks: whether an assignment's autograder zip grades at all in a runner
//! (see `jobs::checks`). Stored so `status` and `/healthz` show a broken one.

use rusqlite::{Connection, OptionalExtension, params};

use super::DbError;

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub ok: bool,
    /// Why it failed (for staff), or what it scored.
    pub detail: String,
}

/// The stored check of the zip with hash `zip_sha256` in `runner`, if any.
pub fn find(conn: &Connection, zip_sha256: &str, runner: &str) -> Result<Option<Check>, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT ok, detail FROM autograder_checks WHERE zip_sha256 = ?1 AND runner = ?2",
        )?
        .query_row(params![zip_sha256, runner], |r| {
            Ok(Check {
                ok: r.get(0)?,
                detail: r.get(1)?,
            })
        })
        .optional()?)
}

/// Which assignment a check was for.
#[derive(Debug, Clone)]
pub struct Checked<'a> {
    pub zip_sha256: &'a str,
    pub runner: &'a str,
    pub course: &'a str,
    pub section: &'a str,
    pub assignment: &'a str,
}

/// Store (or replace) a check.
pub fn record(conn: &Connection, at: &Checked<'_>, check: &Check, now: i64) -> Result<(), DbError> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO autograder_checks
            (zip_sha256, runner, course, section, assignment, ok, detail, checked_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        at.zip_sha256,
        at.runner,
        at.course,
        at.section,
        at.assignment,
        check.ok,
        check.detail,
        now
    ])?;
    Ok(())
}
