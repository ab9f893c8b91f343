//! The grade job: run the submission through the [`Runner`], store the grade, and queue
//! the post to edX in the same transaction.
//!
//! Only a student fault (time limit, memory, kernel death, errors in the notebook) gives a
//! score. Any doubt about our side (engine errors, a container that vanished or ended
//! abnormally, a missing autograder, or a run without results while the autograder itself
//! cannot grade an empty notebook: see [`super::checks`]) is retried, and after
//! `max_attempts` the submission is `dead` for staff with nothing stored or posted.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::Notify;

use super::checks::{AssignmentNames, AutograderChecks};
use crate::course::CourseConfig;
use crate::db::grades::{self, NewGrade};
use crate::db::jobs::{self, ClaimedJob};
use crate::db::states::{GradeStatus, JobKind, PostState, SubmissionState};
use crate::db::{Db, DbError, events, now_ms, submissions};
use crate::grading::{
    GradeOutcome, GradeRequest, Runner, RunnerError, SandboxLimits, StudentFault,
};
use crate::metrics::{Metrics, OutcomeLabels};
use crate::queue::worker::{Attempt, Job, backoff};

/// Settings of the grade job.
#[derive(Debug, Clone)]
pub struct GradeJobConfig {
    pub limits: SandboxLimits,
    pub retry_base: Duration,
    /// Whether scores are posted with LTI 1.1 at all (edX credentials configured).
    pub lti_enabled: bool,
    /// Whether scores are posted with LTI 1.3 at all (the tool's key configured).
    pub ags_enabled: bool,
    /// How long a post keeps being retried.
    pub post_horizon: Duration,
}

impl GradeJobConfig {
    /// Whether `a`'s grades are posted: it names where, and that way is configured.
    pub fn posts_for(&self, a: &crate::course::Assignment) -> bool {
        match a.passback() {
            Some(crate::course::Passback::Lti11) => self.lti_enabled,
            Some(crate::course::Passback::Ags) => self.ags_enabled,
            None => false,
        }
    }
}

/// Grades submissions.
pub struct GradeJob {
    pub db: Db,
    pub runner: Arc<dyn Runner>,
    pub courses: Arc<CourseConfig>,
    pub checks: Arc<AutograderChecks>,
    pub config: GradeJobConfig,
    /// Woken when a post job is queued.
    pub post_notify: Arc<Notify>,
    /// Phase times and outcomes.
    pub metrics: Arc<Metrics>,
}

/// What the student sees of a submission that our side could not grade (staff see the
/// reason in `status` and the job's last error).
const DEAD_MESSAGE: &str = "We could not grade this submission because of a problem on our \
     side. Course staff can see what went wrong and will regrade it; you do not need to \
     submit again.";
const RETRY_MESSAGE: &str =
    "Grading was interrupted by a problem on our side; it will be retried automatically.";

impl GradeJob {
    /// The request for `job`, claimed at `claimed` (ms).
    async fn request(
        &self,
        job: &ClaimedJob,
        claimed: i64,
    ) -> Result<(GradeRequest, AssignmentNames, bool), Attempt> {
        let id = job.submission_id;
        let sub = self
            .db
            .write(move |c| {
                submissions::set_state(c, id, SubmissionState::Grading, None)?;
                submissions::to_grade(c, id)
            })
            .await
            .map_err(|e| Attempt::Retry(format!("database: {e}")))?;
        self.request_for(job, claimed, sub)
    }

    /// The request for `job` (claimed at `claimed`, ms) to grade `sub`, whose state is
    /// already `grading`; also whether its grade is posted to edX. For the service's own
    /// workers and for the grader hosts' claims alike.
    pub fn request_for(
        &self,
        job: &ClaimedJob,
        claimed: i64,
        sub: submissions::ToGrade,
    ) -> Result<(GradeRequest, AssignmentNames, bool), Attempt> {
        let id = job.submission_id;
        if job.attempt == 1 {
            self.metrics.phase("queue_wait", claimed - sub.received_at);
        }
        let assignment = self
            .courses
            .find(&sub.course, &sub.section, &sub.assignment)
            .map_err(|e| {
                Attempt::Fatal(format!(
                    "the course config no longer has this assignment: {e}"
                ))
            })?;
        let request = GradeRequest {
            job_id: job.id,
            submission_id: id,
            notebook: sub.notebook,
            autograder_zip: assignment.autograder_zip.clone(),
            limits: assignment.limits(&self.config.limits),
            started: Default::default(),
        };
        let names = AssignmentNames {
            course: sub.course,
            section: sub.section,
            assignment: sub.assignment,
        };
        // XQueue and platforms carry their users' scores; only Hub users' go over LTI.
        let post = self.config.posts_for(assignment) && crate::users::is_hub_user(&sub.user);
        Ok((request, names, post))
    }

