//! Prometheus metrics (`GET /metrics`), with the Prometheus project's own client crate.
//!
//! Every label value is a `&'static str` from a fixed set chosen here (outcomes, reasons,
//! phases, job kinds and states), never a user, course or path: cardinality is bounded by
//! the types. Counters and histograms are counted as things happen; the queue and the
//! database size are read from the database at scrape time, with the same query as
//! `otter-service status`, so the two always agree.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use crate::db::staff::Queue;
use crate::db::states::{JobKind, JobState};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SubmissionLabels {
    /// accepted | duplicate | rejected
    pub result: &'static str,
    /// Why a submission was rejected (`none` otherwise): see `ApiError::reason`.
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    /// queue_wait | container_start | run | store
    pub phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// graded | timeout | out_of_memory | no_results | refused
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    /// grade | post_score
    pub kind: &'static str,
    /// done | retry | dead | stale
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub kind: &'static str,
    /// queued | running | done | dead
    pub state: &'static str,
}

/// An XQueue's items by state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct XqueueLabels {
    pub queue: String,
    /// waiting | answered | failed
    pub state: String,
}

/// A platform's webhook deliveries by state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    pub platform: String,
    /// pending | delivered | failed
    pub state: String,
}

/// How one webhook delivery attempt ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookAttemptLabels {
    /// delivered | retry | failed | gone
    pub outcome: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The service's metrics and the registry that encodes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub submissions: Family<SubmissionLabels, Counter>,
    pub phase_seconds: HistogramFamily<PhaseLabels>,
    pub grades: Family<OutcomeLabels, Counter>,
    pub attempts: Family<AttemptLabels, Counter>,
    pub busy: Family<KindLabels, Gauge>,
    jobs: Family<JobLabels, Gauge>,
    xqueue_items: Family<XqueueLabels, Gauge>,
    webhooks: Family<WebhookLabels, Gauge>,
    pub webhook_attempts: Family<WebhookAttemptLabels, Counter>,
    oldest_wait: Family<KindLabels, Gauge<f64, AtomicU64>>,
    database_bytes: Gauge,
    hosts: Gauge,
    host_slots: Gauge,
    host_slots_busy: Gauge,
    unroutable: Gauge,
}

