//! Grader hosts' control plane: how many grades one service node can hand out and store
//! per second when the hosts, not the service, do the grading.
//!
//! Many simulated hosts (HOSTS_N hosts x HOSTS_SLOTS slots, default 50 x 4) speak the real
//! host API (src/hosts/protocol.rs) to the real `otter-service` binary: each slot claims
//! (long poll), "grades" by sleeping HOSTS_RUN_MS (100) and completes with a prepared
//! outcome, which the service stores as it stores any grade (grade row, timeline events,
//! submission state). The queue is filled beforehand with HOSTS_JOBS (12,000) waiting
//! submissions from 100 students, written by the library into the database file. For
//! HOSTS_SECS (10) it prints the grades dispatched and stored per second, the claim
//! latency (request to a job in hand) p50/p99, the service's CPU per grade, and, as the
//! baseline run alongside, raw SQLite commits per second on the same disk (a grade is a
//! claim write and a completion write; group commit shares their fsyncs).
//!
//! Run: `cargo bench --bench hosts` (no JupyterHub and no Docker needed).

#[path = "support/cpu.rs"]
#[allow(dead_code)] // what the intake benchmark prints
mod cpu;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use otter_service::db::{hosts, now_ms, submissions};
use serde_json::{Value, json};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn repo(p: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// Raw SQLite: one small row per commit, WAL, synchronous=FULL, for `secs`.
fn raw_commits_per_sec(dir: &std::path::Path, secs: u64) -> f64 {
    let c = rusqlite::Connection::open(dir.join("raw.db")).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, at INTEGER);",
    )
    .unwrap();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        c.execute("INSERT INTO t (v, at) VALUES ('x', ?1)", [n as i64])
            .unwrap();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGTERM);
        }
        let _ = self.0.wait();
    }
}

/// Counters shared by the simulated slots.
#[derive(Default)]
struct Tally {
    done: AtomicU64,
    refused: AtomicU64,
    empty: AtomicU64,
}

