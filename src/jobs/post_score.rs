//! The post-score job: send the LMS the score that counts for one student's assignment,
//! with LTI 1.1 Basic Outcomes (edX) or LTI 1.3 Assignment and Grade Services (any LTI
//! 1.3 platform), as the course config says. Separate from grading, so an LMS outage
//! never re-runs a grade.
//!
//! LTI 1.3 needs the student's id on the platform (`sub`) and the line item: both come
//! from the launch the platform signed, kept by JupyterHub as the user's auth state
//! ([`crate::ags::launch`]), never from the request that brought the notebook. A student
//! who has not launched from the platform yet has no `sub`: the post waits (retried every
//! `launch_wait`, within the post horizon) and the student is told to open the
//! assignment from the LMS once.
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

use crate::ags::{AgsClient, AgsError, AgsScore, AuthStates, Launch, LineItemRef};
use crate::course::{AgsTarget, CourseConfig, Passback};
use crate::db::calendar::{self, AssignmentKey};
use crate::db::jobs::{self, ClaimedJob};
use crate::db::lti13;
use crate::db::scores::{self, Counted, StudentAssignment};
use crate::db::states::{JobKind, ScorePolicy};
use crate::db::{Db, DbError, now_ms};
use crate::lti::{LtiError, OutcomesClient, PostOutcome, ScorePost};
use crate::queue::worker::{Attempt, Job, backoff};

/// How a refusal by edX starts (its description follows).
const REFUSED: &str = "edX refused the score";
/// How a refusal by an LTI 1.3 platform starts.
const REFUSED_13: &str = "the course's LMS refused the score";
/// How waiting for a student's first launch starts.
const NO_LAUNCH: &str = "no LTI 1.3 launch yet";

/// LTI 1.3's parts of the post job.
pub struct AgsPoster {
    pub client: Arc<dyn AgsClient>,
    /// The Hub users' auth state (their verified launches).
    pub auth_states: Arc<dyn AuthStates>,
    /// How often a post that waits for the student's first launch looks again.
    pub launch_wait: Duration,
}

/// Posts grades to the LMS.
pub struct PostScoreJob {
    pub db: Db,
    /// LTI 1.1 (edX), when configured.
    pub client: Option<Arc<dyn OutcomesClient>>,
    /// LTI 1.3, when configured.
    pub ags: Option<AgsPoster>,
    pub courses: Arc<CourseConfig>,
    /// Which grade counts, unless the course config says otherwise for an assignment.
    pub default_policy: ScorePolicy,
    pub retry_base: Duration,
    /// Longest wait between two tries.
    pub retry_max: Duration,
    /// Least wait before resending after a post timed out on our side.
    pub settle: Duration,
    /// The calendar's clock (whether held results are due for release).
    pub clock: crate::clock::Clock,
}

/// What one run of the job does.
enum Plan {
    /// Send this post; `counted` is what it is read from.
    Send(ScorePost, Counted),
    /// Send this LTI 1.3 score (points of `counted`) to `target`.
    SendAgs(AgsTarget, Counted),
    /// The assignment no longer posts to edX.
    NotConfigured,
    /// The assignment's results are held until staff release them (course calendar).
    Held,
}

