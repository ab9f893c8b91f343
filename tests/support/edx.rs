//! edX's own LTI outcome handler as a test peer: tests/support/edx_stand_in.py runs
//! lti-consumer-xblock's `OutcomeService` from the venv made by
//! scripts/setup-edx-verifier.sh, on 127.0.0.1; stopped by PID on drop.
#![allow(dead_code)] // each test binary that includes this uses part of it

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use otter_service::lti::{EdxOutcomesClient, LtiConfig};
use otter_service::secret::Secret;
use serde_json::Value;
use url::Url;

pub const KEY: &str = "otter-test-key";
pub const SECRET: &str = "s3cret+/&é";

/// The python of the verifier venv; a missing venv fails the test (never skips it).
fn venv_python() -> PathBuf {
    let venv = std::env::var_os("EDX_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/otter-service/edx-venv")
        });
    let python = venv.join("bin/python");
    assert!(
        python.is_file() && venv.join(".otter-stamp").is_file(),
        "edX verifier venv missing at {}: run scripts/setup-edx-verifier.sh",
        venv.display()
    );
    python
}

/// A running stand-in; killed (by PID) and reaped on drop, its log shown if a test failed.
pub struct StandIn {
    child: Option<Child>,
    pub base: Url,
    log: tempfile::NamedTempFile,
    http: reqwest::Client,
}

impl StandIn {
    /// Start on a free port.
    pub fn start(unknown_users: &[&str]) -> StandIn {
        Self::start_on(unknown_users, 0)
    }

    /// Start on `port` (0: any free one), e.g. again on the port of a stopped one.
    pub fn start_on(unknown_users: &[&str], port: u16) -> StandIn {
        let log = tempfile::NamedTempFile::new().unwrap();
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/edx_stand_in.py");
        let mut child = Command::new(venv_python())
            .arg(script)
            .args(["--port", &port.to_string()])
            .env("EDX_CONSUMER_KEY", KEY)
            .env("EDX_CONSUMER_SECRET", SECRET)
            .env("EDX_UNKNOWN_USERS", unknown_users.join(","))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("start the edX stand-in");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("EDX_STAND_IN_PORT=") {
                    let _ = tx.send(port.trim().to_string());
                }
            }
        });
        let mut stand_in = StandIn {
            child: Some(child),
            base: Url::parse("http://127.0.0.1").unwrap(),
            log,
            http: reqwest::Client::new(),
        };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(port) => stand_in.base = Url::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
            Err(_) => panic!("the edX stand-in did not start:\n{}", stand_in.log_text()),
        }
        stand_in
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    pub fn client(&self, secret: &str, timeout: Duration) -> EdxOutcomesClient {
        EdxOutcomesClient::new(LtiConfig {
            edx_base_url: self.base.clone(),
            consumer_key: KEY.into(),
            consumer_secret: Secret::new(secret),
            timeout,
        })
        .unwrap()
    }

    pub async fn scores(&self) -> Vec<Value> {
        let url = self.base.join("/_scores").unwrap();
        let res = self.http.get(url).send().await.unwrap();
        res.error_for_status().unwrap().json().await.unwrap()
    }

    /// How many outcome requests have arrived (handled or not).
    pub async fn received(&self) -> u64 {
        let url = self.base.join("/_received").unwrap();
        let res = self.http.get(url).send().await.unwrap();
        res.error_for_status().unwrap().json().await.unwrap()
    }

    /// The score edX holds now for `user` (the last one it accepted).
    pub async fn holds(&self, user: &str) -> Option<f64> {
        self.scores()
            .await
            .iter()
            .rev()
            .find(|s| s["user"] == user)
            .and_then(|s| s["score"].as_f64())
    }

    pub async fn set_mode(&self, mode: &str) {
        let url = self.base.join("/_mode").unwrap();
        let res = self
            .http
            .post(url)
            .body(mode.to_string())
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "mode {mode}");
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL to this child's PID
            let _ = child.wait();
        }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("--- edX stand-in log ---\n{}", self.log_text());
        }
    }
}
