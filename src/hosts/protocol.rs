//! What a grader host and the service say to each other (docs/grader-hosts.md). JSON over
//! HTTP; every request carries the host's token as `Authorization: Bearer ...`.

use serde::{Deserialize, Serialize};

use crate::grading::{GradeOutcome, SandboxLimits};

/// Path prefix of the host API, so a later incompatible protocol can sit beside it.
pub const PREFIX: &str = "/v1";

/// `POST /v1/claim`: give me a job. Answered within `wait_secs` (at most the service's
/// `hosts.claim_wait_secs`) with 200 and a [`Work`], or 204 when nothing came.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    /// Slots the host has in all.
    pub slots: u32,
    /// otter-service version of the host.
    pub version: String,
    /// Grader images the host's engine has.
    #[serde(default)]
    pub images: Vec<String>,
    /// How long the host is willing to wait for a job (seconds).
    #[serde(default)]
    pub wait_secs: Option<u64>,
}

/// A job given to a host. Everything the runner needs, nothing else: the student's name
/// does not travel.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Work {
    /// The lease id (a fencing token): shown with every heartbeat and the result, good
    /// only while renewed.
    pub lease: String,
    /// Renew before this many seconds pass; the host does so every third of it.
    pub lease_secs: u64,
    pub job_id: i64,
    pub submission_id: i64,
    /// This attempt's number, from 1.
    pub attempt: i64,
    /// The notebook exactly as submitted, base64.
    pub notebook_base64: String,
    pub autograder: Autograder,
    pub limits: Limits,
}

/// Which autograder: fetched by its hash from `GET /v1/autograders/{sha256}` when the host
/// lacks it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Autograder {
    pub sha256: String,
    pub course: String,
    pub section: String,
    pub assignment: String,
}

/// The sandbox limits of a job, as the service resolved them for its assignment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub time_limit_ms: u64,
    pub memory_bytes: u64,
    pub cpus: f64,
    pub pids: i64,
    pub network: bool,
    pub output_bytes: usize,
    pub image: Option<String>,
}

impl From<&SandboxLimits> for Limits {
    fn from(l: &SandboxLimits) -> Self {
        Self {
            time_limit_ms: l.time_limit.as_millis() as u64,
            memory_bytes: l.memory_bytes,
            cpus: l.cpus,
            pids: l.pids,
            network: l.network,
            output_bytes: l.output_bytes,
            image: l.image.clone(),
        }
    }
}

impl From<&Limits> for SandboxLimits {
    fn from(l: &Limits) -> Self {
        Self {
            time_limit: std::time::Duration::from_millis(l.time_limit_ms),
            memory_bytes: l.memory_bytes,
            cpus: l.cpus,
            pids: l.pids,
            network: l.network,
            output_bytes: l.output_bytes,
            image: l.image.clone(),
        }
    }
}

/// `POST /v1/leases/{lease}/heartbeat`: 200 with the new expiry, 409 when the lease is not
/// this host's any more (stop: the result would be refused).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Renewed {
    pub lease_secs: u64,
}

/// `POST /v1/leases/{lease}/complete`: how the attempt ended. 200 when stored (or stored
/// before: a repeated completion of the same lease is answered the same), 409 when the
/// lease expired, was taken over or revoked (nothing stored).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case", deny_unknown_fields)]
pub enum Completion {
    /// The runner's outcome, to be stored as the grade.
    Graded {
        outcome: GradeOutcome,
        /// Milliseconds from receiving the job to the sandbox being ready, if known.
        sandbox_ready_after_ms: Option<u64>,
        /// Milliseconds from receiving the job to the runner's answer.
        finished_after_ms: u64,
    },
    /// Our side failed (engine down, image missing, a result that failed its check):
    /// retried under the attempt rules, never charged to the student.
    Retry { reason: String },
    /// A fault retrying cannot fix (a second result that failed its integrity check).
    Fatal { reason: String },
}

/// `POST /v1/leases/{lease}/release`: the host gives the job back without a result
/// (it is stopping); it goes back to the queue at once, the attempt counted as ours.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    pub reason: String,
}

/// Every refusal: a 4xx with this body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Refusal {
    pub error: String,
}
