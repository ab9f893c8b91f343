//! Faults on our side are never charged to students: a broken autograder, a service that
//! crashes on a submission, a grading container removed mid-run, the engine stopped
//! mid-run. Each ends either graded (after retries) or `dead` for staff, never as a 0.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::docker::{ENGINE, runner};
use crate::edx::{SECRET, StandIn};
use crate::edx_order::{posts_settled, slow};
use crate::edx_posting::lti;
use crate::helpers::course_with_zip;
use crate::helpers::{
    ServiceProcess, cli, port, repo_path, sample, spawn_app_with, spawn_app_with_runner, submit_to,
    wait_done,
};
use crate::hub::hub;
use otter_service::grading::Runner;

fn count(db: &Path, sql: &str) -> i64 {
    Connection::open(db)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn a_broken_autograder_charges_nobody_posts_nothing_and_staff_see_it() {
    let edx = StandIn::start(&[]);
    let course = tempfile::tempdir().unwrap();
    // A half-copied upload: the first 1,000 bytes of the real zip.
    let good = std::fs::read(repo_path(
        "course_config/materials/demo/demo1-autograder.zip",
    ))
    .unwrap();
    course_with_zip(course.path(), &good[..1000]);
    let app = spawn_app_with(|s| {
        lti(s, &edx, SECRET);
        s.course.config = course.path().join("course-config.json");
        s.course.materials_root = course.path().join("materials");
        s.grading.max_attempts = 2;
        s.grading.workers = 2;
    })
    .await;
    let mut subs = Vec::new();
    for name in ["xia", "yan", "zed"] {
        let token = hub().user_token(name, None).await;
        subs.push((app.submit_ok(&token, &sample("correct")).await, token));
    }
    for (id, token) in &subs {
        let v = app.wait_done(token, *id, Duration::from_secs(120)).await;
        assert_eq!(v["state"], "dead", "{v}");
        assert!(v["grade"].is_null(), "no grade stored: {v}");
        let message = v["message"].as_str().unwrap();
        assert!(message.contains("problem on our side"), "{v}");
        assert!(
            !message.contains("materials") && !message.contains(".zip"),
            "no internals: {v}"
        );
    }
    assert_eq!(count(&app.db_path, "SELECT COUNT(*) FROM grades"), 0);
    assert!(edx.scores().await.is_empty(), "nothing posted to edX");
    let (_, health) = app.healthz().await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(
        health["broken_autograders"][0]["assignment"], "demo1",
        "{health}"
    );
    let status = cli(&app.db_path, &["status"]);
    assert!(status.contains("broken autograders: 1"), "{status}");
    assert!(status.contains("not a readable zip"), "{status}");

    // Staff put the right zip in place and regrade the dead submissions.
    std::fs::write(
        course.path().join("materials/demo/demo1-autograder.zip"),
        &good,
    )
    .unwrap();
    let out = cli(&app.db_path, &["regrade", "--dead"]);
    assert!(out.contains("queued 3 submission"), "{out}");
    for (id, token) in &subs {
        let v = app.wait_done(token, *id, Duration::from_secs(180)).await;
        assert_eq!(v["grade"]["score"], 5.0, "{v}");
    }
    posts_settled(&app.db_path).await;
    assert_eq!(edx.scores().await.len(), 3);
    let status = cli(&app.db_path, &["status"]);
    assert!(status.contains("broken autograders: none"), "{status}");
}

#[tokio::test]
async fn a_submission_that_crashes_the_service_in_every_attempt_ends_dead() {
    let dir = tempfile::tempdir().unwrap();
    let p = port();
    let toml = ServiceProcess::toml(dir.path(), p, &hub().api_url, "unused", "max_attempts = 2");
    let mut service = ServiceProcess::start(dir.path(), p, &toml);
    let token = hub().user_token("crashy", None).await;
    let http = reqwest::Client::new();
    let id = submit_to(&http, &service.url(), &token, &slow("correct", 60)).await;
    let attempts = format!(
        "SELECT COALESCE(MAX(attempts), 0) FROM jobs WHERE submission_id = {id} AND state = 'running'"
    );
    for attempt in 1..=2 {
        // The service dies while grading it (as a crash would), and is started again.
        let start = Instant::now();
        while count(&service.db_path, &attempts) < attempt {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "attempt {attempt} never started"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        service.restart();
    }
    let v = wait_done(&http, &service.url(), &token, id, Duration::from_secs(60)).await;
    assert_eq!(v["state"], "dead", "{v}");
    assert!(v["grade"].is_null(), "{v}");
    let why: String = Connection::open(&service.db_path)
        .unwrap()
        .query_row(
            &format!("SELECT last_error FROM jobs WHERE submission_id = {id}"),
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(why.contains("stopped while working"), "{why}");
    // The service goes on grading others.
    let ok = submit_to(&http, &service.url(), &token, &sample("partial")).await;
    let v = wait_done(&http, &service.url(), &token, ok, Duration::from_secs(120)).await;
    assert_eq!(v["grade"]["score"], 3.0, "{v}");
}

/// The id of the running grading container of submission `id`, once there is one.
async fn container_of(id: i64) -> String {
    let start = Instant::now();
    loop {
        let out = Command::new("docker")
            .args(["ps", "-q", "--filter"])
            .arg(format!("label=otter-service.submission={id}"))
            .output()
            .unwrap();
        let found = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !found.is_empty() {
            return found;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no container for {id}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_container_removed_mid_run_is_retried_not_charged() {
    let _shared = ENGINE.read().await;
    let edx = StandIn::start(&[]);
    let runner: Arc<dyn Runner> = Arc::new(runner().await);
    let app = spawn_app_with_runner(|s| lti(s, &edx, SECRET), Some(runner)).await;
    let token = hub().user_token("ramon", None).await;
    let id = app.submit_ok(&token, &slow("correct", 10)).await;
    let container = container_of(id).await;
    let rm = Command::new("docker")
        .args(["rm", "-f", &container])
        .output()
        .unwrap();
    assert!(rm.status.success());
    let v = app.wait_done(&token, id, Duration::from_secs(180)).await;
    assert_eq!(v["grade"]["score"], 5.0, "graded on a later attempt: {v}");
    assert!(v["attempts"].as_i64().unwrap() >= 2, "{v}");
    assert_eq!(
        count(&app.db_path, "SELECT COUNT(*) FROM grades"),
        1,
        "no 0 stored"
    );
    posts_settled(&app.db_path).await;
    let scores = edx.scores().await;
    assert_eq!(scores.len(), 1, "{scores:?}");
    assert_eq!(scores[0]["score"], 1.0);
}

#[tokio::test]
async fn the_engine_stopped_mid_run_is_retried_not_charged() {
    let _exclusive = ENGINE.write().await;
    let runner: Arc<dyn Runner> = Arc::new(runner().await);
    let app = spawn_app_with_runner(
        |s| {
            s.grading.max_attempts = 100;
        },
        Some(runner),
    )
    .await;
    let token = hub().user_token("stella", None).await;
    let id = app.submit_ok(&token, &slow("correct", 10)).await;
    container_of(id).await;
    let pid: i32 = std::fs::read_to_string("/run/otter-dockerd.pid")
        .expect("the engine must have been started by scripts/start-docker.sh (its pidfile)")
        .trim()
        .parse()
        .unwrap();
    // SAFETY: stopping the engine our own script started, by its PID.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let start = Instant::now();
    loop {
        let (_, v) = app.status(&token, id).await;
        if v["attempts"].as_i64().unwrap_or(0) >= 2 || v["state"] == "queued" {
            assert!(
                v["grade"].is_null(),
                "nothing charged while the engine is down: {v}"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not retried: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The engine stops its containers before it exits; start it again only after.
    // SAFETY: signal 0 only asks whether our engine's process still exists.
    while unsafe { libc::kill(pid, 0) } == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "the engine did not stop"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let up = Command::new("bash")
        .arg(repo_path("scripts/start-docker.sh"))
        .status()
        .unwrap();
    assert!(up.success(), "engine restarted");
    let v = app.wait_done(&token, id, Duration::from_secs(240)).await;
    assert_eq!(v["state"], "graded", "{v}");
    assert_eq!(v["grade"]["score"], 5.0, "{v}");
    assert_eq!(count(&app.db_path, "SELECT COUNT(*) FROM grades"), 1);
}
