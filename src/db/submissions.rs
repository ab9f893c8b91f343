//! Submissions and their grades.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

use super::calendar::Lateness;
use super::jobs::{self, NewJob};
use super::notebooks::{self, StoredNotebook};
use super::scores::{self, StudentAssignment};
use super::states::{GradeStatus, JobKind, PostState, ScorePolicy, SubmissionState};
use super::waiting::{self, QueuePlace};
use super::{DbError, events, format_ms};

/// A submission to accept.
#[derive(Debug, Clone)]
pub struct NewSubmission {
    pub user: String,
    pub course: String,
    pub section: String,
    pub assignment: String,
    /// The notebook as sent, for [`accept`], which packs it on the writer. Empty when the
    /// caller packed it itself and hands [`submit`] the packed form.
    pub notebook: Vec<u8>,
    /// `X-Otter-Notebook-Path`, kept as information only.
    pub notebook_path: Option<String>,
}

impl NewSubmission {
    /// Whose assignment it is.
    pub fn student(&self) -> StudentAssignment {
        StudentAssignment {
            user: self.user.clone(),
            course: self.course.clone(),
            section: self.section.clone(),
            assignment: self.assignment.clone(),
        }
    }
}

#[cfg(test)]
impl NewSubmission {
    /// A small submission of `user` to course `c`, section `1`, assignment `a` (tests).
    pub(crate) fn sample(user: &str) -> Self {
        Self {
            user: user.into(),
            course: "c".into(),
            section: "1".into(),
            assignment: "a".into(),
            notebook: b"{}".to_vec(),
            notebook_path: None,
        }
    }
}

/// What a student may have waiting.
#[derive(Debug, Clone, Copy)]
pub struct IntakeRules {
    /// Grading attempts per submission.
    pub max_attempts: i64,
    /// Most submissions one student may have queued or grading at once.
    pub per_student: u64,
}

/// How a submission was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// A new submission with its grade job.
    New(i64),
    /// The same notebook for the same assignment is still waiting: that submission.
    Duplicate(i64),
}

impl Accepted {
    pub fn id(self) -> i64 {
        match self {
            Accepted::New(id) | Accepted::Duplicate(id) => id,
        }
    }
}

/// Identical notebooks of the same student and assignment still waiting (normally none or
/// one). The earliest is taken in Rust: with `ORDER BY id` or `MIN(id)` SQLite prepares
/// the statement again on every run.
const SAME_WAITING_SQL: &str = "SELECT id FROM submissions INDEXED BY submissions_by_content
     WHERE user = ?1 AND notebook_sha256 = ?2
       AND course = ?3 AND section = ?4 AND assignment = ?5 AND state = 'queued'";

/// How many grade jobs a student has waiting or being graded, counted up to the cap:
/// whether the student is at the cap needs no more, and a student with thousands
/// waiting (a platform's bulk-regrade user, the intake benchmark's) costs no more than one
/// with five. The cap is written into the text, not bound: with `LIMIT ?` SQLite prepares
/// the statement again on every run.
fn student_waiting_sql(cap: u64) -> String {
    format!(
        "SELECT COUNT(*) FROM (SELECT 1 FROM jobs
          WHERE kind = 'grade' AND state IN ('queued', 'running') AND user = ?1 LIMIT {})",
        cap.min(i64::MAX as u64)
    )
}

/// Take a student's submission under `rules`: an identical one still queued is answered
/// with itself; a student already at the cap is refused ([`DbError::StudentQueueFull`]);
/// else it is accepted. `stored` is [`notebooks::pack`] of the notebook (its hash and
/// compressed bytes), made by the caller so that neither runs on the single writer thread.
/// `received` says when it is committed by the calendar's clock and what the calendar
/// makes of that (it may refuse: [`DbError::Closed`]); it runs only when a new submission
/// is to be stored, so an identical one still waiting is answered as such even after a
/// deadline. `now` (the system clock) times its job and events.
pub fn submit(
    conn: &Connection,
    s: &NewSubmission,
    stored: &StoredNotebook,
    rules: &IntakeRules,
    received: impl FnOnce(&Connection) -> Result<Received, DbError>,
    now: i64,
) -> Result<Accepted, DbError> {
    let hash = stored.sha256.as_str();
    let same: Option<i64> = conn
        .prepare_cached(SAME_WAITING_SQL)?
        .query_map(
            params![s.user, hash, s.course, s.section, s.assignment],
            |r| r.get::<_, i64>(0),
        )?
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .min();
    if let Some(id) = same {
        events::record(conn, now, Some(id), None, "resubmitted_identical", &s.user)?;
        return Ok(Accepted::Duplicate(id));
    }
    let waiting: i64 = conn
        .prepare_cached(&student_waiting_sql(rules.per_student))?
        .query_row([&s.user], |r| r.get(0))?;
    if waiting as u64 >= rules.per_student {
        return Err(DbError::StudentQueueFull {
            limit: rules.per_student,
        });
    }
    let received = received(conn)?;
    insert(conn, s, stored, rules.max_attempts, received, now).map(Accepted::New)
}

