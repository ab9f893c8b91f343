//! Starting the service for tests: in-process (`spawn_app`) or as the real binary
//! (`ServiceProcess`), with a temporary SQLite file and the repo's demo course.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use otter_service::app::Service;
use otter_service::grading::Runner;
use otter_service::grading::local::LocalRunner;
use otter_service::jupyterhub::HubClient;
use otter_service::secret::Secret;
use otter_service::settings::Settings;
use serde_json::Value;

use super::hub::{free_port, hub, stop_at_exit};

pub const PREFIX: &str = "/services/otter_grade/";

/// A path inside the repository.
pub fn repo_path(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// The demo course config.
pub fn course_config() -> PathBuf {
    repo_path("course_config/course-config.json")
}

/// The otter-grader environment made by scripts/setup-python.sh.
pub fn otter_venv() -> PathBuf {
    let venv = std::env::var_os("OTTER_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/otter-service/otter-venv")
        });
    assert!(
        venv.join("bin/otter").exists(),
        "otter-grader is not installed at {}: run scripts/setup-python.sh",
        venv.display()
    );
    venv
}

/// Whether `url` answers `200` (blocking, for use outside a runtime).
pub fn http_200(url: &str) -> bool {
    http_status(url) == Some(200)
}

/// The HTTP status `url` answers with, if it answers (blocking).
pub fn http_status(url: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let url = url::Url::parse(url).unwrap();
    let addr = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let mut s = std::net::TcpStream::connect(&addr).ok()?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET {} HTTP/1.0\r\nHost: {addr}\r\n\r\n", url.path());
    s.write_all(req.as_bytes()).ok()?;
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).ok()?;
    std::str::from_utf8(&buf[9..12]).ok()?.parse().ok()
}

