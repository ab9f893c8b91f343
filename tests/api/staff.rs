//! Staff pages: who is staff comes from JupyterHub (admins; members of a course's
//! `staff_group`), everyone else gets 403 on every staff route, and staff actions are
//! recorded with who did them. The dashboard in a real browser is in `staff_browser`.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;
use serde_json::Value;

use crate::helpers::{TestApp, cli, repo_path, sample, spawn_app_with};
use crate::hub::{ADMIN_USER, SERVICE_TOKEN, hub};

/// The demo course (staff group `demo-staff`) and a second course (group `other-staff`)
/// with the same materials.
pub fn two_courses(dir: &Path) {
    let mut config: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_path("course_config/course-config.json")).unwrap(),
    )
    .unwrap();
    let mut other = config["demo"].clone();
    other["1"]["staff_group"] = "other-staff".into();
    config["other"] = other;
    std::fs::write(
        dir.join("course-config.json"),
        serde_json::to_vec_pretty(&config).unwrap(),
    )
    .unwrap();
}

async fn app_with_staff() -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    two_courses(dir.path());
    let config = dir.path().join("course-config.json");
    let app = spawn_app_with(move |s| {
        s.course.config = config;
        // The service reads users' admin flag and groups with its own token.
        s.hub.api_token = otter_service::secret::Secret::new(SERVICE_TOKEN);
        s.grading.workers = 1;
    })
    .await;
    (app, dir)
}

