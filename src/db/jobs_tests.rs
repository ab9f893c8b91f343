use super::*;
use crate::db::submissions::{NewSubmission, accept};

/// A stored grade of submission `sub` (the post tests need real rows to point at).
fn grade_of(c: &Connection, sub: i64) -> i64 {
    let job = NewJob {
        kind: JobKind::Grade,
        submission_id: sub,
        grade_id: None,
        max_attempts: 1,
        give_up_at: None,
    };
    let job = enqueue(c, &job, 0).unwrap();
    let g = crate::db::grades::NewGrade::sample(1.0, 1.0);
    let pending = crate::db::states::PostState::Pending;
    crate::db::grades::insert(c, sub, job, &g, pending, 0).unwrap()
}

fn submit_as(c: &Connection, user: &str, now: i64) -> i64 {
    accept(c, &NewSubmission::sample(user), 3, now).unwrap()
}

fn conn() -> Connection {
    let mut c = Connection::open_in_memory().unwrap();
    crate::db::migrations_apply(&mut c).unwrap();
    c
}

fn submit(c: &Connection, now: i64) -> i64 {
    submit_as(c, "u", now)
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

#[test]
fn one_post_per_student_and_assignment_at_a_time() {
    let c = conn();
    let a = submit_as(&c, "ann", 0);
    let b = submit_as(&c, "ann", 0);
    let other = submit_as(&c, "bea", 0);
    let (g1, g2, g3, g4) = (
        grade_of(&c, a),
        grade_of(&c, b),
        grade_of(&c, a),
        grade_of(&c, other),
    );
    let p1 = queue_post(&c, a, g1, 10_000, 0).unwrap();
    // A second grade while the first post still waits: the waiting post covers it.
    assert_eq!(queue_post(&c, b, g2, 10_000, 0).unwrap(), p1);
    let running = claim_next(&c, JobKind::PostScore, 0, 1000)
        .unwrap()
        .unwrap();
    assert_eq!((running.id, running.grade_id), (p1, Some(g2)));
    // A grade stored while the post runs queues another behind it...
    let p2 = queue_post(&c, a, g3, 10_000, 1).unwrap();
    assert_ne!(p2, p1);
    // ...which no worker may take while the first runs; another student's may.
    let po = queue_post(&c, other, g4, 10_000, 1).unwrap();
    let next = claim_next(&c, JobKind::PostScore, 2, 1000)
        .unwrap()
        .unwrap();
    assert_eq!(next.id, po);
    assert!(
        claim_next(&c, JobKind::PostScore, 3, 1000)
            .unwrap()
            .is_none()
    );
    assert!(finish(&c, &running, 4).unwrap());
    assert_eq!(
        claim_next(&c, JobKind::PostScore, 5, 1000)
            .unwrap()
            .unwrap()
            .id,
        p2
    );
}

#[test]
fn an_expired_post_is_taken_over_before_the_one_queued_behind_it() {
    let c = conn();
    let a = submit_as(&c, "cat", 0);
    let (g1, g2) = (grade_of(&c, a), grade_of(&c, a));
    let p1 = queue_post(&c, a, g1, 10_000, 0).unwrap();
    claim_next(&c, JobKind::PostScore, 0, 100).unwrap().unwrap();
    let p2 = queue_post(&c, a, g2, 10_000, 1).unwrap();
    // The first worker died; its lease expired. The takeover is the old job, never both.
    let taken = claim_next(&c, JobKind::PostScore, 500, 100)
        .unwrap()
        .unwrap();
    assert_eq!(taken.id, p1);
    assert!(
        claim_next(&c, JobKind::PostScore, 501, 100)
            .unwrap()
            .is_none()
    );
    assert!(finish(&c, &taken, 502).unwrap());
    assert_eq!(
        claim_next(&c, JobKind::PostScore, 503, 100)
            .unwrap()
            .unwrap()
            .id,
        p2
    );
}

#[test]
fn a_job_whose_worker_dies_in_every_attempt_ends_dead() {
    let c = conn();
    submit(&c, 0); // max_attempts 3
    let mut now = 0;
    for attempt in 1..=3 {
        assert!(reap_exhausted(&c, JobKind::Grade, now).unwrap().is_empty());
        let j = claim_next(&c, JobKind::Grade, now, 100).unwrap().unwrap();
        assert_eq!(j.attempt, attempt);
        now += 200; // the worker crashed: the lease runs out
        if attempt == 2 {
            // a restart in between re-queues it; the attempt still counts
            assert_eq!(requeue_expired(&c, now).unwrap(), 1);
        }
    }
    assert!(claim_next(&c, JobKind::Grade, now, 100).unwrap().is_none());
    let dead = reap_exhausted(&c, JobKind::Grade, now).unwrap();
    assert_eq!(dead.len(), 1);
    let (state, err): (JobState, String) = c
        .query_row(
            "SELECT state, last_error FROM jobs WHERE id = ?1",
            [dead[0].id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((state, err.as_str()), (JobState::Dead, WORKER_STOPPED));
}

#[test]
fn grade_turns_go_round_robin_across_students() {
    let c = conn();
    // One student queues 30; then five others one each.
    let mut hog = Vec::new();
    for i in 0..30 {
        hog.push(submit_as(&c, "hog", i));
    }
    let others: Vec<i64> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|u| submit_as(&c, u, 100))
        .collect();
    // One worker: each claim is finished before the next.
    let mut order = Vec::new();
    for t in 0..8 {
        let j = claim_next(&c, JobKind::Grade, 1000 + t, 500)
            .unwrap()
            .unwrap();
        order.push(j.submission_id);
        assert!(finish(&c, &j, 1000 + t).unwrap());
    }
    let third_of_hog = order.iter().position(|s| *s == hog[2]);
    for o in &others {
        let at = order
            .iter()
            .position(|s| s == o)
            .expect("each other student was served");
        assert!(third_of_hog.is_none_or(|h| at < h), "{order:?}");
    }
    // The hog's own submissions still go in the order sent.
    let hogs: Vec<_> = order.iter().filter(|s| hog.contains(s)).collect();
    assert_eq!(hogs, [&hog[0], &hog[1], &hog[2]]);
}

#[test]
fn identical_resubmissions_and_the_per_student_cap() {
    use crate::db::notebooks::pack;
    use crate::db::submissions::{Accepted, IntakeRules, submit as take};
    let c = conn();
    let rules = IntakeRules {
        max_attempts: 3,
        per_student: 2,
    };
    let nb = |n: u8| NewSubmission {
        user: "ivy".into(),
        course: "c".into(),
        section: "1".into(),
        assignment: "a".into(),
        notebook: vec![b'{', n, b'}'],
        notebook_path: None,
    };
    let stored = |n: u8| pack(&nb(n).notebook);
    let first = take(
        &c,
        &nb(1),
        &stored(1),
        &rules,
        |_| Ok(crate::db::submissions::Received::at(0)),
        0,
    )
    .unwrap();
    assert!(matches!(first, Accepted::New(_)));
    assert_eq!(
        take(
            &c,
            &nb(1),
            &stored(1),
            &rules,
            |_| Ok(crate::db::submissions::Received::at(1)),
            1
        )
        .unwrap(),
        Accepted::Duplicate(first.id())
    );
    assert!(matches!(
        take(
            &c,
            &nb(2),
            &stored(2),
            &rules,
            |_| Ok(crate::db::submissions::Received::at(2)),
            2
        )
        .unwrap(),
        Accepted::New(_)
    ));
    assert!(matches!(
        take(
            &c,
            &nb(3),
            &stored(3),
            &rules,
            |_| Ok(crate::db::submissions::Received::at(3)),
            3
        ),
        Err(DbError::StudentQueueFull { limit: 2 })
    ));
    // Once the first is graded, the same bytes are a new submission again.
    let j = claim_next(&c, JobKind::Grade, 4, 100).unwrap().unwrap();
    assert_eq!(j.submission_id, first.id());
    assert!(finish(&c, &j, 5).unwrap());
    crate::db::submissions::set_state(
        &c,
        first.id(),
        crate::db::states::SubmissionState::Graded,
        None,
    )
    .unwrap();
    assert!(matches!(
        take(
            &c,
            &nb(1),
            &stored(1),
            &rules,
            |_| Ok(crate::db::submissions::Received::at(6)),
            6
        )
        .unwrap(),
        Accepted::New(_)
    ));
}

#[test]
fn staff_regrades_wait_while_any_students_submission_is_due() {
    let c = conn();
    // A regrade of three older submissions, queued first...
    let regraded: Vec<i64> = (0..3)
        .map(|i| submit_as(&c, &format!("old{i}"), i))
        .collect();
    let jobs: Vec<i64> = c
        .prepare("SELECT id FROM jobs ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for j in &jobs {
        set_priority(&c, *j, REGRADE).unwrap();
    }
    // ...then two students submit.
    let fresh = [submit_as(&c, "ann", 10), submit_as(&c, "ben", 11)];
    let order: Vec<i64> = (0..5)
        .map(|t| {
            claim_next(&c, JobKind::Grade, 100 + t, 500)
                .unwrap()
                .unwrap()
                .submission_id
        })
        .collect();
    assert_eq!(&order[..2], &fresh, "students first: {order:?}");
    let mut rest = order[2..].to_vec();
    rest.sort();
    assert_eq!(rest, regraded, "then the regrades, all of them");
}
