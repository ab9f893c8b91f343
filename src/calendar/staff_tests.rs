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
    submissions::submit(
        c,
        &s,
        &notebooks::pack(&s.notebook),
        &rules,
        |_| Ok(received),
        at,
    )
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

#[test]
fn lms_posts_are_for_jupyterhub_users_only_and_xqueue_work_is_never_restamped() {
    let c = conn();
    let cal = calendar();
    let ann = submit(&c, &cal, "ann", due() + 1000, 1);
    let platform = submit(&c, &cal, "platform:lms:7", due() + 1000, 1);
    // As the XQueue adapter stores it: no lateness (edX judged it), late by our clock.
    let xq =
        submissions::accept(&c, &NewSubmission::sample("xqueue:q:anon"), 3, due() + 1000).unwrap();
    for id in [ann, platform, xq] {
        grade(&c, id, 1.0);
    }
    let before = posts_queued(&c);
    assert_eq!(release(&c, &scope(&cal), &akey()).unwrap(), Some(3));
    assert_eq!(posts_queued(&c), before + 1, "ann's post only");
    let m = grant(
        &c,
        &scope(&cal),
        &key("platform:lms:7"),
        DAY_MS,
        "platform asked",
    )
    .unwrap();
    assert!(m.before != m.after && !m.posted, "{m:?}");
    let kinder: RawCalendar =
        serde_json::from_value(serde_json::json!({"due": "2026-12-20T12:00:00Z"})).unwrap();
    let kinder = Calendar::parse("test", &kinder).unwrap();
    restamp_assignment(&c, &scope(&kinder), &akey()).unwrap();
    assert_eq!(store::lateness_of(&c, xq).unwrap(), None, "edX judged it");
    assert_eq!(store::lateness_of(&c, ann).unwrap().unwrap().credit, 100.0);
}

const DAY_MS: i64 = 86_400_000;

#[test]
fn a_release_needs_a_hold_and_a_hold_taken_out_of_the_config_sends_what_it_held() {
    let c = conn();
    let cal = calendar();
    let sub = submit(&c, &cal, "ann", due(), 1);
    grade(&c, sub, 0.5);
    store::hold(&c, &key("ann")).unwrap();
    let shown: RawCalendar = serde_json::from_value(serde_json::json!({"due": DUE})).unwrap();
    let shown = Calendar::parse("test", &shown).unwrap();
    match release(&c, &scope(&shown), &akey()) {
        Err(DbError::Invalid(why)) => assert!(why.contains("does not hold"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        unhold_shown(&c, &scope(&cal), &akey()).unwrap(),
        0,
        "still held"
    );
    let before = posts_queued(&c);
    assert_eq!(unhold_shown(&c, &scope(&shown), &akey()).unwrap(), 1);
    assert_eq!(posts_queued(&c), before + 1);
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
fn after_closing_an_identical_waiting_notebook_is_answered_as_itself_not_refused() {
    let c = conn();
    let cal = calendar();
    let s = NewSubmission::sample("ann");
    let stored = notebooks::pack(&s.notebook);
    let rules = IntakeRules {
        max_attempts: 3,
        per_student: 100,
    };
    let judge = |at: i64| {
        let cal = cal.clone();
        move |c: &Connection| -> Result<submissions::Received, DbError> {
            let lateness = crate::calendar::admit(c, Some(&cal), &key("ann"), at)?;
            Ok(submissions::Received { at, lateness })
        }
    };
    let first = submissions::submit(&c, &s, &stored, &rules, judge(due()), 0).unwrap();
    let closed = due() + 5 * DAY_MS;
    let again = submissions::submit(&c, &s, &stored, &rules, judge(closed), 1).unwrap();
    assert_eq!(again, submissions::Accepted::Duplicate(first.id()));
    let mut other = s.clone();
    other.notebook = b"{\"new\": 1}".to_vec();
    let refused = submissions::submit(
        &c,
        &other,
        &notebooks::pack(&other.notebook),
        &rules,
        judge(closed),
        2,
    );
    assert!(matches!(refused, Err(DbError::Closed(_))), "{refused:?}");
}

#[test]
fn while_results_are_held_an_override_waits_too_and_a_failed_notebook_still_says_so() {
    let c = conn();
    let cal = calendar();
    let ok = submit(&c, &cal, "ann", due(), 1);
    grade(&c, ok, 0.5);
    set_override(&c, &scope(&cal), &key("ann"), 4.0, 5.0, "private reason").unwrap();
    let view = crate::calendar::views::due_view(&c, Some(&cal), &key("ann"), due()).unwrap();
    assert!(view.results_held && view.overridden.is_none(), "{view:?}");
    assert!(
        !view.sentence.contains("set your score"),
        "{}",
        view.sentence
    );
    // A notebook that ran out of time: its student must learn it before the deadline.
    let failed = submit(&c, &cal, "bob", due(), 2);
    let job = jobs::enqueue(
        &c,
        &jobs::NewJob {
            kind: JobKind::Grade,
            submission_id: failed,
            grade_id: None,
            max_attempts: 3,
            give_up_at: None,
        },
        0,
    )
    .unwrap();
    let mut g = NewGrade::sample(0.0, 10.0);
    g.status = crate::db::states::GradeStatus::Timeout;
    g.message = Some("Your notebook ran out of time.".into());
    grades::insert(&c, failed, job, &g, PostState::Pending, 0).unwrap();
    let mut views = vec![
        submissions::view_for_owner(&c, ok, "ann", |_| ScorePolicy::Latest)
            .unwrap()
            .unwrap(),
        submissions::view_for_owner(&c, failed, "bob", |_| ScorePolicy::Latest)
            .unwrap()
            .unwrap(),
    ];
    let arc = std::sync::Arc::new(cal.clone());
    crate::calendar::views::apply(&c, |_, _, _| Some(arc.clone()), due(), &mut views, false)
        .unwrap();
    assert!(views[0].grade.is_none() && views[0].results_held);
    assert_eq!(
        views[0].message.as_deref(),
        Some(crate::calendar::views::HELD)
    );
    assert!(views[1].grade.is_some(), "the failure is shown");
}
