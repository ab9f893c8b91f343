//! `/metrics` during and after a burst, checked against the database and `status`.

use std::collections::BTreeMap;
use std::time::Duration;

use rusqlite::Connection;
use serde_json::json;

use crate::helpers::{TestApp, copy_of, sample, spawn_app_with};
use crate::hub::hub;

/// `http://127.0.0.1:PORT`: the service without its prefix, where `/metrics` is.
fn root(app: &TestApp) -> &str {
    app.url.split("/services/").next().unwrap()
}

/// The exposition text of `/metrics`.
async fn metrics_text(app: &TestApp) -> String {
    let r = app
        .http
        .get(format!("{}/metrics", root(app)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

/// The scrape as `name{labels}` -> value.
async fn scrape(app: &TestApp) -> BTreeMap<String, f64> {
    metrics_text(app)
        .await
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn get(m: &BTreeMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

fn count(db: &std::path::Path, sql: &str) -> f64 {
    let c = Connection::open(db).unwrap();
    c.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap() as f64
}

#[tokio::test]
async fn metrics_during_a_burst_agree_with_the_database_and_status() {
    let app = spawn_app_with(|s| {
        s.grading.workers = 2;
        s.grading.max_queued_per_student = 5;
    })
    .await;
    let users = ["mo", "ned", "ola"];
    let mut tokens = Vec::new();
    for u in users {
        tokens.push(hub().user_token(u, None).await);
    }
    let nb = sample("partial");
    let mut ids = Vec::new();
    for i in 0..5 {
        for t in &tokens {
            ids.push((app.submit_ok(t, &copy_of(&nb, i)).await, t.clone()));
        }
    }
    // Refusals, one of each kind a student can cause.
    assert_eq!(
        app.submit(&tokens[0], &copy_of(&nb, 99)).await.status(),
        429
    );
    let mut untagged = nb.clone();
    untagged["metadata"] = json!({});
    assert_eq!(app.submit(&tokens[1], &untagged).await.status(), 400);
    assert_eq!(app.submit("not-a-token", &nb).await.status(), 403);

    // Mid-burst: every accepted grade job is in exactly one state.
    let mid = scrape(&app).await;
    let in_states: f64 = ["queued", "running", "done", "dead"]
        .iter()
        .map(|s| get(&mid, &format!("otter_jobs{{kind=\"grade\",state=\"{s}\"}}")))
        .sum();
    assert_eq!(in_states, 15.0, "{mid:?}");
    if get(&mid, "otter_jobs{kind=\"grade\",state=\"queued\"}") > 0.0 {
        assert!(get(&mid, "otter_oldest_queued_seconds{kind=\"grade\"}") > 0.0);
    }
    assert!(get(&mid, "otter_workers_busy{kind=\"grade\"}") <= 2.0);

    for (id, t) in &ids {
        let v = app.wait_done(t, *id, Duration::from_secs(300)).await;
        assert_eq!(v["state"], "graded", "{v}");
    }
    let m = scrape(&app).await;
    let db = &app.db_path;
    let accepted = r#"otter_submissions_total{result="accepted",reason="none"}"#;
    assert_eq!(
        get(&m, accepted),
        count(db, "SELECT COUNT(*) FROM submissions")
    );
    for reason in ["too_many_waiting", "bad_request", "forbidden"] {
        let key = format!("otter_submissions_total{{result=\"rejected\",reason=\"{reason}\"}}");
        assert_eq!(get(&m, &key), 1.0, "{reason}: {m:?}");
    }
    let graded = count(db, "SELECT COUNT(*) FROM grades WHERE status = 'graded'");
    assert_eq!(graded, 15.0);
    assert_eq!(get(&m, r#"otter_grades_total{outcome="graded"}"#), graded);
    assert_eq!(
        get(
            &m,
            r#"otter_job_attempts_total{kind="grade",result="done"}"#
        ),
        count(
            db,
            "SELECT COUNT(*) FROM jobs WHERE kind = 'grade' AND state = 'done'"
        )
    );
    for phase in ["queue_wait", "container_start", "run", "store"] {
        let key = format!("otter_grading_phase_seconds_count{{phase=\"{phase}\"}}");
        assert_eq!(get(&m, &key), graded, "{phase}");
    }
    // A burst on 2 workers: some waited, and grading took real time.
    assert!(get(&m, r#"otter_grading_phase_seconds_sum{phase="run"}"#) > 15.0 * 0.3);
    assert_eq!(get(&m, r#"otter_workers_busy{kind="grade"}"#), 0.0);
    assert_eq!(get(&m, r#"otter_jobs{kind="grade",state="queued"}"#), 0.0);
    assert_eq!(get(&m, r#"otter_oldest_queued_seconds{kind="grade"}"#), 0.0);
    let bytes = get(&m, "otter_database_bytes");
    assert!(bytes > 0.0);

    // `status` reads the same numbers.
    assert_eq!(crate::helpers::status_count(db, "grade", "done"), 15);

    // No user names in any label.
    let text = metrics_text(&app).await;
    for u in users {
        assert!(!text.contains(u), "user {u} in metrics");
    }
}

#[tokio::test]
async fn metrics_are_not_served_through_the_proxy() {
    let app = spawn_app_with(|_| {}).await;
    let r = app
        .http
        .get(format!("{}/metrics", root(&app)))
        .header("X-Forwarded-For", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Nor under the service prefix, which the proxy routes to us.
    let r = app
        .http
        .get(format!("{}metrics", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
