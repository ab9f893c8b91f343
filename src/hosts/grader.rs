//! `otter-service grader`: a grader host. It pulls jobs from the service's host API and
//! grades each with the same runner as the service's own workers (the docker runner:
//! trusted evaluator, HMAC check, warm single-use containers, every limit), holding each
//! job's lease by heartbeat, and sends back the outcome. Autograder zips are fetched by
//! their SHA-256 only when this host lacks them, and checked against it.
//!
//! Stopping (SIGTERM, Ctrl-C) drains: no new claims, every job in hand is finished and
//! returned, then the warm containers are removed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tracing::Instrument;

use super::protocol::{self, Claim, Completion, Work};
use crate::db::now_ms;
use crate::grading::docker::DockerRunner;
use crate::grading::{GradeRequest, Runner};
use crate::jobs::checks::{AssignmentNames, AutograderChecks};
use crate::jobs::grade::run_request;
use crate::queue::worker::Attempt;
use crate::settings::GraderSettings;

/// One grader host: its client to the service and its runner.
struct GraderHost {
    http: reqwest::Client,
    base: url::Url,
    token: String,
    slots: u32,
    /// The images it offers: its default and its course images.
    images: Vec<String>,
    cache: PathBuf,
    runner: Arc<dyn Runner>,
    checks: AutograderChecks,
}

/// Run a grader host until `stop` resolves, then drain.
pub async fn run(
    settings: GraderSettings,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&settings.cache_dir)
        .with_context(|| format!("creating the cache {}", settings.cache_dir.display()))?;
    let instance = settings
        .docker
        .instance_id
        .clone()
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| instance_of(&settings.cache_dir));
    let cfg = settings.docker.runner_config(settings.slots, instance);
    let runner: Arc<dyn Runner> = Arc::new(
        DockerRunner::connect(cfg)
            .await
            .context("connecting to the Docker engine (docker.host or DOCKER_HOST)")?,
    );
    // At start this host holds no job, so every container of its instance is a leftover.
    match runner.remove_orphans(&[]).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(removed = n, "removed leftover grading runs"),
        Err(e) => tracing::warn!(error = %e, "could not remove leftover grading runs"),
    }
    let mut base = url::Url::parse(&settings.service_url).context("service_url")?;
    if !base.path().ends_with('/') {
        base.set_path(&format!("{}/", base.path()));
    }
    let host = Arc::new(GraderHost {
        http: reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()?,
        base,
        token: settings.token.expose().to_string(),
        slots: settings.slots as u32,
        images: std::iter::once(settings.docker.image.clone())
            .chain(settings.images.iter().cloned())
            .collect(),
        cache: settings.cache_dir.clone(),
        checks: AutograderChecks::in_memory(runner.clone()),
        runner: runner.clone(),
    });
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        stop.await;
        tracing::info!("stopping: no new jobs are claimed; finishing the ones in hand");
        let _ = tx.send(true);
    });
    tracing::info!(service = %host.base, slots = host.slots, "grader host started");
    let slots: Vec<_> = (0..settings.slots as u32)
        .map(|n| tokio::spawn(host.clone().slot(n, rx.clone())))
        .collect();
    futures_util::future::join_all(slots).await;
    runner.shutdown().await;
    tracing::info!("grader host stopped");
    Ok(())
}

/// The containers' instance name of a host: from its machine name and cache directory,
/// so a restarted host sweeps its own leftovers and two hosts on one engine do not.
fn instance_of(cache: &Path) -> String {
    let machine = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let cache = std::path::absolute(cache).unwrap_or_else(|_| cache.to_path_buf());
    let digest = Sha256::digest(format!("grader\n{}\n{}", machine.trim(), cache.display()));
    format!("host-{}", hex::encode(&digest[..6]))
}

/// Why a request to the service failed.
#[derive(Debug)]
enum CallError {
    /// The service refused (4xx): with its sentence.
    Refused(StatusCode, String),
    /// Unreachable, or 5xx: worth trying again.
    Transient(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Refused(code, why) => write!(f, "refused ({code}): {why}"),
            CallError::Transient(why) => write!(f, "{why}"),
        }
    }
}

