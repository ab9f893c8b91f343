//! A Standard Webhooks receiver as a test peer: tests/support/webhook_receiver.py verifies
//! every delivery with the spec's reference library (PyPI standardwebhooks 1.1.0) from the
//! venv made by scripts/setup-webhooks.sh, on 127.0.0.1; stopped by PID on drop.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn venv_python() -> PathBuf {
    let venv = std::env::var_os("WEBHOOKS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/otter-service/webhooks-venv")
        });
    let python = venv.join("bin/python");
    assert!(
        python.is_file() && venv.join(".otter-stamp").is_file(),
        "webhooks venv missing at {}: run scripts/setup-webhooks.sh",
        venv.display()
    );
    python
}

/// One delivery as the receiver recorded it (`GET /deliveries`). `id`, `timestamp` and
/// `signature` are the `webhook-*` headers as received ("" when absent); `verified`/`error`
/// are the reference library's verdict; `raw_body` is the exact body text; `status` is what
/// the receiver answered; `duplicate`: this id was verified and answered 2xx before (also
/// across a restart on the same log).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Delivery {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub verified: bool,
    pub error: Option<String>,
    pub body: Option<Value>,
    pub raw_body: String,
    pub path: String,
    pub status: u16,
    pub duplicate: bool,
    /// When the receiver got it (Unix seconds).
    pub received_at: f64,
}

/// A running receiver; killed (by PID) and reaped on drop, its stderr shown if a test failed.
pub struct Receiver {
    child: Option<Child>,
    pub base: String,
    pub port: u16,
    secrets: Vec<String>,
    /// The JSON-lines record of every delivery, kept across restarts.
    deliveries_log: PathBuf,
    /// The receiver's stderr (errors only).
    log: tempfile::NamedTempFile,
    http: reqwest::Client,
}

impl Receiver {
    /// A receiver on any free port that accepts deliveries signed with any of `secrets`
    /// (`whsec_<base64>`; two during a rotation), recording them in `dir/webhooks.jsonl`.
    pub fn start(dir: &Path, secrets: &[&str]) -> Receiver {
        let secrets = secrets.iter().map(|s| s.to_string()).collect();
        Self::start_on(dir.join("webhooks.jsonl"), secrets, 0)
    }

    fn start_on(deliveries_log: PathBuf, secrets: Vec<String>, port: u16) -> Receiver {
        assert!(!secrets.is_empty(), "the receiver needs a secret");
        let log = tempfile::NamedTempFile::new().unwrap();
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/webhook_receiver.py");
        let mut cmd = Command::new(venv_python());
        cmd.arg(script).args(["--port", &port.to_string()]);
        for s in &secrets {
            cmd.args(["--secret", s]);
        }
        let mut child = cmd
            .arg("--log")
            .arg(&deliveries_log)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("start the webhook receiver");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("WEBHOOK_PORT=") {
                    let _ = tx.send(port.trim().parse::<u16>().unwrap());
                }
            }
        });
        let mut r = Receiver {
            child: Some(child),
            base: String::new(),
            port: 0,
            secrets,
            deliveries_log,
            log,
            http: reqwest::Client::new(),
        };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(port) => {
                r.port = port;
                r.base = format!("http://127.0.0.1:{port}");
            }
            Err(_) => panic!("the webhook receiver did not start:\n{}", r.log_text()),
        }
        r
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// A hook URL on this receiver (any path but /deliveries, /control, /replay).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Every delivery so far, in order (a restarted receiver's history included).
    pub async fn deliveries(&self) -> Vec<Delivery> {
        let r = self
            .http
            .get(format!("{}/deliveries", self.base))
            .send()
            .await
            .unwrap();
        let text = r.error_for_status().unwrap().text().await.unwrap();
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("/deliveries: {e}\n{text}\n{}", self.log_text()))
    }

    /// The deliveries once `pred` holds for them (polled every 100 ms); panics with them
    /// after `timeout`.
    pub async fn wait_for(
        &self,
        pred: impl Fn(&[Delivery]) -> bool,
        timeout: Duration,
    ) -> Vec<Delivery> {
        let start = Instant::now();
        loop {
            let d = self.deliveries().await;
            if pred(&d) {
                return d;
            }
            if start.elapsed() > timeout {
                panic!(
                    "webhook deliveries not as expected after {timeout:?}:\n{d:#?}\n{}",
                    self.log_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn control(&self, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}/control", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        r.error_for_status().unwrap().json().await.unwrap()
    }

    /// The next `n` deliveries are answered with `status` (and `Retry-After: retry_after`).
    pub async fn fail_next(&self, n: u32, status: u16, retry_after: Option<u32>) {
        self.control(json!({"fail": n, "status": status, "retry_after": retry_after}))
            .await;
    }

    /// Every delivery waits `ms` before its answer (a slow receiver).
    pub async fn set_delay_ms(&self, ms: u64) {
        self.control(json!({"delay_ms": ms})).await;
    }

    /// No failure script, no delay (the history stays).
    pub async fn reset(&self) {
        self.control(json!({"reset": true})).await;
    }

    /// Whether the reference verifier accepts `d` (its headers and exact body) again with
    /// the clock `now_offset_secs` ahead (the library's tolerance is 5 minutes).
    pub async fn replay(&self, d: &Delivery, now_offset_secs: i64) -> bool {
        let body = json!({
            "headers": {
                "webhook-id": d.id,
                "webhook-timestamp": d.timestamp,
                "webhook-signature": d.signature,
            },
            "body": d.raw_body,
            "now_offset_secs": now_offset_secs,
        });
        let r = self
            .http
            .post(format!("{}/replay", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let v: Value = r.error_for_status().unwrap().json().await.unwrap();
        v["verified"].as_bool().expect("/replay answers verified")
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL to this child's PID
            let _ = child.wait();
        }
    }

    /// Start again on the same port, with the same secrets and delivery log.
    pub fn restart(&mut self) {
        self.stop();
        let mut again =
            Self::start_on(self.deliveries_log.clone(), self.secrets.clone(), self.port);
        std::mem::swap(self, &mut again);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("--- webhook receiver log ---\n{}", self.log_text());
        }
    }
}