fn events(db: &Path, event: &str) -> Vec<String> {
    let c = Connection::open(db).unwrap();
    let mut stmt = c
        .prepare("SELECT detail FROM events WHERE event = ?1 ORDER BY id")
        .unwrap();
    stmt.query_map([event], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Every staff route, as `(method, path under the prefix, form body)`.
fn routes(id: i64) -> Vec<(&'static str, String, String)> {
    vec![
        ("GET", "staff".into(), String::new()),
        (
            "GET",
            "staff/assignments/demo/1/demo1".into(),
            String::new(),
        ),
        ("GET", "staff/students/sam".into(), String::new()),
        ("GET", format!("staff/submissions/{id}"), String::new()),
        ("GET", "staff/grades.csv?course=demo".into(), String::new()),
        ("POST", "staff/regrade".into(), format!("id={id}")),
        (
            "POST",
            "staff/regrade".into(),
            "course=demo&dead_only=true".into(),
        ),
        ("POST", "staff/repost".into(), "course=demo".into()),
    ]
}

pub(crate) async fn call(
    app: &TestApp,
    token: &str,
    (method, path, form): &(&str, String, String),
) -> (u16, String) {
    let url = format!("{}{path}", app.url);
    let req = match *method {
        "GET" => app.http.get(url),
        _ => app
            .http
            .post(url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form.clone()),
    };
    let r = req
        .header("Authorization", format!("token {token}"))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn every_staff_route_refuses_students_and_other_courses_staff() {
    let (app, _dir) = app_with_staff().await;
    let sam = hub().user_token("sam", None).await;
    let id = app.submit_ok(&sam, &sample("partial")).await;
    app.wait_done(&sam, id, Duration::from_secs(60)).await;
    hub().add_to_group("other-staff", "otto").await;
    let otto = hub().user_token("otto", None).await;
    for route in routes(id) {
        let (code, body) = call(&app, &sam, &route).await;
        assert_eq!(code, 403, "a student: {route:?}: {body}");
        assert!(body.contains("course staff"), "{body}");
        // Staff of another course reach their own overview only.
        let (code, body) = call(&app, &otto, &route).await;
        if route.1 == "staff" || route.1 == "staff/students/sam" {
            // Their own pages, without this course's submissions.
            assert_eq!(code, 200, "{body}");
            assert!(
                !body.contains("demo1"),
                "another course's work shown: {body}"
            );
        } else {
            assert_eq!(code, 403, "other staff: {route:?}: {body}");
            assert!(body.contains("not staff of course \"demo\""), "{body}");
        }
    }
    assert!(events(&app.db_path, "regrade_requested").is_empty());
    assert!(events(&app.db_path, "repost_requested").is_empty());
    assert!(events(&app.db_path, "staff_export").is_empty());
    // Not logged in at all: 401, not a page.
    let r = app
        .http
        .post(format!("{}staff/regrade", app.url))
        .form(&[("id", id.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn a_staff_group_member_sees_the_course_regrades_and_downloads_and_is_recorded() {
    let (app, _dir) = app_with_staff().await;
    hub().add_to_group("demo-staff", "stella").await;
    let stella = hub().user_token("stella", None).await;
    let kim = hub().user_token("kim", None).await;
    let id = app.submit_ok(&kim, &sample("partial")).await;
    app.wait_done(&kim, id, Duration::from_secs(60)).await;

    let (code, page) = call(&app, &stella, &routes(id)[0]).await;
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("demo 1 demo1"), "{page}");
    // The overview's queue table is what `status` prints.
    let done = crate::helpers::status_count(&app.db_path, "grade", "done");
    assert!(
        page.contains(&format!(
            "<td>grade</td><td>done</td><td class=\"n\">{done}</td>"
        )),
        "status says {done} done: {page}"
    );
    let (code, page) = call(&app, &stella, &routes(id)[1]).await;
    assert_eq!(code, 200);
    assert!(page.contains("<svg"), "charts drawn: {page}");
    assert!(page.contains("Score distribution"));
    // Staff see what students never do: every test's output.
    let (code, page) = call(&app, &stella, &routes(id)[3]).await;
    assert_eq!(code, 200);
    assert!(page.contains("hidden tests included"), "{page}");
    assert!(page.contains("container_started"), "the timeline: {page}");

    let (code, csv) = call(&app, &stella, &routes(id)[4]).await;
    assert_eq!(code, 200, "{csv}");
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().starts_with("userid,grade,course"));
    let row = lines.next().unwrap();
    assert!(row.starts_with("kim,0.6,demo,1,demo1"), "{csv}");
    assert_eq!(
        csv,
        cli(
            &app.db_path,
            &["dump-grades", "--course", "demo", "--policy", "latest"]
        )
    );

    let (code, page) = call(&app, &stella, &routes(id)[5]).await;
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("Queued 1 submission(s)"), "{page}");
    let v = app.wait_done(&kim, id, Duration::from_secs(60)).await;
    assert_eq!(v["grade"]["score"], 3.0, "{v}");
    assert_eq!(
        events(&app.db_path, "regrade_requested"),
        vec!["staff stella (dashboard)".to_string()]
    );
    let exports = events(&app.db_path, "staff_export");
    assert_eq!(exports.len(), 1);
    assert!(exports[0].starts_with("staff stella (dashboard): grades.csv course=demo"));
}

#[tokio::test]
async fn a_hub_admins_browser_form_post_needs_the_pages_xsrf_token() {
    // A Hub admin is staff of every course. With a session cookie (a browser), a staff
    // POST without the page's token is refused: another site cannot make a staff
    // member's browser regrade or repost.
    let (browser, page) = crate::auth::browser_login(ADMIN_USER).await;
    let r = browser
        .post(format!("{page}staff/repost"))
        .form(&[("course", "demo")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("XSRF"));
    let html = browser
        .get(format!("{page}staff/assignments/demo/1/demo1"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let xsrf = crate::helpers::form_field(&html, "_xsrf")
        .unwrap_or_else(|| panic!("no XSRF field: {html}"));
    let r = browser
        .post(format!("{page}staff/repost"))
        .form(&[("course", "demo"), ("_xsrf", &xsrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("for posting to edX again"));
}

/// The dashboard in Chromium, through a Hub of its own whose service grades one
/// assignment: a Hub admin watches a burst move through the queue (its autograder broken,
/// so it ends dead), staff put the right zip back, the admin opens the score
/// distribution, regrades a dead submission with its button and downloads the CSV.
#[tokio::test(flavor = "multi_thread")]
async fn a_hub_admin_watches_a_burst_regrades_a_dead_submission_and_downloads_grades() {
    use crate::helpers::{copy_of, course_with_zip};
    use crate::hub::{HubSetup, PASSWORD, TestHub};

    let course = tempfile::tempdir().unwrap();
    let good = std::fs::read(repo_path(
        "course_config/materials/demo/demo1-autograder.zip",
    ))
    .unwrap();
    course_with_zip(course.path(), &good);
    let (config, materials) = (
        course.path().join("course-config.json"),
        course.path().join("materials"),
    );
    let setup = HubSetup {
        service_toml: Some(Box::new(move |t: String| {
            let t: String = t
                .lines()
                .map(|l| {
                    if l.starts_with("config = ") {
                        format!("config = {:?}", config.display().to_string())
                    } else if l.starts_with("materials_root = ") {
                        format!("materials_root = {:?}", materials.display().to_string())
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            t.replace("[grading]\n", "[grading]\nworkers = 1\nmax_attempts = 2\n")
        })),
        hub_config: String::new(),
    };
    let hub = tokio::task::block_in_place(|| TestHub::start(&setup));
    let url = hub.service.url();
    let http = reqwest::Client::new();
    let mut students = Vec::new();
    for name in ["amy", "bo", "cy"] {
        students.push(hub.user_token(name, None).await);
    }
    for (i, (t, nb)) in students
        .iter()
        .zip(["correct", "partial", "correct"])
        .enumerate()
    {
        let id = crate::helpers::submit_to(&http, &url, t, &copy_of(&sample(nb), i)).await;
        crate::helpers::wait_done(&http, &url, t, id, Duration::from_secs(60)).await;
    }
    // A half-copied zip, then a burst: every one of these ends dead.
    std::fs::write(
        course.path().join("materials/demo/demo1-autograder.zip"),
        &good[..1000],
    )
    .unwrap();
    for i in 0..6 {
        let t = &students[i % 3];
        crate::helpers::submit_to(&http, &url, t, &copy_of(&sample("partial"), 10 + i)).await;
    }
    let browse = |phase: &str| -> Value {
        let out = std::process::Command::new("node")
            .arg(repo_path("tests/browser/staff.mjs"))
            .env("HUB_URL", &hub.hub_url)
            .env("PREFIX", crate::helpers::PREFIX)
            .env("HUB_USER", ADMIN_USER)
            .env("HUB_PASSWORD", PASSWORD)
            .env("PHASE", phase)
            .env("SHOTS", repo_path("target/staff"))
            .env("PLAYWRIGHT_DIR", crate::browser::browser_dir())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "browser ({phase}) failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
    };
    let watched = tokio::task::block_in_place(|| browse("watch"));
    let samples = watched["samples"].as_array().unwrap();
    let first = &samples[0];
    let last = samples.last().unwrap();
    assert!(
        first["waiting"].as_i64().unwrap() + first["grading"].as_i64().unwrap() > 0,
        "the burst was seen waiting: {watched}"
    );
    assert_eq!(
        (last["waiting"].as_i64(), last["grading"].as_i64()),
        (Some(0), Some(0)),
        "{watched}"
    );
    assert_eq!(last["dead"], 6, "{watched}");
    let db = hub.service.db_path.clone();
    let count = |sql: &str| -> i64 {
        Connection::open(&db)
            .unwrap()
            .query_row(sql, [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(
        count("SELECT COUNT(*) FROM submissions WHERE state = 'dead'"),
        6
    );

    // Staff put the right zip back; the admin regrades one dead submission by its button.
    std::fs::write(
        course.path().join("materials/demo/demo1-autograder.zip"),
        &good,
    )
    .unwrap();
    let acted = tokio::task::block_in_place(|| browse("act"));
    assert!(acted["charts"].as_i64().unwrap() >= 3, "{acted}");
    assert!(
        acted["distribution"]
            .as_str()
            .unwrap()
            .contains("of each of 3 students"),
        "{acted}"
    );
    assert_eq!(
        acted["done"], "Queued 1 submission(s) for grading again.",
        "{acted}"
    );
    let regraded = acted["regraded"].as_i64().unwrap();
    let start = std::time::Instant::now();
    while count(&format!(
        "SELECT COUNT(*) FROM grades WHERE submission_id = {regraded}"
    )) == 0
    {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "the regrade was not graded"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(
        count("SELECT COUNT(*) FROM submissions WHERE state = 'dead'"),
        5
    );
    assert_eq!(
        events(&db, "regrade_requested"),
        vec!["staff ada (dashboard)".to_string()]
    );
    let csv = acted["csv"].as_str().unwrap();
    let mut rows = csv.lines();
    assert!(
        rows.next()
            .unwrap()
            .starts_with("userid,grade,course,section,assignment")
    );
    let users: Vec<&str> = rows.map(|r| r.split(',').next().unwrap()).collect();
    assert_eq!(users.len(), 3, "{csv}");
    for u in ["amy", "bo", "cy"] {
        assert!(users.contains(&u), "{csv}");
    }
    assert!(events(&db, "staff_export")[0].starts_with("staff ada (dashboard)"));
}
