//! LTI 1.3 platforms as test peers: tests/support/lti13_platform.py runs edX's own
//! lti-consumer-xblock Django views (token endpoint, AGS score handler) and a second,
//! stricter platform built on lti1p3platform, from the venv made by
//! scripts/setup-lti13-platform.sh, on 127.0.0.1; stopped by PID on drop.
#![allow(dead_code)] // each test binary that includes this uses part of it

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

/// The python of the platform venv; a missing venv fails the test (never skips it).
fn venv_python() -> PathBuf {
    let venv = std::env::var_os("LTI13_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/otter-service/lti13-venv")
        });
    let python = venv.join("bin/python");
    assert!(
        python.is_file() && venv.join(".otter-stamp").is_file(),
        "LTI 1.3 platform venv missing at {}: run scripts/setup-lti13-platform.sh",
        venv.display()
    );
    python
}

/// A running platform; killed (by PID) and reaped on drop, its log shown if a test failed.
pub struct Platform {
    child: Option<Child>,
    pub base: String,
    pub port: u16,
    db: PathBuf,
    keyset_url: String,
    log: tempfile::NamedTempFile,
    http: reqwest::Client,
}

impl Platform {
    /// Start on a free port with its database in `dir`; it fetches the tool's key set
    /// from `tool_keyset_url`.
    pub fn start(dir: &Path, tool_keyset_url: &str) -> Platform {
        Self::start_on(dir.join("platform.sqlite"), tool_keyset_url, 0)
    }

    fn start_on(db: PathBuf, keyset_url: &str, port: u16) -> Platform {
        let log = tempfile::NamedTempFile::new().unwrap();
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/lti13_platform.py");
        let mut child = Command::new(venv_python())
            .arg(script)
            .args(["--port", &port.to_string()])
            .arg("--db")
            .arg(&db)
            .args(["--tool-keyset-url", keyset_url])
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("start the LTI 1.3 platform");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("LTI13_PLATFORM_PORT=") {
                    let _ = tx.send(port.trim().parse::<u16>().unwrap());
                }
            }
        });
        let mut p = Platform {
            child: Some(child),
            base: String::new(),
            port: 0,
            db,
            keyset_url: keyset_url.to_string(),
            log,
            http: reqwest::Client::new(),
        };
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(port) => {
                p.port = port;
                p.base = format!("http://127.0.0.1:{port}");
            }
            Err(_) => panic!("the LTI 1.3 platform did not start:\n{}", p.log_text()),
        }
        p
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    async fn post(&self, path: &str, body: reqwest::Body) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Create (idempotently) the platforms' registrations and `labels`' line items.
    pub async fn setup(&self, labels: &[&str], score_maximum: f64) -> Value {
        let body = json!({"lineitems": labels, "score_maximum": score_maximum}).to_string();
        let r = self.post("/_setup", body.into()).await;
        assert!(
            r.status().is_success(),
            "setup: {}\n{}",
            r.status(),
            self.log_text()
        );
        r.json().await.unwrap()
    }

    /// Every score both platforms hold.
    pub async fn scores(&self) -> Vec<Value> {
        let r = self
            .http
            .get(format!("{}/_scores", self.base))
            .send()
            .await
            .unwrap();
        r.error_for_status().unwrap().json().await.unwrap()
    }

    /// The score `peer` holds for `user_id` on `lineitem`.
    pub async fn holds(&self, peer: &str, lineitem: &str, user_id: &str) -> Option<Value> {
        self.scores()
            .await
            .into_iter()
            .find(|s| s["peer"] == peer && s["lineitem"] == lineitem && s["user_id"] == user_id)
    }

    pub async fn stats(&self) -> Value {
        let r = self
            .http
            .get(format!("{}/_stats", self.base))
            .send()
            .await
            .unwrap();
        r.error_for_status().unwrap().json().await.unwrap()
    }

    pub async fn set_mode(&self, mode: &str) {
        let r = self.post("/_mode", mode.to_string().into()).await;
        assert!(r.status().is_success(), "mode {mode}");
    }

    /// An id_token the edX platform signs for `sub` launching `label`'s resource link.
    pub async fn launch(&self, body: Value) -> String {
        let r = self.post("/_launch", body.to_string().into()).await;
        assert!(r.status().is_success(), "launch: {}", r.status());
        let v: Value = r.json().await.unwrap();
        v["id_token"].as_str().unwrap().to_string()
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL to this child's PID
            let _ = child.wait();
        }
    }

    /// Start again on the same port and database (an LMS restart).
    pub fn restart(&mut self) {
        self.stop();
        let mut again = Self::start_on(self.db.clone(), &self.keyset_url, self.port);
        std::mem::swap(self, &mut again); // the stopped one is dropped
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("--- LTI 1.3 platform log ---\n{}", self.log_text());
        }
    }
}
