//! The docker runner against the real engine and the real grader image
//! (scripts/start-docker.sh, scripts/build-grader-image.sh).

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::ListContainersOptionsBuilder;
use otter_service::grading::docker::{DockerConfig, DockerRunner};
use otter_service::grading::{GradeOutcome, GradeRequest, Runner, SandboxLimits, StudentFault};
use tokio::sync::RwLock;

use crate::helpers::{otter_venv, repo_path, sample};

pub const IMAGE: &str = "otter-grader:7.0.0";
/// A fresh instance id for each runner these tests make: a service started by one test
/// sweeps its instance's containers at start, and must not sweep another test's.
fn instance() -> String {
    format!("otter-tests-{:08x}", rand::random::<u32>())
}

/// Tests that stop the engine take this for writing; the others for reading.
pub static ENGINE: RwLock<()> = RwLock::const_new(());

pub fn config() -> DockerConfig {
    DockerConfig {
        image: IMAGE.into(),
        runtime: None,
        docker_host: None,
        results_bytes: 5 << 20,
        tmpfs_bytes: 256 << 20,
        instance: instance(),
        evaluator: otter_service::grading::docker::Evaluator::default(),
        // Each test that wants warm containers says so (tests/api/warm.rs).
        warm: 0,
        warm_idle: Duration::from_secs(60),
    }
}

/// The runner, after checking the engine and image are there.
pub async fn runner() -> DockerRunner {
    runner_with(config()).await
}

/// The runner with `cfg`, after checking the engine and image are there.
pub async fn runner_with(cfg: DockerConfig) -> DockerRunner {
    let r = DockerRunner::connect(cfg).await.expect("docker client");
    let ready = r.readiness().await;
    assert!(
        ready.ready,
        "{} (run scripts/start-docker.sh and scripts/build-grader-image.sh)",
        ready.detail
    );
    r
}

fn zip() -> std::path::PathBuf {
    repo_path("course_config/materials/demo/demo1-autograder.zip")
}

fn request(notebook: &str, limits: SandboxLimits) -> GradeRequest {
    GradeRequest {
        job_id: rand::random::<u32>() as i64 + 1_000_000,
        submission_id: 1,
        notebook: sample(notebook).to_string().into_bytes(),
        autograder_zip: zip(),
        limits,
        started: Default::default(),
    }
}

fn limits(secs: u64, memory_mb: u64) -> SandboxLimits {
    SandboxLimits {
        time_limit: Duration::from_secs(secs),
        memory_bytes: memory_mb << 20,
        cpus: 1.0,
        pids: 128,
        network: false,
        output_bytes: 64 * 1024,
        image: None,
    }
}

/// Containers of ours labelled with `job`.
async fn leftovers(job: i64) -> usize {
    leftovers_of(None, job).await
}

/// Containers labelled with `job` (and, when given, made by runners of `instance`: job ids
/// of services started by other tests repeat).
async fn leftovers_of(instance: Option<&str>, job: i64) -> usize {
    let docker = Docker::connect_with_defaults().unwrap();
    let mut labels = vec![format!("otter-service.job={job}")];
    if let Some(i) = instance {
        labels.push(format!("otter-service.instance={i}"));
    }
    let filters = HashMap::from([("label", labels.iter().map(String::as_str).collect())]);
    let opts = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    docker.list_containers(Some(opts)).await.unwrap().len()
}

/// Grade `notebook` in Docker and check that its container is gone afterwards.
async fn grade(notebook: &str, limits: SandboxLimits) -> GradeOutcome {
    grade_with(config(), notebook, limits).await
}

/// [`grade`] with the runner settings `cfg`.
async fn grade_with(cfg: DockerConfig, notebook: &str, limits: SandboxLimits) -> GradeOutcome {
    let _shared = ENGINE.read().await;
    let req = request(notebook, limits);
    let job = req.job_id;
    let outcome = runner_with(cfg)
        .await
        .grade(req)
        .await
        .expect("no infrastructure fault");
    assert_eq!(
        leftovers(job).await,
        0,
        "container of {notebook} left behind"
    );
    outcome
}

fn score(o: &GradeOutcome) -> f64 {
    match o {
        GradeOutcome::Graded(r) => r.score,
        other => panic!("expected a grade, got {other:?}"),
    }
}

fn fault(o: &GradeOutcome) -> StudentFault {
    match o {
        GradeOutcome::Failed { fault, .. } => *fault,
        other => panic!("expected a student fault, got {other:?}"),
    }
}

