//! LTI 1.3 Assignment and Grade Services through the service, with edX's own LTI 1.3
//! platform code (lti-consumer-xblock's token endpoint and AGS score handler) and a
//! stricter platform (lti1p3platform: `kid` required and checked against our key set) as
//! the receiving ends (tests/support/lti13_platform.py). The student's launch is the
//! Hub's auth state, as JupyterHub's LTI13Authenticator keeps it.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{TestApp, copy_of, sample, spawn_app_with};
use crate::hub::free_port;
use crate::hub::{SERVICE_TOKEN, hub};
use crate::lti13_platform::Platform;
use otter_service::secret::Secret;
use otter_service::settings::Settings;

const LABEL: &str = "demo1";

/// A service port chosen before the platform starts (the platform fetches our key set).
struct Setup {
    dir: tempfile::TempDir,
    port: u16,
    platform: Platform,
    /// `/_setup`'s answer: per peer, issuer, client id, token URL, line items.
    peers: Value,
}

impl Setup {
    async fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let keyset = format!("http://127.0.0.1:{port}/services/otter_grade/lti13/jwks.json");
        let platform = Platform::start(dir.path(), &keyset);
        let peers = platform.setup(&[LABEL], 5.0).await;
        let key = otter_service::ags::keys::generate_pem().unwrap();
        std::fs::write(dir.path().join("tool.pem"), key).unwrap();
        Setup {
            dir,
            port,
            platform,
            peers,
        }
    }

    fn lineitem(&self, peer: &str) -> String {
        self.peers[peer]["lineitems"][LABEL]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Section `1` posts to edX's platform, section `2` to the strict one.
    fn course_config(&self) -> std::path::PathBuf {
        let section = |peer: &str| {
            let p = &self.peers[peer];
            json!({
                "subpath_to_zips": "demo",
                "lti13": {"issuer": p["issuer"], "client_id": p["client_id"],
                          "deployment_id": p["deployment_id"], "token_url": p["token_url"]},
                "assignments": {"demo1": {"lineitem": self.lineitem(peer)}},
            })
        };
        // Section `3`: edX's platform, the line item learned from a launch of the link.
        let mut learned = section("edx");
        learned["assignments"]["demo1"] = json!({"resource_link_id": LABEL});
        let config = json!({"demo": {"1": section("edx"), "2": section("strict"), "3": learned}});
        let path = self.dir.path().join("course-config.json");
        std::fs::write(&path, config.to_string()).unwrap();
        path
    }

    fn settings(&self, s: &mut Settings) {
        s.server.bind = format!("127.0.0.1:{}", self.port).parse().unwrap();
        s.course.config = self.course_config();
        s.hub.api_token = Secret::new(SERVICE_TOKEN);
        s.lti13.private_key_file = Some(self.dir.path().join("tool.pem"));
        s.lti13.timeout_secs = 3;
        s.lti.retry_max_secs = 2;
        s.lti.launch_wait_secs = 1;
        s.grading.retry_base_secs = 1;
    }

    /// What LTI13Authenticator keeps of `sub`'s launch from `peer`.
    fn launch(&self, peer: &str, sub: &str) -> Value {
        let p = &self.peers[peer];
        json!({
            "iss": p["issuer"], "aud": p["client_id"], "sub": sub,
            "nonce": "n", "iat": 0, "exp": 0,
            "https://purl.imsglobal.org/spec/lti/claim/message_type": "LtiResourceLinkRequest",
            "https://purl.imsglobal.org/spec/lti/claim/version": "1.3.0",
            "https://purl.imsglobal.org/spec/lti/claim/deployment_id": p["deployment_id"],
            "https://purl.imsglobal.org/spec/lti/claim/resource_link": {"id": LABEL},
            "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint": {
                "scope": ["https://purl.imsglobal.org/spec/lti-ags/scope/score"],
                "lineitem": self.lineitem(peer)},
        })
    }
}

