//! The grade job: run the submission through the [`Runner`], store the grade, and queue
//! the post to edX in the same transaction.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::Notify;

use crate::course::CourseConfig;
use crate::db::{Db, DbError, grades, now_ms, submissions};
use crate::grading::{GradeOutcome, GradeRequest, Runner, SandboxLimits};
use crate::notebook::{Name, NotebookMetadata};
use crate::queue::worker::{Attempt, Job, backoff};
use crate::queue::{self, ClaimedJob, JobKind, NewJob};

/// Settings of the grade job.
#[derive(Debug, Clone)]
pub struct GradeJobConfig {
    pub limits: SandboxLimits,
    pub retry_base: Duration,
    /// Whether scores are posted to edX at all (LTI credentials configured).
    pub lti_enabled: bool,
    /// How long a post keeps being retried.
    pub post_horizon: Duration,
}

/// Grades submissions.
pub struct GradeJob {
    pub db: Db,
    pub runner: Arc<dyn Runner>,
    pub courses: Arc<CourseConfig>,
    pub config: GradeJobConfig,
    /// Woken when a post job is queued.
    pub post_notify: Arc<Notify>,
}

impl GradeJob {
    async fn request(&self, job: &ClaimedJob) -> Result<(GradeRequest, bool), Attempt> {
        let id = job.submission_id;
        let sub = self
            .db
            .write(move |c| {
                submissions::set_state(c, id, "grading", None)?;
                submissions::to_grade(c, id)
            })
            .await
            .map_err(|e| Attempt::Retry(format!("database: {e}")))?;
        let meta = parse_names(&sub.course, &sub.section, &sub.assignment)
            .map_err(|e| Attempt::Fatal(format!("stored names are invalid: {e}")))?;
        let assignment = self.courses.lookup(&meta).map_err(|e| {
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
        };
        let post = self.config.lti_enabled && assignment.lti_block.is_some();
        Ok((request, post))
    }

    /// Store the outcome if our claim still holds; queue the post.
    async fn apply(&self, job: &ClaimedJob, outcome: GradeOutcome, post: bool) -> Attempt {
        let job2 = job.clone();
        let horizon = self.config.post_horizon.as_millis() as i64;
        let applied = self
            .db
            .write(move |c| store(c, &job2, &outcome, post, horizon))
            .await;
        match applied {
            Ok(true) => {
                if post {
                    self.post_notify.notify_one();
                }
                Attempt::Done
            }
            Ok(false) => {
                tracing::warn!("claim went stale while grading; result discarded");
                Attempt::Done
            }
            Err(e) => Attempt::Retry(format!("cannot store the grade: {e}")),
        }
    }
}

fn parse_names(course: &str, section: &str, assignment: &str) -> Result<NotebookMetadata, String> {
    Ok(NotebookMetadata {
        course: Name::parse("course", course).map_err(|e| e.to_string())?,
        section: Name::parse("section", section).map_err(|e| e.to_string())?,
        assignment: Name::parse("assignment", assignment).map_err(|e| e.to_string())?,
    })
}

/// One transaction: finish the job (claim checked), insert the grade, update the
/// submission, queue the post. Returns false when the claim was stale.
fn store(
    c: &Connection,
    job: &ClaimedJob,
    outcome: &GradeOutcome,
    post: bool,
    horizon_ms: i64,
) -> Result<bool, DbError> {
    let now = now_ms();
    if !queue::finish(c, job, now)? {
        return Ok(false);
    }
    let post_state = if post { "pending" } else { "not_configured" };
    let grade_id = grades::insert(c, job.submission_id, job.id, outcome, post_state, now)?;
    match outcome {
        GradeOutcome::Graded(_) => submissions::set_state(c, job.submission_id, "graded", None)?,
        GradeOutcome::Failed { message, .. } => {
            submissions::set_state(c, job.submission_id, "failed", Some(message))?
        }
    }
    if post {
        let new = NewJob {
            kind: JobKind::PostScore,
            submission_id: job.submission_id,
            grade_id: Some(grade_id),
            max_attempts: i64::MAX,
            give_up_at: Some(now + horizon_ms),
        };
        queue::enqueue(c, &new, now)?;
    }
    Ok(true)
}

#[async_trait::async_trait]
impl Job for GradeJob {
    fn kind(&self) -> JobKind {
        JobKind::Grade
    }

    async fn run(&self, job: &ClaimedJob) -> Attempt {
        let (request, post) = match self.request(job).await {
            Ok(r) => r,
            Err(attempt) => return attempt,
        };
        if !request.autograder_zip.is_file() {
            return Attempt::Retry(format!(
                "the autograder {} is missing on the server",
                request.autograder_zip.display()
            ));
        }
        tracing::info!(runner = self.runner.name(), "grading");
        let started = std::time::Instant::now();
        match self.runner.grade(request).await {
            Ok(outcome) => {
                tracing::info!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    ?post,
                    "graded"
                );
                self.apply(job, outcome, post).await
            }
            Err(e) => Attempt::Retry(e.to_string()),
        }
    }

    fn retry_delay(&self, attempt: i64) -> Duration {
        backoff(self.config.retry_base, attempt, Duration::from_secs(600))
    }

    fn on_failure(
        &self,
        conn: &Connection,
        job: &ClaimedJob,
        reason: &str,
        dead: bool,
    ) -> Result<(), DbError> {
        let (state, message) = if dead {
            (
                "dead",
                format!(
                    "We could not grade this submission because of a problem on our side \
                     ({reason}). Course staff can see this and will regrade it; you do not \
                     need to submit again."
                ),
            )
        } else {
            (
                "queued",
                "Grading was interrupted by a problem on our side; it will be retried \
                 automatically."
                    .to_string(),
            )
        };
        submissions::set_state(conn, job.submission_id, state, Some(&message))
    }
}
