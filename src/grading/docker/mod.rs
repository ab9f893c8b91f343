//! The `docker` runner: every grade in a fresh, locked-down container (see [`spec`]),
//! started through the Docker Engine API. Create -> attach -> start -> send the inputs ->
//! read capped output under our own deadline -> inspect -> always remove.
//!
//! Endings (classified in [`ending`]): results -> graded; our deadline -> timeout (killed);
//! OOM-killed, refused by the evaluator, or no results after otter ended normally -> a
//! student fault with a message (the grade job still checks the autograder before charging
//! no results); anything the engine does wrong (unreachable, image missing, attach stream
//! broken, inputs not accepted, container vanished or killed from outside) ->
//! [`RunnerError`], retried and never charged.

mod ending;
pub mod pool;
pub mod spec;
pub mod trusted;

pub use spec::{DockerConfig, Evaluator};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, KillContainerOptionsBuilder,
    ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::local::timeout_outcome;
use super::{GradeOutcome, GradeRequest, Readiness, Runner, RunnerError};

/// The label a grader image carries when it has the trusted evaluator
/// (scripts/build-grader-image.sh, deployment/grader/Dockerfile).
pub const EVALUATOR_LABEL: &str = "otter-service.evaluator";

/// Grades in Docker containers.
pub struct DockerRunner {
    /// The engine client, made when the engine's socket is first there: an engine that
    /// is down when the service starts is connected to once it is up.
    docker: std::sync::Mutex<Option<Docker>>,
    cfg: DockerConfig,
    pool: Arc<pool::Pool>,
}

/// How jobs got their containers (for tests and benchmarks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Jobs that took a warm container.
    pub taken: u64,
    /// Jobs that started one of their own.
    pub cold: u64,
    /// Warm containers waiting now.
    pub waiting: usize,
    /// Warm containers started so far.
    pub started: u64,
}

fn engine_error(what: &str, e: bollard::errors::Error) -> RunnerError {
    RunnerError::Unavailable(format!("Docker engine: {what}: {e}"))
}

impl DockerRunner {
    /// A runner for the engine at `cfg.docker_host` (or `DOCKER_HOST`, or the local
    /// socket). No request is made; an engine that is not there yet is not an error (see
    /// [`Runner::readiness`]).
    pub async fn connect(cfg: DockerConfig) -> Result<Self, RunnerError> {
        let runner = Self {
            docker: std::sync::Mutex::new(None),
            cfg,
            pool: Arc::default(),
        };
        let _ = runner.client();
        Ok(runner)
    }

