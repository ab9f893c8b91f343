//! The writer thread: group commit of everything that arrives while a commit is under way.

use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::DbError;

/// Most writes folded into one transaction.
const MAX_BATCH: usize = 512;

/// A write whose commit failed.
pub type WriteError = DbError;

/// One queued write: runs inside the batch transaction, answers after the commit.
trait Pending: Send {
    /// Run the write inside a savepoint; false if it failed (and was rolled back).
    fn run(&mut self, conn: &Connection) -> bool;
    /// Deliver the result (or the commit error) to the caller.
    fn reply(self: Box<Self>, commit: Result<(), String>);
}

struct Task<R, F> {
    f: Option<F>,
    result: Option<Result<R, DbError>>,
    tx: oneshot::Sender<Result<R, DbError>>,
}

impl<R, F> Pending for Task<R, F>
where
    R: Send,
    F: FnOnce(&Connection) -> Result<R, DbError> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let f = self.f.take().expect("write runs once");
        if let Err(e) = run_cached(conn, "SAVEPOINT w") {
            self.result = Some(Err(e.into()));
            return false;
        }
        // A panicking write must not take the writer thread (and every later write) down.
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn)))
            .unwrap_or_else(|_| Err(DbError::Invalid("a database write panicked".into())));
        let ok = out.is_ok();
        let end = if ok {
            run_cached(conn, "RELEASE w")
        } else {
            conn.execute_batch("ROLLBACK TO w; RELEASE w")
        };
        if let Err(e) = end {
            self.result = Some(Err(e.into()));
            return false;
        }
        self.result = Some(out);
        ok
    }

    fn reply(self: Box<Self>, commit: Result<(), String>) {
        let result = match (commit, self.result) {
            (_, Some(Err(e))) => Err(e),
            (Err(e), _) => Err(DbError::Invalid(format!("commit failed: {e}"))),
            (Ok(()), Some(ok)) => ok,
            (Ok(()), None) => Err(DbError::WriterGone),
        };
        let _ = self.tx.send(result);
    }
}

/// Sender side of the writer thread.
pub(super) struct Writer {
    tx: mpsc::Sender<Box<dyn Pending>>,
}

impl Writer {
    /// Start the thread that owns `conn`.
    pub(super) fn spawn(conn: Connection) -> Self {
        let (tx, rx) = mpsc::channel::<Box<dyn Pending>>();
        std::thread::Builder::new()
            .name("db-writer".into())
            .spawn(move || run(conn, rx))
            .expect("spawn db writer thread");
        Self { tx }
    }

    pub(super) async fn submit<R, F>(&self, f: F) -> Result<R, DbError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, DbError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let task = Task {
            f: Some(f),
            result: None,
            tx,
        };
        self.tx
            .send(Box::new(task))
            .map_err(|_| DbError::WriterGone)?;
        rx.await.map_err(|_| DbError::WriterGone)?
    }
}

fn run(conn: Connection, rx: mpsc::Receiver<Box<dyn Pending>>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let commit = commit_batch(&conn, &mut batch);
        if let Err(e) = &commit {
            tracing::error!(error = %e, writes = batch.len(), "database commit failed");
        }
        for task in batch {
            task.reply(commit.clone());
        }
    }
}

/// Run one statement without parsing it again: each write opens and ends a savepoint.
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

fn commit_batch(conn: &Connection, batch: &mut [Box<dyn Pending>]) -> Result<(), String> {
    run_cached(conn, "BEGIN IMMEDIATE").map_err(|e| e.to_string())?;
    for task in batch.iter_mut() {
        task.run(conn);
    }
    run_cached(conn, "COMMIT").map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        e.to_string()
    })
}
