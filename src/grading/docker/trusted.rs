//! The trusted evaluator's result line: `OTTER-TRUSTED <hmac-sha256 hex> <base64 JSON>`
//! (see `grader/README.md`). It is read only after its HMAC verifies under the per-job
//! key, which only the container's root process received; a line that fails is never a
//! grade.

use base64::Engine;
use hmac::{KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::grading::RunnerError;
use crate::grading::results::{GradeResults, TestResult};

/// Marker of the result line.
pub const MARKER: &str = "OTTER-TRUSTED ";

/// What the evaluator reported.
#[derive(Debug, Clone, PartialEq)]
pub enum Reported {
    /// Scores and public feedback.
    Graded(GradeResults),
    /// The student's kernel died: otter's "no results".
    KernelDied,
    /// The evaluator refused the submission for what it is (another assignment's
    /// notebook, a kernel none of whose answers could be read): the student's fault,
    /// with a sentence for them and the flags for staff.
    Refused {
        message: String,
        integrity_flags: Vec<String>,
    },
}

#[derive(Deserialize)]
struct Document {
    questions: Vec<Question>,
    #[serde(default)]
    flagged: Vec<serde_json::Value>,
    #[serde(default)]
    test_warnings: Vec<serde_json::Value>,
    #[serde(default)]
    kernel_died: bool,
    /// The whole submission is the student's fault (`otter_trusted.results`).
    #[serde(default)]
    student_fault: Option<RefusedDoc>,
    /// Test case -> what in it cannot cross as plain data (`otter_trusted.audit`).
    #[serde(default)]
    audit: std::collections::BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
struct RefusedDoc {
    message: String,
}

#[derive(Deserialize)]
struct Question {
    name: String,
    score: f64,
    max_score: f64,
    #[serde(default)]
    feedback: String,
}

/// The verified report on `stdout`, `None` when there is no result line (the container
/// ended without one), an error when a line is there but fails its check.
pub fn parse(stdout: &[u8], key: &[u8]) -> Result<Option<Reported>, RunnerError> {
    let text = String::from_utf8_lossy(stdout);
    let Some(line) = text.lines().rev().find(|l| l.starts_with(MARKER)) else {
        return Ok(None);
    };
    let bad = |why: &str| RunnerError::Integrity(format!("the result line {why}"));
    let mut parts = line[MARKER.len()..].split(' ');
    let (Some(mac), Some(payload), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("is malformed"));
    };
    let payload = base64::engine::general_purpose::STANDARD
        .decode(payload.trim())
        .map_err(|_| bad("is not base64"))?;
    let mac = hex::decode(mac).map_err(|_| bad("has no hex HMAC"))?;
    let mut check = hmac::Hmac::<Sha256>::new_from_slice(key).expect("any key size");
    check.update(&payload);
    check
        .verify_slice(&mac)
        .map_err(|_| bad("failed its integrity check (HMAC)"))?;
    let doc: Document = serde_json::from_slice(&payload).map_err(|_| bad("is not a report"))?;
    if let Some(refused) = &doc.student_fault {
        return Ok(Some(Reported::Refused {
            message: refused.message.clone(),
            integrity_flags: flag_reasons(&doc.flagged),
        }));
    }
    if doc.kernel_died {
        return Ok(Some(Reported::KernelDied));
    }
    Ok(Some(Reported::Graded(results(doc))))
}

/// Each flag's reason, as staff read it.
fn flag_reasons(flagged: &[serde_json::Value]) -> Vec<String> {
    flagged
        .iter()
        .map(|f| match f.get("reason").and_then(|r| r.as_str()) {
            Some(reason) => reason.to_string(),
            None => f.to_string(),
        })
        .collect()
}

/// The report as grade results: the feedback is the evaluator's public-only text per
/// question; flags and warnings (which may name what hidden tests use) are staff notes.
fn results(doc: Document) -> GradeResults {
    let mut public_feedback = String::new();
    let tests: Vec<TestResult> = doc
        .questions
        .into_iter()
        .map(|q| {
            public_feedback += &format!(
                "{}: {} / {}\n{}\n\n",
                q.name,
                q.score,
                q.max_score,
                q.feedback.trim_end()
            );
            TestResult {
                name: q.name,
                score: q.score,
                max_score: q.max_score,
                visibility: "visible".into(),
                staff_output: String::new(),
            }
        })
        .collect();
    let staff_notes = if doc.flagged.is_empty() && doc.test_warnings.is_empty() {
        String::new()
    } else {
        serde_json::json!({"flagged": doc.flagged, "test_warnings": doc.test_warnings}).to_string()
    };
    let integrity_flags = flag_reasons(&doc.flagged);
    let autograder_audit = doc
        .audit
        .iter()
        .flat_map(|(case, findings)| findings.iter().map(move |f| format!("{case}: {f}")))
        .collect();
    GradeResults {
        autograder_audit,
        integrity_flags,
        score: tests.iter().map(|t| t.score).sum(),
        max_score: tests.iter().map(|t| t.max_score).sum(),
        tests,
        public_feedback: public_feedback.trim_end().to_string(),
        staff_notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(doc: &serde_json::Value, key: &[u8]) -> Vec<u8> {
        let payload = serde_json::to_vec(doc).unwrap();
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(&payload);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&payload);
        format!(
            "noise\n{MARKER}{} {b64}\n",
            hex::encode(mac.finalize().into_bytes())
        )
        .into_bytes()
    }

    #[test]
    fn a_verified_report_is_read_and_a_forged_one_is_refused() {
        let doc = serde_json::json!({"questions": [
            {"name": "q1", "score": 1.0, "max_score": 1.0, "feedback": "q1 passed"},
            {"name": "q2", "score": 0.0, "max_score": 2.0, "feedback": "Hidden tests: 0 of 1 passed."}],
            "flagged": [{"reason": "`total` is an object of type Always"}],
            "audit": {"q2 case 2 (hidden)": ["defines a lambda"]}});
        let Some(Reported::Graded(r)) =
            parse(&line(&doc, b"k1k1k1k1k1k1k1k1"), b"k1k1k1k1k1k1k1k1").unwrap()
        else {
            panic!("graded")
        };
        assert_eq!((r.score, r.max_score), (1.0, 3.0));
        assert!(r.public_feedback.contains("Hidden tests: 0 of 1"));
        assert!(r.staff_notes.contains("Always"));
        assert_eq!(r.integrity_flags, ["`total` is an object of type Always"]);
        assert_eq!(r.autograder_audit, ["q2 case 2 (hidden): defines a lambda"]);
        assert!(
            !r.public_feedback.contains("lambda"),
            "the audit is for staff"
        );
        // The same line under another key (a student's own forgery) is no grade.
        assert!(matches!(
            parse(&line(&doc, b"other-key-000000"), b"k1k1k1k1k1k1k1k1"),
            Err(RunnerError::Integrity(_))
        ));
        assert_eq!(parse(b"OTTER-RESULTS eyJ9", b"k").unwrap(), None);
        let died = serde_json::json!({"questions": [], "kernel_died": true});
        assert_eq!(
            parse(&line(&died, b"k"), b"k").unwrap(),
            Some(Reported::KernelDied)
        );
        // A refusal wins over everything else the document says.
        let refused = serde_json::json!({"questions": [], "kernel_died": true,
            "student_fault": {"kind": "kernel_unreadable", "message": "could not read"},
            "flagged": [{"question": "q1", "reason": "not a reply"}]});
        assert_eq!(
            parse(&line(&refused, b"k"), b"k").unwrap(),
            Some(Reported::Refused {
                message: "could not read".into(),
                integrity_flags: vec!["not a reply".into()]
            })
        );
    }
}
