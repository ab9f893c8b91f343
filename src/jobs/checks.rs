//! Autograder checks. A run that ends without results is the student's fault only if the
//! assignment's autograder can grade at all: a broken zip or a broken grader image ends
//! every submission the same way, and charging each student a 0 (and posting it to edX)
//! would be our fault passed on. So before such an ending is charged, the autograder is
//! checked once per zip content and runner: it must open as a zip with an
//! `otter_config.json`, and grading an empty notebook (carrying the assignment name from
//! that config) in the same runner and image must produce results.
//!
//! The result is kept in memory and in the database (`status` and `/healthz` list broken
//! autograders); a changed zip has a new hash and is checked again.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::db::checks::{self, Check, Checked};
use crate::db::{Db, now_ms};
use crate::grading::local::last_line;
use crate::grading::{GradeOutcome, GradeRequest, Runner, RunnerError, SandboxLimits};

/// Which assignment an autograder belongs to.
#[derive(Debug, Clone)]
pub struct AssignmentNames {
    pub course: String,
    pub section: String,
    pub assignment: String,
}

/// Checks autograders through a runner, once per zip content.
pub struct AutograderChecks {
    /// Where checks are kept; `None` on a grader host, which keeps them in memory only
    /// (the service records the grades it stores).
    db: Option<Db>,
    runner: Arc<dyn Runner>,
    /// zip hash -> check. One lock: checks are rare, and two workers hitting the same
    /// broken zip should run its check once.
    memo: Mutex<HashMap<String, Check>>,
}

impl AutograderChecks {
    pub fn new(db: Db, runner: Arc<dyn Runner>) -> Self {
        Self {
            db: Some(db),
            runner,
            memo: Mutex::new(HashMap::new()),
        }
    }

