//! Grading benchmark, all in one run on the same machine and the same grader image:
//!
//! 1. bare: `otter run` of the demo notebook in a fresh container of the grader image
//!    (`docker run` with the inputs bind-mounted: what an operator would run by hand),
//!    with the CPU-seconds the grade used;
//! 2. service: submit-to-graded through the service (real binary code in-process, real
//!    JupyterHub auth, docker runner), one submission at a time;
//! 3. trusted: the same through the service with the trusted evaluator (grader/,
//!    `docker.evaluator = "trusted"`, the default), without warm containers, against 2;
//! 4. pooled: the same with warm containers (`docker.warm_containers`), against 1, and
//!    the whole machine's CPU-seconds per graded submission (/proc/stat: the engine, the
//!    service and the warm-up of the container that replaces the one used) against those
//!    of 1 (the engine's included);
//! 5. burst: 50 submissions at once with the defaults (trusted, warm containers), with 1,
//!    2 and 3 concurrent containers: how busy the machine's cores were (/proc/stat);
//! 6. remote: the same grade as 4 through a grader host (the service with `workers = 0`
//!    and a real `otter-service grader` process with one slot and a warm container on
//!    the same engine: claim by long poll, the autograder fetched once by its hash,
//!    heartbeat, result over HTTP), against 4, run in the same loop.
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

/// Busy and total jiffies of the whole machine, from the first line of /proc/stat.
fn machine_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    (busy, busy + v[3] + v[4])
}

/// CPU jiffies (user + system, own threads only) of the Docker engine's processes
/// (dockerd, containerd, the shims) and of this process (the service under test).
/// Read from /proc; nothing is signalled.
fn engine_and_service_jiffies() -> (u64, u64) {
    let me = std::process::id().to_string();
    let (mut engine, mut service) = (0, 0);
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        // fields[11], fields[12]: utime, stime (the 14th and 15th of the whole line)
        let own: u64 =
            fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
        if name == me {
            service += own;
        } else if comm == "dockerd" || comm == "containerd" || comm.starts_with("containerd-shim") {
            engine += own;
        }
    }
    (engine, service)
}

/// Jiffies per second (`getconf CLK_TCK`).
fn clock_ticks() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

async fn docker_runner(evaluator: Evaluator, warm: usize) -> Arc<DockerRunner> {
    let cfg = DockerConfig {
        image: IMAGE.into(),
        runtime: None,
        docker_host: None,
        results_bytes: 5 << 20,
        tmpfs_bytes: 256 << 20,
        instance: "otter-bench".into(),
        evaluator,
        warm,
        warm_idle: Duration::from_secs(60),
    };
    let r = DockerRunner::connect(cfg).await.unwrap();
    assert!(r.readiness().await.ready, "engine and grader image needed");
    Arc::new(r)
}

/// Wait (at most 60 s) until `n` warm containers wait.
async fn until_warm(runner: &DockerRunner, n: usize) {
    let start = Instant::now();
    while runner.pool_stats().waiting < n && start.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Submit `n` notebooks at once to a service with `workers` containers (the defaults:
/// trusted evaluator, as many warm containers as workers); seconds until all are graded,
/// and the fraction of the machine's CPU time that was busy meanwhile.
async fn burst(n: usize, workers: usize, token: &str) -> Burst {
    let runner = docker_runner(Evaluator::Trusted, workers).await;
    let app = spawn_app_with_runner(
        |s| s.grading.workers = workers,
        Some(runner.clone() as Arc<dyn Runner>),
    )
    .await;
    let before = machine_jiffies();
    let parts_before = engine_and_service_jiffies();
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
    let after = machine_jiffies();
    let parts = engine_and_service_jiffies();
    let busy_jiffies = (after.0 - before.0) as f64;
    runner.shutdown().await; // its warm containers go, as when the service stops
    Burst {
        secs: start.elapsed().as_secs_f64(),
        busy: busy_jiffies / (after.1 - before.1) as f64,
        engine: (parts.0 - parts_before.0) as f64 / busy_jiffies,
        service: (parts.1 - parts_before.1) as f64 / busy_jiffies,
        cpu_per_grade: busy_jiffies / clock_ticks() / n as f64,
        stats: runner.pool_stats(),
    }
}

/// What a burst measured.
struct Burst {
    secs: f64,
    /// Fraction of the machine's CPU time that was busy.
    busy: f64,
    /// Shares of the busy time: the Docker engine's processes, this process.
    engine: f64,
    service: f64,
    /// Machine CPU-seconds per graded submission.
    cpu_per_grade: f64,
    stats: otter_service::grading::docker::PoolStats,
}

/// A grader host process; stopped (SIGTERM: it drains and removes its containers) on drop.
struct HostProcess(std::process::Child);

impl Drop for HostProcess {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGTERM);
        }
        let _ = self.0.wait();
    }
}