/// Accept a submission: the row and its grade job in one write. The notebook is packed
/// here, on the writer thread: for the paths that take a few (XQueue, the CLI, tests);
/// the HTTP intake packs before it writes ([`submit`]).
pub fn accept(
    conn: &Connection,
    s: &NewSubmission,
    max_attempts: i64,
    now: i64,
) -> Result<i64, DbError> {
    insert(
        conn,
        s,
        &notebooks::pack(&s.notebook),
        max_attempts,
        Received::at(now),
        now,
    )
}

/// When a submission was committed, as the course calendar sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Received {
    /// By the calendar's clock (`crate::clock`): the submission's `received_at`.
    pub at: i64,
    /// What the calendar made of it (`None`: the assignment has no calendar).
    pub lateness: Option<Lateness>,
}

impl Received {
    /// At `at`, with no calendar.
    pub fn at(at: i64) -> Self {
        Received { at, lateness: None }
    }
}

fn insert(
    conn: &Connection,
    s: &NewSubmission,
    stored: &StoredNotebook,
    max_attempts: i64,
    received: Received,
    now: i64,
) -> Result<i64, DbError> {
    let lateness = received.lateness;
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO submissions (user, course, section, assignment, notebook, notebook_path,
                                      received_at, state, notebook_sha256, credit, late_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'queued', ?8, ?9, ?10) RETURNING id",
        )?
        .query_row(
            params![
                s.user,
                s.course,
                s.section,
                s.assignment,
                stored.bytes,
                s.notebook_path,
                received.at,
                stored.sha256,
                lateness.map(|l| l.credit),
                lateness.map(|l| l.late_ms)
            ],
            |r| r.get(0),
        )?;
    events::record(conn, now, Some(id), None, "submitted", &s.user)?;
    // The row was inserted `queued` with no message: only the job is missing (no
    // `set_state`, whose UPDATE would rebuild the row, notebook and all).
    jobs::enqueue(conn, &grade_job(id, max_attempts), now)?;
    Ok(id)
}

fn grade_job(submission_id: i64, max_attempts: i64) -> NewJob {
    NewJob {
        kind: JobKind::Grade,
        submission_id,
        grade_id: None,
        max_attempts,
        give_up_at: None,
    }
}

/// Queue (another) grading of submission `id` and mark it queued.
pub fn enqueue_grade(
    conn: &Connection,
    id: i64,
    max_attempts: i64,
    now: i64,
) -> Result<i64, DbError> {
    set_state(conn, id, SubmissionState::Queued, None)?;
    jobs::enqueue(conn, &grade_job(id, max_attempts), now)
}

/// Set a submission's state and student-facing message.
pub fn set_state(
    conn: &Connection,
    id: i64,
    state: SubmissionState,
    message: Option<&str>,
) -> Result<(), DbError> {
    conn.prepare_cached("UPDATE submissions SET state = ?1, message = ?2 WHERE id = ?3")?
        .execute(params![state, message, id])?;
    Ok(())
}

/// What a grade job needs of its submission.
#[derive(Debug, Clone)]
pub struct ToGrade {
    pub user: String,
    pub course: String,
    pub section: String,
    pub assignment: String,
    pub notebook: Vec<u8>,
    /// When it was received (ms).
    pub received_at: i64,
}

/// Load the submission a grade job works on.
pub fn to_grade(conn: &Connection, id: i64) -> Result<ToGrade, DbError> {
    let t = conn.query_row(
        "SELECT user, course, section, assignment, notebook, received_at
           FROM submissions WHERE id = ?1",
        [id],
        |r| {
            Ok(ToGrade {
                user: r.get(0)?,
                course: r.get(1)?,
                section: r.get(2)?,
                assignment: r.get(3)?,
                notebook: r.get(4)?,
                received_at: r.get(5)?,
            })
        },
    )?;
    Ok(ToGrade {
        notebook: notebooks::unpack(t.notebook)?,
        ..t
    })
}

