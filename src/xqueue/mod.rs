//! edX external grading: pull notebooks from XQueues, grade them through the same queue
//! as JupyterHub's submissions, answer XQueue with the grade (docs/xqueue.md).
//!
//! Per configured queue, two loops:
//! - **pull**: log in, `get_submission`, fetch the learner's file from XQueue's own
//!   origin, check it like an upload, and store the submission, its grade job and the
//!   XQueue item in one write (nothing is answered before that commit). A submission
//!   XQueue serves again (its lease ran out while we graded, or our answer never reached
//!   it) keeps its one grade; only its newest header (pull key) is kept for the answer.
//!   A file we cannot grade (not a notebook, too large, elsewhere) is answered as a 0 with
//!   the reason, never retried.
//! - **answer**: for every item whose grading ended, `put_result` with the newest header;
//!   network errors, 5xx and a lost session are retried with backoff (the grade is kept
//!   meanwhile, across restarts); an answer still refused after `answer_horizon` ends
//!   `failed`, with the reason, for staff.
//!
//! The learner is `xqueue:<queue>:<anonymous id>`: never a JupyterHub user (the Hub door
//! refuses names in that namespace), never posted to edX over LTI (XQueue carries the
//! score).

pub mod client;
pub mod reply;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::course::CourseConfig;
use crate::db::submissions::NewSubmission;
use crate::db::xqueue::{self as store, Pulled, Take};
use crate::db::{Db, now_ms};
use crate::notebook::{Name, NotebookMetadata, Submission};
use crate::queue::worker::backoff;
use crate::settings::XqueueQueue;
pub use client::{Served, XqError, XqueueClient};
pub use reply::ScoreAs;

/// The user namespace of XQueue learners.
pub const USER_PREFIX: &str = crate::users::XQUEUE_PREFIX;

/// Most submissions of one queue waiting to be graded before the puller waits: XQueue
/// holds the rest (pulling more than we grade within its lease only makes it serve them
/// again).
const MAX_IN_FLIGHT: i64 = 50;
/// How long an answer keeps being retried.
const ANSWER_HORIZON_MS: i64 = 24 * 3600 * 1000;

/// One queue's loops.
pub struct QueueRunner {
    pub name: String,
    pub client: XqueueClient,
    pub db: Db,
    pub courses: Arc<CourseConfig>,
    pub allowed_courses: Vec<String>,
    pub score_as: ScoreAs,
    pub poll: Duration,
    pub max_attempts: i64,
    pub grade_notify: Arc<Notify>,
    pub retry_base: Duration,
    pub retry_max: Duration,
}

impl QueueRunner {
    pub fn from_settings(
        q: &XqueueQueue,
        db: Db,
        courses: Arc<CourseConfig>,
        max_attempts: i64,
        max_file_bytes: usize,
        grade_notify: Arc<Notify>,
        retry_base: Duration,
    ) -> Result<Self, String> {
        let client = XqueueClient::new(
            &q.url,
            &q.queue_name,
            &q.username,
            q.password.clone(),
            Duration::from_secs(q.timeout_secs.max(1)),
            max_file_bytes,
        )
        .map_err(|e| format!("xqueue queue {:?}: {e}", q.name))?;
        Ok(Self {
            name: q.name.clone(),
            client,
            db,
            courses,
            allowed_courses: q.courses.clone(),
            score_as: if q.score == "points" {
                ScoreAs::Points
            } else {
                ScoreAs::Fraction
            },
            poll: Duration::from_secs(q.poll_secs.max(1)),
            max_attempts,
            grade_notify,
            retry_base: retry_base.max(Duration::from_secs(1)),
            retry_max: Duration::from_secs(300),
        })
    }

    /// Run both loops until `stop` turns true.
    pub fn spawn(self, stop: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
        let me = Arc::new(self);
        let span = tracing::info_span!("xqueue", queue = %me.name);
        use tracing::Instrument;
        vec![
            tokio::spawn(me.clone().pull_loop(stop.clone()).instrument(span.clone())),
            tokio::spawn(me.answer_loop(stop).instrument(span)),
        ]
    }

