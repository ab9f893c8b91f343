//! SQLite access. One writer thread owns the only writing connection and commits the
//! writes that arrive together in one transaction (group commit): in WAL mode, every
//! accepted submission is on disk (the WAL flushed with `fdatasync`, as
//! `synchronous=FULL` does) before we answer, and a burst of submissions costs one flush
//! per batch instead of one each; the flush runs on a thread of its own while the writer
//! commits the next batch (`writer`). Reads run on pooled
//! connections through `spawn_blocking`, so rusqlite never blocks the async executor.
//!
//! This module is the one owner of stored state: every SQL statement and every stored
//! state ([`states`]) lives here; the queue runtime, jobs, HTTP and CLI call named
//! functions.

pub mod calendar;
pub mod checks;
pub mod dashboard;
pub mod events;
pub mod grades;
pub mod hosts;
pub mod jobs;
pub mod lti13;
mod migrations;
pub mod notebooks;
mod page_cache;
pub mod platforms;
pub mod retention;
pub mod scores;
pub mod staff;
pub mod states;
pub mod submissions;
pub mod waiting;
mod writer;
pub mod xqueue;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

pub use writer::WriteError;

/// A database error.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("database writer stopped")]
    WriterGone,
    #[error("database task failed: {0}")]
    Join(String),
    #[error("database at {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("the grading queue is full ({depth} waiting)")]
    QueueFull { depth: u64 },
    #[error("this student already has {limit} submissions waiting")]
    StudentQueueFull { limit: u64 },
    /// The course calendar refuses the submission (not open yet, or closed): why.
    #[error("{0}")]
    Closed(String),
}

/// Handle to the database. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: writer::Writer,
    readers: Mutex<Vec<Connection>>,
    waiting: Arc<waiting::Waiting>,
}

/// Open a connection with the pragmas every connection needs.
fn connect(path: &Path) -> Result<Connection, DbError> {
    let open = |source| DbError::Open {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open(path).map_err(open)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 10000;",
    )
    .map_err(open)?;
    Ok(conn)
}

/// What the writer's connection needs beyond [`connect`]. Each 60 KB notebook dirties
/// some 7 pages (about 6 of them its overflow pages, stored compressed: [`notebooks`];
/// 16 uncompressed). SQLite's default page cache (2,000 KiB, 500 pages) fills within a
/// batch of a few dozen; past that, SQLite writes dirty pages to the WAL in the middle of
/// the transaction (and again at the commit) and copies pages into the savepoint journal,
/// which goes to a temporary file past 64 KiB. A 16 MiB cache holds a batch of hundreds of
/// such notebooks, and the savepoint journal stays in memory.
/// rusqlite keeps 16 prepared statements by default; the writer uses more than that.
/// The WAL file keeps the size it reached (some 20 MB under the intake benchmark's load,
/// with checkpoints beside the writer); past 64 MiB, after a stall of the checkpoints,
/// SQLite cuts it back when it starts over.
fn writer_settings(conn: &Connection) -> Result<(), DbError> {
    conn.execute_batch(
        "PRAGMA cache_size = -16384;
         PRAGMA temp_store = MEMORY;
         PRAGMA journal_size_limit = 67108864;",
    )?;
    conn.set_prepared_statement_cache_capacity(128);
    Ok(())
}

/// The writer commits with `synchronous = NORMAL` and a thread of its own flushes the WAL
/// before anyone is answered (`writer::WalSync`), when the WAL file can be opened; else
/// it keeps `synchronous = FULL`, flushing inside each commit.
fn pipelined_sync(conn: &Connection, path: &Path) -> Result<writer::WalSync, DbError> {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal = PathBuf::from(wal);
    match std::fs::File::open(&wal) {
        Ok(file) => {
            conn.execute_batch("PRAGMA synchronous = NORMAL;")?;
            Ok(writer::WalSync::of_file(file))
        }
        Err(e) => {
            tracing::warn!(wal = %wal.display(), error = %e,
                "the WAL file cannot be opened: each commit flushes it itself");
            Ok(writer::WalSync::InCommit)
        }
    }
}