/// `otter run` on its own (no service, no container), as the reference score.
fn bare_otter_score(notebook: &Path) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let status = Command::new(otter_venv().join("bin/otter"))
        .args(["run", "-a"])
        .arg(zip())
        .arg("-o")
        .arg(&out)
        .arg(notebook)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    r["tests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["score"].as_f64())
        .sum()
}

#[tokio::test]
async fn docker_scores_match_a_bare_otter_run() {
    for (name, expected) in [("correct", 5.0), ("partial", 3.0), ("error", 4.0)] {
        let reference = bare_otter_score(&repo_path(&format!("tests/notebooks/{name}.ipynb")));
        assert_eq!(reference, expected, "{name}: bare otter run");
        let got = score(&grade(name, limits(120, 1024)).await);
        assert_eq!(got, reference, "{name}: docker runner vs bare otter run");
    }
}

#[tokio::test]
async fn infinite_loop_is_killed_at_the_limit() {
    let started = std::time::Instant::now();
    let o = grade("infinite_loop", limits(15, 512)).await;
    assert_eq!(fault(&o), StudentFault::Timeout);
    assert!(started.elapsed() < Duration::from_secs(40));
}

#[tokio::test]
async fn sleeping_past_the_limit_is_a_timeout() {
    assert_eq!(
        fault(&grade("sleep", limits(15, 512)).await),
        StudentFault::Timeout
    );
}

#[tokio::test]
async fn memory_bomb_is_out_of_memory() {
    let o = grade("memory_bomb", limits(120, 400)).await;
    assert_eq!(fault(&o), StudentFault::OutOfMemory, "{o:?}");
    let GradeOutcome::Failed { message, .. } = o else {
        unreachable!()
    };
    assert!(message.contains("400 MB"), "{message}");
}

#[tokio::test]
async fn fork_bomb_is_contained_by_the_pids_limit() {
    // Forks fail at the pids limit; the loop then spins until the time limit.
    let o = grade("fork_bomb", limits(20, 512)).await;
    assert_eq!(fault(&o), StudentFault::Timeout, "{o:?}");
}

#[tokio::test]
async fn filling_the_disk_stops_at_the_tmpfs_limit_with_a_clear_message() {
    // /tmp is a 256 MB tmpfs, so the host's disk is untouched. The trusted evaluator keeps
    // the tests and results in memory: a full /tmp costs the student nothing their work
    // (every answer right) earns.
    let o = grade("disk_fill", limits(120, 1024)).await;
    assert_eq!(score(&o), 5.0, "{o:?}");
    // A bare `otter run` needs /tmp itself and cannot go on: the student is told why.
    let mut bare = config();
    bare.evaluator = otter_service::grading::docker::Evaluator::Otter;
    let o = grade_with(bare, "disk_fill", limits(120, 1024)).await;
    assert_eq!(fault(&o), StudentFault::NoResults, "{o:?}");
    let GradeOutcome::Failed { message, .. } = o else {
        unreachable!()
    };
    assert!(message.contains("filled the disk space"), "{message}");
}

#[tokio::test]
async fn printing_100_mb_is_contained() {
    let o = grade("stdout_flood", limits(120, 1024)).await;
    // Either otter keeps the output and grades, or the kernel runs out of memory holding
    // it: both are a clear ending, and nothing of the 100 MB reaches the service's logs.
    match &o {
        GradeOutcome::Graded(r) => assert_eq!(r.score, 5.0),
        GradeOutcome::Failed {
            fault, log_tail, ..
        } => {
            assert_eq!(*fault, StudentFault::OutOfMemory, "{o:?}");
            assert!(log_tail.len() <= 64 * 1024);
        }
    }
}

