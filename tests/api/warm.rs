//! Warm containers (`docker.warm_containers`, trusted evaluator): a warm container is
//! used for one job and removed; jobs grade in them exactly as in cold ones; a killed
//! service leaves none behind once it has started again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::query_parameters::ListContainersOptionsBuilder;
use otter_service::grading::docker::{DockerRunner, Evaluator};
use otter_service::grading::{GradeOutcome, GradeRequest, Runner, SandboxLimits};

use crate::docker::{ENGINE, config};
use crate::helpers::{ServiceProcess, port, repo_path, sample};

/// A trusted runner that keeps up to `warm` containers waiting.
pub async fn warm_runner(warm: usize) -> Arc<DockerRunner> {
    let mut cfg = config();
    cfg.evaluator = Evaluator::Trusted;
    cfg.warm = warm;
    Arc::new(DockerRunner::connect(cfg).await.unwrap())
}

/// Wait (at most 60 s) until `n` warm containers wait.
pub async fn until_warm(runner: &DockerRunner, n: usize) {
    let start = Instant::now();
    while runner.pool_stats().waiting < n {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no warm container after 60 s: {:?}",
            runner.pool_stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Ids of the containers of `instance` whose job label is `job` (`warm`, or any: None).
pub(crate) async fn containers(instance: &str, job: Option<&str>) -> Vec<String> {
    let docker = Docker::connect_with_defaults().unwrap();
    let mut labels = vec![format!("otter-service.instance={instance}")];
    if let Some(job) = job {
        labels.push(format!("otter-service.job={job}"));
    }
    let filters = std::collections::HashMap::from([(
        "label",
        labels.iter().map(String::as_str).collect::<Vec<_>>(),
    )]);
    let opts = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let mut ids: Vec<String> = docker
        .list_containers(Some(opts))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| c.id)
        .collect();
    ids.sort();
    ids
}

fn request(notebook: &str) -> GradeRequest {
    GradeRequest {
        job_id: rand::random::<u32>() as i64 + 4_000_000,
        submission_id: 1,
        notebook: sample(notebook).to_string().into_bytes(),
        autograder_zip: repo_path("course_config/materials/demo/demo1-autograder.zip"),
        limits: SandboxLimits {
            time_limit: Duration::from_secs(120),
            ..SandboxLimits::default()
        },
        started: Default::default(),
    }
}

fn score(o: &GradeOutcome) -> f64 {
    match o {
        GradeOutcome::Graded(r) => r.score,
        other => panic!("not graded: {other:?}"),
    }
}

#[tokio::test]
async fn a_warm_container_grades_one_job_and_is_removed() {
    let _shared = ENGINE.read().await;
    let runner = warm_runner(1).await;
    let instance = runner.instance().to_string();
    // The first job finds no warm container: it starts its own, and one more behind it.
    assert_eq!(score(&runner.grade(request("correct")).await.unwrap()), 5.0);
    let mut used = Vec::new();
    for (i, notebook) in ["partial", "correct", "error"].into_iter().enumerate() {
        until_warm(&runner, 1).await;
        let waiting = containers(&instance, Some("warm")).await;
        assert_eq!(waiting.len(), 1, "one waits: {waiting:?}");
        assert!(
            !used.contains(&waiting[0]),
            "a used container is back in the pool: {waiting:?} in {used:?}"
        );
        let outcome = runner.grade(request(notebook)).await.unwrap();
        assert_eq!(
            runner.pool_stats().taken,
            i as u64 + 1,
            "a warm one was taken"
        );
        let want = match notebook {
            "correct" => 5.0,
            "partial" => 3.0,
            _ => score(&outcome), // graded at all; its score is checked in docker.rs
        };
        assert_eq!(score(&outcome), want, "{notebook}");
        let now: Vec<String> = containers(&instance, None).await;
        assert!(
            !now.contains(&waiting[0]),
            "the container that graded {notebook} is removed"
        );
        used.push(waiting[0].clone());
    }
    assert_eq!(runner.pool_stats().cold, 1);
    // The runner going away takes its waiting containers with it.
    drop(runner);
    let start = Instant::now();
    while !containers(&instance, None).await.is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "warm containers left"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_idle_pool_empties() {
    let _shared = ENGINE.read().await;
    let mut cfg = config();
    cfg.evaluator = Evaluator::Trusted;
    cfg.warm = 1;
    cfg.warm_idle = Duration::from_secs(2);
    let instance = cfg.instance.clone();
    let runner = DockerRunner::connect(cfg).await.unwrap();
    assert_eq!(score(&runner.grade(request("correct")).await.unwrap()), 5.0);
    // The grade started one warm container behind it (which may already have waited
    // its 2 s on a busy machine).
    let start = Instant::now();
    while runner.pool_stats().started < 1 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no warm container started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let start = Instant::now();
    while !containers(&instance, None).await.is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "a warm container outlived warm_idle by far"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(runner.pool_stats().waiting, 0);
}

/// Wait (at most 60 s) until `instance` has a warm container.
async fn until_a_warm_container(instance: &str) {
    let start = Instant::now();
    while containers(instance, Some("warm")).await.is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no warm container"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_service_leaves_no_warm_container_at_its_next_start_after_kill_9_or_when_stopped() {
    let _shared = ENGINE.read().await;
    let hub = crate::hub::hub();
    let dir = tempfile::tempdir().unwrap();
    let port = port();
    let instance = format!("otter-tests-warm-{:08x}", rand::random::<u32>());
    let toml = ServiceProcess::toml(
        dir.path(),
        port,
        &hub.api_url,
        "not-needed-for-token-checks",
        "",
    )
    .replace("runner = \"local\"", "runner = \"docker\"")
        + &format!("[docker]\ninstance_id = \"{instance}\"\nwarm_containers = 1\n");
    let mut service = ServiceProcess::start(dir.path(), port, &toml);
    let token = hub.user_token("wanda", None).await;
    let http = reqwest::Client::new();
    let id = crate::helpers::submit_to(&http, &service.url(), &token, &sample("correct")).await;
    let v = crate::helpers::wait_done(&http, &service.url(), &token, id, Duration::from_secs(120))
        .await;
    assert_eq!(v["state"], "graded", "{v}");
    until_a_warm_container(&instance).await;
    service.kill9();
    assert_eq!(
        containers(&instance, Some("warm")).await.len(),
        1,
        "kill -9 leaves the warm container running"
    );
    service.restart();
    assert_eq!(
        containers(&instance, None).await,
        Vec::<String>::new(),
        "the start-up sweep removed it"
    );
    // Stopped as an operator stops it (SIGTERM), it removes its warm container itself.
    let id = crate::helpers::submit_to(&http, &service.url(), &token, &sample("partial")).await;
    let v = crate::helpers::wait_done(&http, &service.url(), &token, id, Duration::from_secs(120))
        .await;
    assert_eq!(v["state"], "graded", "{v}");
    until_a_warm_container(&instance).await;
    service.stop();
    assert_eq!(
        containers(&instance, None).await,
        Vec::<String>::new(),
        "the graceful shutdown removed it"
    );
}
