//! The platform API (`{prefix}api/v1/`) and its completion webhooks, as a platform meets
//! them: registered with the CLI, submitting over HTTP, told of each ending by a webhook
//! that a receiver verifies with the Standard Webhooks reference library (PyPI
//! `standardwebhooks`, tests/support/webhook_receiver.py), never with our own code.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{TestApp, cli, repo_path, sample, spawn_app_with};
use crate::hub::hub;
use crate::webhooks::{Delivery, Receiver};
use otter_service::grading::Runner;
use otter_service::settings::Settings;

/// Scores of the demo notebooks with a bare `otter run` (scripts/build-demo-course.sh).
const SCORES: [(&str, f64); 3] = [("correct", 5.0), ("partial", 3.0), ("error", 4.0)];

/// The hidden cases of the demo autograder, which nothing a platform sees may show.
const HIDDEN: [&str; 4] = [
    "answer == 55",
    "square(-4) == 16",
    "square(0) == 0",
    "vowels('AEIOU xyz') == 5",
];

fn settings(s: &mut Settings, db: &Path) {
    s.database.path = db.to_path_buf();
    s.grading.workers = 2;
    // The receiver runs on this machine: the operator's explicit allowance (the default
    // refuses loopback, which the attack tests below rely on).
    s.platforms.webhook_allow_networks = vec!["127.0.0.1".into()];
    s.platforms.webhook_retry_base_secs = 1;
}