    /// Store the outcome if our claim still holds; queue the post.
    pub async fn apply(
        &self,
        job: &ClaimedJob,
        outcome: GradeOutcome,
        post: bool,
        phases: Phases,
    ) -> Attempt {
        match self.store_outcome(job, outcome, post, phases).await {
            Ok(true) => Attempt::Done,
            Ok(false) => {
                tracing::warn!("claim went stale while grading; result discarded");
                Attempt::Done
            }
            Err(e) => Attempt::Retry(e),
        }
    }

    /// Store the outcome if the claim on `job` still holds (true), or nothing (false: the
    /// claim is stale); queue the post. `Err` says why it could not be stored.
    pub async fn store_outcome(
        &self,
        job: &ClaimedJob,
        outcome: GradeOutcome,
        post: bool,
        phases: Phases,
    ) -> Result<bool, String> {
        let job2 = job.clone();
        let horizon = self.config.post_horizon.as_millis() as i64;
        let grade = new_grade(&outcome).map_err(|e| format!("cannot encode the grade: {e}"))?;
        let applied = self
            .db
            .write(move |c| store(c, &job2, &grade, post, horizon, &phases))
            .await
            .map_err(|e| format!("cannot store the grade: {e}"))?;
        if applied {
            if post {
                self.post_notify.notify_one();
            }
            self.count(&outcome, &phases);
        }
        Ok(applied)
    }

    /// Whether grades of `names`' assignment are posted to edX.
    pub fn posts(&self, names: &AssignmentNames) -> bool {
        self.courses
            .find(&names.course, &names.section, &names.assignment)
            .is_ok_and(|a| self.config.posts_for(a))
    }

    /// Metrics of a stored grade: its outcome and how long each phase took.
    fn count(&self, outcome: &GradeOutcome, phases: &Phases) {
        let outcome = match outcome {
            GradeOutcome::Graded(_) => "graded",
            GradeOutcome::Failed { fault, .. } => fault.as_str(),
        };
        self.metrics
            .grades
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
        let m = &self.metrics;
        if let Some(started) = phases.container_started {
            m.phase("container_start", started - phases.claimed);
            m.phase("run", phases.grading_finished - started);
        }
        m.phase("store", now_ms() - phases.grading_finished);
    }
}

/// The stored form of an outcome.
fn new_grade(outcome: &GradeOutcome) -> Result<NewGrade, serde_json::Error> {
    Ok(match outcome {
        GradeOutcome::Graded(r) => NewGrade {
            status: GradeStatus::Graded,
            score: r.score,
            max_score: r.max_score,
            fraction: r.fraction(),
            tests_json: serde_json::to_string(&r.tests)?,
            public_feedback: r.public_feedback.clone(),
            message: None,
            // Staff notes (what the trusted evaluator flagged) are kept where staff read.
            log_tail: (!r.staff_notes.is_empty()).then(|| r.staff_notes.clone()),
            integrity_flags: (!r.integrity_flags.is_empty()).then(|| r.integrity_flags.join("; ")),
        },
        GradeOutcome::Failed {
            fault,
            message,
            log_tail,
            integrity_flags,
        } => NewGrade {
            status: match fault {
                StudentFault::Timeout => GradeStatus::Timeout,
                StudentFault::OutOfMemory => GradeStatus::OutOfMemory,
                StudentFault::NoResults => GradeStatus::NoResults,
                StudentFault::Refused => GradeStatus::Refused,
            },
            score: 0.0,
            max_score: 0.0,
            fraction: 0.0,
            tests_json: "[]".into(),
            public_feedback: String::new(),
            message: Some(message.clone()),
            log_tail: Some(log_tail.clone()),
            integrity_flags: (!integrity_flags.is_empty()).then(|| integrity_flags.join("; ")),
        },
    })
}

/// When a grading attempt's phases ended (ms), for the submission's timeline.
#[derive(Debug, Clone, Copy)]
pub struct Phases {
    /// The attempt began (the job was claimed).
    pub claimed: i64,
    /// The sandbox was ready and the submission went in (if the runner said).
    pub container_started: Option<i64>,
    /// The runner returned its outcome.
    pub grading_finished: i64,
}

/// One grading run, ready to be stored.
#[derive(Debug, Clone)]
pub struct Run {
    pub outcome: GradeOutcome,
    /// When the sandbox was ready (ms), if the runner said.
    pub container_started: Option<i64>,
    /// When the runner returned (ms).
    pub grading_finished: i64,
}

/// Grade `request` (attempt number `attempt`) with `runner`: the outcome to store, or how
/// the attempt ends without one. The same on the service's workers and on a grader host.
pub async fn run_request(
    runner: &dyn Runner,
    checks: &AutograderChecks,
    request: GradeRequest,
    names: &AssignmentNames,
    attempt: i64,
) -> Result<Run, Attempt> {
    if !request.autograder_zip.is_file() {
        return Err(Attempt::Retry(format!(
            "the autograder {} is missing on the grading machine",
            request.autograder_zip.display()
        )));
    }
    tracing::info!(runner = runner.name(), "grading");
    let started = std::time::Instant::now();
    let (zip, limits) = (request.autograder_zip.clone(), request.limits.clone());
    let sandbox_ready = request.started.clone();
    let outcome = match runner.grade(request).await {
        Ok(o) => o,
        // A result that fails its check is never a grade: one retry (a stream corrupted
        // on the way), then dead, with the reason, for staff to look at.
        Err(e @ RunnerError::Integrity(_)) if attempt >= 2 => {
            tracing::error!(error = %e, "a second result failed its integrity check");
            return Err(Attempt::Fatal(e.to_string()));
        }
        Err(e) => return Err(Attempt::Retry(e.to_string())),
    };
    let grading_finished = now_ms();
    let outcome = charge_or_retry(checks, outcome, names, &zip, &limits).await?;
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "graded");
    Ok(Run {
        outcome,
        container_started: sandbox_ready.get(),
        grading_finished,
    })
}