impl GraderHost {
    fn url(&self, path: &str) -> url::Url {
        let path = format!("{}/{path}", protocol::PREFIX.trim_start_matches('/'));
        self.base.join(&path).expect("a relative path joins")
    }

    async fn call(
        &self,
        path: &str,
        body: &impl serde::Serialize,
        timeout: Duration,
    ) -> Result<reqwest::Response, CallError> {
        let sent = self
            .http
            .post(self.url(path))
            .bearer_auth(&self.token)
            .timeout(timeout)
            .json(body)
            .send()
            .await
            .map_err(|e| CallError::Transient(format!("the service did not answer: {e}")))?;
        check(sent).await
    }

    /// One slot: claim, grade, return; until stopped.
    async fn slot(self: Arc<Self>, n: u32, mut stop: watch::Receiver<bool>) {
        let mut pause = Duration::from_secs(1);
        while !*stop.borrow() {
            if !self.runner.readiness().await.ready {
                tracing::warn!(
                    slot = n,
                    "the runner is not ready; claiming nothing for now"
                );
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            let claim = Claim {
                slots: self.slots,
                version: env!("CARGO_PKG_VERSION").into(),
                images: self.images.clone(),
                wait_secs: Some(20),
            };
            // A claim in flight when the host stops is dropped: a job given to it in that
            // instant comes back to the queue when its lease runs out.
            let asked = Instant::now();
            let answer = tokio::select! {
                a = self.call("claim", &claim, Duration::from_secs(40)) => a,
                _ = stop.changed() => break,
            };
            match answer {
                Ok(r) if r.status() == StatusCode::NO_CONTENT => {
                    pause = Duration::from_secs(1);
                    // "Nothing" at once (a service that does not hold the poll): not a loop.
                    if asked.elapsed() < pause {
                        tokio::select! {
                            _ = tokio::time::sleep(pause) => {}
                            _ = stop.changed() => {}
                        }
                    }
                }
                Ok(r) => match r.json::<Work>().await {
                    Ok(work) => {
                        pause = Duration::from_secs(1);
                        let span = tracing::info_span!(
                            "job",
                            job_id = work.job_id,
                            submission_id = work.submission_id,
                            attempt = work.attempt
                        );
                        self.work(work).instrument(span).await;
                    }
                    Err(e) => tracing::error!(error = %e, "the service's job could not be read"),
                },
                Err(e) => {
                    tracing::warn!(slot = n, error = %e, retry_in_secs = pause.as_secs(),
                        "cannot claim a job");
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = stop.changed() => {}
                    }
                    pause = (pause * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// Grade one job while renewing its lease, then send the result.
    async fn work(&self, work: Work) {
        let received = now_ms();
        let lease = work.lease.clone();
        let every = Duration::from_secs(work.lease_secs.max(3)) / 3;
        let grading = self.grade(&work, received);
        tokio::pin!(grading);
        let mut beat = tokio::time::interval(every);
        beat.tick().await;
        let mut lost = false;
        let completion = loop {
            tokio::select! {
                c = &mut grading => break c,
                _ = beat.tick() => {
                    match self.call(&format!("leases/{lease}/heartbeat"), &(), every).await {
                        Ok(_) => {}
                        Err(CallError::Refused(code, why)) => {
                            // Finish the run (the runner cleans up after itself) but send
                            // nothing: the service gave the job to someone else.
                            if !lost {
                                tracing::warn!(%code, %why, "lease lost; the result will not be sent");
                            }
                            lost = true;
                        }
                        Err(e) => tracing::warn!(error = %e, "heartbeat failed; trying again"),
                    }
                }
            }
        };
        if !lost {
            self.send(&lease, &completion, Instant::now() + every * 3)
                .await;
        }
    }

    /// Send `completion` for `lease`, trying again on transient failures until `until`.
    async fn send(&self, lease: &str, completion: &Completion, until: Instant) {
        let mut pause = Duration::from_millis(500);
        loop {
            match self
                .call(
                    &format!("leases/{lease}/complete"),
                    completion,
                    Duration::from_secs(30),
                )
                .await
            {
                Ok(_) => return tracing::info!("result sent"),
                Err(CallError::Refused(code, why)) => {
                    return tracing::warn!(%code, %why, "the service refused the result");
                }
                Err(e) if Instant::now() + pause < until => {
                    tracing::warn!(error = %e, "sending the result failed; trying again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    return tracing::error!(error = %e,
                        "the result could not be sent before the lease ran out; the service \
                         will grade the job again");
                }
            }
        }
    }

    /// Grade `work` with this host's runner.
    async fn grade(&self, work: &Work, received: i64) -> Completion {
        let zip = match self.autograder(&work.autograder.sha256).await {
            Ok(zip) => zip,
            Err(e) => {
                return Completion::Retry {
                    reason: format!("cannot fetch the autograder: {e:#}"),
                };
            }
        };
        let notebook = match base64::engine::general_purpose::STANDARD.decode(&work.notebook_base64)
        {
            Ok(nb) => nb,
            Err(e) => {
                return Completion::Retry {
                    reason: format!("the notebook did not arrive as base64: {e}"),
                };
            }
        };
        let request = GradeRequest {
            job_id: work.job_id,
            submission_id: work.submission_id,
            notebook,
            autograder_zip: zip,
            limits: (&work.limits).into(),
            started: Default::default(),
        };
        let names = AssignmentNames {
            course: work.autograder.course.clone(),
            section: work.autograder.section.clone(),
            assignment: work.autograder.assignment.clone(),
        };
        match run_request(&*self.runner, &self.checks, request, &names, work.attempt).await {
            Ok(run) => Completion::Graded {
                outcome: run.outcome,
                sandbox_ready_after_ms: run.container_started.map(|t| (t - received).max(0) as u64),
                finished_after_ms: (run.grading_finished - received).max(0) as u64,
            },
            Err(Attempt::Fatal(reason)) => Completion::Fatal { reason },
            Err(Attempt::Retry(reason) | Attempt::RetryAfter(reason, _)) => {
                Completion::Retry { reason }
            }
            Err(Attempt::Done) => Completion::Retry {
                reason: "the run ended without an outcome".into(),
            },
        }
    }

    /// The autograder zip with this SHA-256: from the cache, else fetched and checked.
    async fn autograder(&self, sha256: &str) -> anyhow::Result<PathBuf> {
        anyhow::ensure!(
            sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit()),
            "{sha256:?} is not a SHA-256"
        );
        let path = self.cache.join(format!("{sha256}.zip"));
        if path.is_file() {
            return Ok(path);
        }
        let got = self
            .http
            .get(self.url(&format!("autograders/{sha256}")))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(120))
            .send()
            .await?;
        let bytes = check(got)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .bytes()
            .await?;
        let actual = hex::encode(Sha256::digest(&bytes));
        anyhow::ensure!(
            actual == sha256,
            "the autograder sent has SHA-256 {actual}, not {sha256}"
        );
        let tmp = tempfile::NamedTempFile::new_in(&self.cache)?;
        std::fs::write(tmp.path(), &bytes)?;
        tmp.persist(&path)?;
        tracing::info!(sha256, bytes = bytes.len(), "autograder fetched");
        Ok(path)
    }
}

/// A 2xx answer, or why not.
async fn check(r: reqwest::Response) -> Result<reqwest::Response, CallError> {
    let code = r.status();
    if code.is_success() {
        return Ok(r);
    }
    let text = r.text().await.unwrap_or_default();
    let why = serde_json::from_str::<protocol::Refusal>(&text)
        .map(|r| r.error)
        .unwrap_or_else(|_| text.chars().take(300).collect());
    if code.is_server_error() {
        Err(CallError::Transient(format!(
            "the service failed ({code}): {why}"
        )))
    } else {
        Err(CallError::Refused(code, why))
    }
}
