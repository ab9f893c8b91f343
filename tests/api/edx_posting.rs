//! Posting grades to edX through the service, with edX's own outcome handler as the
//! receiving end (tests/support/edx_stand_in.py).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use serde_json::Value;

use crate::edx::{KEY, SECRET, StandIn};
use crate::helpers::{ServiceProcess, cli, port, sample, spawn_app_with, submit_to, wait_done};
use crate::hub::hub;
use otter_service::secret::Secret;
use otter_service::settings::Settings;

pub fn lti(s: &mut Settings, edx: &StandIn, secret: &str) {
    s.lti.edx_url = edx.base.to_string();
    s.lti.consumer_key = KEY.into();
    s.lti.consumer_secret = Secret::new(secret);
    s.lti.timeout_secs = 2;
    s.lti.retry_max_secs = 4;
    s.grading.retry_base_secs = 1;
}

fn count(db: &std::path::Path, sql: &str) -> i64 {
    Connection::open(db)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

/// Poll a submission until its grade's post_state is `state`.
pub async fn wait_post(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    id: i64,
    state: &str,
) -> Value {
    let start = Instant::now();
    loop {
        let v = wait_done(http, url, token, id, Duration::from_secs(120)).await;
        if v["grade"]["post_state"] == state {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "post never {state}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_grade_reaches_edx_with_user_and_score_and_the_student_sees_it() {
    let edx = StandIn::start(&[]);
    let app = spawn_app_with(|s| lti(s, &edx, SECRET)).await;
    let token = hub().user_token("quinn", None).await;
    let id = app.submit_ok(&token, &sample("partial")).await;
    let v = wait_post(&app.http, &app.url, &token, id, "posted").await;
    assert_eq!(v["grade"]["score"], 3.0);
    let scores = edx.scores().await;
    assert_eq!(scores.len(), 1, "{scores:?}");
    assert_eq!(
        (scores[0]["user"].as_str(), scores[0]["score"].as_f64()),
        (Some("quinn"), Some(0.6))
    );
    assert_eq!(scores[0]["block_id"], "0123456789abcdef0123456789abcdef");
    let html = app
        .http
        .get(format!("{}submissions/{id}", app.url))
        .header("Authorization", format!("token {token}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Your score has reached edX."), "{html}");
}

#[tokio::test]
async fn a_refused_post_is_dead_with_edx_reason_and_grading_is_not_rerun() {
    let edx = StandIn::start(&[]);
    let app = spawn_app_with(|s| lti(s, &edx, "wrong-secret")).await;
    let token = hub().user_token("rosa", None).await;
    let id = app.submit_ok(&token, &sample("correct")).await;
    let v = wait_post(&app.http, &app.url, &token, id, "dead").await;
    let detail = v["grade"]["post_detail"].as_str().unwrap();
    assert!(
        detail.contains("OAuth signature verification has failed"),
        "{detail}"
    );
    assert!(edx.scores().await.is_empty());
    assert_eq!(count(&app.db_path, "SELECT COUNT(*) FROM grades"), 1);
    assert_eq!(
        count(
            &app.db_path,
            "SELECT MAX(attempts) FROM jobs WHERE kind = 'grade'"
        ),
        1
    );
}

#[tokio::test]
async fn an_edx_outage_loses_no_grade_and_posts_each_once() {
    let mut edx = StandIn::start(&[]);
    let edx_port = edx.base.port().unwrap();
    let app = spawn_app_with(|s| {
        lti(s, &edx, SECRET);
        s.grading.workers = 2;
    })
    .await;
    edx.stop(); // connection refused
    let mut ids = Vec::new();
    for i in 0..30 {
        let token = hub().user_token(&format!("outage{i}"), None).await;
        ids.push((app.submit_ok(&token, &sample("correct")).await, token));
    }
    tokio::time::sleep(Duration::from_secs(20)).await;
    let edx = StandIn::start_on(&[], edx_port);
    edx.set_mode("500").await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    edx.set_mode("hang").await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    let pending = count(
        &app.db_path,
        "SELECT COUNT(*) FROM grades WHERE post_state = 'pending'",
    );
    assert!(
        pending > 0,
        "some posts are still waiting when edX recovers"
    );
    edx.set_mode("ok").await;
    for (id, token) in &ids {
        let v = wait_post(&app.http, &app.url, token, *id, "posted").await;
        assert_eq!(v["grade"]["score"], 5.0);
    }
    let scores = edx.scores().await;
    let users: BTreeSet<&str> = scores.iter().map(|s| s["user"].as_str().unwrap()).collect();
    assert_eq!(
        scores.len(),
        30,
        "each grade posted exactly once: {scores:?}"
    );
    assert_eq!(users.len(), 30);
    assert!(scores.iter().all(|s| s["score"] == 1.0));
    assert_eq!(count(&app.db_path, "SELECT COUNT(*) FROM grades"), 30);
    assert_eq!(
        count(
            &app.db_path,
            "SELECT MAX(attempts) FROM jobs WHERE kind = 'grade'"
        ),
        1,
        "no grade re-run"
    );
    let retries = count(
        &app.db_path,
        "SELECT MAX(attempts) FROM jobs WHERE kind = 'post_score'",
    );
    eprintln!("outage test: 30 graded once, 30 posted once, up to {retries} tries per post");
}

fn lti_toml(edx: &StandIn, secret: &str) -> String {
    format!(
        "workers = 1\n[lti]\nedx_url = \"{}\"\nconsumer_key = \"{KEY}\"\nconsumer_secret = \"{secret}\"\n\
         timeout_secs = 2\nretry_max_secs = 2\n",
        edx.base
    )
}

#[tokio::test]
async fn kill_9_between_grading_and_posting_still_posts_once() {
    let mut edx = StandIn::start(&[]);
    let edx_port = edx.base.port().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = port();
    let toml = ServiceProcess::toml(
        dir.path(),
        p,
        &hub().api_url,
        "unused",
        &lti_toml(&edx, SECRET),
    );
    edx.stop();
    let mut service = ServiceProcess::start(dir.path(), p, &toml);
    let token = hub().user_token("sam", None).await;
    let http = reqwest::Client::new();
    let id = submit_to(&http, &service.url(), &token, &sample("correct")).await;
    let v = wait_done(&http, &service.url(), &token, id, Duration::from_secs(120)).await;
    assert_eq!(
        v["grade"]["post_state"], "pending",
        "graded, post waiting: {v}"
    );
    service.kill9();
    let edx = StandIn::start_on(&[], edx_port);
    service.restart();
    let v = wait_post(&http, &service.url(), &token, id, "posted").await;
    assert_eq!(v["grade"]["score"], 5.0);
    let scores = edx.scores().await;
    assert_eq!(scores.len(), 1, "posted once after the restart: {scores:?}");
    assert_eq!(count(&service.db_path, "SELECT COUNT(*) FROM grades"), 1);
}

#[tokio::test]
async fn repost_sends_a_dead_post_again_and_status_shows_the_queue() {
    let edx = StandIn::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let p = port();
    let api = hub().api_url.clone();
    let wrong = ServiceProcess::toml(dir.path(), p, &api, "unused", &lti_toml(&edx, "wrong"));
    let service = ServiceProcess::start(dir.path(), p, &wrong);
    let token = hub().user_token("tess", None).await;
    let http = reqwest::Client::new();
    let id = submit_to(&http, &service.url(), &token, &sample("partial")).await;
    wait_post(&http, &service.url(), &token, id, "dead").await;
    drop(service);
    let status = cli(&dir.path().join("otter.db"), &["status"]);
    assert!(
        status.contains("post_score") && status.contains("dead"),
        "{status}"
    );
    // Fixed the secret: start again with it, and re-queue the dead post.
    let right = ServiceProcess::toml(dir.path(), p, &api, "unused", &lti_toml(&edx, SECRET));
    let service = ServiceProcess::start(dir.path(), p, &right);
    let out = cli(&service.db_path, &["repost"]);
    assert!(out.contains("queued 1 grade"), "{out}");
    wait_post(&http, &service.url(), &token, id, "posted").await;
    let scores = edx.scores().await;
    assert_eq!(scores.len(), 1);
    assert_eq!(scores[0]["score"], 0.6);
}
