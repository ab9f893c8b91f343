//! Grading benchmark, all in one run on the same machine and the same grader image:
//!
//! 1. bare: `otter run` of the demo notebook in a fresh container of the grader image
//!    (`docker run` with the inputs bind-mounted: what an operator would run by hand),
//!    with the CPU-seconds the grade used;
//! 2. service: submit-to-graded through the service (real binary code in-process, real
//!    JupyterHub auth, docker runner), one submission at a time;
//! 3. trusted: the same through the service with the trusted evaluator (grader/,
//!    `docker.evaluator = "trusted"`), against 2;
//! 4. burst: 50 submissions at once, with 1, 2 and 3 concurrent containers.
//!
//! Run: `cargo bench --bench grading` (after scripts/test.sh's setup). Knobs: GRADE_RUNS
//! (5), GRADE_BURST (50).

#[path = "../tests/api/helpers.rs"]
#[allow(dead_code)]
mod helpers;
#[path = "../tests/api/hub.rs"]
#[allow(dead_code)]
mod hub;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use helpers::{copy_of, repo_path, sample, spawn_app_with_runner};
use otter_service::grading::Runner;
use otter_service::grading::docker::{DockerConfig, DockerRunner, Evaluator};

const IMAGE: &str = "otter-grader:7.0.0";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One bare grade: seconds of wall time and CPU-seconds used by otter and its kernel.
fn bare_grade() -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo_path("course_config/materials/demo/demo1-autograder.zip"),
        dir.path().join("autograder.zip"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("submission.ipynb"),
        sample("correct").to_string(),
    )
    .unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    // getrusage(CHILDREN) counts otter and the kernel it waited for.
    let script = "import resource, subprocess, os; os.makedirs('/job/out', exist_ok=True); \
        subprocess.run(['otter', 'run', '-a', 'autograder.zip', '-o', '/job/out', 'submission.ipynb'], \
        check=True, capture_output=True); r = resource.getrusage(resource.RUSAGE_CHILDREN); \
        print(r.ru_utime + r.ru_stime)";
    let start = Instant::now();
    let out = Command::new("docker")
        .args(["run", "--rm", "--network", "none", "-v"])
        .arg(format!("{}:/job", dir.path().display()))
        .args([
            "-w",
            "/job",
            "-e",
            "HOME=/tmp",
            IMAGE,
            "python",
            "-c",
            script,
        ])
        .output()
        .unwrap();
    let wall = start.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cpu: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    (wall, cpu)
}

async fn docker_runner(evaluator: Evaluator) -> Arc<dyn Runner> {
    let cfg = DockerConfig {
        image: IMAGE.into(),
        runtime: None,
        docker_host: None,
        results_bytes: 5 << 20,
        tmpfs_bytes: 256 << 20,
        instance: "otter-bench".into(),
        evaluator,
    };
    let r = DockerRunner::connect(cfg).await.unwrap();
    assert!(r.readiness().await.ready, "engine and grader image needed");
    Arc::new(r)
}

/// Submit `n` notebooks at once to a service with `workers` containers; seconds until all
/// are graded.
async fn burst(n: usize, workers: usize, token: &str) -> f64 {
    let app = spawn_app_with_runner(
        |s| s.grading.workers = workers,
        Some(docker_runner(Evaluator::Otter).await),
    )
    .await;
    let nb = sample("correct");
    let start = Instant::now();
    let mut ids = Vec::new();
    // Distinct copies: an identical notebook still waiting is answered with the first.
    for i in 0..n {
        ids.push(app.submit_ok(token, &copy_of(&nb, i)).await);
    }
    for id in ids {
        let v = app.wait_done(token, id, Duration::from_secs(1800)).await;
        assert_eq!(v["grade"]["score"], 5.0);
    }
    start.elapsed().as_secs_f64()
}

/// Poll the status every 20 ms (the tests' helper polls every 250 ms, too coarse here).
async fn wait_graded(app: &helpers::TestApp, token: &str, id: i64) {
    loop {
        let (_, v) = app.status(token, id).await;
        if v["state"] == "graded" {
            assert_eq!(v["grade"]["score"], 5.0);
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::main]
async fn main() {
    let runs = env_or("GRADE_RUNS", 5);
    let n = env_or("GRADE_BURST", 50);
    let cores = std::thread::available_parallelism().map_or(2, |c| c.get()) as f64;
    let token = hub::hub().user_token("bench-grader", None).await;

    // Interleave bare and service runs so machine noise hits both alike.
    // The same CPU quota as the bare run has (none beyond the machine's cores).
    let one_at_a_time = |evaluator| async move {
        spawn_app_with_runner(
            |s| {
                s.grading.workers = 1;
                s.grading.cpus = cores;
            },
            Some(docker_runner(evaluator).await),
        )
        .await
    };
    let app = one_at_a_time(Evaluator::Otter).await;
    let trusted_app = one_at_a_time(Evaluator::Trusted).await;
    let (mut bare, mut cpu, mut service, mut trusted) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    bare_grade(); // warm the page cache
    for _ in 0..runs {
        let (w, c) = bare_grade();
        bare.push(w);
        cpu.push(c);
        for (app, times) in [(&app, &mut service), (&trusted_app, &mut trusted)] {
            let start = Instant::now();
            let id = app.submit_ok(&token, &sample("correct")).await;
            wait_graded(app, &token, id).await;
            times.push(start.elapsed().as_secs_f64());
        }
    }
    let (bare_m, cpu_m, service_m) = (median(bare), median(cpu), median(service));
    let trusted_m = median(trusted);
    println!(
        "bare `otter run` in a fresh grader container: median {bare_m:.2} s wall, {cpu_m:.2} CPU-s ({runs} runs)"
    );
    println!("submit-to-graded through the service (docker runner): median {service_m:.2} s");
    println!(
        "service overhead: {:.3}x of a bare run (target <= 1.05)",
        service_m / bare_m
    );
    println!(
        "with the trusted evaluator: median {trusted_m:.2} s = {:.3}x of the bare-otter service (target <= 1.2)",
        trusted_m / service_m
    );

    let ideal = cores / cpu_m;
    // One container more than cores keeps the CPUs busy while containers start and stop.
    for workers in [1, 2, 3] {
        let secs = burst(n, workers, &token).await;
        let rate = n as f64 / secs;
        println!(
            "burst of {n} with {workers} container(s): {secs:.1} s, {rate:.3} grades/s = {:.2} of what {cores} cores allow ({ideal:.3}/s; target >= 0.95)",
            rate / ideal
        );
    }
}