/// The service grading only through hosts, and one host on this engine with one slot
/// and one warm container.
async fn remote_service() -> (helpers::TestApp, HostProcess) {
    let port = hub::free_port();
    let app = spawn_app_with_runner(
        |s| {
            s.grading.workers = 0;
            s.hosts.bind = Some(format!("127.0.0.1:{port}").parse().unwrap());
        },
        Some(docker_runner(Evaluator::Trusted, 0).await as Arc<dyn Runner>),
    )
    .await;
    let token = helpers::cli(&app.db_path, &["hosts", "add", "bench-host"]);
    let dir = std::env::temp_dir().join(format!("otter-bench-host-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let settings = dir.join("grader.toml");
    std::fs::write(
        &settings,
        format!(
            "service_url = \"http://127.0.0.1:{port}/\"\nslots = 1\ncache_dir = \"{}\"\n\
             [docker]\ninstance_id = \"otter-bench-host\"\nwarm_containers = 1\n",
            dir.join("cache").display()
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_otter-service"))
        .args(["grader", "--settings"])
        .arg(&settings)
        .env("OTTER_GRADER_TOKEN", token.trim())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("grader.log")).unwrap())
        .spawn()
        .expect("start the grader host");
    (app, HostProcess(child))
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
    let one_at_a_time = |runner: Arc<DockerRunner>| async move {
        spawn_app_with_runner(
            |s| {
                s.grading.workers = 1;
                s.grading.cpus = cores;
            },
            Some(runner as Arc<dyn Runner>),
        )
        .await
    };
    let app = one_at_a_time(docker_runner(Evaluator::Otter, 0).await).await;
    let trusted_app = one_at_a_time(docker_runner(Evaluator::Trusted, 0).await).await;
    let pool = docker_runner(Evaluator::Trusted, 1).await;
    let pooled_app = one_at_a_time(pool.clone()).await;
    let (remote_app, _host) = remote_service().await;
    let tick = clock_ticks();
    let (mut bare, mut cpu, mut bare_machine) = (Vec::new(), Vec::new(), Vec::new());
    let (mut service, mut trusted, mut pooled, mut pooled_machine) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    bare_grade(); // warm the page cache
    // The pool's first container (later ones are started by the jobs that take one).
    let first = pooled_app
        .submit_ok(&token, &copy_of(&sample("correct"), 9999))
        .await;
    wait_graded(&pooled_app, &token, first).await;
    let first = remote_app
        .submit_ok(&token, &copy_of(&sample("correct"), 9998))
        .await;
    wait_graded(&remote_app, &token, first).await;
    let mut remote = Vec::new();
    // A grade's CPU is counted until the machine has settled: the warm container that
    // replaces the one used goes on importing after `docker start` returns. The same
    // window for both, so the idle machine's own CPU weighs alike.
    let settle = Duration::from_secs(4);
    for _ in 0..runs {
        let before = machine_jiffies();
        let (w, c) = bare_grade();
        tokio::time::sleep(settle).await;
        bare_machine.push((machine_jiffies().0 - before.0) as f64 / tick);
        bare.push(w);
        cpu.push(c);
        for (app, times) in [(&app, &mut service), (&trusted_app, &mut trusted)] {
            let start = Instant::now();
            let id = app.submit_ok(&token, &sample("correct")).await;
            wait_graded(app, &token, id).await;
            times.push(start.elapsed().as_secs_f64());
        }
        // A warm container waits; the grade takes it and starts its replacement, whose
        // warm-up is counted in this grade's CPU.
        until_warm(&pool, 1).await;
        let before = machine_jiffies();
        let start = Instant::now();
        let id = pooled_app.submit_ok(&token, &sample("correct")).await;
        wait_graded(&pooled_app, &token, id).await;
        pooled.push(start.elapsed().as_secs_f64());
        until_warm(&pool, 1).await;
        tokio::time::sleep(settle).await;
        pooled_machine.push((machine_jiffies().0 - before.0) as f64 / tick);
        // The host's replacement container had the settle time to warm up too.
        let start = Instant::now();
        let id = remote_app.submit_ok(&token, &sample("correct")).await;
        wait_graded(&remote_app, &token, id).await;
        remote.push(start.elapsed().as_secs_f64());
        tokio::time::sleep(settle).await;
    }
    let stats = pool.pool_stats();
    pool.shutdown().await;
    let (bare_m, cpu_m, service_m) = (median(bare), median(cpu), median(service));
    let (trusted_m, pooled_m) = (median(trusted), median(pooled));
    let (bare_cpu_m, pooled_cpu_m) = (median(bare_machine), median(pooled_machine));
    println!(
        "bare `otter run` in a fresh grader container: median {bare_m:.2} s wall, {cpu_m:.2} CPU-s in the container, {bare_cpu_m:.2} CPU-s of the machine ({runs} runs)"
    );
    println!("submit-to-graded through the service (otter evaluator): median {service_m:.2} s");
    println!(
        "service overhead: {:.3}x of a bare run (target <= 1.05)",
        service_m / bare_m
    );
    println!(
        "with the trusted evaluator, cold containers: median {trusted_m:.2} s = {:.3}x of the otter-evaluator service (target <= 1.2)",
        trusted_m / service_m
    );
    println!(
        "with warm containers: median {pooled_m:.2} s = {:.3}x of a cold bare `otter run` (target <= 0.6); {} of {} grades took a warm container",
        pooled_m / bare_m,
        stats.taken,
        stats.taken + stats.cold
    );
    println!(
        "machine CPU-seconds per graded submission, one at a time (4 s to settle included): {pooled_cpu_m:.2} with warm containers (its replacement's warm-up included) vs {bare_cpu_m:.2} bare = {:.3} (target <= 1.0)",
        pooled_cpu_m / bare_cpu_m
    );
    let remote_m = median(remote);
    println!(
        "through a grader host, warm containers: median {remote_m:.2} s = {:.3}x of the same grade on the service's own runner (target <= 1.1)",
        remote_m / pooled_m
    );
    drop((app, trusted_app, pooled_app, remote_app));

    // One container more than cores keeps the CPUs busy while containers start and stop.
    for workers in [1, 2, 3] {
        let b = burst(n, workers, &token).await;
        println!(
            "burst of {n} with {workers} container(s), warm containers: {:.1} s, {:.3} grades/s, the {cores} cores {:.2} busy (target >= 0.95); {:.2} machine CPU-s per grade, of which the engine {:.0}%, the service {:.0}%, the rest (containers, runc) {:.0}%; {} of {} grades took a warm container",
            b.secs,
            n as f64 / b.secs,
            b.busy,
            b.cpu_per_grade,
            100.0 * b.engine,
            100.0 * b.service,
            100.0 * (1.0 - b.engine - b.service),
            b.stats.taken,
            b.stats.taken + b.stats.cold
        );
    }
}
