//! Grader hosts (src/hosts/): the service grading only through hosts (`workers = 0`),
//! a real `otter-service grader` process on the real Docker engine, and the host API's
//! fences tried the way a cut-off, revoked or impostor host would.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::docker::ENGINE;
use crate::helpers::{TestApp, cli, sample, spawn_app_with};
use crate::hub::{free_port, hub};

/// The service with no workers of its own and the host API on `port`.
async fn service(
    port: u16,
    adjust: impl FnOnce(&mut otter_service::settings::Settings),
) -> TestApp {
    spawn_app_with(|s| {
        s.grading.workers = 0;
        s.hosts.bind = Some(format!("127.0.0.1:{port}").parse().unwrap());
        adjust(s);
    })
    .await
}

/// `hosts add NAME`: the token it prints.
fn add_host(db: &Path, name: &str) -> String {
    let out = cli(db, &["hosts", "add", name]);
    let token = out.trim().to_string();
    assert!(token.starts_with("oth_"), "{out}");
    token
}

/// A real grader host process on this machine's engine.
struct GraderProcess {
    process: crate::cluster::HostProcess,
    instance: String,
    _dir: tempfile::TempDir,
}

impl GraderProcess {
    fn start(port: u16, token: &str, slots: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let instance = format!("otter-host-{:08x}", rand::random::<u32>());
        let settings = dir.path().join("grader.toml");
        std::fs::write(
            &settings,
            format!(
                "service_url = \"http://127.0.0.1:{port}/\"\nslots = {slots}\n\
                 cache_dir = \"{cache}\"\n[docker]\ninstance_id = \"{instance}\"\n\
                 warm_containers = 0\n",
                cache = dir.path().join("cache").display(),
            ),
        )
        .unwrap();
        let log = dir.path().join("grader.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_otter-service"))
            .args(["grader", "--settings"])
            .arg(&settings)
            .env("OTTER_GRADER_TOKEN", token)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start the grader host");
        Self {
            process: crate::cluster::HostProcess::new(child, log),
            instance,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        self.process.log()
    }

    /// SIGTERM, as Kubernetes stops a pod; waited for.
    fn stop(&mut self) {
        self.process.stop();
    }
}

/// Per-question scores of a view.
fn questions(v: &Value) -> Vec<(String, f64)> {
    crate::trusted::question_scores("view", v)
}