async fn slot(
    http: reqwest::Client,
    base: String,
    token: String,
    run: Duration,
    until: Instant,
    outcome: Arc<String>,
    tally: Arc<Tally>,
) -> Vec<Duration> {
    let mut claims = Vec::new();
    while Instant::now() < until {
        let t = Instant::now();
        let r = http
            .post(format!("{base}claim"))
            .bearer_auth(&token)
            .json(&json!({"slots": 4, "version": "bench", "wait_secs": 1}))
            .send()
            .await
            .unwrap();
        if r.status() == 204 {
            tally.empty.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let work: Value = r.json().await.unwrap();
        claims.push(t.elapsed());
        tokio::time::sleep(run).await;
        let lease = work["lease"].as_str().unwrap();
        let r = http
            .post(format!("{base}leases/{lease}/complete"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(outcome.as_str().to_string())
            .send()
            .await
            .unwrap();
        let counter = if r.status() == 200 {
            &tally.done
        } else {
            &tally.refused
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
    claims
}

#[tokio::main]
async fn main() {
    let n_hosts = env_or("HOSTS_N", 50) as usize;
    let slots = env_or("HOSTS_SLOTS", 4) as usize;
    let run = Duration::from_millis(env_or("HOSTS_RUN_MS", 100));
    let jobs = env_or("HOSTS_JOBS", 12_000) as usize;
    let secs = env_or("HOSTS_SECS", 10);
    let dir = tempfile::Builder::new()
        .prefix("otter-hosts-")
        .tempdir_in(repo("target"))
        .unwrap();
    let raw = raw_commits_per_sec(dir.path(), 5);
    println!("raw SQLite (WAL, synchronous=FULL, one small row per commit): {raw:.0} commits/s");

    // The queue and the hosts, written by the library before the service starts.
    let db_path = dir.path().join("otter.db");
    let mut c = rusqlite::Connection::open(&db_path).unwrap();
    otter_service::db::migrations_apply(&mut c).unwrap();
    let nb = std::fs::read(repo("tests/notebooks/correct.ipynb")).unwrap();
    let tx = c.transaction().unwrap();
    for i in 0..jobs {
        let mut copy = nb.clone();
        copy.extend(format!("\n{i}").bytes());
        let s = submissions::NewSubmission {
            user: format!("student{}", i % 100),
            course: "demo".into(),
            section: "1".into(),
            assignment: "demo1".into(),
            notebook: copy,
            notebook_path: None,
        };
        submissions::accept(&tx, &s, 5, now_ms()).unwrap();
    }
    let mut tokens = Vec::new();
    for h in 0..n_hosts {
        let (token, sha) = otter_service::hosts::new_token();
        hosts::add(&tx, &format!("sim{h}"), &[], &sha, now_ms()).unwrap();
        tokens.push(token);
    }
    tx.commit().unwrap();
    drop(c);

    let (port, hosts_port) = (free_port(), free_port());
    let config = dir.path().join("otter.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nbind = \"127.0.0.1:{port}\"\nmax_queue_depth = 1000000\n\
             [hub]\napi_url = \"http://127.0.0.1:9/hub/api\"\napi_token = \"unused\"\n\
             [database]\npath = \"{db}\"\n[course]\nconfig = \"{cfg}\"\nmaterials_root = \"{mat}\"\n\
             [grading]\nworkers = 0\nrunner = \"local\"\n\
             [hosts]\nbind = \"127.0.0.1:{hosts_port}\"\nlease_secs = 60\n",
            db = db_path.display(),
            cfg = repo("course_config/course-config.json").display(),
            mat = repo("course_config/materials").display(),
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("service.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_otter-service"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start otter-service");
    let service = Service(child);
    let pid = service.0.id();
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", hosts_port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the service did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let placement = cpu::place_apart(pid, env_or("HOSTS_PIN", 1) == 1);

    let outcome = Arc::new(
        json!({
            "result": "graded",
            "outcome": {"ending": "graded", "score": 5.0, "max_score": 5.0,
                "tests": [{"name": "q1", "score": 5.0, "max_score": 5.0, "visibility": "visible"}],
                "public_feedback": "All tests passed"},
            "sandbox_ready_after_ms": 5, "finished_after_ms": run.as_millis() as u64
        })
        .to_string(),
    );
    let base = format!("http://127.0.0.1:{hosts_port}/v1/");
    let tally = Arc::new(Tally::default());
    let until = Instant::now() + Duration::from_secs(secs);
    let before = cpu::Snapshot::take(pid);
    let mut tasks = Vec::new();
    for token in &tokens {
        // One connection pool per simulated host, as separate machines would have.
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(slots)
            .build()
            .unwrap();
        for _ in 0..slots {
            tasks.push(tokio::spawn(slot(
                http.clone(),
                base.clone(),
                token.clone(),
                run,
                until,
                outcome.clone(),
                tally.clone(),
            )));
        }
    }
    let mut claims = Vec::new();
    for t in tasks {
        claims.extend(t.await.unwrap());
    }
    let after = cpu::Snapshot::take(pid);
    claims.sort();
    let (wall, service_cpu, generator_cpu) = after.spent_since(&before);
    let done = tally.done.load(Ordering::Relaxed);
    let stored: i64 = rusqlite::Connection::open(&db_path)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM grades", [], |r| r.get(0))
        .unwrap();
    let rate = done as f64 / wall;
    let ceiling = (n_hosts * slots) as f64 / run.as_secs_f64();
    println!(
        "{n_hosts} hosts x {slots} slots, {} ms per simulated run, {wall:.1} s: {done} grades \
         dispatched and stored ({rate:.0}/s; the slots could take {ceiling:.0}/s), {} refused, \
         {} empty claims; {stored} grade rows",
        run.as_millis(),
        tally.refused.load(Ordering::Relaxed),
        tally.empty.load(Ordering::Relaxed),
    );
    println!(
        "claim latency (request to a job in hand): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms \
         (target p99 < 100 ms)",
        percentile(&claims, 0.50).as_secs_f64() * 1e3,
        percentile(&claims, 0.99).as_secs_f64() * 1e3,
        claims.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    println!(
        "grades/s / raw SQLite commits/s = {:.2}; target >= 500 grades/s: {}",
        rate / raw,
        if rate >= 500.0 { "met" } else { "missed" }
    );
    println!(
        "CPU over {wall:.1} s ({placement}): service {:.2} cores, {:.0} us per grade; \
         simulated hosts {:.2} cores, {:.0} us per grade",
        service_cpu / wall,
        1e6 * service_cpu / done.max(1) as f64,
        generator_cpu / wall,
        1e6 * generator_cpu / done.max(1) as f64,
    );
    drop(service);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
