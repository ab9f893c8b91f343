//! edX ends with the score that counts, whatever order grades and posts finish in, with
//! edX's own outcome handler as the receiver (tests/support/edx_stand_in.py).

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use serde_json::Value;

use crate::edx::{SECRET, StandIn};
use crate::edx_posting::{lti, wait_post};
use crate::helpers::{cli, sample, spawn_app_with};
use crate::hub::hub;
use otter_service::db::states::ScorePolicy;

/// A sample notebook that first sleeps `secs` seconds (then earns what the sample earns).
pub fn slow(name: &str, secs: u64) -> Value {
    let mut nb = sample(name);
    let cell = serde_json::json!({
        "cell_type": "code", "execution_count": null, "id": "slow0001", "metadata": {},
        "outputs": [], "source": [format!("import time\ntime.sleep({secs})")],
    });
    nb["cells"].as_array_mut().unwrap().insert(0, cell);
    nb
}

fn count(db: &Path, sql: &str) -> i64 {
    Connection::open(db)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

/// Wait until no post is waiting or running and no grade waits for one.
pub async fn posts_settled(db: &Path) {
    let start = Instant::now();
    loop {
        let busy = count(
            db,
            "SELECT (SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running'))
                  + (SELECT COUNT(*) FROM grades WHERE post_state = 'pending')",
        );
        if busy == 0 {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "posts never settled"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn edx_holds_the_newest_submission_when_an_older_one_finishes_last_and_after_a_regrade() {
    let edx = StandIn::start(&[]);
    let app = spawn_app_with(|s| {
        lti(s, &edx, SECRET);
        s.grading.workers = 2;
    })
    .await;
    let token = hub().user_token("uma", None).await;
    // A earns 3/5 and takes 12 s longer; B, submitted a second later, earns 5/5.
    let a = app.submit_ok(&token, &slow("partial", 12)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let b = app.submit_ok(&token, &sample("correct")).await;
    wait_post(&app.http, &app.url, &token, b, "posted").await;
    let (_, va) = app.status(&token, a).await;
    assert_ne!(va["state"], "graded", "B finished first: {va}");
    let va = app.wait_done(&token, a, Duration::from_secs(120)).await;
    assert_eq!(va["grade"]["score"], 3.0);
    posts_settled(&app.db_path).await;
    assert_eq!(
        edx.holds("uma").await,
        Some(1.0),
        "{:?}",
        edx.scores().await
    );
    let (_, va) = app.status(&token, a).await;
    let (_, vb) = app.status(&token, b).await;
    assert_eq!(vb["grade"]["counts"], true, "{vb}");
    assert_eq!(va["grade"]["counts"], false, "{va}");
    assert_eq!(va["grade"]["post_state"], "superseded", "{va}");

    // Staff regrade the older submission: its new grade does not displace B's on edX.
    let out = cli(&app.db_path, &["regrade", "--id", &a.to_string()]);
    assert!(out.contains("queued 1 submission"), "{out}");
    let start = Instant::now();
    while count(
        &app.db_path,
        &format!("SELECT COUNT(*) FROM grades WHERE submission_id = {a}"),
    ) < 2
    {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "regrade never ran"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    posts_settled(&app.db_path).await;
    assert_eq!(
        edx.holds("uma").await,
        Some(1.0),
        "{:?}",
        edx.scores().await
    );
    let regrade_event = count(
        &app.db_path,
        &format!(
            "SELECT COUNT(*) FROM events WHERE submission_id = {a}
               AND event = 'regrade_requested' AND detail LIKE 'staff (%'"
        ),
    );
    assert_eq!(regrade_event, 1, "the regrade is recorded with who asked");
}

#[tokio::test]
async fn under_best_edx_holds_the_highest_grade() {
    let edx = StandIn::start(&[]);
    let app = spawn_app_with(|s| {
        lti(s, &edx, SECRET);
        s.lti.post_score = ScorePolicy::Best;
    })
    .await;
    let token = hub().user_token("vic", None).await;
    let first = app.submit_ok(&token, &sample("correct")).await;
    wait_post(&app.http, &app.url, &token, first, "posted").await;
    let second = app.submit_ok(&token, &sample("partial")).await;
    app.wait_done(&token, second, Duration::from_secs(120))
        .await;
    posts_settled(&app.db_path).await;
    assert_eq!(
        edx.holds("vic").await,
        Some(1.0),
        "{:?}",
        edx.scores().await
    );
    let (_, v) = app.status(&token, second).await;
    assert_eq!(v["grade"]["counts"], false, "{v}");
    let (_, v) = app.status(&token, first).await;
    assert_eq!(v["grade"]["counts"], true, "{v}");
    assert_eq!(v["grade"]["post_state"], "posted", "{v}");
}

#[tokio::test]
async fn a_slow_edx_answer_never_lets_an_older_score_land_last() {
    let edx = StandIn::start(&[]);
    let app = spawn_app_with(|s| {
        lti(s, &edx, SECRET);
        s.lti.timeout_secs = 40;
        s.grading.workers = 2;
    })
    .await;
    let token = hub().user_token("wes", None).await;
    // edX sits on the first post (A's 0.6) for 15 s...
    edx.set_mode("slow-once:15").await;
    let a = app.submit_ok(&token, &sample("partial")).await;
    let start = Instant::now();
    while edx.received().await < 1 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "A's post never sent"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ...while B is graded and wants its own post.
    let b = app.submit_ok(&token, &sample("correct")).await;
    let vb = app.wait_done(&token, b, Duration::from_secs(60)).await;
    assert_eq!(vb["grade"]["score"], 5.0);
    posts_settled(&app.db_path).await;
    let scores = edx.scores().await;
    assert_eq!(edx.holds("wes").await, Some(1.0), "{scores:?}");
    let (_, va) = app.status(&token, a).await;
    assert_eq!(va["grade"]["post_state"], "superseded", "{va}");
}
