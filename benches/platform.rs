//! Platform API benchmark, against the real service binary and a real JupyterHub:
//!
//! 1. **Intake**: a platform's submissions accepted per second against the JupyterHub
//!    door's (its text answer, and its JSON answer, which like the platform's carries the
//!    submission's view and queue place), same notebook (60 KB, shaped like a run lab),
//!    same clients, grading paused, the doors alternating in one run; the ratios,
//!    latencies and the service's CPU per submission of each.
//! 2. **Webhooks**: deliveries per second to a receiver that verifies each one with the
//!    Standard Webhooks reference library (tests/support/webhook_receiver.py), answering at
//!    once and answering after `PLATFORM_SLOW_MS` (200 ms): events of submissions ended
//!    by staff (`state` set in SQL, as a regrade's ending does, so no grading time mixes in).
//! 3. **Grading beside a slow receiver**: the same notebooks graded (local runner, two
//!    workers) with every webhook held 2 s by its receiver, against no webhook at all; the
//!    ratio of grading times (the outbox must not slow grading).
//!
//! Run: `cargo bench --bench platform` (after scripts/setup-python.sh,
//! scripts/setup-jupyterhub.sh and scripts/setup-webhooks.sh). Knobs: PLATFORM_CLIENTS
//! (100), PLATFORM_SECS (5 per round, two rounds per door), PLATFORM_EVENTS (600),
//! PLATFORM_SLOW_MS (200), PLATFORM_GRADES (10).