/// `otter-service <args>` on database `db`, with loopback webhooks allowed or not; its
/// stdout, or its stderr as the error.
fn platforms_cli(db: &Path, allow_loopback: bool, args: &[&str]) -> Result<String, String> {
    let dir = db.parent().unwrap();
    let config = dir.join(format!("cli-{}.toml", rand::random::<u32>()));
    let allow = if allow_loopback {
        r#"["127.0.0.1"]"#
    } else {
        "[]"
    };
    std::fs::write(
        &config,
        format!(
            "[database]\npath = {:?}\n[platforms]\nwebhook_allow_networks = {allow}\n",
            db.to_str().unwrap()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_otter-service"))
        .arg("--config")
        .arg(&config)
        .args(args)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A platform as its operator registers it: (token, signing secret).
fn register(db: &Path, name: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec!["platforms", "add", name, "--courses", "demo"];
    args.extend_from_slice(extra);
    let out = platforms_cli(db, true, &args).unwrap();
    let mut lines = out.lines();
    let token = lines.next().unwrap().to_string();
    let secret = lines.next().unwrap().to_string();
    assert!(
        token.starts_with("otp_") && secret.starts_with("whsec_"),
        "{out}"
    );
    (token, secret)
}

/// A service, platform `lms` registered by its operator, and its webhook receiver.
struct Setup {
    dir: tempfile::TempDir,
    db: std::path::PathBuf,
    app: TestApp,
    token: String,
    hook: Receiver,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("otter.db");
    let app = spawn_app_with(|s| settings(s, &db)).await;
    let (token, secret) = register(&db, "lms", &[]);
    let hook = Receiver::start(dir.path(), &[&secret]);
    platforms_cli(
        &db,
        true,
        &["platforms", "set-webhook", "lms", &hook.url("/hook")],
    )
    .unwrap();
    Setup {
        dir,
        db,
        app,
        token,
        hook,
    }
}

/// A platform's client.
struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    fn new(app: &TestApp, token: &str) -> Client {
        Client {
            base: format!("{}api/v1/", app.url),
            token: token.to_string(),
            http: reqwest::Client::new(),
        }
    }

    async fn post(&self, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}submissions", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn submit(&self, user: &str, nb: &str, key: Option<&str>) -> (u16, Value) {
        let mut body = json!({
            "course": "demo", "section": "1", "assignment": "demo1",
            "user": user, "notebook": sample(nb),
        });
        if let Some(k) = key {
            body["idempotency_key"] = k.into();
        }
        self.post(body).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn cancel(&self, id: i64) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}submissions/{id}/cancel", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Until submission `id` has ended.
    async fn wait_done(&self, id: i64) -> Value {
        let start = Instant::now();
        loop {
            let (status, v) = self.get(&format!("submissions/{id}")).await;
            assert_eq!(status, 200, "{v}");
            if !matches!(v["state"].as_str(), Some("queued" | "grading")) {
                return v;
            }
            assert!(
                start.elapsed() < Duration::from_secs(180),
                "never done: {v}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

fn submission_id(d: &Delivery) -> i64 {
    d.body.as_ref().unwrap()["data"]["id"].as_i64().unwrap()
}

/// Verified deliveries the receiver answered 2xx, one per event id.
fn taken(ds: &[Delivery]) -> Vec<&Delivery> {
    ds.iter()
        .filter(|d| d.verified && (200..300).contains(&d.status) && !d.duplicate)
        .collect()
}

fn must_not_show_hidden(text: &str, what: &str) {
    for h in HIDDEN {
        assert!(
            !text.contains(h),
            "{what} shows the hidden test {h}: {text}"
        );
    }
}

async fn metrics(app: &TestApp) -> String {
    let root = app.url.split("/services/").next().unwrap();
    reqwest::get(format!("{root}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_platform_submits_for_its_users_and_each_ending_reaches_it_signed() {
    let Setup {
        dir: _dir,
        db,
        app,
        token,
        hook,
    } = setup().await;
    let lms = Client::new(&app, &token);

    let mut expect = Vec::new();
    for (i, (nb, points)) in SCORES.iter().enumerate() {
        let (status, v) = lms.submit(&format!("u{i}"), nb, None).await;
        assert_eq!(status, 202, "{v}");
        assert_eq!(v["outcome"], "queued");
        assert_eq!(v["user"], format!("u{i}"));
        expect.push((v["id"].as_i64().unwrap(), *points));
    }
    // Multipart too, as a form-posting LMS sends it.
    let form = reqwest::multipart::Form::new()
        .text("course", "demo")
        .text("section", "1")
        .text("assignment", "demo1")
        .text("user", "u9")
        .part(
            "notebook",
            reqwest::multipart::Part::bytes(sample("partial").to_string().into_bytes())
                .file_name("lab.ipynb"),
        );
    let r = lms
        .http
        .post(format!("{}submissions", lms.base))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let v: Value = r.json().await.unwrap();
    assert!(location.ends_with(&format!("api/v1/submissions/{}", v["id"])));
    expect.push((v["id"].as_i64().unwrap(), 3.0));

    let ds = hook
        .wait_for(
            |ds| taken(ds).len() >= expect.len(),
            Duration::from_secs(180),
        )
        .await;
    for d in &ds {
        assert!(
            d.verified,
            "the reference library refused a delivery: {d:?}"
        );
        assert!(d.id.starts_with("msg_"), "{d:?}");
        must_not_show_hidden(&d.raw_body, "a webhook");
    }
    for (id, points) in &expect {
        let d = taken(&ds)
            .into_iter()
            .find(|d| submission_id(d) == *id)
            .unwrap_or_else(|| panic!("no delivery for {id}: {ds:?}"));
        let body = d.body.as_ref().unwrap();
        assert_eq!(body["type"], "submission.graded", "{body}");
        assert_eq!(
            body["data"]["grade"]["score"].as_f64(),
            Some(*points),
            "{body}"
        );
        assert_eq!(body["data"]["grade"]["max_score"].as_f64(), Some(5.0));
        assert_eq!(
            body["data"]["grade"]["questions"].as_array().unwrap().len(),
            3
        );
        // What the platform reads back is what the webhook said.
        let (status, v) = lms.get(&format!("submissions/{id}")).await;
        assert_eq!(status, 200);
        assert_eq!(v["grade"], body["data"]["grade"], "{v}");
        must_not_show_hidden(&v.to_string(), "the submission's JSON");
    }
    let (_, list) = lms.get("users/u0/submissions").await;
    assert_eq!(list["submissions"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["submissions"][0]["id"].as_i64(), Some(expect[0].0));
    // The store names the users in the platform's namespace.
    let dump = cli(&db, &["dump-grades"]);
    assert!(dump.contains("platform:lms:u0"), "{dump}");
    let m = metrics(&app).await;
    assert!(
        m.contains(r#"otter_webhook_deliveries{platform="lms",state="delivered"} 4"#),
        "{m}"
    );
    let list = platforms_cli(&db, true, &["platforms", "list"]).unwrap();
    assert!(list.contains("lms") && list.contains("active"), "{list}");
}

#[tokio::test]
async fn an_idempotency_key_answers_a_retry_with_the_same_submission_and_refuses_another_body() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("otter.db");
    let app = spawn_app_with(|s| {
        settings(s, &db);
        s.grading.workers = 0; // nothing is graded: the submissions stay waiting
    })
    .await;
    let (token, _) = register(&db, "lms", &["--priorities", "normal,low"]);
    let lms = Client::new(&app, &token);
    let (status, first) = lms.submit("ada", "correct", Some("attempt-1")).await;
    assert_eq!(status, 202, "{first}");
    // A retry after a lost answer: the same submission, nothing new.
    let (status, again) = lms.submit("ada", "correct", Some("attempt-1")).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["outcome"], "idempotent_replay");
    assert_eq!(again["id"], first["id"]);
    // The same key as a header.
    let r = lms
        .http
        .post(format!("{}submissions", lms.base))
        .bearer_auth(&token)
        .header("Idempotency-Key", "attempt-1")
        .json(
            &json!({"course": "demo", "section": "1", "assignment": "demo1",
                      "user": "ada", "notebook": sample("correct")}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The key with another notebook is a client bug: refused, saying so.
    let (status, p) = lms.submit("ada", "partial", Some("attempt-1")).await;
    assert_eq!(status, 422, "{p}");
    assert!(
        p["detail"].as_str().unwrap().contains("idempotency key"),
        "{p}"
    );
    // Priority: the granted low class is taken; the job waits in it.
    let mut body = json!({"course": "demo", "section": "1", "assignment": "demo1",
                          "user": "bob", "notebook": sample("partial"), "priority": "low"});
    let (status, low) = lms.post(body.clone()).await;
    assert_eq!(status, 202, "{low}");
    assert_eq!(low["priority"], "low");
    body["priority"] = "urgent".into();
    body["user"] = "bob2".into();
    let (status, p) = lms.post(body).await;
    assert_eq!(status, 403, "{p}");
    // Cancel: a waiting one ends cancelled; again is 409.
    let id = low["id"].as_i64().unwrap();
    let (status, c) = lms.cancel(id).await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["state"], "cancelled");
    let (status, c) = lms.cancel(id).await;
    assert_eq!(status, 409, "{c}");
    assert_eq!(c["status"], 409);
    let n: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM submissions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2, "the retries stored nothing");
}

#[tokio::test]
async fn bad_requests_are_problem_details_naming_what_was_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("otter.db");
    let app = spawn_app_with(|s| {
        settings(s, &db);
        s.grading.workers = 0;
    })
    .await;
    let (token, _) = register(&db, "lms", &[]);
    let lms = Client::new(&app, &token);
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"course": "demo", "section": "1", "assignment": "demo1", "notebook": sample("correct")}),
            400,
            "user",
        ),
        (
            json!({"course": "demo", "section": "1", "assignment": "demo1", "user": "a", "notebook": 5}),
            400,
            "notebook",
        ),
        (
            json!({"course": "demo", "section": "1", "assignment": "demo1", "user": "a", "notebook": {"cells": 1}}),
            400,
            "`notebook`: the submission is not a Jupyter notebook",
        ),
        (
            json!({"course": "demo", "section": "1", "assignment": "nope", "user": "a", "notebook": sample("correct")}),
            422,
            "nope",
        ),
        (
            json!({"course": "demo", "section": "1", "assignment": "demo1", "user": "a", "colour": "red", "notebook": sample("correct")}),
            400,
            "colour",
        ),
    ];
    for (body, want, says) in cases {
        let r = lms
            .http
            .post(format!("{}submissions", lms.base))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), want, "{body}");
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{body}"
        );
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["status"], want);
        assert!(p["detail"].as_str().unwrap().contains(says), "{p}");
    }
    let r = lms
        .http
        .get(format!("{}submissions/1", lms.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn a_platform_reaches_only_its_own_submissions_courses_users_and_priorities() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("otter.db");
    let app = spawn_app_with(|s| {
        settings(s, &db);
        s.grading.workers = 0;
    })
    .await;
    let (a_token, _) = register(&db, "alpha", &[]);
    let (b_token, _) = register(&db, "beta", &[]);
    let out = platforms_cli(
        &db,
        true,
        &["platforms", "add", "gamma", "--courses", "other"],
    )
    .unwrap();
    let c_token = out.lines().next().unwrap().to_string();
    let (alpha, beta, gamma) = (
        Client::new(&app, &a_token),
        Client::new(&app, &b_token),
        Client::new(&app, &c_token),
    );
    let (_, b_sub) = beta.submit("carol", "correct", Some("k")).await;
    let b_id = b_sub["id"].as_i64().unwrap();
    // Another platform's submission does not exist for alpha: read, cancel, list.
    assert_eq!(alpha.get(&format!("submissions/{b_id}")).await.0, 404);
    assert_eq!(alpha.cancel(b_id).await.0, 404);
    let (_, list) = alpha.get("users/carol/submissions").await;
    assert_eq!(list["submissions"], json!([]));
    // Its idempotency key is beta's own: alpha's same key makes alpha's own submission.
    let (status, a_sub) = alpha.submit("carol", "correct", Some("k")).await;
    assert_eq!(status, 202);
    assert_ne!(a_sub["id"], b_sub["id"]);
    // A course it was not granted (gamma has only "other"): 403, before anything else.
    let (status, p) = gamma.submit("dave", "correct", None).await;
    assert_eq!(status, 403, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("not granted"), "{p}");
    // User ids that try to leave the namespace or pass for a Hub user's path.
    for user in [
        "x:alice",
        "../alice",
        "alice/submissions",
        "platform:beta:carol",
        "",
    ] {
        let (status, p) = alpha.submit(user, "correct", None).await;
        assert_eq!(status, 400, "{user:?}: {p}");
    }
    // A Hub user named like a platform's user is refused by the Hub door.
    let hub_token = hub().user_token("platform:beta:carol", None).await;
    let r = app.submit(&hub_token, &sample("correct")).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("reserved"));
    // A Hub user called carol does not see the platforms' carol.
    let carol = hub().user_token("carol", None).await;
    let r = app
        .http
        .get(format!("{}submissions", app.url))
        .header("Authorization", format!("token {carol}"))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    let mine = r.text().await.unwrap();
    assert!(!mine.contains(&format!("\"id\":{b_id}")), "{mine}");
    // A Hub token is not a platform token, and a revoked token is refused.
    assert_eq!(Client::new(&app, &carol).get("submissions/1").await.0, 401);
    platforms_cli(&db, true, &["platforms", "revoke", "beta"]).unwrap();
    let (status, p) = beta.get(&format!("submissions/{b_id}")).await;
    assert_eq!(status, 401);
    assert!(p["detail"].as_str().unwrap().contains("revoked"), "{p}");
}

