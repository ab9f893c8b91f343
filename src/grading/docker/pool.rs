//! Warm single-use containers (trusted evaluator only). A warm container is created,
//! started and attached exactly as a cold one, with the kernel up and the libraries
//! imported, and then waits on stdin for its one job, with no student code anywhere; a
//! job takes it, and it is removed after that job like every other container. Nothing is
//! ever put back: a container is used at most once.
//!
//! Size follows demand: each job that asks for a container of a shape (image and limits)
//! starts one more of that shape in the background, up to `warm` waiting per shape; one
//! that has waited longer than `warm_idle` is removed, so an idle service keeps none.
//! Warm containers carry the instance label (job label `warm`), so the start-up sweep
//! removes any a killed service left behind.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bollard::container::AttachContainerResults;

/// A started container with its attach stream (stdin not yet written).
pub struct Started {
    pub id: String,
    pub io: AttachContainerResults,
}

struct Warm {
    started: Started,
    since: Instant,
}

/// The waiting containers, by shape (the create body as JSON).
#[derive(Default)]
pub struct Pool {
    idle: Mutex<HashMap<String, Vec<Warm>>>,
    filling: Mutex<HashMap<String, usize>>,
    closed: AtomicBool,
    reaper: AtomicBool,
    /// Jobs that got a warm container.
    pub taken: AtomicU64,
    /// Jobs that started a container of their own.
    pub cold: AtomicU64,
    /// Warm containers started.
    pub started: AtomicU64,
}

impl Pool {
    /// The newest container of `shape` that has waited at most `max_wait`; the ones that
    /// waited longer come back in `expired`, for the caller to remove.
    pub fn take(
        &self,
        shape: &str,
        max_wait: Duration,
        expired: &mut Vec<String>,
    ) -> Option<Started> {
        let mut idle = self.idle.lock().expect("pool lock");
        let list = idle.get_mut(shape)?;
        while let Some(w) = list.pop() {
            if w.since.elapsed() <= max_wait {
                return Some(w.started);
            }
            expired.push(w.started.id);
        }
        None
    }

    /// Whether one more container of `shape` should start (counted as filling if so).
    pub fn wants(&self, shape: &str, target: usize) -> bool {
        if self.closed.load(Ordering::Relaxed) {
            return false;
        }
        let waiting = self
            .idle
            .lock()
            .expect("pool lock")
            .get(shape)
            .map_or(0, Vec::len);
        let mut filling = self.filling.lock().expect("pool lock");
        let n = filling.entry(shape.to_string()).or_default();
        if waiting + *n < target {
            *n += 1;
            true
        } else {
            false
        }
    }

    /// A container of `shape` has started (`Some`) or failed to; `Err` gives it back when
    /// the pool is closed, for the caller to remove.
    pub fn filled(&self, shape: &str, started: Option<Started>) -> Result<(), Started> {
        if let Some(n) = self.filling.lock().expect("pool lock").get_mut(shape) {
            *n = n.saturating_sub(1);
        }
        let Some(started) = started else {
            return Ok(());
        };
        self.started.fetch_add(1, Ordering::Relaxed);
        if self.closed.load(Ordering::Relaxed) {
            return Err(started);
        }
        self.idle
            .lock()
            .expect("pool lock")
            .entry(shape.to_string())
            .or_default()
            .push(Warm {
                started,
                since: Instant::now(),
            });
        Ok(())
    }

    /// Containers that have waited longer than `max_wait`, taken out of the pool.
    pub fn expired(&self, max_wait: Duration) -> Vec<String> {
        let mut out = Vec::new();
        for list in self.idle.lock().expect("pool lock").values_mut() {
            list.retain(|w| {
                let keep = w.since.elapsed() <= max_wait;
                if !keep {
                    out.push(w.started.id.clone());
                }
                keep
            });
        }
        out
    }

    /// Close the pool: nothing more is added; every waiting container comes back.
    pub fn close(&self) -> Vec<String> {
        self.closed.store(true, Ordering::Relaxed);
        self.idle
            .lock()
            .expect("pool lock")
            .drain()
            .flat_map(|(_, list)| list.into_iter().map(|w| w.started.id))
            .collect()
    }

    /// How many containers are being started for the pool now.
    pub fn filling(&self) -> usize {
        self.filling.lock().expect("pool lock").values().sum()
    }

    /// Whether the reaper still has to be started (true once).
    pub fn start_reaper(&self) -> bool {
        !self.reaper.swap(true, Ordering::Relaxed)
    }

    /// How many containers wait now.
    pub fn waiting(&self) -> usize {
        self.idle
            .lock()
            .expect("pool lock")
            .values()
            .map(Vec::len)
            .sum()
    }
}