    /// The engine client, connecting first if needed.
    fn client(&self) -> Result<Docker, RunnerError> {
        let mut slot = self.docker.lock().expect("docker client lock poisoned");
        if let Some(d) = slot.as_ref() {
            return Ok(d.clone());
        }
        let docker = match &self.cfg.docker_host {
            Some(host) if host.starts_with("unix://") || host.starts_with('/') => {
                let path = host.trim_start_matches("unix://");
                Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION)
            }
            Some(host) => Docker::connect_with_http(host, 120, bollard::API_DEFAULT_VERSION),
            None => Docker::connect_with_defaults(),
        }
        .map_err(|e| engine_error("cannot connect", e))?;
        *slot = Some(docker.clone());
        Ok(docker)
    }

    /// Kill (if running) and remove a container and its anonymous volumes.
    async fn remove(&self, id: &str) {
        let Ok(docker) = self.client() else { return };
        remove_container(&docker, id).await;
    }

    /// This runner's instance id (the label on its containers).
    pub fn instance(&self) -> &str {
        &self.cfg.instance
    }

    /// How jobs got their containers so far.
    pub fn pool_stats(&self) -> PoolStats {
        use std::sync::atomic::Ordering::Relaxed;
        PoolStats {
            taken: self.pool.taken.load(Relaxed),
            cold: self.pool.cold.load(Relaxed),
            waiting: self.pool.waiting(),
            started: self.pool.started.load(Relaxed),
        }
    }

    /// A container for `req`: a warm one of the same shape if one waits (and is still
    /// running), else a new one. With a pool, one more of the shape starts behind it.
    async fn container_for(
        &self,
        req: &GradeRequest,
        archive_bytes: usize,
    ) -> Result<pool::Started, RunnerError> {
        use std::sync::atomic::Ordering::Relaxed;
        let docker = self.client()?;
        if self.cfg.warm > 0 && self.cfg.evaluator == Evaluator::Trusted {
            let body = spec::container(&self.cfg, &req.limits, spec::Slot::Warm, 0);
            let shape = spec::shape(&body);
            let mut stale = Vec::new();
            let mut taken = None;
            while let Some(warm) = self.pool.take(&shape, self.cfg.warm_idle, &mut stale) {
                if is_running(&docker, &warm.id).await {
                    taken = Some(warm);
                    break;
                }
                stale.push(warm.id);
            }
            // This job's demand: one more of its shape starts behind it.
            self.refill(&docker, &shape, body);
            for id in stale {
                self.remove(&id).await;
            }
            if let Some(warm) = taken {
                self.pool.taken.fetch_add(1, Relaxed);
                return Ok(warm);
            }
        }
        self.pool.cold.fetch_add(1, Relaxed);
        let slot = spec::Slot::Job {
            job_id: req.job_id,
            submission_id: req.submission_id,
        };
        let body = spec::container(&self.cfg, &req.limits, slot, archive_bytes);
        // A fresh name per attempt: containers are never reused.
        let name = format!("otter-job{}-{}", req.job_id, uuid::Uuid::new_v4().simple());
        start_container(&docker, &name, body)
            .await
            .map_err(|e| match e {
                RunnerError::Unavailable(m) => RunnerError::Unavailable(format!(
                    "{m} (is the image {} built?)",
                    req.limits.image.as_deref().unwrap_or(&self.cfg.image)
                )),
                other => other,
            })
    }

    /// Start one more warm container of `shape` in the background, if the pool wants it;
    /// and the reaper of containers that waited too long, once.
    fn refill(&self, docker: &Docker, shape: &str, body: ContainerCreateBody) {
        if self.pool.start_reaper() {
            let (pool, docker, idle) = (
                Arc::downgrade(&self.pool),
                docker.clone(),
                self.cfg.warm_idle,
            );
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep((idle / 2).max(Duration::from_millis(500))).await;
                    let Some(pool) = pool.upgrade() else { return };
                    for id in pool.expired(idle) {
                        remove_container(&docker, &id).await;
                    }
                }
            });
        }
        if !self.pool.wants(shape, self.cfg.warm) {
            return;
        }
        let (pool, docker, shape) = (self.pool.clone(), docker.clone(), shape.to_string());
        tokio::spawn(async move {
            let name = format!("otter-warm-{}", uuid::Uuid::new_v4().simple());
            let started = match start_container(&docker, &name, body).await {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "could not start a warm grading container");
                    None
                }
            };
            if let Err(late) = pool.filled(&shape, started) {
                remove_container(&docker, &late.id).await;
            }
        });
    }

    /// Send the inputs to a started container and read it to its end (or our deadline).
    /// The caller removes it.
    async fn feed(
        &self,
        started: &mut pool::Started,
        req: &GradeRequest,
        input: Vec<u8>,
    ) -> Result<Finished, RunnerError> {
        let caps = (self.cfg.results_bytes * 4 / 3 + 64, req.limits.output_bytes);
        let io = &mut started.io;
        let work =
            async {
                // The inputs are read by the container before any student code runs, so a
                // failed write is never the notebook's doing.
                io.input.write_all(&input).await.map_err(|e| {
                    RunnerError::Internal(format!("could not send the inputs: {e}"))
                })?;
                io.input.flush().await.map_err(|e| {
                    RunnerError::Internal(format!("could not send the inputs: {e}"))
                })?;
                read_output(&mut io.output, caps).await
            };
        match tokio::time::timeout(req.limits.time_limit, work).await {
            Ok(Ok(output)) => Ok(Finished::Exited(output)),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                let kill = KillContainerOptionsBuilder::new().signal("SIGKILL").build();
                let _ = self.client()?.kill_container(&started.id, Some(kill)).await;
                Ok(Finished::TimedOut)
            }
        }
    }

    /// Classify a finished container.
    async fn outcome(
        &self,
        id: &str,
        req: &GradeRequest,
        finished: Finished,
        key: &[u8],
    ) -> Result<GradeOutcome, RunnerError> {
        let output = match finished {
            Finished::TimedOut => return Ok(timeout_outcome(req.limits.time_limit, String::new())),
            Finished::Exited(o) => o,
        };
        let inspect = self
            .client()?
            .inspect_container(id, None)
            .await
            .map_err(|e| engine_error("inspect (container vanished?)", e))?;
        let oom = inspect
            .state
            .as_ref()
            .and_then(|s| s.oom_killed)
            .unwrap_or(false);
        let exit_code = inspect.state.as_ref().and_then(|s| s.exit_code);
        ending::classify(
            &ending::Ended {
                stdout: &output.stdout,
                stderr: &output.stderr,
                oom,
                exit_code,
            },
            self.cfg.evaluator,
            key,
            &req.limits,
        )
    }
}

