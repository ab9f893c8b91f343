//! The webhook sender: delivers the outbox (`db::platforms`, filled by a trigger whenever
//! a platform's submission ends) to each platform's URL, signed ([`super::signing`]).
//!
//! - Each event keeps its `webhook-id` and its body on every attempt (the receiver
//!   deduplicates by id); the timestamp and signature are made at each attempt.
//! - Only a 2xx counts. Anything else, or no answer, is retried after
//!   the service's one backoff (`queue::worker::backoff`: doubling from
//!   `webhook_retry_base_secs`, with jitter, here at most an hour), or after the receiver's
//!   `Retry-After` if that is longer (at most an hour), until `webhook_retry_hours` after
//!   the event; then it is `failed` and staff may redeliver.
//! - 410 Gone disables the platform's endpoint: its events wait (nothing is lost) until
//!   staff set the webhook again.
//! - A delivery is recorded after its attempt; a restart in between sends it again with
//!   the same id. Redirects are not followed, no proxy is used, and only addresses the
//!   [`guard`](super::guard) allows are connected to.
//! - Deliveries run on their own tasks, at most `webhook_concurrency` per platform at
//!   once: a slow or dead receiver holds up neither grading nor other platforms.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, watch};

use super::guard::{AddressPolicy, GuardedResolver};
use super::signing;
use crate::db::now_ms;
use crate::db::platforms::{self, Delivery, Outcome};
use crate::http::AppState;
use crate::metrics::WebhookAttemptLabels;
use crate::queue::worker::backoff;

/// Longest wait between attempts, and longest `Retry-After` honoured.
const MAX_WAIT_MS: i64 = 3_600_000;

/// The sender.
pub struct Sender {
    app: AppState,
    http: reqwest::Client,
    policy: Arc<AddressPolicy>,
    /// Deliveries being attempted now (never two attempts of one at once).
    in_flight: Mutex<HashSet<i64>>,
    /// Per platform, the attempts it may have in flight.
    slots: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Woken when an attempt ends, so what waited for its platform's slot goes at once
    /// (otherwise the outbox is read twice a second).
    wake: Notify,
}

impl Sender {
    pub fn new(app: AppState) -> Result<Arc<Self>, String> {
        let s = &app.settings.platforms;
        let policy = Arc::new(AddressPolicy::new(&s.webhook_allow_networks)?);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(s.webhook_timeout_secs.max(1)))
            .connect_timeout(Duration::from_secs(s.webhook_timeout_secs.clamp(1, 10)))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver {
                policy: policy.clone(),
            }))
            .user_agent(concat!(
                "otter-service/",
                env!("CARGO_PKG_VERSION"),
                " webhooks"
            ))
            .build()
            .map_err(|e| format!("the webhook HTTP client: {e}"))?;
        Ok(Arc::new(Self {
            app,
            http,
            policy,
            in_flight: Mutex::default(),
            slots: Mutex::default(),
            wake: Notify::new(),
        }))
    }

    /// Deliver until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            let due = self
                .app
                .db
                .read(|c| platforms::due(c, now_ms(), 200))
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "reading the webhook outbox failed");
                    Vec::new()
                });
            for d in due {
                self.clone().start(d);
            }
            // Poll at least twice a second (a trigger fills the outbox; the grade path
            // wakes us too), sooner when woken.
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = self.wake.notified() => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Attempt `d` on a task of its own, if it is not in flight and its platform has a
    /// free slot (else a later round takes it).
    fn start(self: Arc<Self>, d: Delivery) {
        let slots = {
            let mut all = self.slots.lock().expect("slots poisoned");
            all.entry(d.platform.clone())
                .or_insert_with(|| {
                    Arc::new(Semaphore::new(
                        self.app.settings.platforms.webhook_concurrency.max(1),
                    ))
                })
                .clone()
        };
        let Ok(permit) = slots.try_acquire_owned() else {
            return;
        };
        if !self
            .in_flight
            .lock()
            .expect("in flight poisoned")
            .insert(d.id)
        {
            return;
        }
        tokio::spawn(async move {
            let id = d.id;
            self.attempt(d).await;
            self.in_flight
                .lock()
                .expect("in flight poisoned")
                .remove(&id);
            drop(permit);
            self.wake.notify_one();
        });
    }

    async fn attempt(&self, d: Delivery) {
        // The round's read may predate an attempt that ended since (it left `in_flight`
        // after recording itself): look again before sending.
        let (id, attempts) = (d.id, d.attempts);
        match self
            .app
            .db
            .read(move |c| platforms::still_due(c, id, attempts))
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(error = %e, "reading the webhook outbox failed");
                return;
            }
        }
        let body = match &d.body {
            Some(b) => b.clone(),
            None => match self.prepare(&d).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(delivery = d.id, error = %e, "could not prepare a webhook");
                    return;
                }
            },
        };
        let platform = d.platform.clone();
        let endpoint = self
            .app
            .db
            .read(move |c| platforms::endpoint(c, &platform, now_ms()))
            .await;
        let endpoint = match endpoint {
            Ok(Some(e)) if !e.disabled => e,
            // Cleared or disabled meanwhile: it waits.
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, "reading a webhook endpoint failed");
                return;
            }
        };
        let outcome = self.send(&d, &body, &endpoint).await;
        let label = match &outcome {
            Outcome::Delivered { .. } => "delivered",
            Outcome::Retry { .. } => "retry",
            Outcome::Failed { .. } => "failed",
            Outcome::Gone => "gone",
        };
        self.app
            .metrics
            .webhook_attempts
            .get_or_create(&WebhookAttemptLabels { outcome: label })
            .inc();
        match &outcome {
            Outcome::Delivered { status } => tracing::info!(delivery = %d.msg_id,
                platform = %d.platform, event = %d.event, status, "webhook delivered"),
            Outcome::Retry { error, next_at, .. } => tracing::info!(delivery = %d.msg_id,
                platform = %d.platform, %error, in_secs = (next_at - now_ms()) / 1000,
                "webhook not taken; retrying"),
            Outcome::Failed { error, .. } => tracing::warn!(delivery = %d.msg_id,
                platform = %d.platform, %error, "webhook given up; staff may redeliver"),
            Outcome::Gone => tracing::warn!(platform = %d.platform,
                "the webhook receiver answered 410 Gone: the endpoint is disabled"),
        }
        let now = now_ms();
        let written = self
            .app
            .db
            .write(move |c| platforms::attempted(c, &d, &outcome, now))
            .await;
        if let Err(e) = written {
            tracing::warn!(error = %e, "could not record a webhook attempt; it is sent again");
        }
    }

    /// Fix the event's body from the submission as the platform sees it now.
    async fn prepare(&self, d: &Delivery) -> Result<String, crate::db::DbError> {
        let (app, d2) = (self.app.clone(), d.clone());
        let data = self
            .app
            .db
            .read(move |c| super::api::view(c, &app, &d2.platform, d2.submission_id))
            .await?;
        let body = serde_json::json!({
            "type": d.event,
            "timestamp": crate::db::format_ms(d.created_at),
            "data": data,
        })
        .to_string();
        let id = d.id;
        self.app
            .db
            .write(move |c| platforms::prepare(c, id, &body))
            .await
    }

    async fn send(&self, d: &Delivery, body: &str, e: &platforms::Endpoint) -> Outcome {
        let now = now_ms();
        let horizon =
            d.created_at + self.app.settings.platforms.webhook_retry_hours as i64 * 3_600_000;
        let base = self.app.settings.platforms.webhook_retry_base_secs;
        let retry = |status: Option<u16>, error: String, after: Option<i64>| {
            let wait = retry_wait_ms(base, d.attempts, after);
            if now + wait > horizon {
                Outcome::Failed {
                    status,
                    error: format!("{error}; retried until the retry horizon"),
                }
            } else {
                Outcome::Retry {
                    status,
                    error,
                    next_at: now + wait,
                }
            }
        };
        if let Err(why) = self.policy.check_url(&e.url) {
            return retry(None, why, None);
        }
        let ts = now / 1000;
        let resp = self
            .http
            .post(&e.url)
            .header("webhook-id", &d.msg_id)
            .header("webhook-timestamp", ts.to_string())
            .header(
                "webhook-signature",
                signing::signature(&e.secrets, &d.msg_id, ts, body),
            )
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await;
        match resp {
            Ok(r) if r.status().is_success() => Outcome::Delivered {
                status: r.status().as_u16(),
            },
            Ok(r) if r.status() == reqwest::StatusCode::GONE => Outcome::Gone,
            Ok(r) => {
                let status = r.status().as_u16();
                let after = r
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| retry_after_ms(v, now));
                retry(
                    Some(status),
                    format!("the receiver answered {status}"),
                    after,
                )
            }
            // The URL is not in the message: a platform may keep a secret in it.
            Err(err) => retry(None, describe(&err.without_url()), None),
        }
    }
}

