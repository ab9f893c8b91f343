use super::*;
use crate::calendar::{Calendar, RawCalendar};
use crate::db::calendar::Lateness;
use crate::db::grades::{self, GradeFilter, NewGrade};
use crate::db::notebooks;
use crate::db::states::{JobKind, PostState};
use crate::db::submissions::{self, IntakeRules, NewSubmission};

const DUE: &str = "2026-12-08T12:00:00Z";

fn conn() -> Connection {
    let mut c = Connection::open_in_memory().unwrap();
    crate::db::migrations_apply(&mut c).unwrap();
    c
}

fn calendar() -> Calendar {
    let raw: RawCalendar = serde_json::from_value(serde_json::json!({
        "due": DUE,
        "late": [{"until": "2026-12-10T12:00:00Z", "credit": 80}],
        "hold_results": "manual"
    }))
    .unwrap();
    Calendar::parse("test", &raw).unwrap()
}

fn due() -> i64 {
    super::super::Moment::parse(DUE).unwrap().ms
}

fn key(user: &str) -> StudentAssignment {
    StudentAssignment {
        user: user.into(),
        course: "c".into(),
        section: "1".into(),
        assignment: "a".into(),
    }
}

fn akey() -> AssignmentKey {
    AssignmentKey::of(&key("x"))
}

/// A submission of `user` committed at `at`, admitted by the calendar as the intake does.
fn submit(c: &Connection, cal: &Calendar, user: &str, at: i64, n: u8) -> i64 {
    let mut s = NewSubmission::sample(user);
    s.notebook = vec![b'{', b'0' + n, b'}'];
    let l = crate::calendar::admit(c, Some(cal), &key(user), at).unwrap();
    let rules = IntakeRules {
        max_attempts: 3,
        per_student: 100,
    };
    let received = submissions::Received { at, lateness: l };
    submissions::submit(c, &s, &notebooks::pack(&s.notebook), &rules, received, at)
        .unwrap()
        .id()
}

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
    grades::insert(
        c,
        sub,
        job,
        &NewGrade::sample(fraction * 10.0, 10.0),
        PostState::Pending,
        0,
    )
    .unwrap()
}

fn scope(cal: &Calendar) -> Scope<'_> {
    Scope {
        calendar: Some(cal),
        policy: ScorePolicy::Latest,
        post_horizon_ms: Some(3_600_000),
        by: "staff t (test)",
        now: due() + 86_400_000,
    }
}