/// A sample submission from tests/notebooks/.
pub fn sample(name: &str) -> Value {
    let path = repo_path(&format!("tests/notebooks/{name}.ipynb"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// `nb` made distinct by a counter in its metadata: the service answers an identical
/// resubmission (same bytes) still waiting with the waiting one, so tests that want many
/// submissions from one student send copies that differ.
pub fn copy_of(nb: &Value, i: usize) -> Value {
    let mut nb = nb.clone();
    nb["metadata"]["otter_test_copy"] = serde_json::json!(i);
    nb
}

/// Settings for a test service on `port` with its database in `dir`.
pub fn test_settings(dir: &Path, port: u16) -> Settings {
    let mut s = Settings::load_from(None, |_| None).unwrap();
    s.server.bind = format!("127.0.0.1:{port}").parse().unwrap();
    s.server.shutdown_grace_secs = 5;
    s.database.path = dir.join("otter.db");
    s.course.config = course_config();
    s.course.materials_root = repo_path("course_config/materials");
    s.grading.runner = "local".into();
    s.grading.python_env = otter_venv();
    s.grading.time_limit_secs = 60;
    s.grading.retry_base_secs = 1;
    s.grading.lease_secs = 10;
    // Tests send bursts from one student; the per-student cap has tests of its own.
    s.grading.max_queued_per_student = 1000;
    s.hub.api_url = hub().api_url.clone();
    s.hub.api_token = Secret::new("not-needed-for-token-checks");
    s
}

/// The service running in this test's runtime.
pub struct TestApp {
    /// `http://127.0.0.1:PORT/services/otter_grade/`
    pub url: String,
    pub http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// The service's SQLite file.
    pub db_path: PathBuf,
    /// The service's calendar clock (tests move it instead of sleeping to a deadline).
    pub clock: otter_service::clock::Clock,
    _dir: tempfile::TempDir,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Start the real router and workers on a free port, with the local runner and the real Hub.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Like [`spawn_app`], after `adjust` has changed the settings.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_with_runner(adjust, None).await
}

/// Like [`spawn_app_with`], grading with `runner` (default: the local runner).
pub async fn spawn_app_with_runner(
    adjust: impl FnOnce(&mut Settings),
    runner: Option<Arc<dyn Runner>>,
) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut s = test_settings(dir.path(), 0);
    adjust(&mut s);
    let h = &s.hub;
    let hub_client = Arc::new(HubClient::new(
        &h.api_url,
        &h.client_id,
        h.api_token.clone(),
        &h.oauth_callback_url,
    ));
    let runner = match runner {
        Some(r) => r,
        None => Arc::new(LocalRunner::new(&s.grading.python_env).await),
    };
    let prefix = s.server.prefix.clone();
    // Posting to edX is on when the settings have LTI credentials, as in production.
    let outcomes = otter_service::app::outcomes_client(&s).expect("LTI settings");
    let service = Service::build_with(s, hub_client, runner, outcomes)
        .await
        .expect("service builds");
    let port = service.port();
    let clock = service.app.clock.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(service.run(async move {
        let _ = rx.await;
    }));
    TestApp {
        url: format!("http://127.0.0.1:{port}{prefix}"),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        stop: Some(tx),
        db_path: dir.path().join("otter.db"),
        clock,
        _dir: dir,
    }
}

impl TestApp {
    /// `POST {prefix}` with `{"nb": notebook}` and a Hub token.
    pub async fn submit(&self, token: &str, notebook: &Value) -> reqwest::Response {
        self.http
            .post(&self.url)
            .header("Authorization", format!("token {token}"))
            .header("Accept", "application/json")
            .json(&serde_json::json!({ "nb": notebook }))
            .send()
            .await
            .unwrap()
    }

    /// Submit and return the new submission's id (asserting 202).
    pub async fn submit_ok(&self, token: &str, notebook: &Value) -> i64 {
        let r = self.submit(token, notebook).await;
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 202, "{body}");
        body["submission_id"].as_i64().unwrap()
    }

    /// `GET {prefix}submissions/{id}` as JSON.
    pub async fn status(&self, token: &str, id: i64) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}submissions/{id}", self.url))
            .header("Authorization", format!("token {token}"))
            .header("Accept", "application/json")
            .send()
            .await
            .unwrap();
        let code = r.status().as_u16();
        (code, r.json().await.unwrap_or(Value::Null))
    }

    /// `GET {prefix}healthz` from this machine (so with the details): status and body.
    pub async fn healthz(&self) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}healthz", self.url))
            .send()
            .await
            .unwrap();
        let code = r.status().as_u16();
        (code, r.json().await.unwrap())
    }

    /// The submission's page, as the student's browser gets it.
    pub async fn page(&self, token: &str, id: i64) -> String {
        self.http
            .get(format!("{}submissions/{id}", self.url))
            .header("Authorization", format!("token {token}"))
            .header("Accept", "text/html")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The caller's submissions (`GET {prefix}submissions` as JSON).
    pub async fn list(&self, token: &str) -> Vec<Value> {
        let v: Value = self
            .http
            .get(format!("{}submissions", self.url))
            .header("Authorization", format!("token {token}"))
            .header("Accept", "application/json")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["submissions"].as_array().unwrap().clone()
    }

    /// Poll until the submission is graded, failed or dead.
    pub async fn wait_done(&self, token: &str, id: i64, limit: Duration) -> Value {
        wait_done(&self.http, &self.url, token, id, limit).await
    }
}

