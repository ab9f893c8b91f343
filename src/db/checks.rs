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
    /// The trusted evaluator's audit of the zip's tests (`case: finding`), when a run
    /// reported one: cases that rely on what cannot cross as plain data.
    pub audit: Vec<String>,
}

/// The stored check of the zip with hash `zip_sha256` in `runner`, if any.
pub fn find(conn: &Connection, zip_sha256: &str, runner: &str) -> Result<Option<Check>, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT ok, detail, audit FROM autograder_checks WHERE zip_sha256 = ?1 AND runner = ?2",
        )?
        .query_row(params![zip_sha256, runner], |r| {
            Ok(Check {
                ok: r.get(0)?,
                detail: r.get(1)?,
                audit: audit_from(r.get(2)?),
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
            (zip_sha256, runner, course, section, assignment, ok, detail, checked_at, audit)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        at.zip_sha256,
        at.runner,
        at.course,
        at.section,
        at.assignment,
        check.ok,
        check.detail,
        now,
        serde_json::to_string(&check.audit).expect("strings serialise"),
    ])?;
    Ok(())
}

/// A stored audit (a JSON array of strings; NULL before migration 4).
fn audit_from(stored: Option<String>) -> Vec<String> {
    stored
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

/// An assignment's autograder audit, as last stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Audit {
    pub course: String,
    pub section: String,
    pub assignment: String,
    /// `case: finding`, one per line.
    pub findings: Vec<String>,
}

/// Assignments whose latest autograder check carries a non-empty audit.
pub fn audits(conn: &Connection) -> Result<Vec<Audit>, DbError> {
    let rows = conn
        .prepare(
            "SELECT course, section, assignment, audit FROM autograder_checks c
              WHERE audit IS NOT NULL AND audit != '[]' AND checked_at = (
                SELECT MAX(checked_at) FROM autograder_checks c2
                 WHERE c2.course = c.course AND c2.section = c.section
                   AND c2.assignment = c.assignment)
              ORDER BY course, section, assignment",
        )?
        .query_map([], |r| {
            Ok(Audit {
                course: r.get(0)?,
                section: r.get(1)?,
                assignment: r.get(2)?,
                findings: audit_from(r.get(3)?),
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}