#[tokio::test]
async fn what_a_container_prints_is_not_kept_on_the_engines_disk() {
    let _shared = ENGINE.read().await;
    let req = request("stdout_flood", limits(120, 1024));
    let job = req.job_id;
    let run = tokio::spawn(async move { runner().await.grade(req).await });
    let docker = Docker::connect_with_defaults().unwrap();
    let label = format!("otter-service.job={job}");
    let filters = HashMap::from([("label", vec![label.as_str()])]);
    let opts = ListContainersOptionsBuilder::new()
        .filters(&filters)
        .build();
    let id = loop {
        let found = docker.list_containers(Some(opts.clone())).await.unwrap();
        if let Some(id) = found.into_iter().find_map(|c| c.id) {
            break id;
        }
        assert!(!run.is_finished(), "the container ended before it was seen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // While it prints, look at what the engine keeps of it, once a second.
    let mut looked = 0;
    for _ in 0..5 {
        let Ok(c) = docker.inspect_container(&id, None).await else {
            break;
        };
        let host = c.host_config.unwrap();
        assert_eq!(host.log_config.unwrap().typ.as_deref(), Some("none"));
        assert!(c.log_path.unwrap_or_default().is_empty(), "no log file");
        let dir = Path::new("/var/lib/docker/containers").join(&id);
        let kept: u64 = std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        assert!(kept < 1 << 20, "{kept} bytes kept in {}", dir.display());
        looked += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(looked > 0, "the container was never seen running");
    run.await.unwrap().expect("graded or a student fault");
}

#[tokio::test]
async fn network_connections_fail() {
    assert_eq!(
        score(&grade("network", limits(120, 1024)).await),
        5.0,
        "q1 is only right if no host was reached"
    );
}

#[tokio::test]
async fn files_outside_the_job_cannot_be_read() {
    assert_eq!(
        score(&grade("read_files", limits(120, 1024)).await),
        5.0,
        "q1 is only right if nothing leaked"
    );
}

#[tokio::test]
async fn killing_its_own_kernel_gives_no_results() {
    let o = grade("kill_kernel", limits(120, 1024)).await;
    assert_eq!(fault(&o), StudentFault::NoResults, "{o:?}");
}

#[tokio::test]
async fn sys_exit_in_a_cell_is_graded() {
    // ipykernel turns SystemExit into a cell error; the rest of the notebook is graded.
    assert_eq!(score(&grade("sys_exit", limits(120, 1024)).await), 5.0);
}

#[tokio::test]
async fn concurrent_submissions_do_not_see_each_other() {
    let (a, b) = tokio::join!(
        grade("correct", limits(120, 1024)),
        grade("partial", limits(120, 1024))
    );
    assert_eq!((score(&a), score(&b)), (5.0, 3.0));
}

/// A container labelled as `instance`'s, as a killed service leaves behind.
async fn leftover_container(job: i64, instance: &str) {
    let docker = Docker::connect_with_defaults().unwrap();
    let labels = HashMap::from([
        ("otter-service".to_string(), "1".to_string()),
        ("otter-service.job".to_string(), job.to_string()),
        ("otter-service.instance".to_string(), instance.to_string()),
    ]);
    let body = bollard::models::ContainerCreateBody {
        image: Some(IMAGE.into()),
        cmd: Some(vec!["sleep".into(), "600".into()]),
        labels: Some(labels),
        ..Default::default()
    };
    let id = docker.create_container(None, body).await.unwrap().id;
    docker.start_container(&id, None).await.unwrap();
}

#[tokio::test]
async fn orphans_are_removed_and_live_jobs_spared() {
    // Exclusive: removing orphans removes every other test's containers too.
    let _exclusive = ENGINE.write().await;
    let cfg = config();
    let mine = cfg.instance.clone();
    let r = DockerRunner::connect(cfg).await.unwrap();
    let (orphan, live, other) = (
        rand::random::<u32>() as i64,
        rand::random::<u32>() as i64,
        rand::random::<u32>() as i64,
    );
    leftover_container(orphan, &mine).await;
    leftover_container(live, &mine).await;
    // Another service sharing the engine, with a job of its own running.
    leftover_container(other, "another-service").await;
    assert!(r.remove_orphans(&[live]).await.unwrap() >= 1);
    assert_eq!(leftovers(orphan).await, 0);
    assert_eq!(leftovers(live).await, 1, "a live job's container is kept");
    assert_eq!(
        leftovers(other).await,
        1,
        "another instance's container is kept"
    );
    r.remove_orphans(&[]).await.unwrap();
    assert_eq!(leftovers(live).await, 0);
    assert_eq!(leftovers(other).await, 1);
    // The other service sweeps its own at its start.
    let mut cfg = config();
    cfg.instance = "another-service".into();
    let theirs = DockerRunner::connect(cfg).await.unwrap();
    theirs.remove_orphans(&[]).await.unwrap();
    assert_eq!(leftovers(other).await, 0);
}

fn engine_answers() -> bool {
    Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn engine_down_while_jobs_wait_then_back_grades_everything_once() {
    let _exclusive = ENGINE.write().await;
    let runner: std::sync::Arc<dyn Runner> = std::sync::Arc::new(runner().await);
    let app = crate::helpers::spawn_app_with_runner(
        |s| {
            s.grading.retry_base_secs = 1;
            s.grading.max_attempts = 100;
            s.grading.workers = 2;
        },
        Some(runner),
    )
    .await;
    let token = crate::hub::hub().user_token("nina", None).await;

    let pid = std::fs::read_to_string("/run/otter-dockerd.pid")
        .expect("the engine must have been started by scripts/start-docker.sh (its pidfile)");
    // SAFETY: stopping the engine our own script started, by its PID.
    unsafe {
        libc::kill(pid.trim().parse().unwrap(), libc::SIGTERM);
    }
    while engine_answers() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut ids = Vec::new();
    for i in 0..3 {
        let nb = crate::helpers::copy_of(&sample("correct"), i);
        ids.push(app.submit_ok(&token, &nb).await);
    }
    let health = app
        .http
        .get(format!("{}healthz", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 503, "healthz reports the engine down");
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (_, v) = app.status(&token, ids[0]).await;
    assert_eq!(v["state"], "queued", "{v}");
    assert!(
        v["attempts"].as_i64().unwrap() <= 1,
        "no attempts are spent while the runner is not ready: {v}"
    );

    let up = Command::new("bash")
        .arg(repo_path("scripts/start-docker.sh"))
        .status()
        .unwrap();
    assert!(up.success(), "engine restarted");
    for id in &ids {
        let v = app.wait_done(&token, *id, Duration::from_secs(180)).await;
        assert_eq!(v["state"], "graded", "{v}");
        assert_eq!(v["grade"]["score"], 5.0, "not charged to the student: {v}");
    }
    let c = rusqlite::Connection::open(&app.db_path).unwrap();
    let grades: i64 = c
        .query_row("SELECT COUNT(*) FROM grades", [], |r| r.get(0))
        .unwrap();
    assert_eq!(grades, 3, "one grade each");
}

#[tokio::test]
async fn hostile_notebooks_through_the_service_each_end_clearly_and_it_stays_healthy() {
    let _shared = ENGINE.read().await;
    let cfg = config();
    let instance = cfg.instance.clone();
    let runner: std::sync::Arc<dyn Runner> =
        std::sync::Arc::new(DockerRunner::connect(cfg).await.unwrap());
    let app = crate::helpers::spawn_app_with_runner(
        |s| {
            // Long enough that the memory bomb reaches its limit on a busy machine.
            s.grading.time_limit_secs = 40;
            s.grading.memory_mb = 512;
            s.grading.workers = 2;
        },
        Some(runner),
    )
    .await;
    let token = crate::hub::hub().user_token("oscar", None).await;
    // A fork bomb ends at the time limit or, when its copies fill the memory limit
    // before the pids limit stops them, as out of memory: both are contained.
    let cases: [(&str, &[&str]); 7] = [
        ("infinite_loop", &["timeout"]),
        ("memory_bomb", &["out_of_memory"]),
        ("fork_bomb", &["timeout", "out_of_memory"]),
        ("kill_kernel", &["no_results"]),
        ("network", &["graded"]),
        ("read_files", &["graded"]),
        ("correct", &["graded"]),
    ];
    let mut ids = Vec::new();
    for (name, _) in cases {
        ids.push(app.submit_ok(&token, &sample(name)).await);
    }
    for ((name, statuses), id) in cases.iter().zip(ids) {
        let v = app.wait_done(&token, id, Duration::from_secs(300)).await;
        let status = v["grade"]["status"].as_str().unwrap_or("").to_string();
        assert!(statuses.contains(&status.as_str()), "{name}: {v}");
        if status == "graded" {
            assert_eq!(v["grade"]["score"], 5.0, "{name}: {v}");
        } else {
            assert!(
                !v["message"].as_str().unwrap_or("").is_empty(),
                "{name} tells the student why"
            );
        }
    }
    let health = app
        .http
        .get(format!("{}healthz", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let c = rusqlite::Connection::open(&app.db_path).unwrap();
    let job_ids: Vec<i64> = c
        .prepare("SELECT id FROM jobs WHERE kind = 'grade'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for job in job_ids {
        assert_eq!(
            leftovers_of(Some(&instance), job).await,
            0,
            "container of job {job} left behind"
        );
    }
}
