//! Crash safety: `kill -9` while grading loses nothing and grades each submission once.

use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::helpers::{ServiceProcess, copy_of, port, sample, submit_to, wait_done};
use crate::hub::hub;

fn count(db: &std::path::Path, sql: &str) -> i64 {
    let c = Connection::open(db).unwrap();
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[tokio::test]
async fn kill_9_mid_grading_loses_nothing_and_grades_each_once() {
    let dir = tempfile::tempdir().unwrap();
    let p = port();
    let toml = ServiceProcess::toml(dir.path(), p, &hub().api_url, "unused", "workers = 2");
    let mut service = ServiceProcess::start(dir.path(), p, &toml);
    let token = hub().user_token("mallory", None).await;
    let http = reqwest::Client::new();
    let nb = sample("correct");
    let mut ids = Vec::new();
    for i in 0..50 {
        ids.push(submit_to(&http, &service.url(), &token, &copy_of(&nb, i)).await);
    }
    // Wait until some are graded and others are mid-grading, then kill -9.
    let start = Instant::now();
    while count(&service.db_path, "SELECT COUNT(*) FROM grades") < 3 {
        assert!(start.elapsed() < Duration::from_secs(120), "nothing graded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let running = count(
        &service.db_path,
        "SELECT COUNT(*) FROM jobs WHERE state = 'running'",
    );
    assert!(running > 0, "some jobs must be mid-grading when killed");
    service.kill9();
    let graded_before = count(&service.db_path, "SELECT COUNT(*) FROM grades");
    service.restart();
    for id in &ids {
        let v = wait_done(&http, &service.url(), &token, *id, Duration::from_secs(600)).await;
        assert_eq!(v["state"], "graded", "{v}");
        assert_eq!(v["grade"]["score"], 5.0);
    }
    assert_eq!(
        count(&service.db_path, "SELECT COUNT(*) FROM submissions"),
        50
    );
    assert_eq!(
        count(&service.db_path, "SELECT COUNT(*) FROM grades"),
        50,
        "one grade row each"
    );
    assert_eq!(
        count(
            &service.db_path,
            "SELECT COUNT(DISTINCT submission_id) FROM grades"
        ),
        50
    );
    let retried = count(
        &service.db_path,
        "SELECT COUNT(*) FROM jobs WHERE attempts > 1",
    );
    assert!(
        retried >= running,
        "the interrupted jobs ran again ({retried} < {running})"
    );
    eprintln!(
        "crash test: {graded_before} graded before kill -9, {running} interrupted, all 50 graded once"
    );
}