/// One question's score as a student sees it (no test output: it may hold hidden tests).
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct QuestionScore {
    pub name: String,
    pub score: f64,
    pub max_score: f64,
}

/// A grade as the student sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GradeView {
    pub id: i64,
    pub status: GradeStatus,
    pub score: f64,
    pub max_score: f64,
    pub fraction: f64,
    pub questions: Vec<QuestionScore>,
    pub public_feedback: String,
    pub message: Option<String>,
    pub graded_at: String,
    pub post_state: PostState,
    pub post_detail: Option<String>,
    /// Whether this is the grade that counts for the student's assignment (and so the
    /// one edX gets, when the assignment posts there).
    pub counts: bool,
}

/// A submission as its owner sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SubmissionView {
    pub id: i64,
    pub user: String,
    pub course: String,
    pub section: String,
    pub assignment: String,
    pub notebook_path: Option<String>,
    pub received_at: String,
    pub state: SubmissionState,
    pub message: Option<String>,
    /// Grading attempts so far (infrastructure retries included).
    pub attempts: i64,
    /// Its place in the grading queue while it waits or is graded, else `None`.
    pub queue: Option<QueuePlace>,
    /// Its page (absolute when the request named a host); set by the HTTP layer.
    pub url: Option<String>,
    pub grade: Option<GradeView>,
    /// The late credit it earns (percent of its raw score that counts), when the
    /// assignment has a calendar.
    pub credit: Option<f64>,
    /// How long after the student's due date it came (0: on time), when the assignment
    /// has a calendar.
    pub late_secs: Option<i64>,
    /// The assignment's results are held until course staff release them: `grade` is
    /// left out until then.
    pub results_held: bool,
    /// The student's calendar for the assignment (the answer to a submission and its
    /// page carry it).
    pub due: Option<super::calendar::DueView>,
}

const VIEW_SQL: &str = "SELECT s.id, s.user, s.course, s.section, s.assignment, s.notebook_path,
        s.received_at, s.state, s.message,
        (SELECT COALESCE(SUM(attempts), 0) FROM jobs j WHERE j.submission_id = s.id AND j.kind = 'grade'),
        s.credit, s.late_ms
     FROM submissions s";

fn view_row(r: &Row<'_>) -> rusqlite::Result<SubmissionView> {
    Ok(SubmissionView {
        id: r.get(0)?,
        user: r.get(1)?,
        course: r.get(2)?,
        section: r.get(3)?,
        assignment: r.get(4)?,
        notebook_path: r.get(5)?,
        received_at: format_ms(r.get(6)?),
        state: r.get(7)?,
        message: r.get(8)?,
        attempts: r.get(9)?,
        queue: None,
        url: None,
        grade: None,
        credit: r.get(10)?,
        late_secs: r.get::<_, Option<i64>>(11)?.map(|ms| ms / 1000),
        results_held: false,
        due: None,
    })
}

/// Submission `id` if it belongs to `user` (anyone else gets `None`, as if it did not exist).
/// `policy` says which grade counts for a student's assignment.
pub fn view_for_owner(
    conn: &Connection,
    id: i64,
    user: &str,
    policy: impl Fn(&StudentAssignment) -> ScorePolicy,
) -> Result<Option<SubmissionView>, DbError> {
    let sql = format!("{VIEW_SQL} WHERE s.id = ?1 AND s.user = ?2");
    let Some(mut v) = conn
        .query_row(&sql, params![id, user], view_row)
        .optional()?
    else {
        return Ok(None);
    };
    v.grade = latest_grade(conn, id)?;
    mark_counting(conn, std::slice::from_mut(&mut v), policy)?;
    Ok(Some(v))
}

/// Set `counts` on the grades of `views` that count under `policy`.
fn mark_counting(
    conn: &Connection,
    views: &mut [SubmissionView],
    policy: impl Fn(&StudentAssignment) -> ScorePolicy,
) -> Result<(), DbError> {
    for v in views.iter_mut() {
        let key = StudentAssignment {
            user: v.user.clone(),
            course: v.course.clone(),
            section: v.section.clone(),
            assignment: v.assignment.clone(),
        };
        if let Some(g) = &mut v.grade {
            let counted = scores::counted(conn, &key, policy(&key))?;
            g.counts = counted.is_some_and(|c| c.grade_id == g.id);
        }
    }
    Ok(())
}