/// A run without results is the student's only if the autograder itself grades.
async fn charge_or_retry(
    checks: &AutograderChecks,
    outcome: GradeOutcome,
    names: &AssignmentNames,
    zip: &std::path::Path,
    limits: &SandboxLimits,
) -> Result<GradeOutcome, Attempt> {
    match &outcome {
        GradeOutcome::Graded(r) => {
            checks.graded_with(names, zip, &r.autograder_audit).await;
            return Ok(outcome);
        }
        GradeOutcome::Failed {
            fault: StudentFault::NoResults,
            ..
        } => {}
        GradeOutcome::Failed { .. } => return Ok(outcome),
    }
    let check = checks
        .check(names, zip, limits)
        .await
        .map_err(|e| Attempt::Retry(e.to_string()))?;
    if check.ok {
        Ok(outcome)
    } else {
        Err(Attempt::Retry(format!(
            "the autograder of {}/{}/{} is broken: {}",
            names.course, names.section, names.assignment, check.detail
        )))
    }
}

/// One transaction: finish the job (claim checked), record the attempt's phases, insert
/// the grade, update the submission, queue the post. Returns false when the claim was
/// stale.
fn store(
    c: &Connection,
    job: &ClaimedJob,
    grade: &NewGrade,
    post: bool,
    horizon_ms: i64,
    phases: &Phases,
) -> Result<bool, DbError> {
    // Never the same millisecond as the grading's end: the timeline orders events by
    // time, then by when they were written, and `job_done` (written first, below) came
    // after it. With the writer quick, both fell in one millisecond now and then.
    let now = now_ms().max(phases.grading_finished + 1);
    if !jobs::finish(c, job, now)? {
        return Ok(false);
    }
    let (sub, id) = (Some(job.submission_id), Some(job.id));
    if let Some(at) = phases.container_started {
        events::record(c, at, sub, id, "container_started", "")?;
    }
    events::record(c, phases.grading_finished, sub, id, "grading_finished", "")?;
    let post_state = if post {
        PostState::Pending
    } else {
        PostState::NotConfigured
    };
    let grade_id = grades::insert(c, job.submission_id, job.id, grade, post_state, now)?;
    match grade.status {
        GradeStatus::Graded => {
            submissions::set_state(c, job.submission_id, SubmissionState::Graded, None)?
        }
        _ => submissions::set_state(
            c,
            job.submission_id,
            SubmissionState::Failed,
            grade.message.as_deref(),
        )?,
    }
    if post {
        jobs::queue_post(c, job.submission_id, grade_id, horizon_ms, now)?;
    }
    Ok(true)
}

#[async_trait::async_trait]
impl Job for GradeJob {
    fn kind(&self) -> JobKind {
        JobKind::Grade
    }

    async fn run(&self, job: &ClaimedJob) -> Attempt {
        let claimed = now_ms();
        let (request, names, post) = match self.request(job, claimed).await {
            Ok(r) => r,
            Err(attempt) => return attempt,
        };
        let run = run_request(&*self.runner, &self.checks, request, &names, job.attempt).await;
        let run = match run {
            Ok(run) => run,
            Err(attempt) => return attempt,
        };
        let phases = Phases {
            claimed,
            container_started: run.container_started,
            grading_finished: run.grading_finished,
        };
        tracing::info!(?post, "storing the grade");
        self.apply(job, run.outcome, post, phases).await
    }

    /// Assignments that require tags are graded only by grader hosts that offer them.
    fn exclusions(&self) -> String {
        self.courses.excluded(|a| a.local_ok())
    }

    fn retry_delay(&self, attempt: i64) -> Duration {
        backoff(self.config.retry_base, attempt, Duration::from_secs(600))
    }

    /// Grade only while the runner can: until the engine answers and the image is there,
    /// submissions wait in the queue without spending attempts (`/healthz` says why).
    async fn ready(&self) -> bool {
        self.runner.readiness().await.ready
    }

    fn on_failure(
        &self,
        conn: &Connection,
        job: &ClaimedJob,
        _reason: &str,
        dead: bool,
    ) -> Result<(), DbError> {
        let (state, message) = if dead {
            (SubmissionState::Dead, DEAD_MESSAGE)
        } else {
            (SubmissionState::Queued, RETRY_MESSAGE)
        };
        submissions::set_state(conn, job.submission_id, state, Some(message))
    }
}
