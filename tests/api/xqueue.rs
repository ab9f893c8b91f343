//! The XQueue door: edX's own XQueue API (edx-submissions 4.0.2, as edX's LMS serves it at
//! /xqueue/; tests/support/xqueue_server.py) holds learners' submissions; the service pulls,
//! grades and answers. Asserted through edX's code: each submission's status and the score
//! edx-submissions recorded, and the grader reply it stored.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{TestApp, cli, sample, spawn_app_with};
use crate::hub::hub;
use crate::xqueue_peer::{PASSWORD, USER, Xqueue};
use otter_service::secret::Secret;
use otter_service::settings::{Settings, XqueueQueue};

const GRADER: &str = "demo/1/demo1";

fn queue(xq: &Xqueue) -> XqueueQueue {
    XqueueQueue {
        name: "notebooks".into(),
        url: xq.api_url(),
        queue_name: "notebooks".into(),
        username: USER.into(),
        password: Secret::new(PASSWORD),
        poll_secs: 1,
        timeout_secs: 5,
        ..Default::default()
    }
}

fn settings(s: &mut Settings, xq: &Xqueue, db: &Path) {
    s.xqueue.queues = vec![queue(xq)];
    s.database.path = db.to_path_buf();
    s.grading.workers = 2;
}

fn bytes(name: &str) -> Vec<u8> {
    serde_json::to_vec(&sample(name)).unwrap()
}

