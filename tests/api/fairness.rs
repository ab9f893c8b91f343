//! Fair and safe under abuse: round-robin turns across students, a per-student cap,
//! identical resubmissions, and never grading outside the sandbox by accident.

use std::time::{Duration, Instant};

use rusqlite::Connection;
use serde_json::Value;

use crate::helpers::{ServiceProcess, copy_of, port, sample, spawn_app_with, submit_to};
use crate::hub::hub;

#[tokio::test]
async fn five_students_are_graded_before_a_hogs_third_submission() {
    let app = spawn_app_with(|s| s.grading.workers = 1).await;
    let hog = hub().user_token("hog", None).await;
    let nb = sample("correct");
    let mut hogs = Vec::new();
    for i in 0..30 {
        hogs.push(app.submit_ok(&hog, &copy_of(&nb, i)).await);
    }
    let mut others = Vec::new();
    for name in ["ann", "ben", "cal", "dot", "eli"] {
        let token = hub().user_token(name, None).await;
        others.push((app.submit_ok(&token, &nb).await, token));
    }
    let mut last_other = 0;
    for (id, token) in &others {
        let v = app.wait_done(token, *id, Duration::from_secs(240)).await;
        assert_eq!(v["grade"]["score"], 5.0, "{v}");
        last_other = last_other.max(v["grade"]["id"].as_i64().unwrap());
    }
    let (_, third) = app.status(&hog, hogs[2]).await;
    let third_grade = third["grade"]["id"].as_i64();
    assert!(
        third_grade.is_none_or(|g| g > last_other),
        "the hog's 3rd was graded before another student's: {third}"
    );
}

#[tokio::test]
async fn the_per_student_cap_answers_429_and_an_identical_resubmission_is_the_same() {
    let app = spawn_app_with(|s| {
        s.grading.workers = 0;
        s.grading.max_queued_per_student = 2;
    })
    .await;
    let token = hub().user_token("pat", None).await;
    let nb = sample("partial");
    let first = app.submit_ok(&token, &nb).await;
    // The student presses Submit again on the same notebook.
    let r = app.submit(&token, &nb).await;
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["submission_id"].as_i64(), v["duplicate"].as_bool()),
        (Some(first), Some(true))
    );
    assert!(
        v["message"].as_str().unwrap().contains("already waiting"),
        "{v}"
    );
    app.submit_ok(&token, &copy_of(&nb, 2)).await;
    let r = app.submit(&token, &copy_of(&nb, 3)).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "30");
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("2 submissions waiting"),
        "{v}"
    );
    assert_eq!(app.list(&token).await.len(), 2, "nothing else stored");
    // Other students are not affected.
    let other = hub().user_token("quin", None).await;
    app.submit_ok(&other, &nb).await;
}