/// Create, attach to and start a container (stdin still open and unwritten). A container
/// that was created but could not start is removed.
async fn start_container(
    docker: &Docker,
    name: &str,
    body: ContainerCreateBody,
) -> Result<pool::Started, RunnerError> {
    let create = CreateContainerOptionsBuilder::new().name(name).build();
    let created = docker
        .create_container(Some(create), body)
        .await
        .map_err(|e| engine_error("create", e))?;
    let attach = AttachContainerOptionsBuilder::new()
        .stream(true)
        .stdin(true)
        .stdout(true)
        .stderr(true)
        .build();
    let started = async {
        let io = docker
            .attach_container(&created.id, Some(attach))
            .await
            .map_err(|e| engine_error("attach", e))?;
        docker
            .start_container(&created.id, None)
            .await
            .map_err(|e| engine_error("start", e))?;
        Ok(io)
    };
    match started.await {
        Ok(io) => Ok(pool::Started { id: created.id, io }),
        Err(e) => {
            remove_container(docker, &created.id).await;
            Err(e)
        }
    }
}

/// Whether a container is still running (a warm one that died while waiting is not used).
async fn is_running(docker: &Docker, id: &str) -> bool {
    docker
        .inspect_container(id, None)
        .await
        .ok()
        .and_then(|i| i.state)
        .and_then(|s| s.running)
        .unwrap_or(false)
}

/// Kill (if running) and remove a container and its anonymous volumes.
async fn remove_container(docker: &Docker, id: &str) {
    let opts = RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build();
    if let Err(e) = docker.remove_container(id, Some(opts)).await {
        tracing::warn!(container = id, error = %e, "could not remove grading container");
    }
}

/// Whether an image was built with the trusted evaluator.
fn has_evaluator(image: &bollard::models::ImageInspect) -> bool {
    image
        .config
        .as_ref()
        .and_then(|c| c.labels.as_ref())
        .is_some_and(|l| l.get(EVALUATOR_LABEL).is_some_and(|v| v == "otter_trusted"))
}

/// How a container's run ended.
enum Finished {
    Exited(Output),
    TimedOut,
}

/// What a container wrote.
struct Output {
    stdout: Vec<u8>,
    stderr: String,
}