/// A user's submissions, newest first, at most `limit`.
pub fn list_for_user(
    conn: &Connection,
    user: &str,
    limit: i64,
    policy: impl Fn(&StudentAssignment) -> ScorePolicy,
) -> Result<Vec<SubmissionView>, DbError> {
    let sql = format!("{VIEW_SQL} WHERE s.user = ?1 ORDER BY s.id DESC LIMIT ?2");
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut views: Vec<SubmissionView> = stmt
        .query_map(params![user, limit], view_row)?
        .collect::<Result<_, _>>()?;
    for v in &mut views {
        v.grade = latest_grade(conn, v.id)?;
    }
    mark_counting(conn, &mut views, policy)?;
    Ok(views)
}

/// Set the queue place of those of `views` that wait or are being graded.
pub fn add_queue_places(
    conn: &Connection,
    views: &mut [SubmissionView],
    now: i64,
    workers: usize,
    waiting: &waiting::Waiting,
) -> Result<(), DbError> {
    for v in views.iter_mut() {
        if matches!(v.state, SubmissionState::Queued | SubmissionState::Grading) {
            v.queue = waiting::place(conn, v.id, now, workers, waiting)?;
        }
    }
    Ok(())
}

/// The newest grade of a submission.
pub fn latest_grade(conn: &Connection, submission_id: i64) -> Result<Option<GradeView>, DbError> {
    let g = conn
        .prepare_cached(
            "SELECT id, status, score, max_score, fraction, tests, public_feedback, message,
                    graded_at, post_state, post_detail
             FROM grades WHERE submission_id = ?1 ORDER BY id DESC LIMIT 1",
        )?
        .query_row([submission_id], |r| {
            let tests: String = r.get(5)?;
            Ok(GradeView {
                id: r.get(0)?,
                status: r.get(1)?,
                score: r.get(2)?,
                max_score: r.get(3)?,
                fraction: r.get(4)?,
                questions: serde_json::from_str(&tests).unwrap_or_default(),
                public_feedback: r.get(6)?,
                message: r.get(7)?,
                graded_at: format_ms(r.get(8)?),
                post_state: r.get(9)?,
                post_detail: r.get(10)?,
                counts: false,
            })
        })
        .optional()?;
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::StatementStatus;

    #[test]
    fn intake_checks_are_not_prepared_again_for_each_submission() {
        let mut c = Connection::open_in_memory().unwrap();
        crate::db::migrations_apply(&mut c).unwrap();
        let rules = IntakeRules {
            max_attempts: 3,
            per_student: 100,
        };
        let take = |i: i64| {
            let mut s = NewSubmission::sample(&format!("u{}", i % 2));
            s.notebook = format!("{{\"n\": {i}}}").into_bytes();
            submit(
                &c,
                &s,
                &notebooks::pack(&s.notebook),
                &rules,
                |_| Ok(Received::at(i)),
                i,
            )
            .unwrap()
        };
        for i in 0..50 {
            take(i);
        }
        let counting = student_waiting_sql(100);
        for sql in [SAME_WAITING_SQL, counting.as_str()] {
            c.prepare_cached(sql)
                .unwrap()
                .reset_status(StatementStatus::RePrepare);
        }
        for i in 50..60 {
            take(i);
        }
        for sql in [SAME_WAITING_SQL, counting.as_str()] {
            let stmt = c.prepare_cached(sql).unwrap();
            assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0, "{sql}");
        }
    }

    #[test]
    fn an_identical_resubmission_is_answered_with_the_earliest_waiting_one() {
        let mut c = Connection::open_in_memory().unwrap();
        crate::db::migrations_apply(&mut c).unwrap();
        let rules = IntakeRules {
            max_attempts: 3,
            per_student: 100,
        };
        let s = NewSubmission::sample("u");
        let stored = notebooks::pack(&s.notebook);
        // Two identical ones waiting (a staff regrade can queue an older one again).
        let first = accept(&c, &s, 3, 0).unwrap();
        let second = accept(&c, &s, 3, 1).unwrap();
        assert!(second > first);
        assert_eq!(
            submit(&c, &s, &stored, &rules, |_| Ok(Received::at(2)), 2).unwrap(),
            Accepted::Duplicate(first)
        );
    }
}
