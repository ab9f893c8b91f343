use super::*;
use crate::db::grades::{self, GradeFilter, NewGrade};
use crate::db::jobs;
use crate::db::states::JobKind;
use crate::db::submissions::{NewSubmission, accept};

fn conn() -> Connection {
    let mut c = Connection::open_in_memory().unwrap();
    crate::db::migrations_apply(&mut c).unwrap();
    c
}

fn submit(c: &Connection, user: &str) -> i64 {
    accept(c, &NewSubmission::sample(user), 3, 0).unwrap()
}

/// Grade submission `sub` with `fraction` (through a claimed grade job, as the worker does).
fn grade(c: &Connection, sub: i64, fraction: f64) -> i64 {
    let job = jobs::enqueue(
        c,
        &jobs::NewJob {
            kind: JobKind::Grade,
            submission_id: sub,
            grade_id: None,
            max_attempts: 3,
            give_up_at: None,
        },
        0,
    )
    .unwrap();
    let g = NewGrade::sample(fraction * 6.0, 6.0);
    grades::insert(c, sub, job, &g, PostState::Pending, 0).unwrap()
}

fn key(user: &str) -> StudentAssignment {
    StudentAssignment {
        user: user.into(),
        course: "c".into(),
        section: "1".into(),
        assignment: "a".into(),
    }
}

#[test]
fn latest_is_the_newest_submission_even_when_an_older_one_is_graded_last() {
    let c = conn();
    let a = submit(&c, "ann");
    let b = submit(&c, "ann");
    let gb = grade(&c, b, 1.0); // B finishes first
    let _ga = grade(&c, a, 0.33); // then A
    let latest = counted(&c, &key("ann"), ScorePolicy::Latest)
        .unwrap()
        .unwrap();
    assert_eq!((latest.grade_id, latest.submission_id), (gb, b));
    // A staff regrade of A does not displace B either; a regrade of B does replace B's.
    grade(&c, a, 0.5);
    assert_eq!(
        counted(&c, &key("ann"), ScorePolicy::Latest)
            .unwrap()
            .unwrap()
            .grade_id,
        gb
    );
    let gb2 = grade(&c, b, 0.9);
    assert_eq!(
        counted(&c, &key("ann"), ScorePolicy::Latest)
            .unwrap()
            .unwrap()
            .grade_id,
        gb2
    );
}

#[test]
fn best_is_the_highest_and_the_newest_among_equals() {
    let c = conn();
    let a = submit(&c, "bo");
    let b = submit(&c, "bo");
    let d = submit(&c, "bo");
    let ga = grade(&c, a, 0.8);
    grade(&c, b, 0.2);
    assert_eq!(
        counted(&c, &key("bo"), ScorePolicy::Best)
            .unwrap()
            .unwrap()
            .grade_id,
        ga
    );
    let gd = grade(&c, d, 0.8);
    assert_eq!(
        counted(&c, &key("bo"), ScorePolicy::Best)
            .unwrap()
            .unwrap()
            .grade_id,
        gd
    );
    assert!(
        counted(&c, &key("nobody"), ScorePolicy::Best)
            .unwrap()
            .is_none()
    );
}

#[test]
fn the_export_uses_the_same_definition() {
    let c = conn();
    let a = submit(&c, "cy");
    let b = submit(&c, "cy");
    let other = submit(&c, "dee");
    let gb = grade(&c, b, 0.4);
    let ga = grade(&c, a, 0.9);
    let go = grade(&c, other, 0.1);
    let ids = |p| {
        grades::select(&c, &GradeFilter::default(), p)
            .unwrap()
            .iter()
            .map(|r| r.grade_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(None), [gb, ga, go]);
    assert_eq!(ids(Some(ScorePolicy::Latest)), [gb, go]);
    assert_eq!(ids(Some(ScorePolicy::Best)), [ga, go]);
    for p in ScorePolicy::ALL {
        let from_export = grades::select(&c, &GradeFilter::default(), Some(*p)).unwrap();
        let cy = from_export.iter().find(|r| r.user == "cy").unwrap();
        assert_eq!(
            cy.grade_id,
            counted(&c, &key("cy"), *p).unwrap().unwrap().grade_id
        );
    }
}

#[test]
fn a_post_marks_the_counted_grade_and_supersedes_only_what_it_read() {
    let c = conn();
    let a = submit(&c, "eve");
    let b = submit(&c, "eve");
    let ga = grade(&c, a, 0.3);
    let gb = grade(&c, b, 1.0);
    let read = counted(&c, &key("eve"), ScorePolicy::Latest)
        .unwrap()
        .unwrap();
    // A regrade of A lands while the post is in flight: it is left for the next post.
    let ga2 = grade(&c, a, 0.6);
    record_posted(&c, &key("eve"), &read, 1.0, 0).unwrap();
    let state = |g: i64| -> PostState {
        c.query_row("SELECT post_state FROM grades WHERE id = ?1", [g], |r| {
            r.get(0)
        })
        .unwrap()
    };
    assert_eq!(state(gb), PostState::Posted);
    assert_eq!(state(ga), PostState::Superseded);
    assert_eq!(state(ga2), PostState::Pending);
}