#[path = "support/cpu.rs"]
#[allow(dead_code)]
mod cpu;
#[path = "../tests/api/helpers.rs"]
#[allow(dead_code)]
mod helpers;
#[path = "../tests/api/hub.rs"]
#[allow(dead_code)]
mod hub;
#[path = "support/load.rs"]
mod load;
#[path = "support/notebook.rs"]
mod notebook;
#[path = "../tests/support/webhooks.rs"]
mod webhooks;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use helpers::{ServiceProcess, port, sample};
use hub::hub;
use serde_json::{Value, json};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `otter-service --config <the service's settings> <args>`: its stdout.
fn service_cli(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_otter-service"))
        .arg("--config")
        .arg(dir.join("otter.toml"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A service on a free port in `dir` with `extra` settings in its `[grading]` section and
/// loopback webhooks allowed.
fn start_service(dir: &Path, api_url: &str, extra: &str) -> ServiceProcess {
    let p = port();
    let toml = ServiceProcess::toml(dir, p, api_url, "unused", extra)
        .replace(
            "max_queued_per_student = 1000",
            "max_queued_per_student = 100000000",
        )
        .replace(
            "shutdown_grace_secs = 5",
            "shutdown_grace_secs = 5\nmax_queue_depth = 10000000",
        )
        + "\n[platforms]\nwebhook_allow_networks = [\"127.0.0.1\"]\nwebhook_retry_base_secs = 1\n";
    ServiceProcess::start(dir, p, &toml)
}

/// Register platform `name` (token, secret).
fn register(dir: &Path, name: &str, webhook: Option<&str>) -> (String, String) {
    let mut args = vec!["platforms", "add", name, "--courses", "demo"];
    if let Some(w) = webhook {
        args.extend(["--webhook", w]);
    }
    let out = service_cli(dir, &args);
    let mut lines = out.lines();
    (
        lines.next().unwrap().to_string(),
        lines.next().unwrap().to_string(),
    )
}

/// Which door a round goes through.
#[derive(Clone, Copy)]
enum Via<'a> {
    /// JupyterHub tokens; the answer as JSON (the submission's view, as the platform's
    /// answer carries) or as the sentence the classic button shows.
    Hub(&'a [String], bool),
    Platform(&'a str),
}

struct Door {
    rate: f64,
    p50: Duration,
    p99: Duration,
    cpu_us: f64,
}

/// One round of `secs` through the Hub door (`hub_tokens`) or the platform door.
async fn round(
    service: &ServiceProcess,
    pid: u32,
    clients: usize,
    secs: u64,
    notebook: &Value,
    door: Via<'_>,
) -> Door {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    let before = cpu::Snapshot::take(pid);
    let nb = notebook.to_string();
    let run = match door {
        Via::Hub(tokens, json) => {
            let (url, tokens) = (service.url(), tokens.to_vec());
            let accept = if json { "application/json" } else { "*/*" };
            load::closed_loop(clients, secs, u64::MAX, 202, move |n, client| {
                http.post(&url)
                    .header(
                        "Authorization",
                        format!("token {}", tokens[client % tokens.len()]),
                    )
                    .header("Content-Type", "application/json")
                    .header("Accept", accept)
                    .body(format!("{{\"nb\":{}}}", unique(&nb, n)))
            })
            .await
        }
        Via::Platform(token) => {
            let url = format!("{}api/v1/submissions", service.url());
            let token = token.to_string();
            load::closed_loop(clients, secs, u64::MAX, 202, move |n, client| {
                http.post(&url)
                    .bearer_auth(&token)
                    .header("Content-Type", "application/json")
                    .body(format!(
                        "{{\"course\":\"demo\",\"section\":\"1\",\"assignment\":\"demo1\",\
                         \"user\":\"bench{}\",\"notebook\":{}}}",
                        client % 20,
                        unique(&nb, n)
                    ))
            })
            .await
        }
    };
    let after = cpu::Snapshot::take(pid);
    let (service_secs, _, _) = after.spent_since(&before);
    Door {
        rate: run.rate(),
        p50: run.percentile(0.5),
        p99: run.percentile(0.99),
        cpu_us: service_secs * 1e6 / run.ok.max(1) as f64,
    }
}

/// The notebook's JSON with a counter in it, so no two submissions are identical.
fn unique(nb: &str, n: u64) -> String {
    let rest = nb.strip_prefix('{').expect("a notebook is an object");
    format!("{{\"otter_bench_copy\":{n},{rest}")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() {
    let clients = env_or("PLATFORM_CLIENTS", 100) as usize;
    let secs = env_or("PLATFORM_SECS", 5);
    let h = hub();
    let mut tokens = Vec::new();
    for i in 0..20 {
        tokens.push(h.user_token(&format!("bench{i}"), None).await);
    }
    let target = std::env::current_dir().unwrap().join("target");

    // 1. Intake through both doors.
    let dir = tempfile::Builder::new()
        .prefix("otter-platform-")
        .tempdir_in(&target)
        .unwrap();
    let service = start_service(dir.path(), &h.api_url, "workers = 0");
    let (platform, _) = register(dir.path(), "bench", None);
    let nb = notebook::grown_to(sample("correct"), 60 * 1024);
    let pid = service.pid().unwrap();
    let placement = cpu::place_apart(pid, env_or("PLATFORM_PIN", 1) == 1);
    // Warm: the Hub tokens' first check, and the platform's.
    round(&service, pid, 20, 1, &nb, Via::Hub(&tokens, false)).await;
    round(&service, pid, 20, 1, &nb, Via::Platform(&platform)).await;
    let (mut hub_rounds, mut json_rounds, mut platform_rounds) =
        (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..2 {
        hub_rounds.push(round(&service, pid, clients, secs, &nb, Via::Hub(&tokens, false)).await);
        json_rounds.push(round(&service, pid, clients, secs, &nb, Via::Hub(&tokens, true)).await);
        platform_rounds
            .push(round(&service, pid, clients, secs, &nb, Via::Platform(&platform)).await);
    }
    let mean = |v: &[Door], f: fn(&Door) -> f64| v.iter().map(f).sum::<f64>() / v.len() as f64;
    println!("intake, {clients} clients, {secs} s per round, two rounds per door ({placement}):");
    for (name, v) in [
        ("JupyterHub door, text answer", &hub_rounds),
        ("JupyterHub door, JSON answer", &json_rounds),
        ("platform door", &platform_rounds),
    ] {
        println!(
            "  {name:<29} {:>6.0}/s  p50 {:>5.1} ms  p99 {:>5.1} ms  service CPU {:>4.0} us per submission",
            mean(v, |d| d.rate),
            mean(v, |d| ms(d.p50)),
            mean(v, |d| ms(d.p99)),
            mean(v, |d| d.cpu_us),
        );
    }
    println!(
        "platform / JupyterHub door = {:.2} against the text answer, {:.2} against the JSON \
         answer (both carry the submission's view and queue place)",
        mean(&platform_rounds, |d| d.rate) / mean(&hub_rounds, |d| d.rate),
        mean(&platform_rounds, |d| d.rate) / mean(&json_rounds, |d| d.rate)
    );
    drop(service);

    // 2. Webhook deliveries, fast and slow receiver.
    let events = env_or("PLATFORM_EVENTS", 600) as usize;
    let slow_ms = env_or("PLATFORM_SLOW_MS", 200);
    for delay in [0, slow_ms] {
        let dir = tempfile::Builder::new()
            .prefix("otter-webhooks-")
            .tempdir_in(&target)
            .unwrap();
        let service = start_service(dir.path(), &h.api_url, "workers = 0");
        let (token, secret) = register(dir.path(), "hooks", None);
        let receiver = webhooks::Receiver::start(dir.path(), &[&secret]);
        receiver.set_delay_ms(delay).await;
        service_cli(
            dir.path(),
            &["platforms", "set-webhook", "hooks", &receiver.url("/hook")],
        );
        let url = format!("{}api/v1/submissions", service.url());
        let small = sample("correct").to_string();
        let http = reqwest::Client::new();
        let run = load::closed_loop(20, 120, events as u64, 202, move |n, _| {
            http.post(&url).bearer_auth(&token).json(&json!({
                "course": "demo", "section": "1", "assignment": "demo1",
                "user": format!("w{}", n % 50),
                "notebook": serde_json::from_str::<Value>(&unique(&small, n)).unwrap(),
            }))
        })
        .await;
        assert_eq!(run.ok as usize, events, "every submission taken");
        // Staff end them all at once (as `regrade` would end them): the trigger writes one
        // event each, and the sender delivers.
        let start = Instant::now();
        let c = rusqlite::Connection::open(&service.db_path).unwrap();
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        c.execute(
            "UPDATE submissions SET state = 'failed', message = 'ended by the benchmark'
              WHERE state = 'queued'",
            [],
        )
        .unwrap();
        let ds = receiver
            .wait_for(
                |ds| ds.iter().filter(|d| d.verified && d.status == 200).count() >= events,
                Duration::from_secs(600),
            )
            .await;
        let elapsed = start.elapsed().as_secs_f64();
        let verified = ds.iter().filter(|d| d.verified).count();
        println!(
            "webhooks, receiver answering after {delay} ms: {events} delivered in {elapsed:.1} s = \
             {:.0}/s ({verified} of {} verified by the reference library{})",
            events as f64 / elapsed,
            ds.len(),
            if delay > 0 {
                format!(
                    "; the ceiling at 8 in flight is {:.0}/s",
                    8.0 * 1000.0 / delay as f64
                )
            } else {
                String::new()
            }
        );
    }

    // 3. Grading with every webhook held by a slow receiver, against none.
    let grades = env_or("PLATFORM_GRADES", 10) as usize;
    let mut times = Vec::new();
    for slow in [false, true] {
        let dir = tempfile::Builder::new()
            .prefix("otter-grading-")
            .tempdir_in(&target)
            .unwrap();
        let service = start_service(dir.path(), &h.api_url, "workers = 2");
        let (token, secret) = register(dir.path(), "g", None);
        let receiver = webhooks::Receiver::start(dir.path(), &[&secret]);
        if slow {
            receiver.set_delay_ms(2000).await;
            service_cli(
                dir.path(),
                &["platforms", "set-webhook", "g", &receiver.url("/hook")],
            );
        }
        let http = reqwest::Client::new();
        let start = Instant::now();
        for i in 0..grades {
            let r = http
                .post(format!("{}api/v1/submissions", service.url()))
                .bearer_auth(&token)
                .json(
                    &json!({"course": "demo", "section": "1", "assignment": "demo1",
                              "user": format!("g{i}"), "notebook": sample("correct")}),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
        }
        let c = rusqlite::Connection::open(&service.db_path).unwrap();
        loop {
            let left: i64 = c
                .query_row(
                    "SELECT COUNT(*) FROM submissions WHERE state IN ('queued', 'grading')",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            if left == 0 {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(900),
                "grading stalled"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        times.push(start.elapsed().as_secs_f64());
        if slow {
            let ds = receiver
                .wait_for(|ds| ds.len() >= grades, Duration::from_secs(120))
                .await;
            assert!(ds.iter().all(|d| d.verified));
        }
    }
    println!(
        "grading {grades} notebooks (local runner, 2 workers): {:.1} s with no webhook, {:.1} s \
         with each webhook held 2 s by its receiver: ratio {:.2} (1.00 = not slowed)",
        times[0],
        times[1],
        times[0] / times[1]
    );
}