    async fn sleep(&self, d: Duration, stop: &mut watch::Receiver<bool>) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = stop.changed() => {}
        }
    }

    async fn pull_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut logged_in = false;
        let mut failures = 0i64;
        while !*stop.borrow() {
            let wait = backoff(self.retry_base, failures, self.retry_max);
            if !logged_in {
                match self.client.login().await {
                    Ok(()) => {
                        tracing::info!("logged in to XQueue");
                        logged_in = true;
                        failures = 0;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "XQueue login failed");
                        failures += 1;
                        self.sleep(wait, &mut stop).await;
                        continue;
                    }
                }
            }
            let name = self.name.clone();
            let in_flight = self
                .db
                .read(move |c| store::grading(c, &name))
                .await
                .unwrap_or(0);
            if in_flight >= MAX_IN_FLIGHT {
                self.sleep(self.poll, &mut stop).await;
                continue;
            }
            match self.client.get_submission().await {
                Ok(Some(served)) => {
                    failures = 0;
                    if let Err(e) = self.take(served).await {
                        // Not stored: XQueue serves it again after its lease.
                        tracing::warn!(error = %e, "a pulled submission could not be stored");
                        failures += 1;
                        self.sleep(wait, &mut stop).await;
                    }
                }
                Ok(None) => {
                    failures = 0;
                    self.sleep(self.poll, &mut stop).await;
                }
                Err(XqError::LoggedOut(status)) => {
                    tracing::info!(status, "XQueue session ended; logging in again");
                    logged_in = false;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "XQueue pull failed");
                    failures += 1;
                    self.sleep(wait, &mut stop).await;
                }
            }
        }
    }

    /// Store one pulled submission (or its refusal).
    async fn take(&self, served: Served) -> Result<(), String> {
        let (queue, id) = (self.name.clone(), served.xqueue_id.clone());
        let known = self
            .db
            .read(move |c| store::known(c, &queue, &id))
            .await
            .map_err(|e| e.to_string())?;
        let anon = anonymous_id(&served.body);
        let checked = if known {
            Err("served again".to_string()) // not fetched again: only the header is kept
        } else {
            self.check(&served, &anon).await
        };
        let (queue, header, xid) = (
            self.name.clone(),
            served.header.clone(),
            served.xqueue_id.clone(),
        );
        let max_attempts = self.max_attempts;
        let user = format!("{USER_PREFIX}{}:{anon}", self.name);
        let pulled = self
            .db
            .write(move |c| {
                let take = match &checked {
                    Ok(new) => Take::Grade(new, max_attempts),
                    Err(why) => Take::Refuse(why),
                };
                store::record_pull(c, &queue, &xid, &header, &anon, take, now_ms())
            })
            .await
            .map_err(|e| e.to_string())?;
        match pulled {
            Pulled::New { submission_id, .. } => {
                self.grade_notify.notify_one();
                tracing::info!(submission_id, %user, xqueue_id = %served.xqueue_id,
                    "XQueue submission accepted");
            }
            Pulled::Refused { .. } => {
                tracing::info!(%user, xqueue_id = %served.xqueue_id, "XQueue submission refused");
            }
            Pulled::Again { .. } => {
                tracing::info!(xqueue_id = %served.xqueue_id, "XQueue served a submission again");
            }
        }
        Ok(())
    }

    /// The submission to grade, or why the learner's file cannot be graded (a sentence
    /// for the learner).
    async fn check(&self, served: &Served, anon: &str) -> Result<NewSubmission, String> {
        let Some((_, url)) = served
            .files
            .iter()
            .find(|(name, _)| name.ends_with(".ipynb"))
            .or_else(|| served.files.first())
        else {
            return Err("no file was attached; attach your .ipynb notebook".into());
        };
        let bytes = self.client.fetch_file(url).await?;
        let payload = payload_names(&served.body)?;
        let read = match &payload {
            Some(meta) => Submission::read_as(&bytes, meta.clone()),
            None => Submission::read(&bytes),
        }
        .map_err(|e| e.to_string())?;
        let meta = read.metadata;
        if payload.is_none()
            && !self
                .allowed_courses
                .iter()
                .any(|c| c == meta.course.as_str())
        {
            return Err(format!(
                "this queue does not grade course {:?} (the notebook's metadata names it)",
                meta.course.as_str()
            ));
        }
        let assignment = self.courses.lookup(&meta).map_err(|e| e.to_string())?;
        if !assignment.autograder_zip.is_file() {
            return Err(format!(
                "assignment {:?} has no autograder on the server yet; tell the course staff",
                meta.assignment.as_str()
            ));
        }
        Ok(NewSubmission {
            user: format!("{USER_PREFIX}{}:{anon}", self.name),
            course: meta.course.to_string(),
            section: meta.section.to_string(),
            assignment: meta.assignment.to_string(),
            notebook: read.notebook,
            notebook_path: served
                .files
                .first()
                .map(|(n, _)| n.chars().take(200).collect()),
        })
    }

    async fn answer_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut last_note = 0i64;
        while !*stop.borrow() {
            let queue = self.name.clone();
            let due = self
                .db
                .read(move |c| store::due(c, &queue, now_ms(), 20))
                .await
                .unwrap_or_default();
            for d in &due {
                if *stop.borrow() {
                    break;
                }
                self.answer(d).await;
            }
            if now_ms() - last_note > 10_000 {
                last_note = now_ms();
                let _ = self
                    .db
                    .write(|c| store::note_unsent_regrades(c, now_ms()))
                    .await;
            }
            if due.is_empty() {
                self.sleep(Duration::from_millis(200), &mut stop).await;
            }
        }
    }

    async fn answer(&self, d: &store::Due) {
        let (reply, score) = reply::reply(d, self.score_as);
        let result = match self.client.put_result(&d.header, &reply.to_string()).await {
            Err(XqError::LoggedOut(_)) => match self.client.login().await {
                Ok(()) => self.client.put_result(&d.header, &reply.to_string()).await,
                Err(e) => Err(e),
            },
            other => other,
        };
        let now = now_ms();
        let d2 = d.clone();
        let write = match result {
            Ok(()) => {
                tracing::info!(submission_id = ?d.submission_id, score, "XQueue took the answer");
                self.db
                    .write(move |c| store::answered(c, &d2, score, now))
                    .await
            }
            Err(e) => {
                let out_of_time = now - d.pulled_at > ANSWER_HORIZON_MS;
                let next = match &e {
                    _ if out_of_time => None,
                    // XQueue gave the submission to another pull: its next serve to us
                    // brings the newest key.
                    XqError::StaleKey(_) => Some(now + 60_000),
                    e if e.is_transient() => Some(
                        now + backoff(self.retry_base, d.attempts + 1, self.retry_max).as_millis()
                            as i64,
                    ),
                    _ => None,
                };
                tracing::warn!(submission_id = ?d.submission_id, error = %e, retry = next.is_some(),
                    "XQueue did not take the answer");
                let why = e.to_string();
                self.db
                    .write(move |c| store::not_answered(c, &d2, &why, next, now))
                    .await
            }
        };
        if let Err(e) = write {
            tracing::warn!(error = %e, "could not record an XQueue answer; it is sent again");
        }
    }
}

