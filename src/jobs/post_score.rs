//! The post-score job: send a grade to edX (LTI 1.1 Basic Outcomes). Separate from
//! grading, so an edX outage never re-runs a grade: transient failures retry with backoff
//! up to the horizon; a refusal that will not change is `dead` with edX's description.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, params};

use crate::course::CourseConfig;
use crate::db::{Db, DbError, grades, now_ms};
use crate::lti::{OutcomesClient, PostOutcome, ScorePost};
use crate::notebook::{Name, NotebookMetadata};
use crate::queue::worker::{Attempt, Job, backoff};
use crate::queue::{self, ClaimedJob, JobKind};

/// Posts grades to edX.
pub struct PostScoreJob {
    pub db: Db,
    pub client: Arc<dyn OutcomesClient>,
    pub courses: Arc<CourseConfig>,
    /// `latest` or `best` (the course config may override it per assignment).
    pub default_policy: String,
    pub retry_base: Duration,
    /// Longest wait between two tries.
    pub retry_max: Duration,
}

/// What to post for one grade, decided from the database at run time.
#[derive(Debug)]
struct Plan {
    user: String,
    course: String,
    section: String,
    assignment: String,
    this_fraction: f64,
    best_fraction: f64,
    /// A newer grade of the same student and assignment will post (or has posted) itself.
    superseded: bool,
}

fn plan(c: &Connection, grade_id: i64) -> Result<Plan, DbError> {
    Ok(c.query_row(
        "SELECT s.user, s.course, s.section, s.assignment, g.fraction,
            (SELECT MAX(g2.fraction) FROM grades g2 JOIN submissions s2 ON s2.id = g2.submission_id
              WHERE s2.user = s.user AND s2.course = s.course AND s2.section = s.section
                AND s2.assignment = s.assignment),
            EXISTS (SELECT 1 FROM grades g3 JOIN submissions s3 ON s3.id = g3.submission_id
              WHERE s3.user = s.user AND s3.course = s.course AND s3.section = s.section
                AND s3.assignment = s.assignment AND g3.id > g.id
                AND g3.post_state IN ('pending', 'posted'))
         FROM grades g JOIN submissions s ON s.id = g.submission_id WHERE g.id = ?1",
        params![grade_id],
        |r| {
            Ok(Plan {
                user: r.get(0)?,
                course: r.get(1)?,
                section: r.get(2)?,
                assignment: r.get(3)?,
                this_fraction: r.get(4)?,
                best_fraction: r.get(5)?,
                superseded: r.get(6)?,
            })
        },
    )?)
}

impl PostScoreJob {
    /// The edX post for `plan`, or `None` when the assignment is no longer posted.
    fn score_post(&self, p: &Plan) -> Result<Option<(ScorePost, f64)>, String> {
        let meta = NotebookMetadata {
            course: Name::parse("course", &p.course).map_err(|e| e.to_string())?,
            section: Name::parse("section", &p.section).map_err(|e| e.to_string())?,
            assignment: Name::parse("assignment", &p.assignment).map_err(|e| e.to_string())?,
        };
        let a = self.courses.lookup(&meta).map_err(|e| e.to_string())?;
        let Some(block) = &a.lti_block else {
            return Ok(None);
        };
        let policy = a.post_score.as_deref().unwrap_or(&self.default_policy);
        let raw = if policy == "best" {
            p.best_fraction
        } else {
            p.this_fraction
        };
        let post = ScorePost {
            course_id: a.course_id.clone(),
            block_id: block.clone(),
            user: p.user.clone(),
            score: if raw.is_finite() {
                raw.clamp(0.0, 1.0)
            } else {
                0.0
            },
        };
        Ok(Some((post, raw)))
    }

    async fn finish(
        &self,
        job: &ClaimedJob,
        grade_id: i64,
        state: &'static str,
        detail: Option<String>,
        score: Option<f64>,
    ) -> Attempt {
        let j = job.clone();
        let res = self
            .db
            .write(move |c| {
                if queue::finish(c, &j, now_ms())? {
                    grades::set_post_state(c, grade_id, state, detail.as_deref(), score)?;
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
        let Some(grade_id) = job.grade_id else {
            return Attempt::Fatal("post job without a grade".into());
        };
        let p = match self.db.read(move |c| plan(c, grade_id)).await {
            Ok(p) => p,
            Err(e) => return Attempt::Retry(format!("database: {e}")),
        };
        if p.superseded {
            let why = Some("a newer grade is posted instead".to_string());
            return self.finish(job, grade_id, "superseded", why, None).await;
        }
        let (post, raw) = match self.score_post(&p) {
            Ok(Some(x)) => x,
            Ok(None) => {
                let why = Some("the course config no longer posts this assignment".to_string());
                return self
                    .finish(job, grade_id, "not_configured", why, None)
                    .await;
            }
            Err(e) => return Attempt::Fatal(e),
        };
        tracing::info!(user = %post.user, score = post.score, raw, "posting score to edX");
        match self.client.post_score(&post).await {
            Ok(PostOutcome::Posted) => {
                self.finish(job, grade_id, "posted", None, Some(post.score))
                    .await
            }
            Ok(PostOutcome::Rejected {
                code_major,
                description,
            }) => Attempt::Fatal(format!(
                "edX refused the score ({code_major}): {description}"
            )),
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
        let Some(grade_id) = job.grade_id else {
            return Ok(());
        };
        if dead {
            grades::set_post_state(conn, grade_id, "dead", Some(reason), None)
        } else {
            let detail = format!("edX did not take the score yet; retrying ({reason})");
            grades::set_post_state(conn, grade_id, "pending", Some(&detail), None)
        }
    }
}
