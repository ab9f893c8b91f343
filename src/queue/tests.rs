use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{Notify, watch};

use super::worker::{Attempt, Job, PoolConfig, spawn};
use crate::db::jobs::ClaimedJob;
use crate::db::states::{JobKind, JobState};
use crate::db::submissions::{NewSubmission, accept};
use crate::db::{Db, DbError, now_ms};

/// A job that panics in every attempt, as a notebook that crashes the worker would.
struct Panics {
    runs: AtomicUsize,
    dead: AtomicUsize,
}

#[async_trait::async_trait]
impl Job for Panics {
    fn kind(&self) -> JobKind {
        JobKind::Grade
    }
    async fn run(&self, _job: &ClaimedJob) -> Attempt {
        self.runs.fetch_add(1, Ordering::SeqCst);
        panic!("the notebook crashed the worker");
    }
    fn retry_delay(&self, _attempt: i64) -> Duration {
        Duration::from_millis(10)
    }
    fn on_failure(
        &self,
        _c: &Connection,
        _job: &ClaimedJob,
        _reason: &str,
        dead: bool,
    ) -> Result<(), DbError> {
        if dead {
            self.dead.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_job_that_panics_every_time_ends_dead_after_max_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("q.db")).unwrap();
    let sub = NewSubmission::sample("u");
    db.write(move |c| accept(c, &sub, 3, now_ms()))
        .await
        .unwrap();
    let job = Arc::new(Panics {
        runs: AtomicUsize::new(0),
        dead: AtomicUsize::new(0),
    });
    let (tx, rx) = watch::channel(false);
    let config = PoolConfig {
        workers: 1,
        lease: Duration::from_secs(3),
        idle_poll: Duration::from_millis(20),
        metrics: Default::default(),
    };
    let handles = spawn(db.clone(), job.clone(), Arc::new(Notify::new()), config, rx);
    let state = loop {
        let s: JobState = db
            .read(|c| Ok(c.query_row("SELECT state FROM jobs", [], |r| r.get(0))?))
            .await
            .unwrap();
        if s == JobState::Dead {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tx.send(true).unwrap();
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(state, JobState::Dead);
    assert_eq!(
        job.runs.load(Ordering::SeqCst),
        3,
        "three attempts, then no more"
    );
    assert_eq!(job.dead.load(Ordering::SeqCst), 1);
}
