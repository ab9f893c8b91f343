//! LTI 1.3 score posts through the outbox: how many posts per second the service's post
//! workers deliver to a real LTI 1.3 platform (edX's own lti-consumer-xblock token
//! endpoint and AGS score handler, tests/support/lti13_platform.py), and how many token
//! requests that took per post (the token is cached: near 0).
//!
//! AGS_POSTS (default 300) students each have one stored grade and one queued post, and
//! the launch the service learned for them (written by the library into the database, as
//! the grading and a launch would have left it). The service's post pool (2 workers, as in
//! `serve`) runs them to the end. Baseline, run alongside on the same platform: the same
//! number of posts sent by the same client directly (2 at a time), with no queue, no
//! database and no outbox; the ratio says what the outbox's durability costs.
//!
//! Run: `cargo bench --bench ags` (needs scripts/setup-lti13-platform.sh; no Hub, no Docker).

#[path = "support/cpu.rs"]
#[allow(dead_code)] // the other benchmarks' parts
mod cpu;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use otter_service::ags::{
    AgsClient, AgsScore, AuthStates, HttpAgsClient, ToolKeys, keys::generate_pem,
};
use otter_service::course::CourseConfig;
use otter_service::db::grades::{self, NewGrade};
use otter_service::db::jobs::{self, NewJob};
use otter_service::db::states::{GradeStatus, JobKind, PostState, ScorePolicy};
use otter_service::db::submissions::{self, NewSubmission};
use otter_service::db::{Db, lti13, now_ms};
use otter_service::jobs::post_score::{AgsPoster, PostScoreJob};
use otter_service::queue::worker;
use serde_json::{Value, json};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The launches are already in the database; the Hub is never asked.
struct NoHub;

#[async_trait::async_trait]
impl AuthStates for NoHub {
    async fn auth_state(&self, _hub_user: &str) -> Result<Option<Value>, String> {
        Err("the benchmark has no Hub: every launch is in the database".into())
    }
}

struct PlatformProcess(Child);

impl Drop for PlatformProcess {
    fn drop(&mut self) {
        let _ = self.0.kill(); // by its PID
        let _ = self.0.wait();
    }
}

/// Serve the tool's key set on `port` (what the platform checks our assertions against).
async fn serve_jwks(keys: Arc<ToolKeys>, port: u16) {
    let set = serde_json::to_string(keys.jwks()).unwrap();
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let set = set.clone();
            async move { ([("content-type", "application/json")], set) }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
}

fn start_platform(dir: &std::path::Path, keyset: &str) -> (PlatformProcess, String) {
    let home = std::env::var("HOME").unwrap();
    let venv = std::env::var("LTI13_VENV")
        .unwrap_or_else(|_| format!("{home}/.cache/otter-service/lti13-venv"));
    let python = format!("{venv}/bin/python");
    assert!(
        std::path::Path::new(&python).is_file(),
        "no LTI 1.3 platform venv at {venv}: run scripts/setup-lti13-platform.sh"
    );
    let mut child = Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/lti13_platform.py"
        ))
        .args(["--port", "0", "--tool-keyset-url", keyset])
        .arg("--db")
        .arg(dir.join("platform.sqlite"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let port = out
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("LTI13_PLATFORM_PORT=").map(str::to_string))
        .expect("the platform printed its port");
    (PlatformProcess(child), format!("http://127.0.0.1:{port}"))
}