/// A connection of its own for the checkpoints that run beside the writer (see
/// `writer::Checkpoints`); without one, the writer checkpoints itself.
///
/// A round that stops short of the WAL's end (under a steady stream of writes, most do)
/// leaves the pages it wrote unsynced: SQLite syncs the database file only after a
/// checkpoint that reached the end. This thread syncs them itself, so the writer's own
/// last copy, which does reach the end, flushes only its own pages.
fn checkpointer(path: &Path) -> Option<writer::Checkpoint> {
    // The process's one descriptor of the file (closing another would drop SQLite's locks).
    let file = page_cache::descriptor(path)
        .inspect_err(|e| tracing::warn!(error = %e, "the checkpoints' rounds are not synced"))
        .ok();
    match connect(path) {
        Ok(conn) => Some(Box::new(move || {
            let (log, copied) =
                conn.wal_checkpoint_v2(Some("main"), rusqlite::wal::CheckpointMode::PASSIVE)?;
            if let Some(file) = file.as_ref().filter(|_| copied < log)
                && let Err(e) = file.sync_data()
            {
                tracing::warn!(error = %e, "syncing the database file after a checkpoint failed");
            }
            Ok((log, copied))
        })),
        Err(e) => {
            tracing::warn!(error = %e, "no connection for checkpoints: the writer runs them");
            None
        }
    }
}

impl Db {
    /// Open (creating if needed) and migrate the database at `path`.
    pub fn open(path: &Path) -> Result<Self, DbError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                DbError::Invalid(format!(
                    "cannot create directory {} for the database: {e}",
                    dir.display()
                ))
            })?;
        }
        let mut conn = connect(path)?;
        migrations::run(&mut conn)?;
        writer_settings(&conn)?;
        let sync = pipelined_sync(&conn, path)?;
        let beside = checkpointer(path);
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                writer: writer::Writer::spawn(conn, sync, beside),
                readers: Mutex::new(Vec::new()),
                waiting: Arc::default(),
            }),
        })
    }

    /// From now on, let the kernel reuse the page-cache pages of the database file's older
    /// part once written (`database.release_page_cache`; see [`page_cache`]), for as long
    /// as this database is open.
    pub fn release_written_pages(&self) {
        page_cache::spawn_releaser(&self.inner.path, Arc::downgrade(&self.inner));
    }

    /// The other students' waiting counts, shared between queue places (see
    /// [`waiting::Waiting`]).
    pub fn waiting(&self) -> Arc<waiting::Waiting> {
        self.inner.waiting.clone()
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Run `f` in the writer's transaction; the result is returned once it is committed.
    /// If `f` fails, only its own changes are rolled back.
    pub async fn write<R, F>(&self, f: F) -> Result<R, DbError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, DbError> + Send + 'static,
    {
        self.inner.writer.submit(f).await
    }

    /// Run `f` on a read connection, off the async executor.
    pub async fn read<R, F>(&self, f: F) -> Result<R, DbError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, DbError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let conn = inner.readers.lock().expect("reader pool poisoned").pop();
            let conn = match conn {
                Some(c) => c,
                None => connect(&inner.path)?,
            };
            // One snapshot for the whole closure: a read of several statements (a
            // submission's view and its queue place) must not see a job claimed between
            // two of them. The transaction only reads; dropping it ends it.
            let out = conn
                .unchecked_transaction()
                .map_err(DbError::from)
                .and_then(|tx| f(&tx));
            let mut pool = inner.readers.lock().expect("reader pool poisoned");
            if pool.len() < 8 {
                pool.push(conn);
            }
            out
        })
        .await
        .map_err(|e| DbError::Join(e.to_string()))?
    }
}

/// Milliseconds since the Unix epoch: every timestamp in the database.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// RFC 3339 text of a database timestamp.
pub fn format_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Apply the schema to `conn` (for tools and tests that build a database by hand).
pub fn migrations_apply(conn: &mut Connection) -> Result<(), DbError> {
    migrations::run(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_read_sees_one_snapshot_while_a_write_commits_in_between() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let db = Db::open(&path).unwrap();
        let count = |c: &Connection| -> Result<i64, DbError> {
            Ok(c.query_row("SELECT COUNT(*) FROM submissions", [], |r| r.get(0))?)
        };
        let (before, after) = db
            .read(move |c| {
                let before = count(c)?;
                // Another connection commits a submission between the two statements.
                let other = Connection::open(&path).unwrap();
                submissions::accept(&other, &submissions::NewSubmission::sample("u"), 3, 0)?;
                Ok((before, count(c)?))
            })
            .await
            .unwrap();
        assert_eq!((before, after), (0, 0));
        assert_eq!(db.read(count).await.unwrap(), 1, "the next read sees it");
    }
}
