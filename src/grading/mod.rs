//! Grading backends. A [`Runner`] takes one submission and its autograder and returns how
//! the grading ended. The queue decides what an ending means for the job:
//! [`GradeOutcome`] is final (the student's result), [`RunnerError`] is an infrastructure
//! fault that is retried and never charged to the student.

pub mod docker;
pub mod local;
pub mod results;

use std::path::PathBuf;
use std::time::Duration;

pub use results::{GradeResults, TestResult};

/// Sandbox limits for one grading run. Defaults come from settings; a course section or
/// assignment may override them in the course config.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxLimits {
    /// Wall-clock limit enforced by the service (kill + clean up), not by otter.
    pub time_limit: Duration,
    /// Memory limit in bytes (memory + swap: no swap).
    pub memory_bytes: u64,
    /// CPU quota in cores (e.g. 1.0).
    pub cpus: f64,
    /// Maximum number of processes/threads.
    pub pids: i64,
    /// Whether the notebook may use the network. Off by default.
    pub network: bool,
    /// Cap on the bytes of output (stdout+stderr) kept from one run.
    pub output_bytes: usize,
    /// The grader image for this assignment (a course's own packages), when the course
    /// config names one; `None` = the runner's default image.
    pub image: Option<String>,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            time_limit: Duration::from_secs(300),
            memory_bytes: 2 * 1024 * 1024 * 1024,
            cpus: 1.0,
            pids: 256,
            network: false,
            output_bytes: 1024 * 1024,
            image: None,
        }
    }
}

/// Everything a runner needs for one grading run.
#[derive(Debug, Clone)]
pub struct GradeRequest {
    /// The grade job being run (used to label containers and temp dirs).
    pub job_id: i64,
    pub submission_id: i64,
    /// The notebook exactly as submitted.
    pub notebook: Vec<u8>,
    /// The assignment's `{assignment}-autograder.zip` on the service's disk.
    pub autograder_zip: PathBuf,
    pub limits: SandboxLimits,
    /// Set by the runner when the sandbox that grades this request is ready and the
    /// submission goes in (the timeline's "container started").
    pub started: StartedAt,
}

/// When a request's sandbox was ready (ms since the epoch), shared with the runner.
#[derive(Debug, Clone, Default)]
pub struct StartedAt(std::sync::Arc<std::sync::atomic::AtomicI64>);

impl StartedAt {
    /// Now is when it started.
    pub fn mark(&self) {
        let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        self.0
            .store(now as i64, std::sync::atomic::Ordering::Relaxed);
    }

    /// When it started, if the runner said so.
    pub fn get(&self) -> Option<i64> {
        Some(self.0.load(std::sync::atomic::Ordering::Relaxed)).filter(|t| *t > 0)
    }
}

/// Why grading ended without a full result, when the cause lies in the submission.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum StudentFault {
    /// Ran past the wall-clock limit and was killed.
    Timeout,
    /// Ran out of memory (killed by the OOM killer / memory limit).
    OutOfMemory,
    /// otter ran but wrote no results (kernel died, `sys.exit`...).
    NoResults,
    /// The evaluator refused the submission for what it is: another assignment's notebook
    /// (otter's assignment-name check), or a kernel none of whose answers could be read.
    Refused,
}

impl StudentFault {
    /// Stable name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            StudentFault::Timeout => "timeout",
            StudentFault::OutOfMemory => "out_of_memory",
            StudentFault::NoResults => "no_results",
            StudentFault::Refused => "refused",
        }
    }
}

/// How a grading run ended, when it ended for a reason that re-running would not change.
/// Serialised as a grader host sends it to the service (`ending`: `graded` or `failed`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(tag = "ending", rename_all = "snake_case")]
pub enum GradeOutcome {
    /// otter produced results.json. Errors inside the notebook show up as lost points.
    Graded(GradeResults),
    /// The submission could not be graded; it gets 0 and `message` tells the student why.
    Failed {
        fault: StudentFault,
        /// A sentence for the student (no hidden-test content, no internals).
        message: String,
        /// The tail of the run's output, for staff only.
        log_tail: String,
        /// Why the trusted evaluator flagged the submission for staff (empty: nothing).
        integrity_flags: Vec<String>,
    },
}

/// An infrastructure fault: retried with backoff, never charged to the student.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("grading backend unavailable: {0}")]
    Unavailable(String),
    #[error("grading backend failed: {0}")]
    Internal(String),
    /// A result that failed its authentication (the trusted evaluator's HMAC): never a
    /// grade. Retried once (a corrupted stream), then the submission is dead for staff.
    #[error("integrity failure: {0}")]
    Integrity(String),
}

/// Readiness of a runner, for `/healthz`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Readiness {
    pub ready: bool,
    /// What is (or is not) ready, for operators.
    pub detail: String,
}

/// A grading backend.
#[async_trait::async_trait]
pub trait Runner: Send + Sync + 'static {
    /// Short name for logs and `/healthz` (`local`, `docker`).
    fn name(&self) -> &'static str;

    /// Grade one submission. Must clean up everything it started, whatever the ending.
    async fn grade(&self, request: GradeRequest) -> Result<GradeOutcome, RunnerError>;

    /// Whether the backend can grade right now.
    async fn readiness(&self) -> Readiness;

    /// Whether a course's own grader image (course config `"image"`) can grade. Backends
    /// without images are always ready.
    async fn image_readiness(&self, image: &str) -> Readiness {
        Readiness {
            ready: true,
            detail: format!("{} does not use images ({image})", self.name()),
        }
    }

    /// Stop keeping sandboxes ready and remove every one this runner still has (warm
    /// containers waiting for a job, or being started). Called when the service stops,
    /// after its workers. Backends that keep nothing ready do nothing.
    async fn shutdown(&self) {}

    /// Remove leftovers of earlier runs (containers, temp dirs) that belong to no job in
    /// `live_job_ids`. Called at start. Returns how many were removed.
    async fn remove_orphans(&self, live_job_ids: &[i64]) -> Result<usize, RunnerError> {
        let _ = live_job_ids;
        Ok(0)
    }
}