fn posts_queued(c: &Connection) -> i64 {
    c.query_row(
        "SELECT COUNT(*) FROM jobs WHERE kind = 'post_score' AND state = 'queued'",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn the_commit_time_decides_and_a_closed_assignment_refuses_with_its_sentence() {
    let c = conn();
    let cal = calendar();
    let on_time = submit(&c, &cal, "ann", due(), 1);
    let late = submit(&c, &cal, "ann", due() + 1, 2);
    assert_eq!(
        store::lateness_of(&c, on_time).unwrap(),
        Some(Lateness {
            credit: 100.0,
            late_ms: 0
        })
    );
    assert_eq!(
        store::lateness_of(&c, late).unwrap(),
        Some(Lateness {
            credit: 80.0,
            late_ms: 1
        })
    );
    let closed = crate::calendar::admit(&c, Some(&cal), &key("ann"), due() + 3 * 86_400_000);
    match closed {
        Err(DbError::Closed(why)) => assert!(
            why.contains("closed for submissions at 2026-12-10 12:00"),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_extension_restamps_the_students_work_moves_the_counting_score_and_posts_it() {
    let c = conn();
    let cal = calendar();
    let sub = submit(&c, &cal, "ann", due() + 3_600_000, 1);
    let other = submit(&c, &cal, "bob", due() + 3_600_000, 1);
    grade(&c, sub, 0.9);
    grade(&c, other, 0.9);
    let counted = |u: &str| {
        scores::counted(&c, &key(u), ScorePolicy::Latest)
            .unwrap()
            .unwrap()
    };
    assert!((counted("ann").fraction - 0.72).abs() < 1e-9);
    let before = posts_queued(&c);
    let m = grant(&c, &scope(&cal), &key("ann"), 2 * 3_600_000, "illness").unwrap();
    assert_eq!(
        (m.before, m.after, m.posted),
        (Some(0.9 * 80.0 / 100.0), Some(0.9), true)
    );
    assert_eq!(posts_queued(&c), before + 1);
    assert_eq!(counted("ann").credit, Some(100.0));
    assert!(
        (counted("bob").fraction - 0.72).abs() < 1e-9,
        "only ann moved"
    );
    // The same again changes nothing and posts nothing.
    let again = grant(&c, &scope(&cal), &key("ann"), 2 * 3_600_000, "illness").unwrap();
    assert!(!again.posted);
    let back = revoke(&c, &scope(&cal), &key("ann"), "granted by mistake")
        .unwrap()
        .unwrap();
    assert_eq!(back.after, Some(0.9 * 80.0 / 100.0));
    assert!(
        revoke(&c, &scope(&cal), &key("ann"), "again")
            .unwrap()
            .is_none()
    );
    let log = store::log_of(&c, &akey(), 10).unwrap();
    let actions: Vec<&str> = log.iter().map(|l| l.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "extension removed",
            "extension granted",
            "extension granted"
        ]
    );
    assert!(log[2].detail.contains("reason: illness") && log[2].actor == "staff t (test)");
}

#[test]
fn an_override_counts_instead_survives_a_regrade_and_is_undone() {
    let c = conn();
    let cal = calendar();
    let sub = submit(&c, &cal, "ann", due(), 1);
    assert!(set_override(&c, &scope(&cal), &key("ann"), 8.0, 10.0, "no grade yet").is_err());
    grade(&c, sub, 0.5);
    assert!(set_override(&c, &scope(&cal), &key("ann"), 11.0, 10.0, "too much").is_err());
    let m = set_override(&c, &scope(&cal), &key("ann"), 8.0, 10.0, "regrade request").unwrap();
    assert_eq!(m.after, Some(0.8));
    grade(&c, sub, 0.3); // a regrade
    let now = scores::counted(&c, &key("ann"), ScorePolicy::Latest)
        .unwrap()
        .unwrap();
    assert_eq!((now.fraction, now.raw_fraction), (0.8, 0.3));
    let rows = grades::select(&c, &GradeFilter::default(), Some(ScorePolicy::Latest)).unwrap();
    assert_eq!(rows[0].counted, 0.8);
    assert_eq!(
        rows[0].overridden.as_ref().map(|o| o.2.as_str()),
        Some("regrade request")
    );
    clear_override(&c, &scope(&cal), &key("ann"), "undo")
        .unwrap()
        .unwrap();
    let now = scores::counted(&c, &key("ann"), ScorePolicy::Latest)
        .unwrap()
        .unwrap();
    assert_eq!(now.fraction, 0.3);
}

#[test]
fn a_release_posts_every_graded_student_once_in_the_order_they_were_graded() {
    let c = conn();
    let cal = calendar();
    let (b, a) = (
        submit(&c, &cal, "zed", due(), 1),
        submit(&c, &cal, "amy", due(), 1),
    );
    grade(&c, b, 1.0);
    grade(&c, a, 0.5);
    store::hold(&c, &key("zed")).unwrap();
    assert_eq!(release(&c, &scope(&cal), &akey()).unwrap(), Some(2));
    assert_eq!(release(&c, &scope(&cal), &akey()).unwrap(), None, "once");
    let order: Vec<i64> = c
        .prepare("SELECT submission_id FROM jobs WHERE kind = 'post_score' ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(order, [b, a], "zed was graded first");
    let held: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM grades WHERE post_state = 'held'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(held, 0);
}

#[test]
fn latest_on_time_keeps_on_time_work_over_a_late_resubmission() {
    let c = conn();
    let cal = calendar();
    let on_time = submit(&c, &cal, "ann", due() - 1000, 1);
    let late = submit(&c, &cal, "ann", due() + 1000, 2);
    grade(&c, on_time, 0.9);
    grade(&c, late, 1.0);
    let pick = |p| {
        scores::counted(&c, &key("ann"), p)
            .unwrap()
            .unwrap()
            .submission_id
    };
    assert_eq!(pick(ScorePolicy::LatestOnTime), on_time);
    assert_eq!(pick(ScorePolicy::Latest), late);
    // Best compares after credit: 0.9 on time beats 1.0 at 80%.
    assert_eq!(pick(ScorePolicy::Best), on_time);
}

#[test]
fn a_changed_calendar_restamps_at_start_and_an_unchanged_one_does_nothing() {
    let c = conn();
    let cal = calendar();
    let sub = submit(&c, &cal, "ann", due() + 1000, 1);
    grade(&c, sub, 1.0);
    assert_eq!(
        restamp_assignment(&c, &scope(&cal), &akey()).unwrap(),
        0,
        "first stamp: same credit"
    );
    assert_eq!(restamp_assignment(&c, &scope(&cal), &akey()).unwrap(), 0);
    let kinder: RawCalendar = serde_json::from_value(serde_json::json!({
        "due": "2026-12-09T12:00:00Z"
    }))
    .unwrap();
    let kinder = Calendar::parse("test", &kinder).unwrap();
    let before = posts_queued(&c);
    assert_eq!(restamp_assignment(&c, &scope(&kinder), &akey()).unwrap(), 1);
    assert_eq!(store::lateness_of(&c, sub).unwrap().unwrap().credit, 100.0);
    assert_eq!(posts_queued(&c), before + 1);
}
