//! The LTI client against edX's own outcomes code: tests/support/edx_stand_in.py runs
//! lti-consumer-xblock's `OutcomeService` (body hash + HMAC-SHA1 verification, XML parsing,
//! edX's answers) from the venv made by scripts/setup-edx-verifier.sh. Each test starts its
//! own stand-in on a free 127.0.0.1 port and stops it by PID when done.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use otter_service::lti::{
    EdxOutcomesClient, LtiConfig, LtiError, OutcomesClient, PostOutcome, ScorePost, sourced_id,
};
use otter_service::secret::Secret;
use serde_json::Value;
use url::Url;

const KEY: &str = "otter-test-key";
const SECRET: &str = "s3cret+/&é";
const COURSE: &str = "BerkeleyX+Data8.1x+2026";
const BLOCK: &str = "8f1c2d3e4b5a";

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
struct StandIn {
    child: Option<Child>,
    base: Url,
    log: tempfile::NamedTempFile,
    http: reqwest::Client,
}

impl StandIn {
    fn start(unknown_users: &[&str]) -> StandIn {
        let log = tempfile::NamedTempFile::new().unwrap();
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/edx_stand_in.py");
        let mut child = Command::new(venv_python())
            .arg(script)
            .args(["--port", "0"])
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

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    fn client(&self, secret: &str, timeout: Duration) -> EdxOutcomesClient {
        EdxOutcomesClient::new(LtiConfig {
            edx_base_url: self.base.clone(),
            consumer_key: KEY.into(),
            consumer_secret: Secret::new(secret),
            timeout,
        })
        .unwrap()
    }

    async fn scores(&self) -> Vec<Value> {
        let url = self.base.join("/_scores").unwrap();
        let res = self.http.get(url).send().await.unwrap();
        res.error_for_status().unwrap().json().await.unwrap()
    }

    async fn set_mode(&self, mode: &str) {
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

    fn stop(&mut self) {
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

fn post(user: &str, score: f64) -> ScorePost {
    ScorePost {
        course_id: COURSE.into(),
        block_id: BLOCK.into(),
        user: user.into(),
        score,
    }
}

const TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_post_is_recorded_with_user_and_score() {
    let edx = StandIn::start(&[]);
    let client = edx.client(SECRET, TIMEOUT);
    let outcome = client.post_score(&post("5f3a9c0d", 0.875)).await.unwrap();
    assert_eq!(outcome, PostOutcome::Posted);
    let scores = edx.scores().await;
    assert_eq!(scores.len(), 1, "{scores:?}");
    let s = &scores[0];
    assert_eq!(s["user"], "5f3a9c0d");
    assert_eq!(s["score"], 0.875);
    assert_eq!(s["course_id"], COURSE);
    assert_eq!(s["block_id"], BLOCK);
    assert_eq!(
        s["sourced_id"],
        sourced_id(&edx.base, COURSE, BLOCK, "5f3a9c0d")
    );
}

#[tokio::test]
async fn markup_and_non_ascii_in_the_user_arrive_exactly() {
    let edx = StandIn::start(&[]);
    // Escaped in our XML and read back by edX's lxml parser; `:` and `%` survive edX's
    // split-and-unquote. (edX's success answer then embeds the raw `<b>`: not well-formed
    // after imsx_codeMajor, which the client tolerates.)
    let user = "ann<b>&amp;\"c' é漢字 a:b 50%";
    let outcome = edx
        .client(SECRET, TIMEOUT)
        .post_score(&post(user, 0.0))
        .await
        .unwrap();
    assert_eq!(outcome, PostOutcome::Posted);
    let scores = edx.scores().await;
    assert_eq!(scores[0]["user"], user);
    assert_eq!(scores[0]["score"], 0.0);
}

#[tokio::test]
async fn a_wrong_secret_is_rejected_with_edx_description() {
    let edx = StandIn::start(&[]);
    let outcome = edx
        .client("not-the-secret", TIMEOUT)
        .post_score(&post("ann", 0.5))
        .await;
    let PostOutcome::Rejected {
        code_major,
        description,
    } = outcome.unwrap()
    else {
        panic!("accepted with a wrong secret");
    };
    assert_eq!(code_major, "failure");
    assert_eq!(
        description,
        "OAuth verification error: OAuth signature verification has failed."
    );
    assert!(edx.scores().await.is_empty());
}

#[tokio::test]
async fn a_tampered_body_is_rejected() {
    let edx = StandIn::start(&[]);
    let client = edx.client(SECRET, TIMEOUT);
    let mut req = client.sign(&post("ann", 0.25)).unwrap();
    assert!(req.body.contains("<textString>0.25</textString>"));
    req.body = req.body.replace("<textString>0.25<", "<textString>1<");
    let outcome = client.send(&req).await.unwrap();
    let PostOutcome::Rejected { description, .. } = outcome else {
        panic!("a tampered body was accepted");
    };
    assert_eq!(
        description,
        "OAuth verification error: OAuth body hash verification has failed."
    );
    assert!(edx.scores().await.is_empty());
}

#[tokio::test]
async fn replays_and_foreign_keys_are_rejected() {
    let edx = StandIn::start(&[]);
    let client = edx.client(SECRET, TIMEOUT);
    let req = client.sign(&post("ann", 0.5)).unwrap();
    assert_eq!(client.send(&req).await.unwrap(), PostOutcome::Posted);
    let PostOutcome::Rejected { description, .. } = client.send(&req).await.unwrap() else {
        panic!("a replayed nonce was accepted");
    };
    assert!(description.contains("nonce already used"), "{description}");

    let foreign = EdxOutcomesClient::new(LtiConfig {
        edx_base_url: edx.base.clone(),
        consumer_key: "someone-else".into(),
        consumer_secret: Secret::new(SECRET),
        timeout: TIMEOUT,
    })
    .unwrap();
    let outcome = foreign.post_score(&post("ann", 0.5)).await.unwrap();
    assert!(
        matches!(outcome, PostOutcome::Rejected { .. }),
        "{outcome:?}"
    );
    assert_eq!(edx.scores().await.len(), 1);
}

#[tokio::test]
async fn an_unknown_user_is_rejected() {
    let edx = StandIn::start(&["ghost"]);
    let outcome = edx
        .client(SECRET, TIMEOUT)
        .post_score(&post("ghost", 0.5))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        PostOutcome::Rejected {
            code_major: "failure".into(),
            description: "User not found.".into()
        }
    );
    assert!(edx.scores().await.is_empty());
}

#[tokio::test]
async fn server_errors_garbage_and_hangs_are_transient() {
    let edx = StandIn::start(&[]);
    let client = edx.client(SECRET, Duration::from_secs(1));

    edx.set_mode("500").await;
    let err = client.post_score(&post("ann", 0.5)).await.unwrap_err();
    assert!(
        matches!(err, LtiError::Status { status: 500, .. }) && err.is_transient(),
        "{err}"
    );

    edx.set_mode("garbage").await;
    let err = client.post_score(&post("ann", 0.5)).await.unwrap_err();
    assert!(
        matches!(err, LtiError::BadResponse(_)) && err.is_transient(),
        "{err}"
    );

    edx.set_mode("hang").await;
    let started = Instant::now();
    let err = client.post_score(&post("ann", 0.5)).await.unwrap_err();
    assert!(
        matches!(err, LtiError::Timeout(..)) && err.is_transient(),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    edx.set_mode("ok").await;
    assert_eq!(
        client.post_score(&post("ann", 0.5)).await.unwrap(),
        PostOutcome::Posted
    );
    assert_eq!(edx.scores().await.len(), 1);
}

#[tokio::test]
async fn a_stopped_edx_refuses_connections_transiently() {
    let mut edx = StandIn::start(&[]);
    let client = edx.client(SECRET, TIMEOUT);
    edx.stop();
    let err = client.post_score(&post("ann", 0.5)).await.unwrap_err();
    assert!(
        matches!(err, LtiError::Network(_)) && err.is_transient(),
        "{err}"
    );
}
