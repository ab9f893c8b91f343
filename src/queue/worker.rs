//! A bounded pool of workers for one job kind: claim, run with the lease renewed,
//! apply the result, retry with backoff, catch panics, stop claiming on shutdown.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{Notify, watch};
use tracing::Instrument;

use crate::db::jobs::{self, ClaimedJob, FailOutcome};
use crate::db::states::JobKind;
use crate::db::{Db, DbError, now_ms};
use crate::metrics::{AttemptLabels, KindLabels, Metrics};

/// How one attempt ended.
#[derive(Debug)]
pub enum Attempt {
    /// The job committed its result (checked against its claim) and is done.
    Done,
    /// A transient fault: try again after the backoff.
    Retry(String),
    /// A transient fault after which the next try must wait at least this long.
    RetryAfter(String, Duration),
    /// A fault that retrying cannot fix: the job is dead with this reason.
    Fatal(String),
}

/// A kind of job the pool can run.
#[async_trait::async_trait]
pub trait Job: Send + Sync + 'static {
    fn kind(&self) -> JobKind;

    /// Run one attempt. On success the job must call [`jobs::finish`] in the same write
    /// that stores its result, and skip the result when `finish` says the claim is stale.
    async fn run(&self, job: &ClaimedJob) -> Attempt;

    /// Delay before attempt `attempt + 1`.
    fn retry_delay(&self, attempt: i64) -> Duration;

    /// The assignments whose jobs these workers must not claim, as the JSON array the
    /// queue's claim skips (see `CourseConfig::excluded`). Default: none.
    fn exclusions(&self) -> String {
        jobs::NO_EXCLUSIONS.into()
    }

    /// Whether jobs can run now. While not, workers claim nothing (so no attempt is
    /// spent on a backend that is down) and look again after `idle_poll`. Default: yes.
    async fn ready(&self) -> bool {
        true
    }

    /// Runs in the write that schedules a retry or kills the job (`dead` true), to update
    /// the rows the job works on; also for a job whose worker stopped in its last allowed
    /// attempt ([`jobs::reap_exhausted`]). Default: nothing.
    fn on_failure(
        &self,
        conn: &Connection,
        job: &ClaimedJob,
        reason: &str,
        dead: bool,
    ) -> Result<(), DbError> {
        let _ = (conn, job, reason, dead);
        Ok(())
    }
}

/// Knobs of a pool.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub workers: usize,
    pub lease: Duration,
    /// Longest sleep between looks at the queue when idle.
    pub idle_poll: Duration,
    /// Counts busy workers and how attempts end.
    pub metrics: Arc<Metrics>,
}

/// Start `config.workers` workers for `job`. They stop claiming when `shutdown` turns
/// true and return when their current job is done.
pub fn spawn<J: Job>(
    db: Db,
    job: Arc<J>,
    notify: Arc<Notify>,
    config: PoolConfig,
    shutdown: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..config.workers)
        .map(|n| {
            let w = Worker {
                db: db.clone(),
                job: job.clone(),
                notify: notify.clone(),
                config: config.clone(),
                shutdown: shutdown.clone(),
            };
            let span = tracing::info_span!("worker", kind = job.kind().as_str(), n);
            tokio::spawn(w.run().instrument(span))
        })
        .collect()
}

struct Worker<J> {
    db: Db,
    job: Arc<J>,
    notify: Arc<Notify>,
    config: PoolConfig,
    shutdown: watch::Receiver<bool>,
}