#[tokio::test]
async fn a_grader_host_grades_what_the_service_queues_as_its_own_workers_would() {
    let _shared = ENGINE.read().await;
    let port = free_port();
    let app = service(port, |_| {}).await;
    let token = add_host(&app.db_path, "h1");
    let mut host = GraderProcess::start(port, &token, 2);
    let names = ["correct", "partial", "error"];
    let mut ids = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let student = hub().user_token(&format!("hoststudent{i}"), None).await;
        ids.push((
            student.clone(),
            app.submit_ok(&student, &sample(name)).await,
        ));
    }
    let mut remote = Vec::new();
    for (student, id) in &ids {
        let v = app.wait_done(student, *id, Duration::from_secs(240)).await;
        assert_eq!(v["state"], "graded", "{v}\n{}", host.log());
        remote.push(questions(&v));
    }
    // The same notebooks through the service's own workers and runner (same image and
    // evaluator, on this machine): the same per-question scores.
    let local = crate::helpers::spawn_app_with_runner(
        |s| s.grading.workers = 1,
        Some(std::sync::Arc::new(crate::docker::runner().await)),
    )
    .await;
    let student = hub().user_token("hoststudent-local", None).await;
    for (name, got) in names.iter().zip(&remote) {
        let id = local.submit_ok(&student, &sample(name)).await;
        let v = local
            .wait_done(&student, id, Duration::from_secs(240))
            .await;
        assert_eq!(&questions(&v), got, "{name}: host vs local");
    }
    assert_eq!(remote[0].iter().map(|q| q.1).sum::<f64>(), 5.0);
    // Staff see who graded: the host's count and the attempt on it in the timeline.
    let list = cli(&app.db_path, &["hosts", "list"]);
    let row = list
        .lines()
        .find(|l| l.starts_with("h1 "))
        .unwrap_or_else(|| panic!("{list}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!((cols[1], cols[2], cols[4]), ("active", "2", "3"), "{list}");
    let status = cli(&app.db_path, &["status"]);
    assert!(
        status.contains("grader hosts: 1 (2 slots, 0 jobs in hand"),
        "{status}"
    );
    let timeline = cli(&app.db_path, &["timeline", &ids[0].1.to_string()]);
    assert!(timeline.contains("on host h1"), "{timeline}");
    // What an autoscaler reads: one host connected, its two slots.
    let root = app.url.trim_end_matches(crate::helpers::PREFIX);
    let metrics = reqwest::get(format!("{root}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "otter_grader_hosts 1",
        "otter_grader_host_slots 2",
        "otter_grader_host_slots_busy 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line:?} in\n{metrics}"
        );
    }
    // Stopped as Kubernetes stops a pod: it leaves no container behind.
    host.stop();
    let left = crate::warm::containers(&host.instance, None).await;
    assert!(left.is_empty(), "containers left: {left:?}");
}

/// A host's side of the API, spoken by hand.
struct FakeHost {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl FakeHost {
    fn new(port: u16, token: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: format!("http://127.0.0.1:{port}/v1/"),
            token: token.into(),
        }
    }

    async fn post(&self, path: &str, body: String) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let code = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            code,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn claim(&self) -> (u16, Value) {
        self.post(
            "claim",
            json!({"slots": 1, "version": "test", "wait_secs": 3}).to_string(),
        )
        .await
    }

    async fn heartbeat(&self, lease: &str) -> u16 {
        self.post(&format!("leases/{lease}/heartbeat"), String::new())
            .await
            .0
    }

    async fn complete(&self, lease: &str, score: f64) -> (u16, Value) {
        let body = json!({
            "result": "graded",
            "outcome": {
                "ending": "graded", "score": score, "max_score": 5.0,
                "tests": [{"name": "q1", "score": score, "max_score": 5.0, "visibility": "visible"}],
                "public_feedback": "ok"
            },
            "finished_after_ms": 10
        });
        self.post(&format!("leases/{lease}/complete"), body.to_string())
            .await
    }
}

fn lease(work: &Value) -> String {
    work["lease"]
        .as_str()
        .unwrap_or_else(|| panic!("no lease in {work}"))
        .to_string()
}

/// Grades stored for a submission (`dump-grades` for its user).
fn grades_of(db: &Path, user: &str) -> usize {
    cli(db, &["dump-grades", "--user", user])
        .lines()
        .count()
        .saturating_sub(1)
}

#[tokio::test]
async fn a_lease_is_the_only_way_to_a_grade_and_it_ends_with_expiry_takeover_or_revocation() {
    let port = free_port();
    let app = service(port, |s| {
        s.hosts.lease_secs = 3;
        s.hosts.max_result_bytes = 64 * 1024;
    })
    .await;
    let (t1, t2) = (add_host(&app.db_path, "h1"), add_host(&app.db_path, "h2"));
    let (h1, h2) = (FakeHost::new(port, &t1), FakeHost::new(port, &t2));
    // No token, a wrong one: refused with a reason.
    let nobody = FakeHost::new(port, "");
    assert_eq!(nobody.claim().await.0, 401);
    let (code, why) = FakeHost::new(port, "oth_guess").claim().await;
    assert_eq!(
        (code, why["error"].as_str()),
        (401, Some("unknown host token"))
    );
    assert_eq!(h1.post("claim", "nonsense".into()).await.0, 400);
    // Nothing queued: the long poll answers "nothing" after its wait.
    let t = Instant::now();
    assert_eq!(h1.claim().await.0, 204);
    assert!(t.elapsed() >= Duration::from_secs(3), "{:?}", t.elapsed());

    let ann = hub().user_token("leaseann", None).await;
    let nb = sample("correct");
    let id = app.submit_ok(&ann, &nb).await;
    let (code, work) = h1.claim().await;
    assert_eq!(code, 200, "{work}");
    assert_eq!(work["submission_id"], id);
    let sent = base64::engine::general_purpose::STANDARD
        .decode(work["notebook_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&sent).unwrap(), nb);
    assert!(
        !work.to_string().contains("leaseann"),
        "the student's name does not travel"
    );
    // The autograder by its hash, and nothing else.
    let sha = work["autograder"]["sha256"].as_str().unwrap();
    let zip = h1
        .http
        .get(format!("{}autograders/{sha}", h1.base))
        .bearer_auth(&t1)
        .send()
        .await
        .unwrap();
    assert_eq!(zip.status(), 200);
    assert_eq!(hex::encode(Sha256::digest(zip.bytes().await.unwrap())), sha);
    let other = format!("{}autograders/{}", h1.base, "0".repeat(64));
    let r = h1.http.get(other).bearer_auth(&t1).send().await.unwrap();
    assert_eq!(r.status(), 404);

    // Another host holding the lease id: refused, nothing stored.
    let l1 = lease(&work);
    assert_eq!(h2.heartbeat(&l1).await, 409);
    assert_eq!(h2.complete(&l1, 5.0).await.0, 409);
    assert_eq!(grades_of(&app.db_path, "leaseann"), 0);
    // The holder: a nonsense score is refused, then the grade stored once.
    assert_eq!(h1.heartbeat(&l1).await, 200);
    assert_eq!(h1.complete(&l1, -1.0).await.0, 422);
    let big = "x".repeat(100 * 1024);
    assert_eq!(h1.post(&format!("leases/{l1}/complete"), big).await.0, 413);
    assert_eq!(h1.complete(&l1, 4.0).await, (200, json!({"stored": true})));
    let v = app.wait_done(&ann, id, Duration::from_secs(10)).await;
    assert_eq!(v["grade"]["score"], 4.0, "{v}");
    // A repeat (the answer was lost on the way) is answered the same, stores nothing.
    let (code, again) = h1.complete(&l1, 1.0).await;
    assert_eq!((code, &again["stored"]), (200, &json!(true)), "{again}");
    assert_eq!(grades_of(&app.db_path, "leaseann"), 1);
    assert_eq!(app.status(&ann, id).await.1["grade"]["score"], 4.0);

    // A host cut off past its lease: its heartbeat and its result are refused, and the
    // job is taken over (attempt 2); the late result stores nothing.
    let ben = hub().user_token("leaseben", None).await;
    let id2 = app.submit_ok(&ben, &nb).await;
    let (_, work) = h1.claim().await;
    let l2 = lease(&work);
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    assert_eq!(h1.heartbeat(&l2).await, 409);
    assert_eq!(h1.complete(&l2, 5.0).await.0, 409);
    let (_, taken) = h2.claim().await;
    assert_eq!(
        (taken["submission_id"].as_i64(), taken["attempt"].as_i64()),
        (Some(id2), Some(2))
    );
    assert_eq!(h1.complete(&l2, 5.0).await.0, 409);
    assert_eq!(h2.complete(&lease(&taken), 3.0).await.0, 200);
    let v = app.wait_done(&ben, id2, Duration::from_secs(10)).await;
    assert_eq!(
        (
            v["grade"]["score"].as_f64(),
            grades_of(&app.db_path, "leaseben")
        ),
        (Some(3.0), 1)
    );

    // Revoked mid-job: its token is refused at once, the job is back in the queue for
    // another host, and its result is refused.
    let cy = hub().user_token("leasecy", None).await;
    let id3 = app.submit_ok(&cy, &nb).await;
    let (_, work) = h2.claim().await;
    let l3 = lease(&work);
    let said = cli(&app.db_path, &["hosts", "revoke", "h2"]);
    assert!(said.contains("1 job(s) it held went back"), "{said}");
    let (code, why) = h2.complete(&l3, 5.0).await;
    assert_eq!(
        (code, why["error"].as_str()),
        (403, Some("host h2 was revoked"))
    );
    let (_, back) = h1.claim().await;
    assert_eq!(back["submission_id"].as_i64(), Some(id3));
    // A drained host gets nothing new but keeps what it holds.
    cli(&app.db_path, &["hosts", "drain", "h1"]);
    let dee = hub().user_token("leasedee", None).await;
    app.submit_ok(&dee, &nb).await;
    assert_eq!(h1.heartbeat(&lease(&back)).await, 200);
    let t = Instant::now();
    let short = json!({"slots": 1, "version": "test", "wait_secs": 1}).to_string();
    assert_eq!(h1.post("claim", short).await.0, 204);
    assert!(
        t.elapsed() >= Duration::from_secs(1),
        "the drained host's poll is held"
    );
    assert_eq!(h1.complete(&lease(&back), 2.0).await.0, 200);
    let v = app.wait_done(&cy, id3, Duration::from_secs(10)).await;
    assert_eq!(v["grade"]["score"], 2.0);
    // What the fenced-off hosts sent never became a grade.
    assert_eq!(grades_of(&app.db_path, "leasecy"), 1);
}

/// The hostile notebooks (grader/tests/hostile/) through a grader host: each earns exactly
/// its honest part, as through the service's own runner (tests/api/trusted.rs), and shows
/// its student no hidden test and no result line.
#[tokio::test]
async fn the_hostile_set_through_a_host_earns_what_it_earns_locally() {
    let _shared = ENGINE.read().await;
    let port = free_port();
    let app = service(port, |_| {}).await;
    let token = add_host(&app.db_path, "hostile-host");
    let _host = GraderProcess::start(port, &token, 2);
    let student = hub().user_token("hostmallory", None).await;
    let names = crate::trusted::HOSTILE;
    let mut ids = Vec::new();
    for name in names {
        let path = crate::helpers::repo_path(&format!("grader/tests/hostile/{name}.ipynb"));
        let nb: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        ids.push((name, app.submit_ok(&student, &nb).await));
    }
    for (name, id) in ids {
        let v = app.wait_done(&student, id, Duration::from_secs(300)).await;
        assert_eq!(v["state"], "graded", "{name}: {v}");
        let want: Vec<(String, f64)> = crate::trusted::earned(name)
            .iter()
            .map(|(q, s)| (q.to_string(), *s))
            .collect();
        assert_eq!(questions(&v), want, "{name}");
        crate::trusted::shown_to_the_student(name, &app, &student, id, &v).await;
    }
}

/// An assignment that requires a tag: neither the service's own worker nor a host
/// without the tag takes it; staff see it waiting for such a host (`status`, /metrics);
/// a host with the tag grades it.
#[tokio::test]
async fn a_job_that_needs_a_tag_nobody_has_is_shown_waiting_until_a_host_with_it_comes() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("course-config.json");
    std::fs::write(
        &config,
        r#"{"demo": {"1": {"course_id": "BerkeleyX+Demo1+2026", "subpath_to_zips": "demo", "staff_group": "demo-staff",
            "assignments": {"demo1": {"lti_block": "0123456789abcdef0123456789abcdef",
                                      "requires": ["gpu"]}}}}}"#,
    )
    .unwrap();
    let port = free_port();
    let app = spawn_app_with(|s| {
        // One worker of the service's own (the local runner), which must leave it alone.
        s.grading.workers = 1;
        s.course.config = config.clone();
        s.hosts.bind = Some(format!("127.0.0.1:{port}").parse().unwrap());
        // The service reads staff's groups with its own token (the staff page below).
        s.hub.api_token = otter_service::secret::Secret::new(crate::hub::SERVICE_TOKEN);
    })
    .await;
    let plain = FakeHost::new(port, &add_host(&app.db_path, "plain"));
    let out = cli(&app.db_path, &["hosts", "add", "gpu-1", "--tags", "gpu"]);
    let gpu = FakeHost::new(port, out.trim());
    let student = hub().user_token("tagged", None).await;
    let id = app.submit_ok(&student, &sample("correct")).await;
    assert_eq!(
        plain.claim().await.0,
        204,
        "a host without the tag gets nothing"
    );
    assert_eq!(app.status(&student, id).await.1["state"], "queued");
    let config_arg = config.to_str().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_otter-service"))
        .arg("status")
        .env("OTTER_DATABASE__PATH", &app.db_path)
        .env("OTTER_COURSE__CONFIG", config_arg)
        .env(
            "OTTER_COURSE__MATERIALS_ROOT",
            crate::helpers::repo_path("course_config/materials"),
        )
        .env("OTTER_GRADING__WORKERS", "1")
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("no grader can take 1 queued job(s) of demo/1/demo1")
            && status.contains("offering gpu"),
        "{status}"
    );
    let root = app.url.trim_end_matches(crate::helpers::PREFIX);
    let metrics = || async {
        reqwest::get(format!("{root}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    assert!(
        metrics()
            .await
            .lines()
            .any(|l| l == "otter_jobs_unroutable 1")
    );
    // And on the staff dashboard, with the hosts.
    hub().add_to_group("demo-staff", "tagstaff").await;
    let staff = hub().user_token("tagstaff", None).await;
    let get = ("GET", "staff".to_string(), String::new());
    let (code, page) = crate::staff::call(&app, &staff, &get).await;
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains("No grader can take 1 waiting submission(s) of demo 1 demo1")
            && page.contains("offering gpu"),
        "{page}"
    );
    assert!(
        page.contains("<td>plain</td>") && page.contains("<td>gpu-1</td>"),
        "{page}"
    );
    // The host with the tag takes it; nothing is left waiting for nobody.
    let (code, work) = gpu.claim().await;
    assert_eq!(
        (code, work["submission_id"].as_i64()),
        (200, Some(id)),
        "{work}"
    );
    assert!(
        metrics()
            .await
            .lines()
            .any(|l| l == "otter_jobs_unroutable 0")
    );
    assert_eq!(gpu.complete(&lease(&work), 5.0).await.0, 200);
    assert_eq!(
        app.wait_done(&student, id, Duration::from_secs(10)).await["grade"]["score"],
        5.0
    );
}

