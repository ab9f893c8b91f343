use super::*;
use crate::db::submissions::{NewSubmission, accept};

fn conn() -> Connection {
    let mut c = Connection::open_in_memory().unwrap();
    crate::db::migrations_apply(&mut c).unwrap();
    c
}

fn submit(c: &Connection, now: i64) -> i64 {
    let s = NewSubmission {
        user: "u".into(),
        course: "c".into(),
        section: "1".into(),
        assignment: "a".into(),
        notebook: b"{}".to_vec(),
        notebook_path: None,
    };
    accept(c, &s, 3, now).unwrap()
}

#[test]
fn claim_finish_and_stale_claims() {
    let c = conn();
    let sub = submit(&c, 1000);
    let job = claim_next(&c, JobKind::Grade, 1000, 500).unwrap().unwrap();
    assert_eq!((job.submission_id, job.attempt), (sub, 1));
    assert!(claim_next(&c, JobKind::Grade, 1000, 500).unwrap().is_none());
    // The lease expires; another worker takes the job over.
    let again = claim_next(&c, JobKind::Grade, 1600, 500).unwrap().unwrap();
    assert_eq!((again.id, again.attempt), (job.id, 2));
    // The first worker's late result is refused; the second one's is applied once.
    assert!(!finish(&c, &job, 1700).unwrap());
    assert!(!renew(&c, &job, 9999).unwrap());
    assert!(finish(&c, &again, 1700).unwrap());
    assert!(!finish(&c, &again, 1800).unwrap());
}

#[test]
fn backoff_then_dead_after_max_attempts() {
    let c = conn();
    submit(&c, 0);
    let j1 = claim_next(&c, JobKind::Grade, 0, 100).unwrap().unwrap();
    assert_eq!(
        fail_with_backoff(&c, &j1, "engine down", 50, false, 10).unwrap(),
        FailOutcome::Retry { run_at: 60 }
    );
    assert!(
        claim_next(&c, JobKind::Grade, 59, 100).unwrap().is_none(),
        "not due yet"
    );
    let j2 = claim_next(&c, JobKind::Grade, 60, 100).unwrap().unwrap();
    assert!(matches!(
        fail_with_backoff(&c, &j2, "x", 50, false, 70).unwrap(),
        FailOutcome::Retry { .. }
    ));
    let j3 = claim_next(&c, JobKind::Grade, 200, 100).unwrap().unwrap();
    assert_eq!(
        fail_with_backoff(&c, &j3, "still down", 50, false, 210).unwrap(),
        FailOutcome::Dead
    );
    let (state, err): (String, String) = c
        .query_row(
            "SELECT state, last_error FROM jobs WHERE id = ?1",
            [j3.id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((state.as_str(), err.as_str()), ("dead", "still down"));
    assert_eq!(
        fail_with_backoff(&c, &j3, "late", 1, false, 300).unwrap(),
        FailOutcome::Stale
    );
}

#[test]
fn permanent_failures_and_horizon_end_at_once() {
    let c = conn();
    let sub = submit(&c, 0);
    let job = NewJob {
        kind: JobKind::PostScore,
        submission_id: sub,
        grade_id: None,
        max_attempts: i64::MAX,
        give_up_at: Some(1000),
    };
    enqueue(&c, &job, 0).unwrap();
    let j = claim_next(&c, JobKind::PostScore, 0, 100).unwrap().unwrap();
    assert!(matches!(
        fail_with_backoff(&c, &j, "500", 500, false, 10).unwrap(),
        FailOutcome::Retry { .. }
    ));
    let j = claim_next(&c, JobKind::PostScore, 600, 100)
        .unwrap()
        .unwrap();
    assert_eq!(
        fail_with_backoff(&c, &j, "500", 500, false, 600).unwrap(),
        FailOutcome::Dead,
        "past the horizon"
    );
}

#[test]
fn requeue_expired_and_depth() {
    let c = conn();
    submit(&c, 0);
    submit(&c, 0);
    assert_eq!(depth(&c, JobKind::Grade).unwrap(), 2);
    claim_next(&c, JobKind::Grade, 0, 100).unwrap().unwrap();
    assert_eq!(requeue_expired(&c, 50).unwrap(), 0, "lease still valid");
    assert_eq!(requeue_expired(&c, 150).unwrap(), 1);
    assert_eq!(depth(&c, JobKind::Grade).unwrap(), 2);
    assert_eq!(live_job_ids(&c).unwrap().len(), 2);
}
