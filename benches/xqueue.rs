//! The XQueue door against the JupyterHub door, in one run: the same notebooks (the demo's
//! correct and partial ones, distinct copies) graded by the same service (local runner, 2
//! workers), XQ_N (20) at a time through each door, alternating, XQ_ROUNDS (2) rounds.
//! Through JupyterHub: submit with a Hub token, until every one is graded. Through XQueue
//! (edX's own XQueue API, edx-submissions, tests/support/xqueue_server.py): created at
//! XQueue as the LMS does, until XQueue took every answer (pull, fetch, grade, put_result
//! answered 200; read from our database).
//! Prints graded per second for each and the ratio.
//!
//! Run: `cargo bench --bench xqueue` (needs scripts/test.sh's setup: JupyterHub, the
//! otter venv, scripts/setup-xqueue.sh).

#[path = "support/cpu.rs"]
#[allow(dead_code)]
mod cpu;
#[path = "../tests/api/helpers.rs"]
#[allow(dead_code)]
mod helpers;
#[path = "../tests/api/hub.rs"]
#[allow(dead_code)]
mod hub;
#[path = "../tests/support/xqueue.rs"]
mod xqueue_peer;

use std::time::{Duration, Instant};

use helpers::{copy_of, sample, spawn_app_with};
use otter_service::secret::Secret;
use otter_service::settings::XqueueQueue;
use xqueue_peer::{PASSWORD, USER, Xqueue};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let n = env_or("XQ_N", 20);
    let rounds = env_or("XQ_ROUNDS", 2);
    let dir = tempfile::tempdir().unwrap();
    let xq = Xqueue::start(dir.path());
    let app = spawn_app_with(|s| {
        s.grading.workers = 2;
        s.xqueue.queues = vec![XqueueQueue {
            name: "bench".into(),
            url: xq.api_url(),
            queue_name: "notebooks".into(),
            username: USER.into(),
            password: Secret::new(PASSWORD),
            poll_secs: 1,
            ..Default::default()
        }];
    })
    .await;
    let mut tokens = Vec::new();
    for i in 0..n {
        tokens.push(hub::hub().user_token(&format!("bench-door{i}"), None).await);
    }
    let notebook = |i: usize, salt: usize| {
        let nb = if i.is_multiple_of(2) {
            "correct"
        } else {
            "partial"
        };
        copy_of(&sample(nb), salt * 10_000 + i)
    };
    let (mut hub_secs, mut xq_secs) = (0.0, 0.0);
    // CPU of this process (the service, in-process, and the bench's own requests; not the
    // graders' `otter run` children, nor XQueue's Python): what the door itself costs.
    let (mut hub_cpu, mut xq_cpu) = (0.0, 0.0);
    for round in 0..rounds {
        // JupyterHub door.
        let start = Instant::now();
        let cpu0 = cpu::own_secs();
        let mut ids = Vec::new();
        for (i, token) in tokens.iter().enumerate() {
            ids.push(app.submit_ok(token, &notebook(i, 2 * round)).await);
        }
        for (id, token) in ids.iter().zip(&tokens) {
            app.wait_done(token, *id, Duration::from_secs(600)).await;
        }
        let h = start.elapsed().as_secs_f64();
        hub_cpu += cpu::own_secs() - cpu0;
        // XQueue door.
        let start = Instant::now();
        let cpu0 = cpu::own_secs();
        for i in 0..n {
            let file = serde_json::to_vec(&notebook(i, 2 * round + 1)).unwrap();
            let m = xq
                .submit(
                    &format!("anon{round}x{i}"),
                    "demo/1/demo1",
                    "lab.ipynb",
                    &file,
                )
                .await;
            assert!(m["submission_id"].is_number());
        }
        // Answered = XQueue took the put_result (our record of its 200), read from our
        // database: polling XQueue's Python every 100 ms would slow the machine it shares.
        let db = rusqlite::Connection::open(&app.db_path).unwrap();
        loop {
            let answered: i64 = db
                .query_row(
                    "SELECT COUNT(*) FROM xqueue_items WHERE state = 'answered'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            if answered as usize >= n * (round + 1) {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(600),
                "{answered} answered"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let x = start.elapsed().as_secs_f64();
        xq_cpu += cpu::own_secs() - cpu0;
        println!(
            "round {}: JupyterHub door {:.2} graded/s, XQueue door {:.2} answered/s",
            round + 1,
            n as f64 / h,
            n as f64 / x
        );
        hub_secs += h;
        xq_secs += x;
    }
    let total = (n * rounds) as f64;
    println!("{n} notebooks x {rounds} rounds per door, local runner, 2 workers");
    println!("  JupyterHub door: {:.2} graded/s", total / hub_secs);
    println!(
        "  XQueue door:     {:.2} graded and answered/s",
        total / xq_secs
    );
    println!("  XQueue / JupyterHub: {:.2}", hub_secs / xq_secs);
    println!(
        "  service CPU per submission (this process): JupyterHub door {:.1} ms, XQueue door {:.1} ms",
        hub_cpu / total * 1000.0,
        xq_cpu / total * 1000.0
    );
}