/// `POST {url}` with `{"nb": notebook}` and a Hub token; the new submission's id.
pub async fn submit_to(http: &reqwest::Client, url: &str, token: &str, notebook: &Value) -> i64 {
    let r = http
        .post(url)
        .header("Authorization", format!("token {token}"))
        .header("Accept", "application/json")
        .json(&serde_json::json!({ "nb": notebook }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    r.json::<Value>().await.unwrap()["submission_id"]
        .as_i64()
        .unwrap()
}

/// Run the `otter-service` binary on database `db`; its standard output.
pub fn cli(db: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_otter-service"))
        .args(args)
        .env("OTTER_DATABASE__PATH", db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of the form field `name` in an HTML page (as `name="..." value="..."`).
#[allow(dead_code)] // not used by the benches, which share this file
pub fn form_field(html: &str, name: &str) -> Option<String> {
    html.split(&format!("name=\"{name}\" value=\""))
        .nth(1)
        .and_then(|s| s.split('"').next())
        .map(str::to_string)
}

/// The count `otter-service status` prints for jobs of `kind` in `state`.
#[allow(dead_code)] // not used by the benches, which share this file
pub fn status_count(db: &Path, kind: &str, state: &str) -> i64 {
    let status = cli(db, &["status"]);
    status
        .lines()
        .find_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
            [k, s, n] if k == kind && s == state => n.parse().ok(),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no {kind} {state} line in: {status}"))
}

/// Poll `{url}submissions/{id}` until it leaves the queue.
pub async fn wait_done(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    id: i64,
    limit: Duration,
) -> Value {
    let start = Instant::now();
    loop {
        let r = http
            .get(format!("{url}submissions/{id}"))
            .header("Authorization", format!("token {token}"))
            .header("Accept", "application/json")
            .send()
            .await;
        if let Ok(r) = r
            && r.status() == 200
        {
            let v: Value = r.json().await.unwrap();
            if matches!(v["state"].as_str(), Some("graded" | "failed" | "dead")) {
                return v;
            }
        }
        assert!(
            start.elapsed() < limit,
            "submission {id} not done within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The real `otter-service` binary, started with a TOML settings file.
pub struct ServiceProcess {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    pub db_path: PathBuf,
    config: PathBuf,
    /// Wait for `/healthz` to answer 200 at start (else: to answer at all).
    wait_healthy: bool,
}

impl ServiceProcess {
    /// Start the binary with `toml` as its settings file, in `dir`, and wait for `/healthz`.
    pub fn start(dir: &Path, port: u16, toml: &str) -> Self {
        Self::launch(dir, port, toml, true)
    }

    /// Like [`ServiceProcess::start`], for a service that starts unable to grade: waits
    /// only until `/healthz` answers, whatever it says.
    pub fn start_unready(dir: &Path, port: u16, toml: &str) -> Self {
        Self::launch(dir, port, toml, false)
    }

    fn launch(dir: &Path, port: u16, toml: &str, wait_healthy: bool) -> Self {
        let config = dir.join("otter.toml");
        std::fs::write(&config, toml).unwrap();
        let mut p = Self {
            child: None,
            port,
            dir: dir.to_path_buf(),
            db_path: dir.join("otter.db"),
            config,
            wait_healthy,
        };
        p.spawn();
        p
    }

    /// Settings text for a binary service on `port` whose database is in `dir`.
    pub fn toml(dir: &Path, port: u16, api_url: &str, token: &str, extra: &str) -> String {
        format!(
            r#"
[server]
bind = "127.0.0.1:{port}"
shutdown_grace_secs = 5
[hub]
api_url = "{api_url}"
api_token = "{token}"
# Sessions and tokens are re-checked with the Hub this often (tests of revocation).
token_cache_secs = 5
[database]
path = "{db}"
[course]
config = "{config}"
materials_root = "{materials}"
[grading]
runner = "local"
python_env = "{venv}"
retry_base_secs = 1
lease_secs = 5
max_queued_per_student = 1000
{extra}
"#,
            db = dir.join("otter.db").display(),
            config = course_config().display(),
            materials = repo_path("course_config/materials").display(),
            venv = otter_venv().display(),
        )
    }

    /// The service the test Hub proxies to; `edit` rewrites its settings file.
    pub fn start_for_hub(
        dir: &Path,
        port: u16,
        api_url: &str,
        token: &str,
        edit: Option<&dyn Fn(String) -> String>,
    ) -> Self {
        let sub = dir.join("service");
        std::fs::create_dir_all(&sub).unwrap();
        let toml = Self::toml(&sub, port, api_url, token, "");
        Self::start(&sub, port, &edit.map_or(toml.clone(), |e| e(toml)))
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("service.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_otter-service"))
            .args(["serve", "--config"])
            .arg(&self.config)
            .env_remove("JUPYTERHUB_API_TOKEN")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start otter-service");
        stop_at_exit(child.id());
        self.child = Some(child);
        let start = Instant::now();
        let url = format!("http://127.0.0.1:{}/healthz", self.port);
        let up = |url: &str| match http_status(url) {
            Some(200) => true,
            Some(_) => !self.wait_healthy,
            None => false,
        };
        while !up(&url) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "otter-service did not become healthy; see {}/service.log",
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `http://127.0.0.1:PORT/services/otter_grade/`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}{PREFIX}", self.port)
    }

    /// The process id, while running.
    #[allow(dead_code)] // used by benches/intake.rs, which shares this file
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `kill -9`: no shutdown, no cleanup.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start again with the same settings and database.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }
}

impl ServiceProcess {
    /// SIGTERM, as an operator stops it: the graceful shutdown, waited for.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let _ = c.wait();
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A free port, for services started by tests.
pub fn port() -> u16 {
    free_port()
}

/// A copy of the demo course whose autograder zip is `zip` (bytes).
pub fn course_with_zip(dir: &Path, zip: &[u8]) {
    std::fs::copy(
        repo_path("course_config/course-config.json"),
        dir.join("course-config.json"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("materials/demo")).unwrap();
    std::fs::write(dir.join("materials/demo/demo1-autograder.zip"), zip).unwrap();
}