/// `student_info.anonymous_student_id` of an XQueue body (the learner's id at edX).
fn anonymous_id(body: &serde_json::Value) -> String {
    let info = body.get("student_info").and_then(|v| match v {
        serde_json::Value::String(s) => serde_json::from_str::<serde_json::Value>(s).ok(),
        other => Some(other.clone()),
    });
    let id = info
        .as_ref()
        .and_then(|i| i.get("anonymous_student_id"))
        .and_then(|v| v.as_str())
        .unwrap_or("unknown");
    // Kept to what edX ids are made of: the user is shown and keyed on.
    let id: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
        .take(100)
        .collect();
    if id.is_empty() { "unknown".into() } else { id }
}

/// The assignment the problem's `grader_payload` names: `course`, `section` and
/// `assignment` keys (a legacy xqueue passes the payload as written), or
/// `"grader": "course/section/assignment"` (edx-submissions passes only `grader`). `None`
/// when it names none (the notebook's metadata does then); an error if it names part.
fn payload_names(body: &serde_json::Value) -> Result<Option<NotebookMetadata>, String> {
    let payload = match body.get("grader_payload") {
        Some(serde_json::Value::String(s)) => {
            serde_json::from_str(s).unwrap_or(serde_json::Value::Null)
        }
        Some(other) => other.clone(),
        None => serde_json::Value::Null,
    };
    let text = |k: &str| match payload.get(k) {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    // edx-submissions passes only `{"grader": "<the problem's grader file name>"}`: there
    // the problem names the assignment as `"grader": "course/section/assignment"`.
    let from_grader = text("grader").and_then(|g| {
        let parts: Vec<&str> = g.split('/').collect();
        (parts.len() == 3).then(|| {
            (
                parts[0].to_string(),
                parts[1].to_string(),
                parts[2].to_string(),
            )
        })
    });
    let names = match from_grader {
        Some((c, s, a)) if text("course").is_none() => (Some(c), Some(s), Some(a)),
        _ => (text("course"), text("section"), text("assignment")),
    };
    match names {
        (None, None, None) => Ok(None),
        (Some(c), Some(s), Some(a)) => {
            let name = |kind, v: &str| {
                Name::parse(kind, v).map_err(|e| format!("the problem's grader_payload: {e}"))
            };
            Ok(Some(NotebookMetadata {
                course: name("course", &c)?,
                section: name("section", &s)?,
                assignment: name("assignment", &a)?,
            }))
        }
        _ => Err(
            "the problem's grader_payload names only part of course, section and assignment; \
             tell the course staff"
                .into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_problem_names_the_assignment_or_leaves_it_to_the_notebook() {
        let body = |p: serde_json::Value| json!({"grader_payload": p.to_string()});
        let named = payload_names(&body(json!({"grader": "8x/1/lab01"})))
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                named.course.as_str(),
                named.section.as_str(),
                named.assignment.as_str()
            ),
            ("8x", "1", "lab01")
        );
        let keys = json!({"course": "8x", "section": 1, "assignment": "lab02"});
        assert_eq!(
            payload_names(&body(keys))
                .unwrap()
                .unwrap()
                .assignment
                .as_str(),
            "lab02"
        );
        assert_eq!(
            payload_names(&body(json!({"grader": "grader.py"}))).unwrap(),
            None
        );
        assert!(payload_names(&body(json!({"course": "8x"}))).is_err());
        assert!(payload_names(&body(json!({"grader": "8x/../lab"}))).is_err());
    }

    #[test]
    fn the_anonymous_id_is_kept_to_what_edx_ids_are_made_of() {
        let body = json!({"student_info": r#"{"anonymous_student_id": "ab12/../:x<y>"}"#});
        assert_eq!(anonymous_id(&body), "ab12..xy");
        assert_eq!(anonymous_id(&json!({})), "unknown");
    }
}
