//! Grading through the local runner: time limits and partial credit.

use std::time::{Duration, Instant};

use crate::helpers::{sample, spawn_app_with};
use crate::hub::hub;

#[tokio::test]
async fn an_infinite_loop_is_killed_at_the_limit_and_the_next_submission_grades() {
    let app = spawn_app_with(|s| {
        s.grading.time_limit_secs = 15;
        s.grading.workers = 1;
    })
    .await;
    let token = hub().user_token("leo", None).await;
    let start = Instant::now();
    let looping = app.submit_ok(&token, &sample("infinite_loop")).await;
    let next = app.submit_ok(&token, &sample("partial")).await;
    let v = app
        .wait_done(&token, looping, Duration::from_secs(60))
        .await;
    assert_eq!(v["state"], "failed", "{v}");
    assert_eq!(v["grade"]["status"], "timeout");
    assert_eq!(v["grade"]["score"], 0.0);
    let msg = v["message"].as_str().unwrap();
    assert!(msg.contains("time limit of 15 seconds"), "{msg}");
    assert!(
        start.elapsed() < Duration::from_secs(45),
        "killed near the limit, not later"
    );
    let v = app.wait_done(&token, next, Duration::from_secs(60)).await;
    assert_eq!(v["state"], "graded", "{v}");
    assert!(v["grade"]["score"].as_f64().unwrap() > 0.0);
    assert!(v["grade"]["score"].as_f64().unwrap() < v["grade"]["max_score"].as_f64().unwrap());
}

/// Staff read a submission's timeline: every phase, in order, with the time it took.
#[tokio::test]
async fn the_timeline_has_every_phase_of_a_graded_submission_in_order() {
    let app = spawn_app_with(|s| s.grading.workers = 1).await;
    let token = hub().user_token("tim", None).await;
    let id = app.submit_ok(&token, &sample("correct")).await;
    let v = app.wait_done(&token, id, Duration::from_secs(60)).await;
    assert_eq!(v["state"], "graded", "{v}");
    let out = crate::helpers::cli(&app.db_path, &["timeline", &id.to_string()]);
    let phases: Vec<&str> = out
        .lines()
        .map(|l| l.split_whitespace().nth(2).unwrap_or(""))
        .collect();
    assert_eq!(
        phases,
        [
            "submitted",
            "job_queued",
            "job_claimed",
            "container_started",
            "grading_finished",
            "job_done",
            "graded"
        ],
        "{out}"
    );
    // Each line's delta is the time since the previous phase; they add up to the whole.
    let total: f64 = out
        .lines()
        .map(|l| {
            l.split_whitespace()
                .nth(1)
                .unwrap()
                .trim_end_matches('s')
                .parse::<f64>()
                .unwrap()
        })
        .sum();
    assert!(total > 0.5 && total < 60.0, "grading took {total}s: {out}");
}