#[tokio::main]
async fn main() {
    let n = env_or("AGS_POSTS", 300) as usize;
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(ToolKeys::from_pems(generate_pem().unwrap().as_bytes(), &[]).unwrap());
    let jwks_port = free_port();
    serve_jwks(keys.clone(), jwks_port).await;
    let (_platform, base) = start_platform(
        dir.path(),
        &format!("http://127.0.0.1:{jwks_port}/jwks.json"),
    );
    let http = reqwest::Client::new();
    let peers: Value = http
        .post(format!("{base}/_setup"))
        .body(json!({"lineitems": ["demo1"], "score_maximum": 5}).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let p = &peers["edx"];
    let lineitem = p["lineitems"]["demo1"].as_str().unwrap().to_string();
    let config = json!({"demo": {"1": {
        "subpath_to_zips": "demo",
        "lti13": {"issuer": p["issuer"], "client_id": p["client_id"],
                  "deployment_id": p["deployment_id"], "token_url": p["token_url"]},
        "assignments": {"demo1": {"lineitem": lineitem}}}}});
    let courses = Arc::new(
        CourseConfig::parse(&config.to_string(), std::path::Path::new("/nonexistent")).unwrap(),
    );
    let target = courses
        .find("demo", "1", "demo1")
        .unwrap()
        .ags
        .clone()
        .unwrap();
    let client = Arc::new(HttpAgsClient::new(keys.clone(), None, Duration::from_secs(20)).unwrap());

    // Baseline: the same client, straight to the platform, two at a time.
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let (client, next, target, lineitem) = (
            client.clone(),
            next.clone(),
            target.clone(),
            lineitem.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let score = AgsScore {
                    lineitem: url::Url::parse(&lineitem).unwrap(),
                    user_id: format!("direct-{i}"),
                    score_given: 3.0,
                    score_maximum: 5.0,
                    timestamp_ms: now_ms(),
                    submitted_at_ms: Some(now_ms()),
                };
                client.post_score(&target.platform, &score).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let direct = n as f64 / started.elapsed().as_secs_f64();

    // The outbox: grades stored, posts queued, launches known; the post pool runs them.
    let db = Db::open(&dir.path().join("otter.db")).unwrap();
    let (issuer, client_id) = (
        target.platform.issuer.clone(),
        target.platform.client_id.clone(),
    );
    db.write(move |c| {
        for i in 0..n {
            let user = format!("student{i}");
            let s = NewSubmission {
                user: user.clone(),
                course: "demo".into(),
                section: "1".into(),
                assignment: "demo1".into(),
                notebook: format!("{{\"n\": {i}}}").into_bytes(),
                notebook_path: None,
            };
            let sub = submissions::accept(c, &s, 3, now_ms())?;
            let job = jobs::enqueue(
                c,
                &NewJob {
                    kind: JobKind::Grade,
                    submission_id: sub,
                    grade_id: None,
                    max_attempts: 3,
                    give_up_at: None,
                },
                now_ms(),
            )?;
            let g = NewGrade {
                status: GradeStatus::Graded,
                score: 3.0,
                max_score: 5.0,
                fraction: 0.6,
                tests_json: "[]".into(),
                public_feedback: String::new(),
                message: None,
                log_tail: None,
                integrity_flags: None,
            };
            let grade = grades::insert(c, sub, job, &g, PostState::Pending, now_ms())?;
            lti13::record_launch(
                c,
                &user,
                &issuer,
                &client_id,
                &format!("sub-{i}"),
                None,
                now_ms(),
            )?;
            jobs::queue_post(c, sub, grade, 86_400_000, now_ms())?;
        }
        Ok(())
    })
    .await
    .unwrap();
    let job = Arc::new(PostScoreJob {
        db: db.clone(),
        client: None,
        ags: Some(AgsPoster {
            client: client.clone(),
            auth_states: Arc::new(NoHub),
            launch_wait: Duration::from_secs(60),
        }),
        courses,
        default_policy: ScorePolicy::Latest,
        retry_base: Duration::from_secs(1),
        retry_max: Duration::from_secs(2),
        settle: Duration::from_secs(2),
        clock: otter_service::clock::Clock::system(),
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let cpu_before = cpu::own_secs();
    let handles = worker::spawn(
        db.clone(),
        job,
        Arc::new(tokio::sync::Notify::new()),
        worker::PoolConfig {
            workers: 2,
            lease: Duration::from_secs(30),
            idle_poll: Duration::from_millis(50),
            metrics: Arc::new(otter_service::metrics::Metrics::default()),
        },
        stop_rx,
    );
    let limit = Duration::from_secs(env_or("AGS_LIMIT_SECS", 300));
    loop {
        let done: i64 = db
            .read(|c| {
                Ok(c.query_row(
                    "SELECT COUNT(*) FROM jobs WHERE kind = 'post_score' AND state = 'done'",
                    [],
                    |r| r.get(0),
                )?)
            })
            .await
            .unwrap();
        if done as usize >= n {
            break;
        }
        assert!(
            started.elapsed() < limit,
            "only {done} of {n} posts in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let outbox = n as f64 / started.elapsed().as_secs_f64();
    let cpu_per_post = (cpu::own_secs() - cpu_before) / n as f64;
    let _ = stop_tx.send(true);
    for h in handles {
        let _ = h.await;
    }
    let tokens = client
        .token_requests
        .load(std::sync::atomic::Ordering::Relaxed);
    let stats: Value = http
        .get(format!("{base}/_stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let held = http
        .get(format!("{base}/_scores"))
        .send()
        .await
        .unwrap()
        .json::<Vec<Value>>()
        .await
        .unwrap()
        .iter()
        .filter(|s| s["user_id"].as_str().is_some_and(|u| u.starts_with("sub-")))
        .count();
    println!("LTI 1.3 score posts to edX's platform code, {n} students, 2 workers");
    println!("  direct (no queue, no database):  {direct:.1} posts/s");
    println!("  through the outbox:              {outbox:.1} posts/s");
    println!("  outbox / direct:                 {:.2}", outbox / direct);
    println!(
        "  our CPU per post through the outbox: {:.2} ms (the platform's Python uses the rest)",
        cpu_per_post * 1000.0
    );
    println!(
        "  token requests: {} for {} posts ({:.4} per post; platform counted {})",
        tokens,
        2 * n,
        tokens as f64 / (2 * n) as f64,
        stats["token_requests"]["edx"]
    );
    println!("  scores the platform holds from the outbox: {held} of {n}");
    assert_eq!(held, n, "every post landed");
}