fn phase_histogram() -> Histogram {
    // 50 ms to about 14 minutes.
    Histogram::new(exponential_buckets(0.05, 2.0, 15))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("otter");
        let m = Metrics {
            submissions: Family::default(),
            phase_seconds: Family::new_with_constructor(phase_histogram),
            grades: Family::default(),
            attempts: Family::default(),
            busy: Family::default(),
            jobs: Family::default(),
            xqueue_items: Family::default(),
            webhooks: Family::default(),
            webhook_attempts: Family::default(),
            oldest_wait: Family::default(),
            database_bytes: Gauge::default(),
            hosts: Gauge::default(),
            host_slots: Gauge::default(),
            host_slots_busy: Gauge::default(),
            unroutable: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "submissions",
            "Submissions received, by result and the reason for a rejection",
            m.submissions.clone(),
        );
        registry.register(
            "grading_phase_seconds",
            "Time a grade spent in each phase: queue_wait (received to claimed, first \
             attempt), container_start (claimed to sandbox ready), run (sandbox ready to \
             outcome), store (outcome to stored)",
            m.phase_seconds.clone(),
        );
        registry.register("grades", "Grades stored, by outcome", m.grades.clone());
        registry.register(
            "job_attempts",
            "Job attempts by kind and how they ended (retry: will be tried again; dead: \
             given up; stale: the claim was lost)",
            m.attempts.clone(),
        );
        registry.register(
            "workers_busy",
            "Workers running a job now, by job kind",
            m.busy.clone(),
        );
        registry.register(
            "jobs",
            "Jobs in the queue table by kind and state (as `otter-service status` counts)",
            m.jobs.clone(),
        );
        registry.register(
            "oldest_queued_seconds",
            "Age of the oldest queued job of each kind (0 when none waits)",
            m.oldest_wait.clone(),
        );
        registry.register(
            "database_bytes",
            "Size of the SQLite database",
            m.database_bytes.clone(),
        );
        registry.register(
            "grader_hosts",
            "Grader hosts that are active and asked for work in the last minute",
            m.hosts.clone(),
        );
        registry.register(
            "grader_host_slots",
            "Slots of those hosts in all: size the pool on (queued + running) / slots",
            m.host_slots.clone(),
        );
        registry.register(
            "grader_host_slots_busy",
            "Grade jobs held by grader hosts now",
            m.host_slots_busy.clone(),
        );
        registry.register(
            "xqueue_items",
            "Submissions pulled from each XQueue, by where their answer stands (waiting: \
             being graded or answer not yet taken; answered; failed: XQueue refused it)",
            m.xqueue_items.clone(),
        );
        registry.register(
            "webhook_deliveries",
            "Platforms' completion webhooks by state (pending: not yet taken by the receiver, \
             retrying or waiting on a disabled endpoint; delivered; failed: given up, staff \
             may redeliver)",
            m.webhooks.clone(),
        );
        registry.register(
            "webhook_attempts",
            "Webhook delivery attempts by how they ended",
            m.webhook_attempts.clone(),
        );
        registry.register(
            "jobs_unroutable",
            "Queued grade jobs that no grader can take now: their assignment requires tags or \
             an image that no connected host offers (otter-service status names them)",
            m.unroutable.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// A submission accepted (`duplicate`: an identical one was already waiting).
    pub fn accepted(&self, duplicate: bool) {
        let result = if duplicate { "duplicate" } else { "accepted" };
        self.submissions
            .get_or_create(&SubmissionLabels {
                result,
                reason: "none",
            })
            .inc();
    }

    /// A submission refused for `reason`.
    pub fn rejected(&self, reason: &'static str) {
        self.submissions
            .get_or_create(&SubmissionLabels {
                result: "rejected",
                reason,
            })
            .inc();
    }

    /// A phase of a grade took `ms` milliseconds.
    pub fn phase(&self, phase: &'static str, ms: i64) {
        self.phase_seconds
            .get_or_create(&PhaseLabels { phase })
            .observe(ms.max(0) as f64 / 1000.0);
    }

    /// The text exposition, with the queue and database read from `status` at `now`,
    /// and `unroutable` queued grade jobs that no grader can take.
    pub fn encode(&self, status: &Queue, unroutable: i64, now: i64) -> String {
        self.unroutable.set(unroutable);
        for kind in [JobKind::Grade, JobKind::PostScore] {
            for state in [
                JobState::Queued,
                JobState::Running,
                JobState::Done,
                JobState::Dead,
            ] {
                let n = status
                    .jobs
                    .iter()
                    .filter(|(k, s, _)| *k == kind && *s == state)
                    .map(|(_, _, n)| *n)
                    .sum::<i64>();
                self.jobs
                    .get_or_create(&JobLabels {
                        kind: kind.as_str(),
                        state: state.as_str(),
                    })
                    .set(n);
            }
            let oldest = status
                .oldest_queued
                .iter()
                .find(|(k, _)| *k == kind)
                .map_or(0.0, |(_, at)| (now - at).max(0) as f64 / 1000.0);
            self.oldest_wait
                .get_or_create(&KindLabels {
                    kind: kind.as_str(),
                })
                .set(oldest);
        }
        self.database_bytes.set(status.database_bytes);
        self.hosts.set(status.hosts.connected);
        self.host_slots.set(status.hosts.slots);
        self.host_slots_busy.set(status.hosts.busy);
        for (queue, state, n) in &status.xqueue {
            self.xqueue_items
                .get_or_create(&XqueueLabels {
                    queue: queue.clone(),
                    state: state.clone(),
                })
                .set(*n);
        }
        for (platform, state, n) in &status.webhooks {
            self.webhooks
                .get_or_create(&WebhookLabels {
                    platform: platform.clone(),
                    state: state.clone(),
                })
                .set(*n);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