#[tokio::test]
async fn with_the_engine_unreachable_at_start_nothing_is_graded_locally_until_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let sock_dir = tempfile::tempdir().unwrap();
    let sock = sock_dir.path().join("docker.sock");
    let p = port();
    let extra = format!("\n[docker]\nhost = \"unix://{}\"\n", sock.display());
    let toml = ServiceProcess::toml(dir.path(), p, &hub().api_url, "unused", &extra)
        .replace("runner = \"local\"", "runner = \"auto\"");
    let service = ServiceProcess::start_unready(dir.path(), p, &toml);
    let health = reqwest::get(format!("http://127.0.0.1:{p}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), 503);
    let h: Value = health.json().await.unwrap();
    assert_eq!(h["runner"]["name"], "docker", "auto never means local: {h}");
    assert!(
        h["runner"]["detail"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{h}"
    );
    let token = hub().user_token("rae", None).await;
    let http = reqwest::Client::new();
    let id = submit_to(&http, &service.url(), &token, &sample("correct")).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let db = Connection::open(&service.db_path).unwrap();
    let (state, attempts): (String, i64) = db
        .query_row(
            "SELECT s.state, j.attempts FROM submissions s JOIN jobs j ON j.submission_id = s.id
             WHERE s.id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (state.as_str(), attempts),
        ("queued", 0),
        "it waits, unattempted"
    );
    // The engine comes back (here: its socket appears where the service looks).
    let _shared = crate::docker::ENGINE.read().await;
    crate::docker::runner().await;
    std::os::unix::fs::symlink("/var/run/docker.sock", &sock).unwrap();
    let start = Instant::now();
    loop {
        let s: String = db
            .query_row("SELECT state FROM submissions WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap();
        if s == "graded" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "not graded: {s}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let health = reqwest::get(format!("http://127.0.0.1:{p}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn old_notebooks_are_pruned_by_the_running_service_and_grades_kept() {
    use otter_service::db::states::SubmissionState;
    use otter_service::db::submissions::{NewSubmission, accept, set_state};
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("otter.db");
    {
        let mut c = Connection::open(&db_path).unwrap();
        otter_service::db::migrations_apply(&mut c).unwrap();
        let long_ago = otter_service::db::now_ms() - 400 * 86_400_000;
        let s = NewSubmission {
            user: "old".into(),
            course: "demo".into(),
            section: "1".into(),
            assignment: "demo1".into(),
            notebook: b"{\"cells\": []}".to_vec(),
            notebook_path: None,
        };
        let id = accept(&c, &s, 3, long_ago).unwrap();
        set_state(&c, id, SubmissionState::Graded, None).unwrap();
        c.execute("UPDATE jobs SET state = 'done'", []).unwrap();
    }
    let p = port();
    let toml = ServiceProcess::toml(dir.path(), p, &hub().api_url, "unused", "");
    let _service = ServiceProcess::start(dir.path(), p, &toml);
    let c = Connection::open(&db_path).unwrap();
    let start = Instant::now();
    loop {
        let (len, pruned): (i64, Option<i64>) = c
            .query_row(
                "SELECT length(notebook), pruned_at FROM submissions WHERE user = 'old'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        if len == 0 {
            assert!(pruned.is_some());
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not pruned at start"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let kept: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM submissions WHERE user = 'old'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kept, 1, "the submission itself stays");
}

#[test]
fn a_misspelt_course_config_key_stops_the_service_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("course-config.json");
    std::fs::write(
        &config,
        r#"{"demo": {"1": {"course_id": "c", "subpath_to_zips": "demo", "time_limit": 30,
            "assignments": {"demo1": "b"}}}}"#,
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_otter-service"))
        .arg("serve")
        .env("OTTER_COURSE__CONFIG", &config)
        .env("OTTER_DATABASE__PATH", dir.path().join("otter.db"))
        .env("OTTER_SERVER__BIND", "127.0.0.1:0")
        .env("OTTER_GRADING__RUNNER", "local")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("course-config.json"), "{err}");
    assert!(err.contains("demo.1.time_limit"), "{err}");
}

/// What the Submit button shows while a notebook waits: the 202 and `GET submissions/{id}`
/// give one view under the same field names, with the place in line and the page's URL.
#[tokio::test]
async fn a_waiting_submission_knows_its_place_in_line() {
    let app = spawn_app_with(|s| s.grading.workers = 0).await;
    let hog = hub().user_token("lou", None).await;
    let ann = hub().user_token("mia", None).await;
    let nb = sample("partial");
    let r = app.submit(&hog, &nb).await;
    assert_eq!(r.status(), 202);
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["state"], "queued", "{first}");
    assert_eq!(first["queue"]["position"], 1, "{first}");
    assert_eq!(first["assignment"], "demo1", "{first}");
    let id = first["submission_id"].as_i64().unwrap();
    assert_eq!(first["id"], id);
    assert!(
        first["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/submissions/{id}"))
            && first["url"] == first["status_url"],
        "{first}"
    );
    app.submit_ok(&hog, &copy_of(&nb, 1)).await;
    // Round-robin: another student's first submission goes before the hog's second.
    let r = app.submit(&ann, &nb).await;
    let theirs: Value = r.json().await.unwrap();
    assert_eq!(theirs["queue"]["position"], 2, "{theirs}");
    let (_, again) = app.status(&hog, id).await;
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.retain(|k| {
            !["submission_id", "status_url", "duplicate", "message"].contains(&k.as_str())
        });
        k.sort();
        k
    };
    assert_eq!(keys(&again), keys(&first), "one set of field names");
    assert_eq!(again["queue"]["position"], 1, "{again}");
    assert!(
        again["queue"]["expected_wait_secs"].is_null(),
        "nothing graded yet: {again}"
    );
    let page = app.page(&hog, id).await;
    assert!(page.contains("Next in line."), "{page}");
}