    /// Checks kept in memory only (a grader host's).
    pub fn in_memory(runner: Arc<dyn Runner>) -> Self {
        Self {
            db: None,
            runner,
            memo: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the autograder at `zip_path` grades an empty notebook. `Err` when the
    /// runner itself failed (an infrastructure fault: nothing is decided or stored).
    pub async fn check(
        &self,
        names: &AssignmentNames,
        zip_path: &Path,
        limits: &SandboxLimits,
    ) -> Result<Check, RunnerError> {
        let zip = tokio::fs::read(zip_path).await.map_err(|e| {
            RunnerError::Unavailable(format!(
                "cannot read the autograder {}: {e}",
                zip_path.display()
            ))
        })?;
        let hash = hex::encode(Sha256::digest(&zip));
        let mut memo = self.memo.lock().await;
        if let Some(c) = memo.get(&hash) {
            return Ok(c.clone());
        }
        let (runner, h) = (self.runner.name(), hash.clone());
        if let Some(db) = &self.db
            && let Ok(Some(c)) = db.read(move |c| checks::find(c, &h, runner)).await
        {
            memo.insert(hash, c.clone());
            return Ok(c);
        }
        let check = match canary_notebook(&zip) {
            Err(problem) => Check {
                ok: false,
                detail: problem,
                audit: Vec::new(),
            },
            Ok(notebook) => self.grade_canary(zip_path, notebook, limits).await?,
        };
        log_audit(names, &check.audit);
        if !check.ok {
            tracing::error!(course = %names.course, section = %names.section,
                assignment = %names.assignment, detail = %check.detail,
                "the autograder is broken: submissions to it are not charged and end dead");
        }
        self.store(names, &hash, &check).await;
        memo.insert(hash, check.clone());
        Ok(check)
    }

    /// Keep a check in the database (for `status` and `/healthz`); a failure to is logged.
    async fn store(&self, names: &AssignmentNames, hash: &str, check: &Check) -> bool {
        let Some(db) = &self.db else {
            return true;
        };
        let (runner, n, c, h) = (
            self.runner.name(),
            names.clone(),
            check.clone(),
            hash.to_string(),
        );
        let stored = db
            .write(move |conn| {
                let at = Checked {
                    zip_sha256: &h,
                    runner,
                    course: &n.course,
                    section: &n.section,
                    assignment: &n.assignment,
                };
                checks::record(conn, &at, &c, now_ms())
            })
            .await;
        if let Err(e) = &stored {
            tracing::warn!(error = %e, "could not store an autograder check");
        }
        stored.is_ok()
    }

    /// A submission to the autograder at `zip_path` was graded: the autograder works
    /// (recorded once per zip content, so a fixed zip clears a broken one in `status`),
    /// with the evaluator's `audit` of its tests, which staff hear of once.
    pub async fn graded_with(&self, names: &AssignmentNames, zip_path: &Path, audit: &[String]) {
        let Ok(zip) = tokio::fs::read(zip_path).await else {
            return;
        };
        let hash = hex::encode(Sha256::digest(&zip));
        let mut memo = self.memo.lock().await;
        if memo.contains_key(&hash) {
            return;
        }
        let check = Check {
            ok: true,
            detail: "a submission was graded".into(),
            audit: audit.to_vec(),
        };
        log_audit(names, &check.audit);
        if self.store(names, &hash, &check).await {
            memo.insert(hash, check);
        }
    }

    async fn grade_canary(
        &self,
        zip_path: &Path,
        notebook: Vec<u8>,
        limits: &SandboxLimits,
    ) -> Result<Check, RunnerError> {
        let request = GradeRequest {
            job_id: 0,
            submission_id: 0,
            notebook,
            autograder_zip: zip_path.to_path_buf(),
            limits: limits.clone(),
            started: Default::default(),
        };
        Ok(match self.runner.grade(request).await? {
            GradeOutcome::Graded(r) => Check {
                ok: true,
                detail: format!("an empty notebook scored {} / {}", r.score, r.max_score),
                audit: r.autograder_audit,
            },
            GradeOutcome::Failed {
                fault, log_tail, ..
            } => Check {
                ok: false,
                detail: format!(
                    "an empty notebook could not be graded ({}): {}",
                    fault.as_str(),
                    last_line(&log_tail)
                ),
                audit: Vec::new(),
            },
        })
    }
}

/// Tell staff, once per autograder zip, which of its tests rely on what cannot cross as
/// plain data (the log is staff's; `status` lists it too).
fn log_audit(names: &AssignmentNames, audit: &[String]) {
    if !audit.is_empty() {
        tracing::warn!(course = %names.course, section = %names.section,
            assignment = %names.assignment, findings = %audit.join("; "),
            "autograder audit: some tests use constructs the trusted evaluator cannot check \
             as plain data (see docs/security.md); review them");
    }
}

/// An empty notebook for the autograder in `zip`: no cells, the Python 3 kernel, and the
/// assignment name from the zip's `otter_config.json` (otter refuses a notebook for
/// another assignment). `Err` says what is wrong with the zip.
pub fn canary_notebook(zip: &[u8]) -> Result<Vec<u8>, String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip))
        .map_err(|e| format!("the autograder is not a readable zip file: {e}"))?;
    let mut config = String::new();
    archive
        .by_name("otter_config.json")
        .map_err(|_| {
            "the autograder zip has no otter_config.json (is it made by otter assign?)".to_string()
        })?
        .take(1 << 20)
        .read_to_string(&mut config)
        .map_err(|e| format!("the autograder's otter_config.json cannot be read: {e}"))?;
    let config: serde_json::Value = serde_json::from_str(&config)
        .map_err(|e| format!("the autograder's otter_config.json is not JSON: {e}"))?;
    let mut otter = serde_json::Map::new();
    if let Some(name) = config.get("assignment_name").filter(|v| v.is_string()) {
        otter.insert("assignment_name".into(), name.clone());
    }
    let notebook = serde_json::json!({
        "cells": [],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
            "otter": otter,
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    });
    Ok(serde_json::to_vec(&notebook).expect("a JSON value serialises"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zip_with(files: &[(&str, &str)]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, text) in files {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            std::io::Write::write_all(&mut w, text.as_bytes()).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn the_canary_carries_the_assignment_name_of_the_zip() {
        let zip = zip_with(&[("otter_config.json", r#"{"assignment_name": "lab02"}"#)]);
        let nb: serde_json::Value =
            serde_json::from_slice(&canary_notebook(&zip).unwrap()).unwrap();
        assert_eq!(nb["metadata"]["otter"]["assignment_name"], "lab02");
        assert_eq!(nb["cells"].as_array().unwrap().len(), 0);
    }

    #[test]
    fn broken_zips_are_named_as_such() {
        assert!(
            canary_notebook(b"not a zip")
                .unwrap_err()
                .contains("not a readable zip")
        );
        let no_config = zip_with(&[("tests/q1.py", "x")]);
        assert!(
            canary_notebook(&no_config)
                .unwrap_err()
                .contains("otter_config.json")
        );
    }
}