#[tokio::test]
async fn webhooks_never_go_to_metadata_loopback_or_private_addresses_unless_listed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("otter.db");
    // This service lists no network: loopback is refused like any private address.
    let app = spawn_app_with(|s| {
        settings(s, &db);
        s.platforms.webhook_allow_networks = Vec::new();
    })
    .await;
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:8081/hub/api/users",
        "http://[::ffff:10.0.0.1]/",
        "http://0x7f.1/",
    ] {
        let err = platforms_cli(
            &db,
            false,
            &[
                "platforms",
                "add",
                "p",
                "--courses",
                "demo",
                "--webhook",
                url,
            ],
        )
        .unwrap_err();
        assert!(err.contains("public addresses only"), "{url}: {err}");
    }
    // A name that resolves to loopback passes registration (it is a name) but is refused
    // when it is resolved for delivery: the receiver hears nothing.
    let (token, secret) = register(&db, "sneaky", &[]);
    let hook = Receiver::start(dir.path(), &[&secret]);
    let url = format!("http://localhost:{}/hook", hook.port);
    platforms_cli(&db, false, &["platforms", "set-webhook", "sneaky", &url]).unwrap();
    let lms = Client::new(&app, &token);
    let (_, v) = lms.submit("eve", "correct", None).await;
    let id = v["id"].as_i64().unwrap();
    lms.wait_done(id).await;
    let start = Instant::now();
    loop {
        let timeline = cli(&db, &["timeline", &id.to_string()]);
        if timeline.contains("webhook_retry") {
            assert!(timeline.contains("loopback"), "{timeline}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{timeline}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        hook.deliveries().await.is_empty(),
        "the receiver was reached"
    );
}

#[tokio::test]
async fn a_receiver_that_fails_three_times_gets_the_same_event_once_more_and_410_disables_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("otter.db");
    let app = spawn_app_with(|s| {
        settings(s, &db);
        // The staff page reads users' groups with the service's own token.
        s.hub.api_token = otter_service::secret::Secret::new(crate::hub::SERVICE_TOKEN);
    })
    .await;
    let (token, secret) = register(&db, "lms", &[]);
    let hook = Receiver::start(dir.path(), &[&secret]);
    platforms_cli(
        &db,
        true,
        &["platforms", "set-webhook", "lms", &hook.url("/hook")],
    )
    .unwrap();
    // Retry-After (2 s) asks for longer than the first backoffs (0.5 to 4 s with the test's
    // base of 1 s): each retry waits at least that long.
    hook.fail_next(3, 503, Some(2)).await;
    let lms = Client::new(&app, &token);
    let (_, v) = lms.submit("fay", "correct", None).await;
    let id = v["id"].as_i64().unwrap();
    let ds = hook
        .wait_for(|ds| !taken(ds).is_empty(), Duration::from_secs(120))
        .await;
    assert_eq!(ds.len(), 4, "three refusals then one success: {ds:?}");
    assert!(ds.iter().all(|d| d.verified && d.id == ds[0].id), "{ds:?}");
    assert_eq!(
        ds.iter().map(|d| d.status).collect::<Vec<_>>(),
        [503, 503, 503, 200]
    );
    let stamps: Vec<i64> = ds.iter().map(|d| d.timestamp.parse().unwrap()).collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");
    assert!(ds.iter().all(|d| d.raw_body == ds[0].raw_body), "one body");
    let gaps: Vec<f64> = ds
        .windows(2)
        .map(|w| w[1].received_at - w[0].received_at)
        .collect();
    assert!(
        gaps.iter().all(|g| *g >= 1.9),
        "Retry-After honoured: {gaps:?}"
    );
    assert_eq!(submission_id(&ds[3]), id);
    // Nothing more comes for it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(hook.deliveries().await.len(), 4);

    // 410 Gone: the endpoint is disabled and events wait until staff set it again.
    hook.fail_next(1, 410, None).await;
    let (_, v) = lms.submit("fay", "partial", None).await;
    let second = v["id"].as_i64().unwrap();
    lms.wait_done(second).await;
    hook.wait_for(|ds| ds.len() == 5, Duration::from_secs(60))
        .await;
    let list = wait_until(|| {
        let l = platforms_cli(&db, true, &["platforms", "list"]).unwrap();
        l.contains("disabled").then_some(l)
    })
    .await;
    assert!(list.contains("410"), "{list}");
    // Course staff see it on the dashboard too (without the URL, which may hold a secret).
    hub().add_to_group("demo-staff", "pstaff").await;
    let staff = hub().user_token("pstaff", None).await;
    let page = app
        .http
        .get(format!("{}staff", app.url))
        .header("Authorization", format!("token {staff}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Platforms") && page.contains("disabled: the receiver answered 410 Gone"),
        "{page}"
    );
    assert!(
        !page.contains(&hook.url("/hook")),
        "the webhook URL is not shown"
    );
    let (_, v) = lms.submit("fay", "error", None).await;
    lms.wait_done(v["id"].as_i64().unwrap()).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        hook.deliveries().await.len(),
        5,
        "nothing sent while disabled"
    );
    platforms_cli(
        &db,
        true,
        &["platforms", "set-webhook", "lms", &hook.url("/hook")],
    )
    .unwrap();
    let ds = hook
        .wait_for(|ds| taken(ds).len() == 3, Duration::from_secs(60))
        .await;
    let ids: Vec<i64> = taken(&ds).iter().map(|d| submission_id(d)).collect();
    assert!(ids.contains(&second), "the held event came: {ids:?}");
}

