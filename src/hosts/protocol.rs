//! What a grader host and the service say to each other (docs/grader-hosts.md). JSON over
//! HTTP; every request carries the host's token as `Authorization: Bearer ...`. Every type
//! of a request or answer body is a schema of the OpenAPI document (`crate::openapi`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::grading::{GradeOutcome, SandboxLimits};

/// Path prefix of the host API, so a later incompatible protocol can sit beside it.
pub const PREFIX: &str = "/v1";

/// `POST /v1/claim`: give me a job. Answered within `wait_secs` (at most the service's
/// `hosts.claim_wait_secs`) with 200 and a `Work`, or 204 when nothing came.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    /// Slots the host has in all (1 to 1024).
    #[schema(minimum = 1, maximum = 1024)]
    pub slots: u32,
    /// otter-service version of the host.
    pub version: String,
    /// Grader images the host's engine has (at most 1024).
    #[serde(default)]
    #[schema(max_items = 1024)]
    pub images: Vec<String>,
    /// How long the host is willing to wait for a job (seconds); the service waits at most
    /// its `hosts.claim_wait_secs`, which is also the default.
    #[serde(default)]
    pub wait_secs: Option<u64>,
}

/// A job given to a host. Everything the runner needs, nothing else: the student's name
/// does not travel.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
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
    #[schema(content_encoding = "base64")]
    pub notebook_base64: String,
    pub autograder: Autograder,
    pub limits: Limits,
}

/// Which autograder: fetched by its hash from `GET /v1/autograders/{sha256}` when the host
/// lacks it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Autograder {
    /// The SHA-256 of the zip, 64 lowercase hex digits.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub sha256: String,
    pub course: String,
    pub section: String,
    pub assignment: String,
}

/// The sandbox limits of a job, as the service resolved them for its assignment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Renewed {
    /// Seconds the lease now has: renew again before they pass.
    pub lease_secs: u64,
}

/// `POST /v1/leases/{lease}/complete`: how the attempt ended. 200 when stored (or stored
/// before: a repeated completion of the same lease is answered the same), 409 when the
/// lease expired, was taken over or revoked (nothing stored).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Release {
    pub reason: String,
}

/// Every refusal (4xx) or failure of the service (500, no details): this body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Refusal {
    /// Why, in a sentence.
    pub error: String,
}

/// The answer to a completion (200).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Stored {
    /// True when the grade is stored (now, or by an earlier completion of this lease);
    /// false for a `retry` or `fatal` completion, settled under the attempt rules. In a
    /// repeat's answer (also to a release) always true.
    pub stored: bool,
    /// True when the lease had already been ended (a completion or release repeated
    /// because its answer was lost): nothing was done now.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub repeat: bool,
}

impl Stored {
    /// The answer to a completion or release of a lease the host already ended.
    pub const REPEAT: Stored = Stored {
        stored: true,
        repeat: true,
    };
}

/// A release taken: the job is back in the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Released {
    /// Always true.
    pub released: bool,
}

/// The answer to a release (200): taken now, or a repeat of a release or completion of the
/// same lease (answered as a repeated completion is).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ReleaseAnswer {
    Released(Released),
    Repeat(Stored),
}

#[cfg(test)]
mod tests {
    #[test]
    fn answers_serialise_as_before() {
        use super::{ReleaseAnswer, Released, Stored};
        use serde_json::json;
        let stored = |stored| Stored {
            stored,
            repeat: false,
        };
        assert_eq!(json!(stored(true)), json!({"stored": true}));
        assert_eq!(json!(stored(false)), json!({"stored": false}));
        assert_eq!(
            json!(Stored::REPEAT),
            json!({"stored": true, "repeat": true})
        );
        let released = ReleaseAnswer::Released(Released { released: true });
        assert_eq!(json!(released), json!({"released": true}));
        let repeat = ReleaseAnswer::Repeat(Stored::REPEAT);
        assert_eq!(json!(repeat), json!({"stored": true, "repeat": true}));
    }
}