/// Until XQueue's row for `submission_id` is in `status` (or fail with what it holds).
async fn wait_status(xq: &Xqueue, submission_id: &Value, status: &str) -> Value {
    let start = Instant::now();
    loop {
        let rows = xq.results().await;
        if let Some(r) = rows
            .iter()
            .find(|r| &r["submission_id"] == submission_id && r["status"] == status)
        {
            return r.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "never {status}: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn puts(stats: &Value) -> i64 {
    stats["routes"]["POST /xqueue/put_result/"]
        .as_object()
        .map_or(0, |m| m.values().filter_map(Value::as_i64).sum())
}

#[tokio::test]
async fn notebooks_from_xqueue_are_graded_and_answered_with_public_results_only() {
    let dir = tempfile::tempdir().unwrap();
    let xq = Xqueue::start(dir.path());
    let db = dir.path().join("otter.db");
    let app = spawn_app_with(|s| settings(s, &xq, &db)).await;
    let mut expect = Vec::new();
    for (i, (nb, points)) in [("correct", 5.0), ("partial", 3.0), ("error", 4.0)]
        .into_iter()
        .enumerate()
    {
        let anon = format!("anon{i}f00d");
        let made = xq.submit(&anon, GRADER, "lab.ipynb", &bytes(nb)).await;
        expect.push((made["submission_id"].clone(), anon, points));
    }
    // A JupyterHub student at the same time: both doors, one queue.
    let token = hub().user_token("xq-hub-student", None).await;
    let hub_id = app.submit_ok(&token, &sample("partial")).await;
    for (id, anon, points) in &expect {
        let row = wait_status(&xq, id, "retired").await;
        assert_eq!(
            row["score"]["points_earned"].as_f64(),
            Some(*points),
            "{row}"
        );
        assert_eq!(row["score"]["points_possible"], 5, "{row}");
        let reply = &row["reply"];
        assert_eq!(reply["correct"], *points == 5.0, "{row}");
        let msg = reply["msg"].as_str().unwrap();
        assert!(msg.contains("Score: "), "{msg}");
        for hidden in ["square(-4)", "answer == 55", "square(0)"] {
            assert!(!msg.contains(hidden), "a hidden test leaked: {msg}");
        }
        let mut reader = quick_xml::Reader::from_str(msg);
        while !matches!(reader.read_event().unwrap(), quick_xml::events::Event::Eof) {}
        // The learner is the anonymous id, in the XQueue namespace: dump-grades shows it.
        let dump = cli(&db, &["dump-grades"]);
        assert!(dump.contains(&format!("xqueue:notebooks:{anon}")), "{dump}");
    }
    let v = app.wait_done(&token, hub_id, Duration::from_secs(90)).await;
    assert_eq!(v["grade"]["score"], 3.0);
    // Each answered once.
    assert_eq!(puts(&xq.stats().await), 3);
    let status = cli(&db, &["status"]);
    assert!(status.contains("xqueue notebooks"), "{status}");
    let root = app.url.split("/services/").next().unwrap();
    let metrics = reqwest::get(format!("{root}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"otter_xqueue_items{queue="notebooks",state="answered"} 3"#),
        "{metrics}"
    );
    // A staff regrade after XQueue took the answer is recorded, not sent.
    let anon = &expect[0].1;
    cli(
        &db,
        &["regrade", "--user", &format!("xqueue:notebooks:{anon}")],
    );
    let start = Instant::now();
    loop {
        let sub = db_submission_of(&db, anon);
        let timeline = cli(&db, &["timeline", &sub.to_string()]);
        if timeline.contains("XQueue no longer waits") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(90), "{timeline}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(puts(&xq.stats().await), 3, "nothing sent for the regrade");
}

fn db_submission_of(db: &Path, anon: &str) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row(
            "SELECT MIN(id) FROM submissions WHERE user = ?1",
            [format!("xqueue:notebooks:{anon}")],
            |r| r.get(0),
        )
        .unwrap()
}

#[tokio::test]
async fn a_file_we_cannot_grade_is_answered_once_as_zero_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let xq = Xqueue::start(dir.path());
    let db = dir.path().join("otter.db");
    let app = spawn_app_with(|s| {
        settings(s, &xq, &db);
        s.server.max_body_bytes = 200_000;
    })
    .await;
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "anonbad1",
            b"print('not a notebook')".to_vec(),
            GRADER,
            "not valid JSON",
        ),
        (
            "anonbad2",
            vec![b' '; 300_000],
            GRADER,
            "larger than the limit",
        ),
        (
            "anonbad3",
            bytes("correct"),
            "demo/1/nosuch",
            "unknown assignment",
        ),
        (
            "anonbad4",
            bytes("correct"),
            "demo/1",
            "does not grade course",
        ),
    ];
    let mut made = Vec::new();
    for (anon, file, grader, _) in &cases {
        made.push(xq.submit(anon, grader, "lab.ipynb", file).await);
    }
    for ((_, _, _, why), m) in cases.iter().zip(&made) {
        let row = wait_status(&xq, &m["submission_id"], "retired").await;
        assert_eq!(row["score"]["points_earned"].as_f64(), Some(0.0), "{row}");
        let msg = row["reply"]["msg"].as_str().unwrap();
        assert!(msg.contains(why), "{why}: {msg}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        puts(&xq.stats().await),
        4,
        "each answered once, never retried"
    );
    drop(app);
}

#[tokio::test]
async fn a_submission_served_again_is_graded_once_and_nothing_is_lost_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut xq = Xqueue::start(dir.path());
    let db = dir.path().join("otter.db");
    // Grading is slow (sleep.ipynb) so XQueue's lease can run out while we grade.
    let app = spawn_app_with(|s| {
        settings(s, &xq, &db);
        s.grading.time_limit_secs = 10;
    })
    .await;
    let slow = xq
        .submit("anonslow", GRADER, "lab.ipynb", &bytes("sleep"))
        .await;
    wait_status(&xq, &slow["submission_id"], "pulled").await;
    assert_eq!(xq.expire().await, 1);
    // XQueue serves it again; it is one submission here.
    let row = wait_status(&xq, &slow["submission_id"], "retired").await;
    assert!(row["score"].is_object(), "{row}");
    assert_eq!(
        db_count(
            &db,
            "SELECT COUNT(*) FROM submissions WHERE user LIKE 'xqueue:%anonslow'"
        ),
        1
    );
    let pulls = xq.stats().await["routes"]["GET /xqueue/get_submission/"]["200"]
        .as_i64()
        .unwrap();
    assert!(pulls >= 2, "served again: {pulls}");

    drop(app);

    // XQueue fails, then the service stops between pull and answer, then XQueue is
    // restarted: every learner gets exactly one answer. (The default time limit again:
    // a loaded machine must not turn these grades into timeouts.)
    let app = spawn_app_with(|s| settings(s, &xq, &db)).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        let m = xq
            .submit(&format!("anonr{i}"), GRADER, "lab.ipynb", &bytes("partial"))
            .await;
        ids.push(m["submission_id"].clone());
    }
    let start = Instant::now();
    while db_count(&db, "SELECT COUNT(*) FROM xqueue_items") < 5 {
        assert!(start.elapsed() < Duration::from_secs(60), "not pulled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    xq.set_mode("500").await; // answers fail
    drop(app); // the service stops with answers owed
    tokio::time::sleep(Duration::from_secs(2)).await;
    xq.restart(); // mode back to ok, state kept
    let _app = spawn_app_with(|s| settings(s, &xq, &db)).await;
    for id in &ids {
        let row = wait_status(&xq, id, "retired").await;
        assert_eq!(row["score"]["points_earned"].as_f64(), Some(3.0), "{row}");
    }
    assert_eq!(db_count(&db, "SELECT COUNT(*) FROM xqueue_items"), 5);
    assert_eq!(
        db_count(
            &db,
            "SELECT COUNT(*) FROM xqueue_items WHERE state = 'answered'"
        ),
        5
    );
}

fn db_count(db: &Path, sql: &str) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn a_hub_user_cannot_take_an_xqueue_learners_name() {
    let app: TestApp = crate::helpers::spawn_app().await;
    let token = hub().user_token("xqueue:notebooks:anon0f00d", None).await;
    let r = app.submit(&token, &sample("correct")).await;
    assert_eq!(r.status(), 403);
    let body = r.text().await.unwrap();
    assert!(body.contains("reserved"), "{body}");
    let r = app
        .http
        .get(format!("{}submissions", app.url))
        .header("Authorization", format!("token {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

/// A burst through XQueue with JupyterHub submissions interleaved, XQueue restarted in the
/// middle: both doors served, every grade what the notebook earns (a bare `otter run` of
/// the demo notebooks gives correct 5/5 and partial 3/5: scripts/build-demo-course.sh).
#[tokio::test]
async fn a_burst_through_both_doors_with_xqueue_restarted_midway_grades_everyone_right() {
    let dir = tempfile::tempdir().unwrap();
    let mut xq = Xqueue::start(dir.path());
    let db = dir.path().join("otter.db");
    let app = spawn_app_with(|s| settings(s, &xq, &db)).await;
    let mut learners = Vec::new();
    let mut hub_subs = Vec::new();
    for i in 0..21 {
        let (nb, points) = if i % 3 == 0 {
            ("partial", 3.0)
        } else {
            ("correct", 5.0)
        };
        let m = xq
            .submit(&format!("anonburst{i}"), GRADER, "lab.ipynb", &bytes(nb))
            .await;
        learners.push((m["submission_id"].clone(), points));
        if i % 3 == 1 {
            let token = hub().user_token(&format!("xq-burst-hub{i}"), None).await;
            let id = app.submit_ok(&token, &sample(nb)).await;
            hub_subs.push((token, id, points));
        }
        if i == 10 {
            xq.restart();
        }
    }
    for (id, points) in &learners {
        let row = wait_status(&xq, id, "retired").await;
        assert_eq!(
            row["score"]["points_earned"].as_f64(),
            Some(*points),
            "{row}"
        );
    }
    for (token, id, points) in &hub_subs {
        let v = app.wait_done(token, *id, Duration::from_secs(120)).await;
        assert_eq!(v["grade"]["score"].as_f64(), Some(*points), "{v}");
    }
    assert_eq!(
        db_count(
            &db,
            "SELECT COUNT(*) FROM submissions WHERE user LIKE 'xqueue:%'"
        ),
        21,
        "one submission per learner"
    );
}