/// A host's "retry" and "fatal" answers go through the same attempt rules as the
/// service's own: a retry is queued again (never charged), a fatal one ends the
/// submission `dead` for staff with the host's reason, nothing stored as a grade.
#[tokio::test]
async fn a_hosts_failures_follow_the_attempt_rules() {
    let port = free_port();
    let app = service(port, |s| s.grading.retry_base_secs = 0).await;
    let h = FakeHost::new(port, &add_host(&app.db_path, "failing"));
    let student = hub().user_token("failhost", None).await;
    let id = app.submit_ok(&student, &sample("correct")).await;
    let (_, work) = h.claim().await;
    let retry = json!({"result": "retry", "reason": "the engine is down"}).to_string();
    let (code, _) = h
        .post(&format!("leases/{}/complete", lease(&work)), retry)
        .await;
    assert_eq!(code, 200);
    let (_, again) = h.claim().await;
    assert_eq!(
        (again["submission_id"].as_i64(), again["attempt"].as_i64()),
        (Some(id), Some(2))
    );
    let fatal = json!({"result": "fatal", "reason": "a second result failed its check"});
    let (code, _) = h
        .post(
            &format!("leases/{}/complete", lease(&again)),
            fatal.to_string(),
        )
        .await;
    assert_eq!(code, 200);
    let v = app.wait_done(&student, id, Duration::from_secs(10)).await;
    assert_eq!(v["state"], "dead", "{v}");
    assert!(v["grade"].is_null(), "{v}");
    assert_eq!(grades_of(&app.db_path, "failhost"), 0);
    let status = cli(&app.db_path, &["status"]);
    assert!(
        status.contains("on host failing: a second result failed its check"),
        "{status}"
    );
}