/// What to send for `key`, read now.
fn plan(
    c: &Connection,
    courses: &CourseConfig,
    default_policy: ScorePolicy,
    key: &StudentAssignment,
    now: i64,
) -> Result<Result<Plan, String>, DbError> {
    let a = match courses.find(&key.course, &key.section, &key.assignment) {
        Ok(a) => a,
        Err(e) => return Ok(Err(format!("the course config no longer has it: {e}"))),
    };
    let policy = a.post_score.unwrap_or(default_policy);
    let Some(passback) = a.passback() else {
        return Ok(Ok(Plan::NotConfigured));
    };
    // XQueue's and platforms' users never get LTI posts (`crate::users`).
    if !crate::users::is_hub_user(&key.user) {
        return Ok(Ok(Plan::NotConfigured));
    }
    if let Some(cal) = &a.calendar {
        let released = calendar::release_of(c, &AssignmentKey::of(key))?.is_some();
        if !cal.results_shown(released, now) {
            return Ok(Ok(Plan::Held));
        }
    }
    let Some(counted) = scores::counted(c, key, policy)? else {
        return Ok(Err("no grade to post".into()));
    };
    let block = match (passback, &a.ags, &a.lti_block) {
        (Passback::Ags, Some(target), _) => return Ok(Ok(Plan::SendAgs(target.clone(), counted))),
        (Passback::Lti11, _, Some(block)) => block,
        _ => return Ok(Ok(Plan::NotConfigured)),
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

impl PostScoreJob {
    /// Post an LTI 1.3 score: find who the student is on the platform and the line item,
    /// take a timestamp later than any before, send.
    async fn run_ags(
        &self,
        job: &ClaimedJob,
        key: StudentAssignment,
        target: AgsTarget,
        counted: Counted,
    ) -> Attempt {
        let Some(ags) = &self.ags else {
            return Attempt::Fatal(
                "LTI 1.3 is not configured (lti13.private_key_file is empty)".to_string(),
            );
        };
        let (user_id, lineitem) = match self.ags_identity(ags, &key.user, &target).await {
            Ok(Ok(found)) => found,
            Ok(Err(why)) => {
                tracing::info!(user = %key.user, %why, "LTI 1.3 post waits for a launch");
                return Attempt::RetryAfter(format!("{NO_LAUNCH}: {why}"), ags.launch_wait);
            }
            Err(e) => return Attempt::Retry(e),
        };
        let (score_given, score_maximum) = points(&counted);
        let (li, uid) = (lineitem.to_string(), user_id.clone());
        let stamp = match self
            .db
            .write(move |c| lti13::take_stamp(c, &li, &uid, now_ms()))
            .await
        {
            Ok(s) => s,
            Err(e) => return Attempt::Retry(format!("database: {e}")),
        };
        let score = AgsScore {
            lineitem,
            user_id,
            score_given,
            score_maximum,
            timestamp_ms: stamp,
            submitted_at_ms: Some(counted.received_at),
        };
        tracing::info!(user = %key.user, lineitem = %score.lineitem, score_given, score_maximum,
            grade_id = counted.grade_id, "posting the score that counts (LTI 1.3)");
        match ags.client.post_score(&target.platform, &score).await {
            Ok(()) => {
                let fraction = score_given / score_maximum;
                self.settle_with(job, move |c| {
                    scores::record_posted(c, &key, &counted, fraction, now_ms())
                })
                .await
            }
            Err(e @ AgsError::Timeout(_)) => Attempt::RetryAfter(e.to_string(), self.settle),
            Err(e) if e.is_transient() => match e.retry_after() {
                Some(wait) => Attempt::RetryAfter(e.to_string(), wait),
                None => Attempt::Retry(e.to_string()),
            },
            // The platform's own refusal (score or token endpoint) is the student's to read;
            // it never holds our secrets (the token is only in our request).
            Err(e @ (AgsError::Status { .. } | AgsError::TokenRefused { .. })) => {
                Attempt::Fatal(format!("{REFUSED_13}: {e}"))
            }
            Err(e) => Attempt::Fatal(e.to_string()),
        }
    }

    /// The student's platform id and the line item, from what the service learned from
    /// launches, else from the user's auth state now. `Ok(Err(why))`: not known yet.
    async fn ags_identity(
        &self,
        ags: &AgsPoster,
        hub_user: &str,
        target: &AgsTarget,
    ) -> Result<Result<(String, url::Url), String>, String> {
        let known = self.known_identity(hub_user, target).await?;
        if let (Some(sub), Some(li)) = &known {
            return Ok(Ok((sub.clone(), li.clone())));
        }
        // Ask the Hub: the user may have launched since.
        let state = ags
            .auth_states
            .auth_state(hub_user)
            .await
            .map_err(|e| format!("reading the user's launch from JupyterHub: {e}"))?;
        let launch = match state
            .as_ref()
            .map(|s| Launch::from_auth_state(s, &target.platform))
        {
            Some(Ok(l)) => l,
            Some(Err(why)) => return Ok(Err(why.to_string())),
            None => return Ok(Err("the user has no LTI 1.3 launch data".into())),
        };
        let (user, l) = (hub_user.to_string(), launch.clone());
        self.db
            .write(move |c| {
                let link = match (&l.resource_link_id, &l.lineitem) {
                    (Some(r), Some(li)) => Some((r.as_str(), li.as_str())),
                    _ => None,
                };
                lti13::record_launch(c, &user, &l.issuer, &l.client_id, &l.sub, link, now_ms())
            })
            .await
            .map_err(|e| format!("database: {e}"))?;
        match self.known_identity(hub_user, target).await? {
            (Some(sub), Some(li)) => Ok(Ok((sub, li))),
            (None, _) => Ok(Err("the user has no LTI 1.3 launch data".into())),
            (Some(_), None) => Ok(Err(
                "no launch of this assignment's resource link has named its line item yet".into(),
            )),
        }
    }

    async fn known_identity(
        &self,
        hub_user: &str,
        target: &AgsTarget,
    ) -> Result<(Option<String>, Option<url::Url>), String> {
        let (user, t) = (hub_user.to_string(), target.clone());
        self.db
            .read(move |c| {
                let p = &t.platform;
                let sub = lti13::sub(c, &user, &p.issuer, &p.client_id)?;
                let li = match &t.line {
                    LineItemRef::Url(u) => Some(u.clone()),
                    LineItemRef::ResourceLink(r) => lti13::lineitem(c, &p.issuer, &p.client_id, r)?
                        .and_then(|li| crate::ags::parse_http_url(&li).ok()),
                };
                Ok((sub, li))
            })
            .await
            .map_err(|e| format!("database: {e}"))
    }
}

/// The points to post: the grade's own, else its fraction of 1.
fn points(counted: &Counted) -> (f64, f64) {
    let max = counted.max_score;
    if max.is_finite() && max > 0.0 {
        let given = if counted.score.is_finite() {
            counted.score.clamp(0.0, max)
        } else {
            0.0
        };
        (given, max)
    } else {
        let f = counted.fraction;
        (
            if f.is_finite() {
                f.clamp(0.0, 1.0)
            } else {
                0.0
            },
            1.0,
        )
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
        let now = self.clock.now();
        let plan = match self
            .db
            .read(move |c| plan(c, &courses, policy, &k, now))
            .await
        {
            Ok(p) => p,
            Err(e) => return Attempt::Retry(format!("database: {e}")),
        };
        let (post, counted) = match plan {
            Ok(Plan::Send(post, counted)) => (post, counted),
            Ok(Plan::SendAgs(target, counted)) => {
                return self.run_ags(job, key, target, counted).await;
            }
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
            Ok(Plan::Held) => {
                tracing::info!(user = %key.user, assignment = %key.assignment,
                    "results are held: the post waits for their release");
                // A release that committed since `plan` read has queued a post behind this
                // one: then nothing is held.
                return self
                    .settle_with(job, move |c| {
                        if calendar::release_of(c, &AssignmentKey::of(&key))?.is_none() {
                            calendar::hold(c, &key)?;
                        }
                        Ok(())
                    })
                    .await;
            }
            Err(why) => return Attempt::Fatal(why),
        };
        let Some(client) = &self.client else {
            return Attempt::Fatal(
                "LTI 1.1 is not configured (lti.consumer_key is empty)".to_string(),
            );
        };
        tracing::info!(user = %post.user, score = post.score, grade_id = counted.grade_id,
            "posting the score that counts to edX");
        match client.post_score(&post).await {
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
        let refused = reason.starts_with(REFUSED) || reason.starts_with(REFUSED_13);
        let lms = match self
            .courses
            .find(&key.course, &key.section, &key.assignment)
            .ok()
            .and_then(|a| a.passback())
        {
            Some(Passback::Ags) => "your course's gradebook",
            _ => "edX",
        };
        let detail = match (dead, refused) {
            _ if reason.starts_with(NO_LAUNCH) => "Open this assignment from your course \
                 (the LMS link) once, so we know who you are there; your score is sent \
                 then."
                .to_string(),
            (_, true) => reason.to_string(),
            (true, false) => format!(
                "{lms} could not be reached for too long; course staff can see why and can \
                 send it again"
            ),
            (false, false) => {
                format!("{lms} did not take the score yet; it will be sent again automatically")
            }
        };
        // The job's grade is the newest that asked for it before it was claimed; grades
        // stored since have a post queued behind this one and are left to it.
        let newest = job.grade_id.unwrap_or(i64::MAX);
        scores::record_post_failure(conn, &key, newest, dead, &detail)
    }
}