/// Read the attach stream to its end, keeping at most `caps.0` bytes of stdout and the
/// last `caps.1` bytes of stderr. A broken stream is the engine's fault, never the
/// notebook's.
async fn read_output<S>(stream: &mut S, caps: (usize, usize)) -> Result<Output, RunnerError>
where
    S: futures_util::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Unpin,
{
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| engine_error("the output stream broke", e))?;
        match chunk {
            LogOutput::StdOut { message } if stdout.len() < caps.0 => {
                let room = caps.0 - stdout.len();
                stdout.extend_from_slice(&message[..message.len().min(room)]);
            }
            LogOutput::StdErr { message } => {
                stderr.extend_from_slice(&message);
                if stderr.len() > 2 * caps.1 {
                    stderr.drain(..stderr.len() - caps.1);
                }
            }
            _ => {}
        }
    }
    Ok(Output {
        stdout,
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}

#[async_trait::async_trait]
impl Runner for DockerRunner {
    fn name(&self) -> &'static str {
        "docker"
    }

    async fn grade(&self, req: GradeRequest) -> Result<GradeOutcome, RunnerError> {
        let zip = tokio::fs::read(&req.autograder_zip).await.map_err(|e| {
            RunnerError::Unavailable(format!("cannot read {}: {e}", req.autograder_zip.display()))
        })?;
        let archive = spec::input_archive(&zip, &req.notebook)
            .map_err(|e| RunnerError::Internal(format!("cannot build the input archive: {e}")))?;
        let key: [u8; 32] = rand::random();
        let archive_bytes = archive.len();
        let input = match self.cfg.evaluator {
            Evaluator::Otter => archive,
            // The trusted evaluator reads the archive's size, the archive, then the key.
            Evaluator::Trusted => spec::trusted_input(&archive, &key),
        };
        let mut started = self.container_for(&req, archive_bytes).await?;
        req.started.mark();
        let guard = RemoveOnDrop {
            docker: self.client()?,
            id: Some(started.id.clone()),
        };
        let finished = self.feed(&mut started, &req, input).await;
        let outcome = match finished {
            Ok(f) => self.outcome(&started.id, &req, f, &key).await,
            Err(e) => Err(e),
        };
        self.remove(&started.id).await;
        guard.disarm();
        outcome
    }

    async fn readiness(&self) -> Readiness {
        let docker = match self.client() {
            Ok(d) => d,
            Err(e) => {
                return Readiness {
                    ready: false,
                    detail: format!(
                        "Docker engine unreachable: {e}; start it (scripts/start-docker.sh)"
                    ),
                };
            }
        };
        if let Err(e) = docker.ping().await {
            return Readiness {
                ready: false,
                detail: format!(
                    "Docker engine unreachable: {e}; start it (scripts/start-docker.sh)"
                ),
            };
        }
        self.image_readiness(&self.cfg.image).await
    }

    async fn image_readiness(&self, image: &str) -> Readiness {
        let docker = match self.client() {
            Ok(d) => d,
            Err(e) => {
                return Readiness {
                    ready: false,
                    detail: format!("Docker engine unreachable: {e}"),
                };
            }
        };
        match docker.inspect_image(image).await {
            Ok(inspect) if self.cfg.evaluator == Evaluator::Trusted && !has_evaluator(&inspect) => {
                Readiness {
                    ready: false,
                    detail: format!(
                        "grader image {} has no trusted evaluator (no label {EVALUATOR_LABEL}); \
                         rebuild it with scripts/build-grader-image.sh or \
                         deployment/grader/Dockerfile",
                        image
                    ),
                }
            }
            Ok(_) => Readiness {
                ready: true,
                detail: format!(
                    "docker runner: engine up, image {}, evaluator {}",
                    image,
                    match self.cfg.evaluator {
                        Evaluator::Trusted => "trusted",
                        Evaluator::Otter => "otter (student code can set its own grade)",
                    }
                ),
            },
            Err(e) => Readiness {
                ready: false,
                detail: format!(
                    "grader image {} is missing ({e}); build it with scripts/build-grader-image.sh \
                     or deployment/grader/Dockerfile",
                    image
                ),
            },
        }
    }

    async fn shutdown(&self) {
        // Closed, the pool starts nothing more; a container still being started is
        // handed back once it is up. Wait for those, then remove every container of this
        // instance (the waiting ones among them), so a stopped service leaves none.
        self.pool.close();
        let since = std::time::Instant::now();
        while self.pool.filling() > 0 && since.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if let Err(e) = self.remove_orphans(&[]).await {
            tracing::warn!(error = %e, "could not remove this service's containers at shutdown");
        }
    }

    async fn remove_orphans(&self, live_job_ids: &[i64]) -> Result<usize, RunnerError> {
        let mine = format!("{}={}", spec::INSTANCE_LABEL, self.cfg.instance);
        let filters = HashMap::from([("label", vec![mine.as_str()])]);
        let opts = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let containers = self
            .client()?
            .list_containers(Some(opts))
            .await
            .map_err(|e| engine_error("list containers", e))?;
        let mut removed = 0;
        for c in containers {
            let job = c
                .labels
                .as_ref()
                .and_then(|l| l.get(spec::JOB_LABEL))
                .and_then(|j| j.parse::<i64>().ok());
            if job.is_some_and(|j| live_job_ids.contains(&j)) {
                continue;
            }
            if let Some(id) = c.id {
                self.remove(&id).await;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// A runner that goes away removes the warm containers it kept (best effort: a service
/// that is killed leaves them to the next start's sweep).
impl Drop for DockerRunner {
    fn drop(&mut self) {
        let ids = self.pool.close();
        let docker = self.docker.lock().ok().and_then(|d| d.clone());
        if let (Some(docker), Ok(rt), false) = (
            docker,
            tokio::runtime::Handle::try_current(),
            ids.is_empty(),
        ) {
            rt.spawn(async move {
                for id in ids {
                    remove_container(&docker, &id).await;
                }
            });
        }
    }
}

/// Removes the container if the grade future is dropped midway (shutdown, abort).
struct RemoveOnDrop {
    docker: Docker,
    id: Option<String>,
}

impl RemoveOnDrop {
    fn disarm(mut self) {
        self.id = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        let docker = self.docker.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { remove_container(&docker, &id).await });
        }
    }
}