/// The wait (ms) before the attempt after `attempts` made: the service's backoff from
/// `base_secs`, or the receiver's `Retry-After` (`after`, ms) when that is longer; never
/// more than an hour.
fn retry_wait_ms(base_secs: u64, attempts: i64, after: Option<i64>) -> i64 {
    let max = Duration::from_millis(MAX_WAIT_MS as u64);
    let backoff = backoff(Duration::from_secs(base_secs.max(1)), attempts + 1, max).min(max);
    (backoff.as_millis() as i64)
        .max(after.unwrap_or(0))
        .min(MAX_WAIT_MS)
}

/// `Retry-After` in ms from `now`: seconds, or an HTTP date.
pub fn retry_after_ms(v: &str, now: i64) -> Option<i64> {
    if let Ok(secs) = v.trim().parse::<u64>() {
        return Some((secs.min(86_400) * 1000) as i64);
    }
    let at = httpdate::parse_http_date(v.trim()).ok()?;
    let at = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as i64;
    Some((at - now).max(0))
}

/// An error and its causes, one sentence (what the guard refused shows up here).
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cause = c.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_with_jitter_honours_retry_after_and_stops_at_an_hour() {
        for attempts in 0..6 {
            let full = 5_000i64 << attempts;
            for _ in 0..50 {
                let w = retry_wait_ms(5, attempts, None);
                assert!(w >= full * 8 / 10 && w <= full * 12 / 10, "{attempts}: {w}");
            }
        }
        for _ in 0..20 {
            let w = retry_wait_ms(5, 60, None);
            assert!((MAX_WAIT_MS * 8 / 10..=MAX_WAIT_MS).contains(&w), "{w}");
        }
        // A longer Retry-After wins; a shorter one does not shorten the backoff.
        assert_eq!(retry_wait_ms(5, 0, Some(600_000)), 600_000);
        assert!(retry_wait_ms(5, 3, Some(10)) >= 32_000);
        assert_eq!(retry_wait_ms(5, 0, Some(86_400_000)), MAX_WAIT_MS);
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_a_date() {
        assert_eq!(retry_after_ms("7", 0), Some(7_000));
        let now = 1_700_000_000_000;
        let date = httpdate::fmt_http_date(
            std::time::UNIX_EPOCH + Duration::from_millis(now as u64 + 30_000),
        );
        let ms = retry_after_ms(&date, now).unwrap();
        assert!((29_000..=30_000).contains(&ms), "{ms}");
        assert_eq!(retry_after_ms("soon", now), None);
    }
}
