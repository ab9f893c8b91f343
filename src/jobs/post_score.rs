//! The post-score job: send edX the score that counts for one student's assignment (LTI
//! 1.1 Basic Outcomes). Separate from grading, so an edX outage never re-runs a grade.
//!
//! Order: at most one post per student and assignment runs at a time (the queue's
//! `post_key`), and each post reads what counts ([`ScorePolicy::order_sql`]) when it runs,
//! not when it was queued; a grade stored while a post is in flight queues another post
//! behind it. So edX ends with the score that counts, whatever order grades finish in.
//!
//! A post that times out on our side may still reach edX later. It is retried, never
//! dropped (a retry re-reads and resends what counts: `replaceResult` is idempotent), and
//! the retry waits at least [`PostScoreJob::settle`] so that a straggling request has
//! been handled by edX before the current score is sent again.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;

use crate::course::CourseConfig;
use crate::db::jobs::{self, ClaimedJob};
use crate::db::scores::{self, Counted, StudentAssignment};
use crate::db::states::{JobKind, ScorePolicy};
use crate::db::{Db, DbError, now_ms};
use crate::lti::{LtiError, OutcomesClient, PostOutcome, ScorePost};
use crate::queue::worker::{Attempt, Job, backoff};

/// How a refusal by edX starts (its description follows).
const REFUSED: &str = "edX refused the score";

/// Posts grades to edX.
pub struct PostScoreJob {
    pub db: Db,
    pub client: Arc<dyn OutcomesClient>,
    pub courses: Arc<CourseConfig>,
    /// Which grade counts, unless the course config says otherwise for an assignment.
    pub default_policy: ScorePolicy,
    pub retry_base: Duration,
    /// Longest wait between two tries.
    pub retry_max: Duration,
    /// Least wait before resending after a post timed out on our side.
    pub settle: Duration,
}

/// What one run of the job does.
enum Plan {
    /// Send this post; `counted` is what it is read from.
    Send(ScorePost, Counted),
    /// The assignment no longer posts to edX.
    NotConfigured,
}

/// What to send for `key`, read now.
fn plan(
    c: &Connection,
    courses: &CourseConfig,
    default_policy: ScorePolicy,
    key: &StudentAssignment,
) -> Result<Result<Plan, String>, DbError> {
    let a = match courses.find(&key.course, &key.section, &key.assignment) {
        Ok(a) => a,
        Err(e) => return Ok(Err(format!("the course config no longer has it: {e}"))),
    };
    let Some(block) = &a.lti_block else {
        return Ok(Ok(Plan::NotConfigured));
    };
    let policy = a.post_score.unwrap_or(default_policy);
    let Some(counted) = scores::counted(c, key, policy)? else {
        return Ok(Err("no grade to post".into()));
    };
    let raw = counted.fraction;
    let post = ScorePost {
        course_id: a.course_id.clone(),
        block_id: block.clone(),
        user: key.user.clone(),
        score: if raw.is_finite() {
            raw.clamp(0.0, 1.0)
        } else {
            0.0
        },
    };
    Ok(Ok(Plan::Send(post, counted)))
}

impl PostScoreJob {
    /// Apply the result if our claim still holds.
    async fn settle_with(
        &self,
        job: &ClaimedJob,
        f: impl FnOnce(&Connection) -> Result<(), DbError> + Send + 'static,
    ) -> Attempt {
        let j = job.clone();
        let res = self
            .db
            .write(move |c| {
                if jobs::finish(c, &j, now_ms())? {
                    f(c)?;
                }
                Ok(())
            })
            .await;
        match res {
            Ok(()) => Attempt::Done,
            Err(e) => Attempt::Retry(format!("database: {e}")),
        }
    }
}

#[async_trait::async_trait]
impl Job for PostScoreJob {
    fn kind(&self) -> JobKind {
        JobKind::PostScore
    }

    async fn run(&self, job: &ClaimedJob) -> Attempt {
        let submission_id = job.submission_id;
        let key = match self
            .db
            .read(move |c| scores::student_assignment(c, submission_id))
            .await
        {
            Ok(k) => k,
            Err(e) => return Attempt::Retry(format!("database: {e}")),
        };
        let (courses, policy, k) = (self.courses.clone(), self.default_policy, key.clone());
        let plan = match self.db.read(move |c| plan(c, &courses, policy, &k)).await {
            Ok(p) => p,
            Err(e) => return Attempt::Retry(format!("database: {e}")),
        };
        let (post, counted) = match plan {
            Ok(Plan::Send(post, counted)) => (post, counted),
            Ok(Plan::NotConfigured) => {
                return self
                    .settle_with(job, move |c| {
                        scores::record_not_configured(
                            c,
                            &key,
                            "the course config no longer posts this assignment",
                        )
                    })
                    .await;
            }
            Err(why) => return Attempt::Fatal(why),
        };
        tracing::info!(user = %post.user, score = post.score, grade_id = counted.grade_id,
            "posting the score that counts to edX");
        match self.client.post_score(&post).await {
            Ok(PostOutcome::Posted) => {
                let score = post.score;
                self.settle_with(job, move |c| {
                    scores::record_posted(c, &key, &counted, score, now_ms())
                })
                .await
            }
            Ok(PostOutcome::Rejected {
                code_major,
                description,
            }) => Attempt::Fatal(format!("{REFUSED} ({code_major}): {description}")),
            Err(e @ LtiError::Timeout(..)) => Attempt::RetryAfter(e.to_string(), self.settle),
            Err(e) if e.is_transient() => Attempt::Retry(e.to_string()),
            Err(e) => Attempt::Fatal(e.to_string()),
        }
    }

    fn retry_delay(&self, attempt: i64) -> Duration {
        backoff(self.retry_base, attempt, self.retry_max)
    }

    fn on_failure(
        &self,
        conn: &Connection,
        job: &ClaimedJob,
        reason: &str,
        dead: bool,
    ) -> Result<(), DbError> {
        let key = scores::student_assignment(conn, job.submission_id)?;
        // Students see this: edX's own refusal is theirs to read; our transport errors
        // (addresses, timeouts) stay in the job's last error for staff.
        let detail = match (dead, reason.starts_with(REFUSED)) {
            (_, true) => reason.to_string(),
            (true, false) => "edX could not be reached for too long; course staff can see \
                              why and can send it again"
                .to_string(),
            (false, false) => {
                "edX did not take the score yet; it will be sent again automatically".to_string()
            }
        };
        // The job's grade is the newest that asked for it before it was claimed; grades
        // stored since have a post queued behind this one and are left to it.
        let newest = job.grade_id.unwrap_or(i64::MAX);
        scores::record_post_failure(conn, &key, newest, dead, &detail)
    }
}
