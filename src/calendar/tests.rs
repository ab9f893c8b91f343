use super::*;

fn raw(json: serde_json::Value) -> RawCalendar {
    serde_json::from_value(json).unwrap()
}

fn cal(json: serde_json::Value) -> Result<Calendar, String> {
    Calendar::parse("c.1.assignments.a.calendar", &raw(json))
}

fn at(text: &str) -> i64 {
    Moment::parse(text).unwrap().ms
}

fn sample() -> Calendar {
    cal(serde_json::json!({
        "release": "2026-12-01T09:00:00-08:00",
        "due": "2026-12-08T23:59:00-08:00",
        "late": [
            {"until": "2026-12-09T23:59:00-08:00", "credit": 80},
            {"until": "2026-12-10T23:59:00-08:00", "credit": 50}
        ]
    }))
    .unwrap()
}

#[test]
fn each_boundary_belongs_to_the_window_it_ends() {
    let c = sample();
    let due = at("2026-12-08T23:59:00-08:00");
    let credit = |t: i64| match c.judge(t, 0) {
        Judged::Open { credit, .. } => Some(credit),
        _ => None,
    };
    assert!(matches!(
        c.judge(at("2026-12-01T08:59:59.999-08:00"), 0),
        Judged::NotYet { .. }
    ));
    assert_eq!(credit(at("2026-12-01T09:00:00-08:00")), Some(100.0));
    assert_eq!(credit(due - 1), Some(100.0));
    assert_eq!(credit(due), Some(100.0));
    assert_eq!(credit(due + 1), Some(80.0));
    assert_eq!(credit(at("2026-12-09T23:59:00-08:00")), Some(80.0));
    assert_eq!(credit(at("2026-12-09T23:59:00.001-08:00")), Some(50.0));
    assert_eq!(credit(at("2026-12-10T23:59:00-08:00")), Some(50.0));
    let after = at("2026-12-10T23:59:00.001-08:00");
    match c.judge(after, 0) {
        Judged::Closed { since } => assert_eq!(since.human(), "2026-12-10 23:59 (UTC-08:00)"),
        other => panic!("{other:?}"),
    }
    match c.judge(due + 3_600_000, 0) {
        Judged::Open { late_ms, until, .. } => {
            assert_eq!(late_ms, 3_600_000);
            assert_eq!(until.unwrap().ms, at("2026-12-09T23:59:00-08:00"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_extension_shifts_every_deadline_but_not_the_release() {
    let c = sample();
    let three_days = 3 * 86_400_000;
    let due = at("2026-12-08T23:59:00-08:00");
    assert!(matches!(
        c.judge(due + three_days, three_days),
        Judged::Open { credit, late_ms: 0, .. } if credit == 100.0
    ));
    assert!(matches!(
        c.judge(due + three_days + 1, three_days),
        Judged::Open { credit, late_ms: 1, .. } if credit == 80.0
    ));
    assert!(matches!(
        c.judge(at("2026-12-01T08:00:00-08:00"), three_days),
        Judged::NotYet { .. }
    ));
    assert_eq!(
        c.last_deadline(three_days).human(),
        "2026-12-13 23:59 (UTC-08:00)"
    );
}

#[test]
fn after_the_last_deadline_a_course_may_take_work_for_a_last_credit() {
    let c = cal(serde_json::json!({"due": "2026-12-08T12:00:00Z", "after_last": 0})).unwrap();
    assert!(matches!(
        c.judge(at("2027-01-01T00:00:00Z"), 0),
        Judged::Open { credit, until: None, .. } if credit == 0.0
    ));
    let closed = cal(serde_json::json!({"due": "2026-12-08T12:00:00Z"})).unwrap();
    let why = closed
        .judge(at("2026-12-08T12:00:01Z"), 0)
        .refusal("lab01")
        .unwrap();
    assert_eq!(
        why,
        "lab01 closed for submissions at 2026-12-08 12:00 (UTC+00:00); nothing was stored. \
         Ask course staff if you need an extension."
    );
}

#[test]
fn bad_calendars_are_refused_with_the_key_and_the_reason() {
    let err = |json| cal(json).unwrap_err();
    let e = err(serde_json::json!({"due": "2026-12-08T23:59:00"}));
    assert!(e.contains("calendar.due") && e.contains("time zone"), "{e}");
    let e = err(serde_json::json!({"due": "2026-12-08T23:59:00Z",
        "release": "2026-12-09T00:00:00Z"}));
    assert!(e.contains("release") && e.contains("before due"), "{e}");
    let e = err(serde_json::json!({"due": "2026-12-08T23:59:00Z",
        "late": [{"until": "2026-12-08T23:00:00Z", "credit": 50}]}));
    assert!(e.contains("late[0].until") && e.contains("after"), "{e}");
    let e = err(serde_json::json!({"due": "2026-12-08T23:59:00Z",
        "late": [{"until": "2026-12-09T23:00:00Z", "credit": 50},
                 {"until": "2026-12-10T23:00:00Z", "credit": 60}]}));
    assert!(e.contains("late[1].credit") && e.contains("below"), "{e}");
    let e = err(serde_json::json!({"due": "2026-12-08T23:59:00Z", "after_last": "open"}));
    assert!(e.contains("after_last"), "{e}");
    let e = err(serde_json::json!({"due": "2026-12-08T23:59:00Z", "hold_results": "later"}));
    assert!(e.contains("hold_results") && e.contains("manual"), "{e}");
    let bad_key: Result<RawCalendar, _> =
        serde_json::from_value(serde_json::json!({"due": "2026-12-08T23:59:00Z", "deu": 1}));
    assert!(bad_key.unwrap_err().to_string().contains("deu"));
}

#[test]
fn held_results_show_once_released_or_at_their_time() {
    let manual = cal(serde_json::json!({"due": "2026-12-08T12:00:00Z",
        "hold_results": "manual"}))
    .unwrap();
    assert!(!manual.results_shown(false, i64::MAX));
    assert!(manual.results_shown(true, 0));
    let dated = cal(serde_json::json!({"due": "2026-12-08T12:00:00Z",
        "hold_results": "2026-12-15T12:00:00Z"}))
    .unwrap();
    let t = at("2026-12-15T12:00:00Z");
    assert!(!dated.results_shown(false, t - 1));
    assert!(dated.results_shown(false, t));
}

#[test]
fn spans_read_as_people_say_them() {
    assert_eq!(span(1_000), "1 second");
    assert_eq!(span(11_000), "11 seconds");
    assert_eq!(span(60_000), "1 minute");
    assert_eq!(span(3 * 3_600_000), "3 hours");
    assert_eq!(span(86_400_000), "1 day");
    assert_eq!(span(25 * 3_600_000), "25 hours");
    assert_eq!(span(36 * 3_600_000), "1 day 12 hours");
    assert_eq!(span(365 * 86_400_000), "365 days");
    assert_eq!(span(3 * 86_400_000), "3 days");
}