/// Poll `f` every 250 ms for a minute.
async fn wait_until<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "never happened");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_receiver_down_across_a_service_restart_gets_every_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("otter.db");
    let app = spawn_app_with(|s| settings(s, &db)).await;
    let (token, secret) = register(&db, "lms", &[]);
    let mut hook = Receiver::start(dir.path(), &[&secret]);
    platforms_cli(
        &db,
        true,
        &["platforms", "set-webhook", "lms", &hook.url("/hook")],
    )
    .unwrap();
    hook.stop();
    let lms = Client::new(&app, &token);
    let mut ids = Vec::new();
    for (i, (nb, _)) in SCORES.iter().enumerate() {
        let (_, v) = lms.submit(&format!("r{i}"), nb, None).await;
        ids.push(v["id"].as_i64().unwrap());
    }
    for id in &ids {
        lms.wait_done(*id).await;
    }
    // Some attempts failed against the dead receiver; then the service stops.
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(app);
    tokio::time::sleep(Duration::from_secs(1)).await;
    hook.restart();
    let app = spawn_app_with(|s| settings(s, &db)).await;
    let ds = hook
        .wait_for(|ds| taken(ds).len() >= 3, Duration::from_secs(120))
        .await;
    let mut got: Vec<i64> = taken(&ds).iter().map(|d| submission_id(d)).collect();
    got.sort();
    assert_eq!(got, ids, "each event once: {ds:?}");
    assert!(ds.iter().all(|d| d.verified));
    drop(app);
}

