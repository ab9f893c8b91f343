//! otter's `results.json` (Gradescope format) -> total score and per-test results.
//!
//! The first entry, "Public Tests", carries no score: its `output` is the public feedback a
//! student may see. Each question's `output` includes hidden test cases, so it is kept for
//! staff only and never shown to students.

use serde::{Deserialize, Serialize};

/// Name of otter's score-less entry that summarises the public tests.
const PUBLIC_TESTS: &str = "Public Tests";

/// One question's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TestResult {
    pub name: String,
    pub score: f64,
    pub max_score: f64,
    /// Gradescope visibility (`visible`, `hidden`, `after_published`, ...).
    pub visibility: String,
    /// otter's full output for this question, which may include hidden tests: staff only.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub staff_output: String,
}

/// A parsed results.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GradeResults {
    /// Sum of question scores.
    pub score: f64,
    /// Sum of question max scores.
    pub max_score: f64,
    /// Per-question scores.
    pub tests: Vec<TestResult>,
    /// The public tests' output: what the student may see.
    pub public_feedback: String,
    /// For staff only: what the evaluator flagged (values that could not be checked...).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub staff_notes: String,
    /// For staff only: why the trusted evaluator flagged the submission (values that
    /// could not be checked as plain data, an imitated result line...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub integrity_flags: Vec<String>,
    /// For staff only: the trusted evaluator's audit of the autograder's tests (which
    /// cases use constructs that cannot cross as plain data), one `case: finding` each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub autograder_audit: Vec<String>,
}

impl GradeResults {
    /// Score as a fraction in [0, 1]; 0 when the assignment has no points.
    pub fn fraction(&self) -> f64 {
        if self.max_score > 0.0 {
            (self.score / self.max_score).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// results.json was not what otter writes.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("results.json is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("results.json has no tests")]
    NoTests,
    #[error("results.json test {name:?} has an invalid score")]
    BadScore { name: String },
}

#[derive(Deserialize)]
struct RawResults {
    #[serde(default)]
    tests: Vec<RawTest>,
}

#[derive(Deserialize)]
struct RawTest {
    #[serde(default)]
    name: String,
    score: Option<f64>,
    max_score: Option<f64>,
    #[serde(default)]
    visibility: Option<String>,
    #[serde(default)]
    output: Option<String>,
}

/// Parse the bytes of a results.json.
pub fn parse(bytes: &[u8]) -> Result<GradeResults, ResultsError> {
    let raw: RawResults = serde_json::from_slice(bytes)?;
    if raw.tests.is_empty() {
        return Err(ResultsError::NoTests);
    }
    let mut public_feedback = String::new();
    let mut tests = Vec::new();
    for t in raw.tests {
        let output = t.output.unwrap_or_default();
        // The public summary has no score; any other score-less entry is informational and
        // may contain hidden output, so only the one named "Public Tests" is shown.
        let (Some(score), Some(max_score)) = (t.score, t.max_score) else {
            if t.name == PUBLIC_TESTS {
                public_feedback = output;
            }
            continue;
        };
        if !score.is_finite() || !max_score.is_finite() || max_score < 0.0 {
            return Err(ResultsError::BadScore { name: t.name });
        }
        tests.push(TestResult {
            name: t.name,
            score,
            max_score,
            visibility: t.visibility.unwrap_or_else(|| "visible".into()),
            staff_output: output,
        });
    }
    Ok(GradeResults {
        score: tests.iter().map(|t| t.score).sum(),
        max_score: tests.iter().map(|t| t.max_score).sum(),
        tests,
        public_feedback,
        staff_notes: String::new(),
        integrity_flags: Vec::new(),
        autograder_audit: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_scores_and_keeps_only_public_output_for_students() {
        let json = br#"{"tests": [
            {"name": "Public Tests", "visibility": "visible", "output": "q1 passed"},
            {"name": "q1", "score": 1.0, "max_score": 1.0, "visibility": "hidden", "output": "hidden test 2 failed"},
            {"name": "q2", "score": 0.5, "max_score": 2.0, "visibility": "hidden", "output": "x"}
        ]}"#;
        let r = parse(json).unwrap();
        assert_eq!((r.score, r.max_score), (1.5, 3.0));
        assert_eq!(r.public_feedback, "q1 passed");
        assert_eq!(r.tests.len(), 2);
        assert!((r.fraction() - 0.5).abs() < 1e-9);
    }

    #[test]
    fn rejects_garbage_and_empty_results() {
        assert!(matches!(parse(b"nope"), Err(ResultsError::Json(_))));
        assert!(matches!(
            parse(b"{\"tests\": []}"),
            Err(ResultsError::NoTests)
        ));
    }

    #[test]
    fn zero_point_assignment_has_zero_fraction() {
        let r = parse(br#"{"tests":[{"name":"q","score":0,"max_score":0}]}"#).unwrap();
        assert_eq!(r.fraction(), 0.0);
    }
}