/// The notebook `name` for section `section` of the demo course.
fn notebook(name: &str, section: &str) -> Value {
    let mut nb = sample(name);
    nb["metadata"]["otter_service"] = json!({"course": "demo", "section": section,
                                              "assignment": "demo1"});
    nb
}

/// Poll until the platform holds `score_given` for `user_id` (or fail with what it holds).
async fn wait_holds(p: &Platform, peer: &str, lineitem: &str, user_id: &str, given: f64) -> Value {
    let start = Instant::now();
    loop {
        if let Some(s) = p.holds(peer, lineitem, user_id).await
            && s["score_given"].as_f64() == Some(given)
        {
            return s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "{peer} never held {given} for {user_id}: {:?}",
            p.scores().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn grade_state(app: &TestApp, token: &str, id: i64) -> Value {
    app.wait_done(token, id, Duration::from_secs(90)).await["grade"].clone()
}

async fn wait_post_state(app: &TestApp, token: &str, id: i64, state: &str) -> Value {
    let start = Instant::now();
    loop {
        let g = grade_state(app, token, id).await;
        if g["post_state"] == state {
            return g;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "never {state}: {g}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn scores_reach_both_platforms_for_the_launched_sub_in_points_and_move_forward() {
    let t = Setup::new().await;
    let app = spawn_app_with(|s| t.settings(s)).await;
    let (edx_li, strict_li) = (t.lineitem("edx"), t.lineitem("strict"));
    // Amy launched from edX, Ben from the strict platform: their Hub names are not their
    // platform ids.
    hub()
        .set_auth_state("lti-amy", t.launch("edx", "edx-sub-amy"))
        .await;
    hub()
        .set_auth_state("lti-ben", t.launch("strict", "strict-sub-ben"))
        .await;
    let amy = hub().user_token("lti-amy", None).await;
    let ben = hub().user_token("lti-ben", None).await;

    let id = app.submit_ok(&amy, &notebook("partial", "1")).await;
    wait_post_state(&app, &amy, id, "posted").await;
    let held = wait_holds(&t.platform, "edx", &edx_li, "edx-sub-amy", 3.0).await;
    assert_eq!(held["score_maximum"], 5.0, "points, not a fraction: {held}");
    assert_eq!(held["activity_progress"], "Completed");
    assert_eq!(held["grading_progress"], "FullyGraded");
    let first_stamp = held["timestamp"].as_str().unwrap().to_string();
    let page = app.page(&amy, id).await;
    assert!(
        page.contains("Your score has reached your course&#39;s gradebook.")
            || page.contains("Your score has reached your course's gradebook."),
        "{page}"
    );

    // A better submission moves the score; the timestamp moves forward.
    let id = app.submit_ok(&amy, &notebook("correct", "1")).await;
    wait_post_state(&app, &amy, id, "posted").await;
    let held = wait_holds(&t.platform, "edx", &edx_li, "edx-sub-amy", 5.0).await;
    assert!(
        held["timestamp"].as_str().unwrap() > first_stamp.as_str(),
        "{held}"
    );

    // A regrade (staff) posts again and edX takes it (a later timestamp).
    let out = crate::helpers::cli(&app.db_path, &["regrade", "--user", "lti-amy"]);
    assert!(out.contains("queued 2"), "{out}");
    let start = Instant::now();
    while crate::helpers::status_count(&app.db_path, "post_score", "done") < 4 {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "regrade never re-posted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = wait_holds(&t.platform, "edx", &edx_li, "edx-sub-amy", 5.0).await;
    assert!(after["timestamp"].as_str().unwrap() > held["timestamp"].as_str().unwrap());

    let id = app.submit_ok(&ben, &notebook("partial", "2")).await;
    wait_post_state(&app, &ben, id, "posted").await;
    wait_holds(&t.platform, "strict", &strict_li, "strict-sub-ben", 3.0).await;

    // Nobody was credited under a Hub name, and each platform holds one row per student.
    let scores = t.platform.scores().await;
    assert!(
        scores
            .iter()
            .all(|s| !s["user_id"].as_str().unwrap().starts_with("lti-")),
        "{scores:?}"
    );
    assert_eq!(scores.len(), 2, "{scores:?}");
    // One token per platform served every post.
    let stats = t.platform.stats().await;
    assert_eq!(stats["token_requests"]["edx"], 1, "{stats}");
    assert_eq!(stats["token_requests"]["strict"], 1, "{stats}");
}

#[tokio::test]
async fn a_student_without_a_launch_is_told_and_posted_once_the_launch_appears() {
    let t = Setup::new().await;
    let app = spawn_app_with(|s| t.settings(s)).await;
    let token = hub().user_token("lti-cleo", None).await;
    let id = app.submit_ok(&token, &notebook("partial", "1")).await;
    let start = Instant::now();
    let grade = loop {
        let g = grade_state(&app, &token, id).await;
        if g["post_detail"]
            .as_str()
            .is_some_and(|d| d.contains("Open this assignment"))
        {
            break g;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no launch message: {g}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(grade["score"], 3.0, "the grade is kept: {grade}");
    assert_eq!(grade["post_state"], "pending");
    assert!(t.platform.scores().await.is_empty());
    // A launch from another platform (its issuer) is not Cleo's launch from this one.
    let mut foreign = t.launch("edx", "foreign-sub");
    foreign["iss"] = json!("https://lms.elsewhere.example");
    hub().set_auth_state("lti-cleo", foreign).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(t.platform.scores().await.is_empty());
    // She opens the assignment from edX: the waiting post goes out.
    hub()
        .set_auth_state("lti-cleo", t.launch("edx", "edx-sub-cleo"))
        .await;
    wait_post_state(&app, &token, id, "posted").await;
    wait_holds(&t.platform, "edx", &t.lineitem("edx"), "edx-sub-cleo", 3.0).await;
    assert_eq!(t.platform.scores().await.len(), 1);
}

#[tokio::test]
async fn an_lms_outage_a_restart_and_a_revoked_token_lose_nothing() {
    let mut t = Setup::new().await;
    let app = spawn_app_with(|s| t.settings(s)).await;
    let li = t.lineitem("edx");
    let mut students = Vec::new();
    for i in 0..4 {
        let user = format!("lti-out{i}");
        hub()
            .set_auth_state(&user, t.launch("edx", &format!("sub-out{i}")))
            .await;
        students.push((user.clone(), hub().user_token(&user, None).await));
    }
    // 5xx three times: retried with backoff.
    t.platform.set_mode("500-times:3").await;
    let id = app
        .submit_ok(&students[0].1, &notebook("partial", "1"))
        .await;
    wait_post_state(&app, &students[0].1, id, "posted").await;
    wait_holds(&t.platform, "edx", &li, "sub-out0", 3.0).await;
    // The platform is down (connection refused) and comes back on the same database.
    t.platform.stop();
    let mut ids = Vec::new();
    for (i, (_, token)) in students.iter().enumerate().skip(1) {
        ids.push(
            app.submit_ok(token, &copy_of(&notebook("correct", "1"), i))
                .await,
        );
    }
    for (id, (_, token)) in ids.iter().zip(students.iter().skip(1)) {
        let g = grade_state(&app, token, *id).await;
        assert_eq!(g["score"], 5.0, "graded while the LMS is down: {g}");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    t.platform.restart();
    for (i, (id, (_, token))) in ids.iter().zip(students.iter().skip(1)).enumerate() {
        wait_post_state(&app, token, *id, "posted").await;
        wait_holds(&t.platform, "edx", &li, &format!("sub-out{}", i + 1), 5.0).await;
    }
    // Rate limited once (Retry-After), then the access token revoked: one new token.
    t.platform.set_mode("429-once").await;
    let id = app
        .submit_ok(&students[0].1, &copy_of(&notebook("correct", "1"), 9))
        .await;
    wait_holds(&t.platform, "edx", &li, "sub-out0", 5.0).await;
    wait_post_state(&app, &students[0].1, id, "posted").await;
    let before = t.platform.stats().await["token_requests"]["edx"]
        .as_i64()
        .unwrap();
    t.platform.set_mode("401-once").await;
    let id = app
        .submit_ok(&students[0].1, &copy_of(&notebook("partial", "1"), 10))
        .await;
    wait_post_state(&app, &students[0].1, id, "posted").await;
    wait_holds(&t.platform, "edx", &li, "sub-out0", 3.0).await;
    let after = t.platform.stats().await["token_requests"]["edx"]
        .as_i64()
        .unwrap();
    assert_eq!(after, before + 1, "one new token after the 401");
    // One row per student: nothing posted twice into separate rows, nothing lost.
    assert_eq!(t.platform.scores().await.len(), 4);
}

#[tokio::test]
async fn a_student_cannot_send_a_score_into_another_students_entry() {
    let t = Setup::new().await;
    let app = spawn_app_with(|s| t.settings(s)).await;
    let li = t.lineitem("edx");
    hub()
        .set_auth_state("lti-victim", t.launch("edx", "sub-victim"))
        .await;
    hub()
        .set_auth_state("lti-mallory", t.launch("edx", "sub-mallory"))
        .await;
    let victim = hub().user_token("lti-victim", None).await;
    let mallory = hub().user_token("lti-mallory", None).await;
    let id = app.submit_ok(&victim, &notebook("partial", "1")).await;
    wait_holds(&t.platform, "edx", &li, "sub-victim", 3.0).await;
    wait_post_state(&app, &victim, id, "posted").await;
    // Mallory names the victim every way upstream's service listened to: a header, the
    // Referer, the notebook's metadata, a form field.
    let mut nb = notebook("correct", "1");
    nb["metadata"]["lti13"] = json!({"sub": "sub-victim", "user": "lti-victim"});
    nb["metadata"]["otter_service"]["user"] = json!("lti-victim");
    let r = app
        .http
        .post(&app.url)
        .header("Authorization", format!("token {mallory}"))
        .header("Accept", "application/json")
        .header("X-Otter-User", "lti-victim")
        .header("Referer", format!("{}/user/lti-victim/lab", hub().hub_url))
        .json(&json!({"nb": nb, "user": "lti-victim", "sub": "sub-victim"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let id: i64 = r.json::<Value>().await.unwrap()["submission_id"]
        .as_i64()
        .unwrap();
    wait_post_state(&app, &mallory, id, "posted").await;
    wait_holds(&t.platform, "edx", &li, "sub-mallory", 5.0).await;
    let victims = t.platform.holds("edx", &li, "sub-victim").await.unwrap();
    assert_eq!(
        victims["score_given"], 3.0,
        "the victim's entry is untouched"
    );
    // A student with no launch of her own gets nothing posted anywhere, whatever she names.
    let eve = hub().user_token("lti-eve", None).await;
    let r = app
        .http
        .post(&app.url)
        .header("Authorization", format!("token {eve}"))
        .header("X-Otter-User", "lti-victim")
        .json(&json!({"nb": notebook("correct", "1")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        t.platform.scores().await.len(),
        2,
        "{:?}",
        t.platform.scores().await
    );
    assert_eq!(
        t.platform.holds("edx", &li, "sub-victim").await.unwrap()["score_given"],
        3.0
    );
}

#[tokio::test]
async fn the_key_set_is_served_and_a_rotated_key_still_posts() {
    let t = Setup::new().await;
    // Rotation: a new current key, the old one retired (still served).
    let old = t.dir.path().join("tool.pem");
    let new = t.dir.path().join("tool-new.pem");
    let new_key = || {
        let out = Command::new(env!("CARGO_BIN_EXE_otter-service"))
            .args(["lti13", "new-key"])
            .arg(&new)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (ok, out) = new_key();
    assert!(ok && out.contains("kid"), "{out}");
    let pem = std::fs::read_to_string(&new).unwrap();
    assert!(
        !out.contains(pem.lines().nth(1).unwrap()),
        "the key is not printed"
    );
    let (ok, again) = new_key();
    assert!(
        !ok && again.contains("must not exist"),
        "never overwrites a key: {again}"
    );
    assert_eq!(std::fs::read_to_string(&new).unwrap(), pem);
    let app = spawn_app_with(|s| {
        t.settings(s);
        s.lti13.private_key_file = Some(new.clone());
        s.lti13.retired_key_files = vec![old.clone()];
    })
    .await;
    let set: Value = reqwest::get(format!("{}lti13/jwks.json", app.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(set["keys"].as_array().unwrap().len(), 2, "{set}");
    assert!(
        !set.to_string().contains("\"d\""),
        "public parts only: {set}"
    );
    hub()
        .set_auth_state("lti-rot", t.launch("strict", "sub-rot"))
        .await;
    let token = hub().user_token("lti-rot", None).await;
    let id = app.submit_ok(&token, &notebook("partial", "2")).await;
    wait_post_state(&app, &token, id, "posted").await;
    wait_holds(&t.platform, "strict", &t.lineitem("strict"), "sub-rot", 3.0).await;
}

#[tokio::test]
async fn a_service_with_our_client_id_but_not_our_key_gets_no_token_and_posts_nothing() {
    let t = Setup::new().await;
    // The platforms trust the key set at `t.port`; a forger runs a service of their own,
    // with our course config and client id, and a key of their own.
    let _ours = spawn_app_with(|s| t.settings(s)).await;
    let forger_key = t.dir.path().join("forger.pem");
    std::fs::write(
        &forger_key,
        otter_service::ags::keys::generate_pem().unwrap(),
    )
    .unwrap();
    let forger = spawn_app_with(|s| {
        t.settings(s);
        s.server.bind = "127.0.0.1:0".parse().unwrap();
        s.lti13.private_key_file = Some(forger_key.clone());
    })
    .await;
    for (user, section) in [("lti-forge1", "1"), ("lti-forge2", "2")] {
        let peer = if section == "1" { "edx" } else { "strict" };
        hub()
            .set_auth_state(user, t.launch(peer, &format!("sub-{user}")))
            .await;
        let token = hub().user_token(user, None).await;
        let id = forger
            .submit_ok(&token, &notebook("correct", section))
            .await;
        let g = wait_post_state(&forger, &token, id, "dead").await;
        let detail = g["post_detail"].as_str().unwrap();
        assert!(
            detail.contains("token endpoint refused our client assertion"),
            "{g}"
        );
    }
    assert!(t.platform.scores().await.is_empty());
    let stats = t.platform.stats().await;
    assert_eq!(stats["score_requests"]["edx"], 0, "{stats}");
    assert_eq!(stats["score_requests"]["strict"], 0, "{stats}");
}

#[tokio::test]
async fn a_line_item_named_by_its_resource_link_is_learned_from_any_students_launch() {
    let t = Setup::new().await;
    let app = spawn_app_with(|s| t.settings(s)).await;
    let li = t.lineitem("edx");
    // Dana's last launch was of another link (no line item for ours): her post waits.
    let mut elsewhere = t.launch("edx", "sub-dana");
    elsewhere["https://purl.imsglobal.org/spec/lti/claim/resource_link"] = json!({"id": "other"});
    elsewhere["https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"]["lineitem"] =
        json!(format!("{}/elsewhere", t.platform.base));
    hub().set_auth_state("lti-dana", elsewhere).await;
    let dana = hub().user_token("lti-dana", None).await;
    let id = app.submit_ok(&dana, &notebook("partial", "3")).await;
    let start = Instant::now();
    loop {
        let g = grade_state(&app, &dana, id).await;
        if g["post_detail"]
            .as_str()
            .is_some_and(|d| d.contains("Open this assignment"))
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{g}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Eli launches this assignment from edX: its line item is learned, and Dana's post
    // goes to it as well, under her own sub.
    hub()
        .set_auth_state("lti-eli", t.launch("edx", "sub-eli"))
        .await;
    let eli = hub().user_token("lti-eli", None).await;
    let e = app.submit_ok(&eli, &notebook("correct", "3")).await;
    wait_post_state(&app, &eli, e, "posted").await;
    wait_holds(&t.platform, "edx", &li, "sub-eli", 5.0).await;
    wait_post_state(&app, &dana, id, "posted").await;
    wait_holds(&t.platform, "edx", &li, "sub-dana", 3.0).await;
    let scores = t.platform.scores().await;
    assert!(
        scores.iter().all(|s| s["lineitem"] == li.as_str()),
        "{scores:?}"
    );
}

/// The hub venv's python runs the login script (requests, PyJWT, cryptography).
fn hub_python() -> std::path::PathBuf {
    crate::hub::hub_venv().join("bin/python")
}

/// tests/support/lti13_hub_login.py with `args`: its JSON line.
fn hub_login(args: &[&str]) -> Value {
    let out = Command::new(hub_python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/lti13_hub_login.py"
        ))
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|_| {
        panic!(
            "login script: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The whole chain: the platform launches the student into a real JupyterHub through the
/// OIDC third-party login (edX's launch gate signs the id_token, LTI13Authenticator
/// verifies it and keeps it as auth state), the student submits, and the score arrives at
/// the platform for the `sub` the platform launched, on the line item the launch named.
/// Forged and expired launches log nobody in and give no launch data.
#[tokio::test]
async fn a_student_launched_from_edx_into_the_hub_gets_the_score_under_the_launched_sub() {
    let t = Setup::new().await;
    let config = Command::new(hub_python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/lti13_hub_login.py"
        ))
        .args([
            "--print-hub-config",
            "--platform",
            &t.platform.base,
            "--label",
            LABEL,
        ])
        .output()
        .unwrap();
    assert!(
        config.status.success(),
        "{}",
        String::from_utf8_lossy(&config.stderr)
    );
    let lti_hub = crate::hub::TestHub::start(&crate::hub::HubSetup {
        hub_config: String::from_utf8(config.stdout).unwrap(),
        ..Default::default()
    });
    let app = spawn_app_with(|s| {
        t.settings(s);
        s.hub.api_url = lti_hub.api_url.clone();
    })
    .await;
    let hub_url = lti_hub.hub_url.as_str();
    let login = |sub: &str, email: &str, extra: &[&str]| {
        let mut args = vec![
            "--hub",
            hub_url,
            "--platform",
            &t.platform.base,
            "--label",
            LABEL,
            "--sub",
            sub,
            "--email",
            email,
        ];
        args.extend_from_slice(extra);
        hub_login(&args)
    };
    let good = login("edx-anon-7f3a", "grace@example.edu", &[]);
    assert_eq!(good["ok"], true, "{good}");
    let user = good["hub_user"].as_str().unwrap().to_string();
    assert_eq!(user, "grace@example.edu");
    // A forged launch (right kid, another key) and an expired one log nobody in.
    for (email, knob) in [
        ("forger@example.edu", "--forge-key"),
        ("late@example.edu", "--expired"),
    ] {
        let bad = login("edx-anon-bad", email, &[knob]);
        assert_eq!(bad["ok"], false, "{knob}: {bad}");
        assert_eq!(bad["status"], 400, "{knob}: {bad}");
    }
    let token = lti_hub.user_token(&user, None).await;
    // Section 3 names the line item by its resource link: learned from this very launch.
    let id = app.submit_ok(&token, &notebook("partial", "3")).await;
    wait_post_state(&app, &token, id, "posted").await;
    wait_holds(&t.platform, "edx", &t.lineitem("edx"), "edx-anon-7f3a", 3.0).await;
    let scores = t.platform.scores().await;
    assert_eq!(
        scores.len(),
        1,
        "only the launched student's score: {scores:?}"
    );
    // The forged and expired launches left no user the Hub could have a token for.
    for email in ["forger@example.edu", "late@example.edu"] {
        let r = reqwest::Client::new()
            .get(format!("{}/users/{email}", lti_hub.api_url))
            .header("Authorization", format!("token {SERVICE_TOKEN}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{email}");
    }
}
