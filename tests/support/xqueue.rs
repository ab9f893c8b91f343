//! edX's XQueue as a test peer: tests/support/xqueue_server.py runs edx-submissions'
//! XQueue API (the one edX's LMS serves at /xqueue/) from the venv made by
//! scripts/setup-xqueue.sh, on 127.0.0.1; stopped by PID on drop.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

pub const USER: &str = "otter-grader";
pub const PASSWORD: &str = "xq-pass-5e3";

fn venv_python() -> PathBuf {
    let venv = std::env::var_os("XQUEUE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/otter-service/xqueue-venv")
        });
    let python = venv.join("bin/python");
    assert!(
        python.is_file() && venv.join(".otter-stamp").is_file(),
        "XQueue venv missing at {}: run scripts/setup-xqueue.sh",
        venv.display()
    );
    python
}

/// A running XQueue; killed (by PID) and reaped on drop, its log shown if a test failed.
pub struct Xqueue {
    child: Option<Child>,
    pub base: String,
    pub port: u16,
    db: PathBuf,
    log: tempfile::NamedTempFile,
    http: reqwest::Client,
}

impl Xqueue {
    pub fn start(dir: &Path) -> Xqueue {
        Self::start_on(dir.join("xqueue.sqlite"), 0)
    }

    fn start_on(db: PathBuf, port: u16) -> Xqueue {
        let log = tempfile::NamedTempFile::new().unwrap();
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/xqueue_server.py");
        let mut child = Command::new(venv_python())
            .arg(script)
            .args(["--port", &port.to_string()])
            .arg("--db")
            .arg(&db)
            .args(["--users", &format!("{USER}:{PASSWORD}")])
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("start the XQueue");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("XQUEUE_PORT=") {
                    let _ = tx.send(port.trim().parse::<u16>().unwrap());
                }
            }
        });
        let mut x = Xqueue {
            child: Some(child),
            base: String::new(),
            port: 0,
            db,
            log,
            http: reqwest::Client::new(),
        };
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(port) => {
                x.port = port;
                x.base = format!("http://127.0.0.1:{port}");
            }
            Err(_) => panic!("the XQueue did not start:\n{}", x.log_text()),
        }
        x
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// The XQueue API's base URL, as the service is configured with it.
    pub fn api_url(&self) -> String {
        format!("{}/xqueue/", self.base)
    }

    /// A learner's submission, as the LMS creates it: `file` (bytes) as `name`.
    pub async fn submit(&self, student: &str, grader: &str, name: &str, file: &[u8]) -> Value {
        let body = json!({
            "queue": "notebooks", "student": student,
            "course_id": "course-v1:BerkeleyX+Demo1+2026",
            "item_id": "block-v1:BerkeleyX+Demo1+2026+type@problem+block@p1",
            "points_possible": 5, "grader_payload": {"grader": grader},
            "file": {"name": name,
                     "content_b64": base64::engine::general_purpose::STANDARD.encode(file)},
        });
        let r = self
            .http
            .post(format!("{}/_submit", self.base))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "submit: {}\n{}",
            r.status(),
            self.log_text()
        );
        r.json().await.unwrap()
    }

    pub async fn results(&self) -> Vec<Value> {
        let r = self
            .http
            .get(format!("{}/_results", self.base))
            .send()
            .await
            .unwrap();
        r.error_for_status().unwrap().json().await.unwrap()
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
        let r = self
            .http
            .post(format!("{}/_mode", self.base))
            .body(mode.to_string())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "mode {mode}");
    }

    pub async fn expire(&self) -> i64 {
        let r = self
            .http
            .post(format!("{}/_expire", self.base))
            .send()
            .await
            .unwrap();
        r.json::<Value>().await.unwrap()["expired"]
            .as_i64()
            .unwrap()
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL to this child's PID
            let _ = child.wait();
        }
    }

    /// Start again on the same port and database.
    pub fn restart(&mut self) {
        self.stop();
        let mut again = Self::start_on(self.db.clone(), self.port);
        std::mem::swap(self, &mut again);
    }
}

impl Drop for Xqueue {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("--- XQueue log ---\n{}", self.log_text());
        }
    }
}
