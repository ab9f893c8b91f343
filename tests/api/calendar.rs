//! The course calendar as students and staff meet it: deadlines judged at the commit's
//! time (the service's clock moved by the test, never slept to), late credit reaching
//! edX's own outcome handler, an extension granted by staff moving a student's score
//! that counts and edX, a closed assignment refusing with its sentence, a regrade that
//! keeps a submission's lateness, an override that survives a regrade, held results
//! released once and in order, students refused every staff action, and the CSV equal to
//! the dashboard.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::edx::{SECRET, StandIn};
use crate::edx_posting::{lti, wait_post};
use crate::helpers::{TestApp, repo_path, sample, spawn_app_with};
use crate::hub::{SERVICE_TOKEN, hub};

/// 2030-01-10T12:00:00Z.
pub const DUE_MS: i64 = 1_894_276_800_000;
pub const HOUR: i64 = 3_600_000;
pub const DAY: i64 = 24 * HOUR;

/// A copy of the demo course whose demo1 has `calendar`.
pub fn course_with_calendar(dir: &Path, calendar: Value) -> PathBuf {
    let config = json!({"demo": {"1": {
        "course_id": "BerkeleyX+Demo1+2026",
        "subpath_to_zips": "demo",
        "staff_group": "demo-staff",
        "assignments": {"demo1": {
            "lti_block": "0123456789abcdef0123456789abcdef",
            "calendar": calendar
        }}
    }}});
    let file = dir.join("course-config.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    file
}

pub fn windows() -> Value {
    json!({
        "due": "2030-01-10T12:00:00Z",
        "late": [{"until": "2030-01-12T12:00:00Z", "credit": 80}]
    })
}

async fn app_with(dir: &Path, calendar: Value, edx: &StandIn) -> TestApp {
    let config = course_with_calendar(dir, calendar);
    spawn_app_with(|s| {
        lti(s, edx, SECRET);
        s.course.config = config;
        s.course.materials_root = repo_path("course_config/materials");
        // The service reads users' groups (staff) with its own token.
        s.hub.api_token = otter_service::secret::Secret::new(SERVICE_TOKEN);
    })
    .await
}

async fn staff_post(
    app: &TestApp,
    token: &str,
    path: &str,
    form: &[(&str, &str)],
) -> (u16, String) {
    let r = app
        .http
        .post(format!("{}{path}", app.url))
        .header("Authorization", format!("token {token}"))
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn get_text(app: &TestApp, token: &str, path: &str) -> (u16, String) {
    let r = app
        .http
        .get(format!("{}{path}", app.url))
        .header("Authorization", format!("token {token}"))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn due_view(app: &TestApp, token: &str) -> Value {
    let (code, body) = get_text(app, token, "calendar/demo/1/demo1").await;
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Wait until edX holds `fraction` for `user`.
async fn edx_holds(edx: &StandIn, user: &str, fraction: f64) {
    let start = Instant::now();
    loop {
        if edx
            .holds(user)
            .await
            .is_some_and(|f| (f - fraction).abs() < 1e-9)
        {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "edX never held {fraction} for {user}: {:?}",
            edx.holds(user).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn deadlines_late_credit_extensions_and_closing_as_students_staff_and_edx_see_them() {
    let dir = tempfile::tempdir().unwrap();
    let edx = StandIn::start(&[]);
    let app = app_with(dir.path(), windows(), &edx).await;
    let (ann, ben, cy) = ("cal-ann", "cal-ben", "cal-cy");
    let ann_t = hub().user_token(ann, None).await;
    let ben_t = hub().user_token(ben, None).await;
    let cy_t = hub().user_token(cy, None).await;
    hub().add_to_group("demo-staff", "cal-staff").await;
    let staff_t = hub().user_token("cal-staff", None).await;

    // Before the deadline the Submit panel's question says how long is left.
    app.clock.set(DUE_MS - 3 * HOUR);
    let before = due_view(&app, &ann_t).await;
    assert_eq!(before["state"], "open");
    assert_eq!(before["credit_now"], 100.0);
    assert!(
        before["sentence"]
            .as_str()
            .unwrap()
            .starts_with("Due 2030-01-10 12:00 (UTC+00:00) (in 3 hours)"),
        "{before}"
    );

    // Two seconds before the deadline: on time, whenever it is graded.
    app.clock.set(DUE_MS - 2000);
    let r = app.submit(&ann_t, &sample("correct")).await;
    assert_eq!(r.status(), 202);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(
        (answer["credit"].as_f64(), answer["late_secs"].as_i64()),
        (Some(100.0), Some(0))
    );
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .ends_with("It is on time."),
        "{answer}"
    );
    assert_eq!(answer["due"]["state"], "open");
    let ann_id = answer["submission_id"].as_i64().unwrap();

    // Two seconds after it: late, 80% credit, and the answer says so.
    app.clock.set(DUE_MS + 2000);
    let r = app.submit(&ben_t, &sample("correct")).await;
    assert_eq!(r.status(), 202);
    let answer: Value = r.json().await.unwrap();
    let ben_id = answer["submission_id"].as_i64().unwrap();
    assert_eq!(answer["credit"].as_f64(), Some(80.0));
    assert!(
        (2..5).contains(&answer["late_secs"].as_i64().unwrap()),
        "{answer}"
    );
    assert_eq!(answer["due"]["state"], "late");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("after your due date: 80% of its score counts"),
        "{answer}"
    );

    // edX gets the credited score; the student's page says why.
    wait_post(&app.http, &app.url, &ann_t, ann_id, "posted").await;
    wait_post(&app.http, &app.url, &ben_t, ben_id, "posted").await;
    edx_holds(&edx, ann, 1.0).await;
    edx_holds(&edx, ben, 0.8).await;
    let page = app.page(&ben_t, ben_id).await;
    assert!(page.contains("This submission came late by"), "{page}");
    assert!(page.contains("With 80% credit"), "{page}");

    // A student is refused every staff calendar action.
    for (path, form) in [
        (
            "staff/extensions",
            vec![
                ("course", "demo"),
                ("section", "1"),
                ("assignment", "demo1"),
                ("users", ben),
                ("days", "1"),
                ("reason", "me"),
            ],
        ),
        (
            "staff/overrides",
            vec![
                ("course", "demo"),
                ("section", "1"),
                ("assignment", "demo1"),
                ("user", ben),
                ("score", "5"),
                ("max_score", "5"),
                ("reason", "me"),
            ],
        ),
        (
            "staff/release",
            vec![
                ("course", "demo"),
                ("section", "1"),
                ("assignment", "demo1"),
            ],
        ),
    ] {
        let (code, _) = staff_post(&app, &ben_t, path, &form).await;
        assert_eq!(code, 403, "{path}");
    }
    assert_eq!(
        app.submit(&ben_t, &sample("correct")).await.status(),
        202,
        "still open to ben"
    );
    let (code, _) = get_text(&app, &ben_t, "staff/assignments/demo/1/demo1").await;
    assert_eq!(code, 403);

    // Staff give ben a day: his late submission is on time now, and edX follows.
    let (code, body) = staff_post(
        &app,
        &staff_t,
        "staff/extensions",
        &[
            ("course", "demo"),
            ("section", "1"),
            ("assignment", "demo1"),
            ("users", ben),
            ("days", "1"),
            ("reason", "illness"),
        ],
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("score that counts 80.0% → 100.0%; sent to the LMS again"),
        "{body}"
    );
    edx_holds(&edx, ben, 1.0).await;
    let ben_due = due_view(&app, &ben_t).await;
    assert_eq!(ben_due["extension_secs"], 86_400);
    assert_eq!(ben_due["state"], "open");
    assert!(
        ben_due["sentence"]
            .as_str()
            .unwrap()
            .contains("with your extension of 1 day"),
        "{ben_due}"
    );

    // Past the last window: closed for cy with its sentence and nothing stored, while ben's
    // extension keeps his late window open.
    app.clock.set(DUE_MS + 2 * DAY + HOUR);
    let r = app.submit(&cy_t, &sample("correct")).await;
    assert_eq!(r.status(), 403);
    let refused: Value = r.json().await.unwrap();
    assert_eq!(
        refused["error"],
        "demo1 closed for submissions at 2030-01-12 12:00 (UTC+00:00); nothing was stored. \
         Ask course staff if you need an extension."
    );
    assert!(app.list(&cy_t).await.is_empty());
    let r = app.submit(&ben_t, &sample("partial")).await;
    assert_eq!(r.status(), 202);
    assert_eq!(r.json::<Value>().await.unwrap()["credit"], 80.0);

    // A regrade after the deadline keeps ann's submission on time.
    let (code, _) = staff_post(
        &app,
        &staff_t,
        "staff/regrade",
        &[("id", &ann_id.to_string())],
    )
    .await;
    assert_eq!(code, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let v = app
        .wait_done(&ann_t, ann_id, Duration::from_secs(120))
        .await;
    assert_eq!(
        (v["credit"].as_f64(), v["late_secs"].as_i64()),
        (Some(100.0), Some(0)),
        "{v}"
    );

    // An override counts instead of ann's grade and survives a regrade.
    let (code, body) = staff_post(
        &app,
        &staff_t,
        "staff/overrides",
        &[
            ("course", "demo"),
            ("section", "1"),
            ("assignment", "demo1"),
            ("user", ann),
            ("score", "2"),
            ("max_score", "5"),
            ("reason", "academic integrity"),
        ],
    )
    .await;
    assert_eq!(code, 200, "{body}");
    edx_holds(&edx, ann, 0.4).await;
    let (code, _) = staff_post(
        &app,
        &staff_t,
        "staff/regrade",
        &[("id", &ann_id.to_string())],
    )
    .await;
    assert_eq!(code, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let v = app
        .wait_done(&ann_t, ann_id, Duration::from_secs(120))
        .await;
    assert_eq!(v["grade"]["score"], 5.0, "the grade itself is kept: {v}");
    wait_post(&app.http, &app.url, &ann_t, ann_id, "posted").await;
    edx_holds(&edx, ann, 0.4).await;
    let ann_due = due_view(&app, &ann_t).await;
    assert_eq!(ann_due["overridden"]["score"], 2.0);
    assert!(
        !ann_due.to_string().contains("academic integrity"),
        "the reason is staff's"
    );

    // The CSV says what the dashboard says.
    let (code, page) = get_text(&app, &staff_t, "staff/assignments/demo/1/demo1").await;
    assert_eq!(code, 200);
    let (code, csv) = get_text(&app, &staff_t, "staff/grades.csv?course=demo&policy=latest").await;
    assert_eq!(code, 200);
    let mut rows = csv::Reader::from_reader(csv.as_bytes());
    let headers = rows.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let mut seen = 0;
    for row in rows.records() {
        let row = row.unwrap();
        let user = &row[col("userid")];
        let counted: f64 = row[col("grade")].parse().unwrap();
        let cell = format!("<td class=\"n counted\">{:.1}%</td>", counted * 100.0);
        let line = page
            .split("<tr>")
            .find(|tr| tr.starts_with(&format!("<td>{user}</td>")) && tr.contains("counted"))
            .unwrap_or_else(|| panic!("{user} not on the dashboard"));
        assert!(
            line.contains(&cell),
            "{user}: CSV {counted}, dashboard {line}"
        );
        seen += 1;
        if user == ben {
            assert_eq!(&row[col("extension_secs")], "86400");
            assert_eq!(
                &row[col("credit")],
                "80",
                "ben's newest came in his late window"
            );
        }
        if user == ann {
            assert_eq!(&row[col("override_score")], "2");
            assert_eq!(&row[col("raw_grade")], "1");
            assert_eq!(&row[col("grade")], "0.4");
        }
    }
    assert_eq!(seen, 2);
    assert!(
        page.contains("extension granted") && page.contains("score overridden"),
        "the log"
    );
}

#[tokio::test]
async fn held_results_stay_back_until_staff_release_them_then_reach_edx_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let edx = StandIn::start(&[]);
    let mut cal = windows();
    cal["hold_results"] = json!("manual");
    let app = app_with(dir.path(), cal, &edx).await;
    app.clock.set(DUE_MS - DAY);
    let users = ["held-zoe", "held-abe"];
    let mut ids = Vec::new();
    let mut tokens = Vec::new();
    for (u, nb) in users.iter().zip(["correct", "partial"]) {
        let t = hub().user_token(u, None).await;
        let id = app.submit_ok(&t, &sample(nb)).await;
        // One after the other, so the grading order is known.
        let v = app.wait_done(&t, id, Duration::from_secs(120)).await;
        assert_eq!(v["state"], "graded");
        assert_eq!(v["grade"], Value::Null, "held: {v}");
        assert_eq!(v["results_held"], true);
        assert!(v["message"].as_str().unwrap().contains("release"), "{v}");
        ids.push(id);
        tokens.push(t);
    }
    // The post ran and held; edX has nothing.
    let start = Instant::now();
    loop {
        let held: i64 = rusqlite::Connection::open(&app.db_path)
            .unwrap()
            .query_row(
                "SELECT COUNT(*) FROM grades WHERE post_state = 'held'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        if held == 2 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the posts never held"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(edx.received().await, 0);
    let page = app.page(&tokens[0], ids[0]).await;
    assert!(!page.contains("Score:"), "{page}");

    hub().add_to_group("demo-staff", "held-staff").await;
    let staff_t = hub().user_token("held-staff", None).await;
    let (code, body) = staff_post(
        &app,
        &staff_t,
        "staff/release",
        &[
            ("course", "demo"),
            ("section", "1"),
            ("assignment", "demo1"),
        ],
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("Released the results of 2 student(s)."),
        "{body}"
    );
    edx_holds(&edx, users[0], 1.0).await;
    edx_holds(&edx, users[1], 0.6).await;
    let (code, body) = staff_post(
        &app,
        &staff_t,
        "staff/release",
        &[
            ("course", "demo"),
            ("section", "1"),
            ("assignment", "demo1"),
        ],
    )
    .await;
    assert_eq!(code, 200);
    assert!(body.contains("released before"), "{body}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let scores = edx.scores().await;
    let order: Vec<&str> = scores.iter().map(|s| s["user"].as_str().unwrap()).collect();
    assert_eq!(order, users, "once each, in the order they were graded");
    let (_, v) = app.status(&tokens[1], ids[1]).await;
    assert_eq!(v["grade"]["score"], 3.0, "{v}");
    assert_eq!(v["results_held"], false);
}

#[tokio::test]
async fn results_held_until_a_time_are_released_when_the_clock_reaches_it() {
    let dir = tempfile::tempdir().unwrap();
    let edx = StandIn::start(&[]);
    let mut cal = windows();
    cal["hold_results"] = json!("2030-01-15T12:00:00Z");
    let app = app_with(dir.path(), cal, &edx).await;
    app.clock.set(DUE_MS - DAY);
    let t = hub().user_token("dated-dan", None).await;
    let id = app.submit_ok(&t, &sample("correct")).await;
    let v = app.wait_done(&t, id, Duration::from_secs(120)).await;
    assert_eq!(v["grade"], Value::Null);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(edx.received().await, 0);
    app.clock.set(DUE_MS + 5 * DAY);
    edx_holds(&edx, "dated-dan", 1.0).await;
    let (_, v) = app.status(&t, id).await;
    assert_eq!(v["grade"]["score"], 5.0);
}

/// In Chromium, through the Hub's proxy to the real binary: staff grant an extension with
/// the assignment page's form; the student's counting score moves and their own page
/// says what their due date and credit are.
#[tokio::test(flavor = "multi_thread")]
async fn in_the_browser_staff_extend_a_deadline_and_the_student_reads_it() {
    use crate::hub::{ADMIN_USER, HubSetup, PASSWORD, TestHub};
    // Due in the past, an 80% window open for long: the student's submission is late.
    let dir = tempfile::tempdir().unwrap();
    let config = course_with_calendar(
        dir.path(),
        json!({"due": "2026-01-01T00:00:00Z",
               "late": [{"until": "2099-01-01T00:00:00Z", "credit": 80}]}),
    );
    let plain = crate::helpers::course_config().display().to_string();
    let dated = config.display().to_string();
    let setup = HubSetup {
        service_toml: Some(Box::new(move |t| t.replace(&plain, &dated))),
        hub_config: String::new(),
    };
    let hub = tokio::task::block_in_place(|| TestHub::start(&setup));
    let url = hub.service.url();
    let http = reqwest::Client::new();
    let student = "cal-bea";
    let token = hub.user_token(student, None).await;
    let id = crate::helpers::submit_to(&http, &url, &token, &sample("partial")).await;
    let v = crate::helpers::wait_done(&http, &url, &token, id, Duration::from_secs(120)).await;
    assert_eq!(v["credit"], 80.0, "{v}");

    let out = tokio::task::block_in_place(|| {
        std::process::Command::new("node")
            .arg(repo_path("tests/browser/calendar.mjs"))
            .env("HUB_URL", &hub.hub_url)
            .env("PREFIX", crate::helpers::PREFIX)
            .env("STAFF_USER", ADMIN_USER)
            .env("STUDENT_USER", student)
            .env("HUB_PASSWORD", PASSWORD)
            .env("SUBMISSION", id.to_string())
            .env("SHOTS", repo_path("target/calendar"))
            .env("PLAYWRIGHT_DIR", crate::browser::browser_dir())
            .output()
            .unwrap()
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(seen["before"], "48.0%", "3/5 at 80%: {seen}");
    assert_eq!(
        seen["done"], "Extended 1 student(s)' deadlines by 365 days.",
        "{seen}"
    );
    assert!(
        seen["moved"].as_str().unwrap().contains("48.0% → 60.0%"),
        "{seen}"
    );
    assert_eq!(seen["after"], "60.0%", "{seen}");
    assert!(
        seen["log"].as_str().unwrap().contains("extension granted"),
        "{seen}"
    );
    let due = seen["due"].as_str().unwrap();
    assert!(
        due.starts_with("Due 2027-01-01 00:00 (UTC+00:00)")
            && due.contains("with your extension of 365 days"),
        "{seen}"
    );
    assert_eq!(seen["lateness"], "This submission came on time.", "{seen}");
    assert_eq!(seen["credited"], Value::Null, "full credit now: {seen}");
    // The dashboard's action was recorded with who did it.
    let by: String = rusqlite::Connection::open(&hub.service.db_path)
        .unwrap()
        .query_row(
            "SELECT actor FROM calendar_log WHERE action = 'extension granted'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(by, format!("staff {ADMIN_USER} (dashboard)"));
}

/// The real binary with the system clock: a notebook committed before the deadline and
/// graded after it (across a kill -9 and a restart) is on time; one committed after it is
/// late. Then `otter-service calendar extend --csv` and `dump-grades` as staff use them.
#[tokio::test(flavor = "multi_thread")]
async fn lateness_is_the_commits_across_a_restart_and_the_cli_extends_from_a_csv() {
    use crate::helpers::{ServiceProcess, port, submit_to, wait_done};
    let dir = tempfile::tempdir().unwrap();
    let now = time::OffsetDateTime::now_utc();
    let rfc = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let due = now + time::Duration::seconds(4);
    let config = course_with_calendar(
        dir.path(),
        json!({"due": rfc(due), "late": [{"until": rfc(now + time::Duration::hours(1)), "credit": 80}]}),
    );
    let p = port();
    // No grading before the restart: both are graded after the deadline.
    let toml = |workers: u32| {
        ServiceProcess::toml(
            dir.path(),
            p,
            &hub().api_url,
            "unused",
            &format!("workers = {workers}"),
        )
        .replace(
            &format!(
                "{:?}",
                crate::helpers::course_config().display().to_string()
            ),
            &format!("{:?}", config.display().to_string()),
        )
    };
    let mut service = ServiceProcess::start_unready(dir.path(), p, &toml(0));
    let http = reqwest::Client::new();
    let (early, late) = ("rs-early", "rs-late");
    let early_t = hub().user_token(early, None).await;
    let late_t = hub().user_token(late, None).await;
    let on_time = submit_to(&http, &service.url(), &early_t, &sample("correct")).await;
    let wait = (due - time::OffsetDateTime::now_utc()).whole_milliseconds() + 1000;
    assert!(wait > 0, "the first submission came before the deadline");
    tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    let after = submit_to(&http, &service.url(), &late_t, &sample("correct")).await;
    service.kill9();
    drop(service);
    let service = ServiceProcess::start(dir.path(), p, &toml(1));
    let a = wait_done(
        &http,
        &service.url(),
        &early_t,
        on_time,
        Duration::from_secs(120),
    )
    .await;
    let b = wait_done(
        &http,
        &service.url(),
        &late_t,
        after,
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(
        (a["credit"].as_f64(), a["late_secs"].as_i64()),
        (Some(100.0), Some(0)),
        "{a}"
    );
    assert_eq!(b["credit"].as_f64(), Some(80.0), "{b}");
    assert!(b["late_secs"].as_i64().unwrap() >= 1, "{b}");

    // Staff extend the late student by a CSV file, from the command line.
    let csv_file = dir.path().join("extensions.csv");
    std::fs::write(
        &csv_file,
        format!("user,hours,reason\n{late},2,DSP letter\n"),
    )
    .unwrap();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_otter-service"))
            .args(args)
            .env("OTTER_DATABASE__PATH", &service.db_path)
            .env("OTTER_COURSE__CONFIG", &config)
            .env(
                "OTTER_COURSE__MATERIALS_ROOT",
                repo_path("course_config/materials"),
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let which = [
        "--course",
        "demo",
        "--section",
        "1",
        "--assignment",
        "demo1",
    ];
    let said = cli(&[
        &["calendar", "extend"][..],
        &which,
        &["--csv", csv_file.to_str().unwrap()],
    ]
    .concat());
    assert!(
        said.contains(&format!(
            "extended by 2 hours: {late}: score that counts 80.0% -> 100.0%"
        )),
        "{said}"
    );
    let shown = cli(&[&["calendar", "show"][..], &which].concat());
    assert!(
        shown.contains(&format!(
            "extension {late}: 2 hours more (DSP letter; cli at"
        )),
        "{shown}"
    );
    let csv = cli(&["dump-grades", "--policy", "latest"]);
    let line = csv.lines().find(|l| l.starts_with(late)).unwrap();
    assert!(
        line.contains(",100,") && line.contains(",7200,"),
        "credit 100, extension 7200 s: {line}"
    );
    let (_, v) = {
        let r = http
            .get(format!("{}submissions/{after}", service.url()))
            .header("Authorization", format!("token {late_t}"))
            .header("Accept", "application/json")
            .send()
            .await
            .unwrap();
        (r.status(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(v["credit"], 100.0, "the student's page follows: {v}");
}
