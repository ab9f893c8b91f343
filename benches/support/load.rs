//! A closed-loop load generator: `clients` tasks, each sending the next request as soon as
//! its last one was answered, for `secs` seconds and at most `max_total` requests.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What a run did.
pub struct Run {
    /// Requests answered with the expected status.
    pub ok: u64,
    /// Any other answer or no answer.
    pub refused: u64,
    /// Latencies of the `ok` ones, sorted.
    pub latencies: Vec<Duration>,
    pub elapsed: f64,
}

impl Run {
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed
    }

    /// The `p`-th latency (0..1).
    pub fn percentile(&self, p: f64) -> Duration {
        let sorted = &self.latencies;
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
    }
}

/// Run `request(n, client)` (the `n`-th request overall, from client `client`) in a closed
/// loop; a request counts when it is answered with `expect`.
pub async fn closed_loop<F>(
    clients: usize,
    secs: u64,
    max_total: u64,
    expect: u16,
    request: F,
) -> Run
where
    F: Fn(u64, usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let request = Arc::new(request);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let sent = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (request, sent) = (request.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut refused, mut lat) = (0u64, 0u64, Vec::new());
            loop {
                let n = sent.fetch_add(1, Ordering::Relaxed);
                if Instant::now() >= deadline || n >= max_total {
                    break;
                }
                let t = Instant::now();
                match request(n, client).send().await.map(|r| r.status().as_u16()) {
                    Ok(s) if s == expect => {
                        ok += 1;
                        lat.push(t.elapsed());
                    }
                    _ => refused += 1,
                }
            }
            (ok, refused, lat)
        }));
    }
    let mut run = Run {
        ok: 0,
        refused: 0,
        latencies: Vec::new(),
        elapsed: 0.0,
    };
    for t in tasks {
        let (o, r, l) = t.await.unwrap();
        run.ok += o;
        run.refused += r;
        run.latencies.extend(l);
    }
    run.latencies.sort();
    run.elapsed = start.elapsed().as_secs_f64();
    run
}