impl<J: Job> Worker<J> {
    async fn run(mut self) {
        let kind = self.job.kind();
        let lease_ms = self.config.lease.as_millis() as i64;
        while !*self.shutdown.borrow() {
            if !self.job.ready().await {
                tokio::select! {
                    _ = tokio::time::sleep(self.config.idle_poll) => {}
                    _ = self.shutdown.changed() => {}
                }
                continue;
            }
            // Register for a wake-up before looking, so a job queued in between is not missed.
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let job = self.job.clone();
            let claimed = self
                .db
                .write(move |c| {
                    let now = now_ms();
                    for dead in jobs::reap_exhausted(c, kind, now)? {
                        job.on_failure(c, &dead, jobs::WORKER_STOPPED, true)?;
                    }
                    jobs::claim_next_as(c, kind, now, lease_ms, None, &job.exclusions())
                })
                .await;
            match claimed {
                Ok(Some(job)) => self.run_one(job).await,
                Ok(None) => {
                    let wait = self.idle_wait().await;
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.shutdown.changed() => {}
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot claim a job");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Sleep until the next queued job is due, at most `idle_poll` (expired leases of a
    /// dead worker also become claimable without a notification).
    async fn idle_wait(&self) -> Duration {
        let kind = self.job.kind();
        let due = self.db.read(move |c| jobs::next_due(c, kind)).await;
        let poll = self.config.idle_poll;
        match due {
            Ok(Some(at)) => {
                Duration::from_millis((at - now_ms()).clamp(0, poll.as_millis() as i64) as u64)
            }
            _ => poll,
        }
    }

    async fn run_one(&self, claimed: ClaimedJob) {
        let span = tracing::info_span!(
            "job",
            job_id = claimed.id,
            submission_id = claimed.submission_id,
            attempt = claimed.attempt
        );
        let job = self.job.clone();
        let c = claimed.clone();
        let kind = KindLabels {
            kind: self.job.kind().as_str(),
        };
        let busy = self.config.metrics.busy.get_or_create(&kind).clone();
        busy.inc();
        let mut task = tokio::spawn(async move { job.run(&c).await }.instrument(span.clone()));
        let mut renew = tokio::time::interval(self.config.lease / 3);
        renew.tick().await;
        let attempt = loop {
            tokio::select! {
                res = &mut task => break res.unwrap_or_else(|e| {
                    Attempt::Retry(format!("internal error: the job {}", if e.is_panic() { "panicked" } else { "was cancelled" }))
                }),
                _ = renew.tick() => self.renew(&claimed).await,
            }
        };
        busy.dec();
        self.settle(&claimed, attempt).instrument(span).await;
    }

    async fn renew(&self, claimed: &ClaimedJob) {
        let c = claimed.clone();
        let until = now_ms() + self.config.lease.as_millis() as i64;
        match self
            .db
            .write(move |conn| jobs::renew(conn, &c, until))
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                job_id = claimed.id,
                "lease lost; the result will be discarded"
            ),
            Err(e) => tracing::error!(error = %e, "cannot renew lease"),
        }
    }

    async fn settle(&self, claimed: &ClaimedJob, attempt: Attempt) {
        settle(&self.db, &self.job, &self.config.metrics, claimed, attempt).await
    }
}

/// Record how an attempt at `claimed` ended: nothing more for `Done` (the job stored its
/// result), else a retry after the job's backoff or, out of attempts or for a fatal
/// fault, a dead job; the job's `on_failure` runs in the same write. A stale claim
/// changes nothing. Used by the service's workers and for the grader hosts' attempts.
pub async fn settle<J: Job>(
    db: &Db,
    job: &Arc<J>,
    metrics: &Metrics,
    claimed: &ClaimedJob,
    attempt: Attempt,
) {
    let count = |result: &'static str| {
        let labels = AttemptLabels {
            kind: job.kind().as_str(),
            result,
        };
        metrics.attempts.get_or_create(&labels).inc();
    };
    let (reason, permanent, at_least) = match attempt {
        Attempt::Done => return count("done"),
        Attempt::Retry(r) => (r, false, Duration::ZERO),
        Attempt::RetryAfter(r, at_least) => (r, false, at_least),
        Attempt::Fatal(r) => (r, true, Duration::ZERO),
    };
    let j = job.clone();
    let c = claimed.clone();
    let delay = job.retry_delay(claimed.attempt).max(at_least).as_millis() as i64;
    let r = reason.clone();
    let res = db
        .write(move |conn| {
            let out = jobs::fail_with_backoff(conn, &c, &r, delay, permanent, now_ms())?;
            if out != FailOutcome::Stale {
                j.on_failure(conn, &c, &r, out == FailOutcome::Dead)?;
            }
            Ok(out)
        })
        .await;
    match res {
        Ok(FailOutcome::Retry { run_at }) => {
            count("retry");
            tracing::warn!(reason = %reason, retry_in_ms = run_at - now_ms(), "attempt failed; will retry")
        }
        Ok(FailOutcome::Dead) => {
            count("dead");
            tracing::error!(reason = %reason, "job is dead")
        }
        Ok(FailOutcome::Stale) => {
            count("stale");
            tracing::warn!("attempt failed on a stale claim; ignored")
        }
        Err(e) => tracing::error!(error = %e, "cannot record a failed attempt"),
    }
}

/// Exponential backoff `base * 2^(attempt-1)`, capped, with ±20% jitter so a burst of
/// failures does not retry in lockstep.
pub fn backoff(base: Duration, attempt: i64, cap: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.clamp(1, 20).saturating_sub(1) as u32);
    let d = exp.min(cap);
    let jitter = 0.8 + rand::random::<f64>() * 0.4;
    d.mul_f64(jitter)
}