#[tokio::test]
async fn a_captured_delivery_replayed_later_or_altered_is_refused_by_the_reference_verifier() {
    let Setup {
        dir: _dir,
        db: _,
        app,
        token,
        hook,
    } = setup().await;
    let (_, v) = Client::new(&app, &token)
        .submit("gus", "partial", None)
        .await;
    let ds = hook
        .wait_for(|ds| !taken(ds).is_empty(), Duration::from_secs(120))
        .await;
    let d = &ds[0];
    assert_eq!(submission_id(d), v["id"].as_i64().unwrap());
    assert!(hook.replay(d, 0).await, "as sent, it verifies");
    assert!(
        !hook.replay(d, 600).await,
        "ten minutes later it is refused"
    );
    let mut altered = d.clone();
    altered.raw_body = d.raw_body.replace("\"score\":3.0", "\"score\":5.0");
    assert_ne!(altered.raw_body, d.raw_body);
    assert!(
        !hook.replay(&altered, 0).await,
        "an altered score is refused"
    );
    // A receiver with another secret refuses our deliveries: the secret is the platform's.
    let other = tempfile::tempdir().unwrap();
    let stranger = Receiver::start(other.path(), &[&otter_service::platform::new_secret()]);
    let r = reqwest::Client::new()
        .post(stranger.url("/hook"))
        .header("webhook-id", &d.id)
        .header("webhook-timestamp", &d.timestamp)
        .header("webhook-signature", &d.signature)
        .body(d.raw_body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

/// The hostile notebooks (grader/tests/hostile/) through the platform API, graded in the
/// real grader image: each webhook reports exactly the honest part, as the JupyterHub
/// door does (tests/api/trusted.rs), and shows no hidden test or result line.
#[tokio::test]
async fn the_hostile_set_through_the_platform_api_earns_what_it_earns_through_the_hub() {
    let _shared = crate::docker::ENGINE.read().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("otter.db");
    let runner = crate::warm::warm_runner(0).await;
    let app = crate::helpers::spawn_app_with_runner(
        |s| settings(s, &db),
        Some(runner.clone() as std::sync::Arc<dyn Runner>),
    )
    .await;
    let (token, secret) = register(&db, "lms", &[]);
    let hook = Receiver::start(dir.path(), &[&secret]);
    platforms_cli(
        &db,
        true,
        &["platforms", "set-webhook", "lms", &hook.url("/hook")],
    )
    .unwrap();
    let lms = Client::new(&app, &token);
    let names = crate::trusted::HOSTILE;
    let mut ids = Vec::new();
    for name in names {
        let nb: Value = serde_json::from_slice(
            &std::fs::read(repo_path(&format!("grader/tests/hostile/{name}.ipynb"))).unwrap(),
        )
        .unwrap();
        let (status, v) = lms
            .post(
                json!({"course": "demo", "section": "1", "assignment": "demo1",
                         "user": "mallory", "notebook": nb}),
            )
            .await;
        assert_eq!(status, 202, "{name}: {v}");
        ids.push((name, v["id"].as_i64().unwrap()));
    }
    let ds = hook
        .wait_for(
            |ds| taken(ds).len() >= names.len(),
            Duration::from_secs(600),
        )
        .await;
    for (name, id) in ids {
        let d = taken(&ds)
            .into_iter()
            .find(|d| submission_id(d) == id)
            .unwrap();
        let body = d.body.as_ref().unwrap();
        assert_eq!(body["type"], "submission.graded", "{name}: {body}");
        let got: Vec<(String, f64)> = body["data"]["grade"]["questions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| {
                (
                    q["name"].as_str().unwrap().to_string(),
                    q["score"].as_f64().unwrap(),
                )
            })
            .collect();
        let want: Vec<(String, f64)> = crate::trusted::earned(name)
            .iter()
            .map(|(q, s)| (q.to_string(), *s))
            .collect();
        assert_eq!(got, want, "{name}");
        must_not_show_hidden(&d.raw_body, name);
        for marker in ["OTTER-TRUSTED", "OTTER-RESULTS", "integrity"] {
            assert!(!d.raw_body.contains(marker), "{name} shows {marker}");
        }
    }
    runner.shutdown().await;
}

#[tokio::test]
async fn a_rotated_secret_signs_beside_the_old_one_so_either_receiver_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("otter.db");
    let app = spawn_app_with(|s| settings(s, &db)).await;
    let (token, old) = register(&db, "lms", &[]);
    let new = platforms_cli(&db, true, &["platforms", "rotate-secret", "lms"])
        .unwrap()
        .trim()
        .to_string();
    assert!(new.starts_with("whsec_") && new != old);
    // Two receivers: one still on the old secret, one already on the new.
    let (d_old, d_new) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let on_old = Receiver::start(d_old.path(), &[&old]);
    let on_new = Receiver::start(d_new.path(), &[&new]);
    platforms_cli(
        &db,
        true,
        &["platforms", "set-webhook", "lms", &on_old.url("/hook")],
    )
    .unwrap();
    let lms = Client::new(&app, &token);
    let (_, v) = lms.submit("hal", "correct", None).await;
    let ds = on_old
        .wait_for(|ds| !taken(ds).is_empty(), Duration::from_secs(120))
        .await;
    let d = &ds[0];
    assert_eq!(submission_id(d), v["id"].as_i64().unwrap());
    assert_eq!(
        d.signature.split(' ').count(),
        2,
        "two signatures: {}",
        d.signature
    );
    // The same delivery, as captured, verifies at the receiver on the new secret too.
    let r = reqwest::Client::new()
        .post(on_new.url("/hook"))
        .header("webhook-id", &d.id)
        .header("webhook-timestamp", &d.timestamp)
        .header("webhook-signature", &d.signature)
        .body(d.raw_body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(on_new.deliveries().await[0].verified);
}

/// The platform door follows the assignment's calendar as the Hub door does: credit by the
/// commit's time, a closed assignment refused as a problem with code `closed`, and a retry
/// with an idempotency key after the deadline answered with the submission it made.
#[tokio::test]
async fn the_platform_door_follows_the_calendar_and_a_retry_after_closing_gets_its_submission() {
    use crate::calendar::{DAY, DUE_MS, HOUR, course_with_calendar, windows};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("otter.db");
    let config = course_with_calendar(dir.path(), windows());
    let app = spawn_app_with(|s| {
        settings(s, &db);
        s.course.config = config;
    })
    .await;
    let (token, _) = register(&db, "lms", &[]);
    let client = Client::new(&app, &token);
    app.clock.set(DUE_MS - HOUR);
    let (status, on_time) = client.submit("u1", "correct", Some("key-1")).await;
    assert_eq!(status, 202, "{on_time}");
    assert_eq!(on_time["credit"], 100.0, "{on_time}");
    app.clock.set(DUE_MS + HOUR);
    let (status, late) = client.submit("u2", "correct", None).await;
    assert_eq!(status, 202, "{late}");
    assert_eq!(late["credit"], 80.0, "{late}");
    assert!((3600..3610).contains(&late["late_secs"].as_i64().unwrap()));

    app.clock.set(DUE_MS + 5 * DAY);
    let (status, again) = client.submit("u1", "correct", Some("key-1")).await;
    assert_eq!(status, 200, "a retry gets its submission back: {again}");
    assert_eq!(again["id"], on_time["id"]);
    let (status, refused) = client.submit("u3", "correct", None).await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["code"], "closed", "{refused}");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .starts_with("demo1 closed for submissions at 2030-01-12 12:00 (UTC+00:00)"),
        "{refused}"
    );
    let done = client.wait_done(late["id"].as_i64().unwrap()).await;
    assert_eq!(
        (done["state"].as_str(), done["credit"].as_f64()),
        (Some("graded"), Some(80.0))
    );
}
