//! The writer thread: group commit of everything that arrives while a commit is under way.
//!
//! With a [`WalSync`], the commit and the wait for the disk are pipelined: the writer's
//! connection commits with `synchronous = NORMAL` (the frames are written to the WAL, not
//! yet flushed) and hands the batch to a second thread, which flushes the WAL file
//! (`fdatasync`, what `synchronous = FULL` does inside the commit) and only then answers
//! every write of the batch. Meanwhile the writer runs the next batch. A caller therefore
//! still hears of its write only once it is on disk; what changes is that the single
//! writer thread no longer sits idle in the flush.
//!
//! Why this keeps the guarantee of `FULL`: SQLite in WAL mode with `NORMAL` differs from
//! `FULL` only in skipping that flush at each commit (the WAL header and checkpoints are
//! synced in both), and one flush covers every frame written before it, so when a batch is
//! answered every earlier batch is durable too: no answered write can depend on one that a
//! power cut could take back. Other connections may *read* a batch before its flush; a
//! read has no effect a power cut could contradict (any action taken on it, such as a
//! claim, is itself a write answered after a later flush).

use std::fs::File;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc;

use rusqlite::Connection;
use rusqlite::wal::CheckpointMode;
use tokio::sync::oneshot;

use super::DbError;

/// Most writes folded into one transaction.
const MAX_BATCH: usize = 512;

/// WAL pages after which a checkpoint starts: SQLite's own default for its automatic
/// checkpoints, which this replaces (see [`run`]).
const CHECKPOINT_PAGES: i32 = 1000;

/// WAL pages not yet in the database file that the writer copies itself, at the end of
/// a checkpoint run beside it (see [`Checkpoints`]).
const CATCH_UP_PAGES: i32 = 120;

/// Rounds of the checkpointer before the writer catches up whatever is left, so that the
/// WAL stays bounded even when writes come faster than a round copies them.
const MAX_ROUNDS: u32 = 4;

/// A checkpoint round running longer than this is logged (once).
const ROUND_LATE: std::time::Duration = std::time::Duration::from_secs(10);

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

/// How committed batches reach the disk before they are answered.
pub(super) enum WalSync {
    /// The connection commits with `synchronous = FULL`: answer right after the commit.
    InCommit,
    /// The connection commits with `synchronous = NORMAL`; this flushes its WAL file.
    Pipelined(Box<dyn FnMut() -> std::io::Result<()> + Send>),
}

impl WalSync {
    /// `fdatasync` of the WAL file at `wal` (opened once: SQLite keeps the same file for as
    /// long as a connection, ours, has the database open).
    pub(super) fn of_file(wal: File) -> Self {
        WalSync::Pipelined(Box::new(move || wal.sync_data()))
    }
}

type Batch = Vec<Box<dyn Pending>>;

/// Sender side of the writer thread.
pub(super) struct Writer {
    tx: mpsc::Sender<Box<dyn Pending>>,
}

impl Writer {
    /// Start the thread that owns `conn` (and, when pipelined, the thread that flushes).
    pub(super) fn spawn(mut conn: Connection, sync: WalSync, beside: Option<Checkpoint>) -> Self {
        // The WAL's length after each commit, for `run` to checkpoint past
        // CHECKPOINT_PAGES. Registering the hook replaces SQLite's automatic checkpoint
        // (which is itself a WAL hook), so no commit runs a checkpoint inside it.
        let wal_pages = std::sync::Arc::new(AtomicI32::new(0));
        let seen = wal_pages.clone();
        let hooked = conn.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages| {
            seen.store(pages, Ordering::Relaxed);
            Ok(())
        }));
        if let Err(e) = hooked {
            tracing::warn!(error = %e, "no WAL hook: SQLite checkpoints inside commits");
        }
        let (tx, rx) = mpsc::channel::<Box<dyn Pending>>();
        let synced = match sync {
            WalSync::InCommit => None,
            WalSync::Pipelined(flush) => {
                let (stx, srx) = mpsc::channel::<Batch>();
                std::thread::Builder::new()
                    .name("db-sync".into())
                    .spawn(move || answer_when_flushed(flush, srx))
                    .expect("spawn db sync thread");
                Some(stx)
            }
        };
        let checkpoints = match beside {
            None => Checkpoints::Inline,
            Some(checkpoint) => Checkpoints::beside(checkpoint),
        };
        std::thread::Builder::new()
            .name("db-writer".into())
            .spawn(move || run(conn, rx, synced, &wal_pages, checkpoints))
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

/// Commit what arrives in batches; after handing a batch on to be answered, see to the
/// WAL's checkpoint ([`Checkpoints::after_batch`]).
///
/// Why not in the commit (SQLite's automatic checkpoint runs inside the commit that
/// crosses the threshold): a checkpoint copies some 1,000 pages and syncs the database
/// file, 20 - 60 ms on the intake benchmark's machine, and the batch whose commit ran it
/// was answered only after it. Durability is unchanged: the checkpoint is SQLite's own,
/// of committed frames; it syncs the WAL before copying, and the database file after a
/// checkpoint that reached the WAL's end (the rounds beside the writer that stop short
/// are synced by their thread: `Db`'s `checkpointer`). The WAL starts over only after
/// such a synced checkpoint.
fn run(
    conn: Connection,
    rx: mpsc::Receiver<Box<dyn Pending>>,
    synced: Option<mpsc::Sender<Batch>>,
    wal_pages: &AtomicI32,
    mut checkpoints: Checkpoints,
) {
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
        match (&commit, &synced) {
            // Committed, not yet flushed: the sync thread answers after the flush.
            (Ok(()), Some(tx)) => {
                if let Err(mpsc::SendError(batch)) = tx.send(batch) {
                    reply_all(batch, Err("the database sync thread stopped".into()));
                }
            }
            _ => reply_all(batch, commit),
        }
        checkpoints.after_batch(&conn, wal_pages);
    }
}

/// One PASSIVE checkpoint on a connection of its own: `(frames in the WAL, frames of it
/// now in the database file)`, as `sqlite3_wal_checkpoint_v2` counts them.
pub(super) type Checkpoint = Box<dyn FnMut() -> rusqlite::Result<(i32, i32)> + Send>;

/// Who copies the WAL into the database file.
///
/// `Beside`: a thread with a connection of its own runs PASSIVE checkpoints while the
/// writer goes on committing (SQLite lets one checkpoint run beside one writer; it copies
/// the frames committed when it began). The WAL only starts over, at the start of a
/// write, when every frame in it has been copied (and no reader holds an older
/// snapshot); under a steady stream of writes the
/// checkpointer never gets there by itself, since more frames arrive while it copies. So
/// once a round leaves at most [`CATCH_UP_PAGES`] (or after [`MAX_ROUNDS`]), the writer
/// copies the rest itself between two batches: a short stall instead of the whole
/// checkpoint's, and the next batch writes the WAL from its start again, into pages the
/// page cache already holds. Rounds that fail are asked again (a staff command's
/// checkpoint holds SQLite's lock for a moment); after the last, the writer copies.
enum Checkpoints {
    /// The writer checkpoints itself: no second connection could be opened, or the
    /// checkpoint thread could not start or stopped.
    Inline,
    Beside {
        ask: mpsc::Sender<()>,
        done: mpsc::Receiver<rusqlite::Result<(i32, i32)>>,
        /// Rounds asked for since the WAL was last copied whole; 0 when none runs.
        rounds: u32,
        /// When the round under way was asked for, and whether its lateness was told.
        asked: std::time::Instant,
        late_told: bool,
    },
}

impl Checkpoints {
    fn beside(mut checkpoint: Checkpoint) -> Self {
        let (ask, asked) = mpsc::channel::<()>();
        let (tell, done) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("db-checkpoint".into())
            .spawn(move || {
                for () in asked {
                    if tell.send(checkpoint()).is_err() {
                        break;
                    }
                }
            });
        match spawned {
            Ok(_) => Checkpoints::Beside {
                ask,
                done,
                rounds: 0,
                asked: std::time::Instant::now(),
                late_told: false,
            },
            Err(e) => {
                tracing::warn!(error = %e, "no checkpoint thread: the writer checkpoints itself");
                Checkpoints::Inline
            }
        }
    }

    /// After each batch: start a checkpoint once the WAL holds [`CHECKPOINT_PAGES`], and
    /// (beside) take the result of a finished round.
    fn after_batch(&mut self, conn: &Connection, wal_pages: &AtomicI32) {
        let pages = wal_pages.load(Ordering::Relaxed);
        match self {
            Checkpoints::Inline => {
                if pages >= CHECKPOINT_PAGES {
                    wal_pages.store(0, Ordering::Relaxed);
                    checkpoint_here(conn);
                }
            }
            Checkpoints::Beside {
                done,
                rounds,
                asked,
                late_told,
                ..
            } if *rounds > 0 => {
                let copied = match done.try_recv() {
                    Err(mpsc::TryRecvError::Empty) => {
                        // Only hung I/O keeps a PASSIVE checkpoint this long (it never
                        // waits on a lock); the WAL grows meanwhile, as nobody else
                        // may checkpoint while it holds SQLite's checkpoint lock.
                        if !*late_told && asked.elapsed() > ROUND_LATE {
                            *late_told = true;
                            tracing::warn!(
                                secs = asked.elapsed().as_secs(),
                                "a WAL checkpoint has not finished: the WAL grows until it does"
                            );
                        }
                        return;
                    }
                    Ok(Ok((_, copied))) => copied,
                    Ok(Err(e)) => {
                        // SQLITE_BUSY when another process checkpoints (a staff command):
                        // asked again, or copied by the writer below.
                        tracing::debug!(error = %e, "a WAL checkpoint round failed");
                        0
                    }
                    Err(mpsc::TryRecvError::Disconnected) => {
                        return self.stopped(conn, wal_pages);
                    }
                };
                // The WAL may have started over since (`copied` counts the old one).
                let left = pages - copied;
                if left > CATCH_UP_PAGES && *rounds < MAX_ROUNDS {
                    let next = *rounds + 1;
                    return self.ask_round(next, conn, wal_pages);
                }
                *rounds = 0;
                if left > 0 {
                    wal_pages.store(0, Ordering::Relaxed);
                    checkpoint_here(conn);
                }
            }
            Checkpoints::Beside { .. } => {
                if pages >= CHECKPOINT_PAGES {
                    self.ask_round(1, conn, wal_pages);
                }
            }
        }
    }

    /// Ask the thread for round number `round`.
    fn ask_round(&mut self, round: u32, conn: &Connection, wal_pages: &AtomicI32) {
        let Checkpoints::Beside {
            ask,
            rounds,
            asked,
            late_told,
            ..
        } = self
        else {
            return;
        };
        if ask.send(()).is_err() {
            return self.stopped(conn, wal_pages);
        }
        (*rounds, *asked, *late_told) = (round, std::time::Instant::now(), false);
    }

    /// The checkpoint thread is gone: from now on the writer checkpoints.
    fn stopped(&mut self, conn: &Connection, wal_pages: &AtomicI32) {
        tracing::warn!("the checkpoint thread stopped: the writer checkpoints");
        *self = Checkpoints::Inline;
        self.after_batch(conn, wal_pages);
    }
}

fn checkpoint_here(conn: &Connection) {
    if let Err(e) = conn.wal_checkpoint_v2(Some("main"), CheckpointMode::PASSIVE) {
        tracing::warn!(error = %e, "WAL checkpoint failed; the next one tries again");
    }
}

fn reply_all(batch: Batch, result: Result<(), String>) {
    for task in batch {
        task.reply(result.clone());
    }
}

/// The sync thread: one flush for every batch committed since the last one, then answer
/// them, oldest first. A failed flush fails those writes (the caller hears an error; a
/// submission it retries is found again by its hash if it did reach the disk).
fn answer_when_flushed(
    mut flush: Box<dyn FnMut() -> std::io::Result<()> + Send>,
    rx: mpsc::Receiver<Batch>,
) {
    while let Ok(first) = rx.recv() {
        let mut batches = vec![first];
        batches.extend(rx.try_iter());
        let result = flush().map_err(|e| {
            tracing::error!(error = %e, "flushing the database's WAL failed");
            format!("the write could not be flushed to disk: {e}")
        });
        for batch in batches {
            reply_all(batch, result.clone());
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    fn table() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        c
    }

    fn insert(w: &Writer, x: i64) -> impl Future<Output = Result<(), DbError>> + '_ {
        w.submit(move |c| {
            c.execute("INSERT INTO t (x) VALUES (?1)", [x])?;
            Ok(())
        })
    }

    #[tokio::test]
    async fn a_write_is_answered_only_after_its_batch_is_flushed() {
        // The flush waits at a gate the test opens: until then nobody may be answered.
        let (open_tx, open_rx) = mpsc::channel::<()>();
        let flushes = Arc::new(Mutex::new(0));
        let counted = flushes.clone();
        let flush = move || {
            open_rx.recv().ok();
            *counted.lock().unwrap() += 1;
            Ok(())
        };
        let w = Writer::spawn(table(), WalSync::Pipelined(Box::new(flush)), None);
        let mut first = Box::pin(insert(&w, 1));
        assert!(
            tokio::time::timeout(Duration::from_millis(300), &mut first)
                .await
                .is_err(),
            "answered before the flush"
        );
        // The writer went on meanwhile: a second write commits while the first waits.
        let mut second = Box::pin(insert(&w, 2));
        assert!(
            tokio::time::timeout(Duration::from_millis(300), &mut second)
                .await
                .is_err()
        );
        open_tx.send(()).unwrap();
        open_tx.send(()).unwrap();
        first.await.unwrap();
        second.await.unwrap();
        // The second batch committed while the first waited, and needed a flush of its own.
        assert_eq!(*flushes.lock().unwrap(), 2);
    }

    /// A database file in WAL mode with table `t (x, b)`, and its writer.
    fn file_writer(dir: &std::path::Path, beside: Option<Checkpoint>) -> Writer {
        let c = Connection::open(dir.join("w.db")).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
             CREATE TABLE t (x INTEGER, b BLOB)",
        )
        .unwrap();
        let wal = File::open(dir.join("w.db-wal")).unwrap();
        Writer::spawn(c, WalSync::of_file(wal), beside)
    }

    /// A row of 64 KiB (16 pages and more of the WAL).
    async fn insert_blob(w: &Writer, i: i64) {
        w.submit(move |c| {
            c.execute("INSERT INTO t VALUES (?1, zeroblob(65536))", [i])?;
            Ok(())
        })
        .await
        .unwrap();
    }

    /// Frames the WAL file has room for (it keeps its size when it starts over).
    fn wal_file_frames(dir: &std::path::Path) -> i32 {
        let len = std::fs::metadata(dir.join("w.db-wal")).unwrap().len();
        (len.saturating_sub(32) / (4096 + 24)) as i32
    }

    /// The WAL header's checkpoint sequence number: SQLite adds one each time the WAL
    /// starts over (written with the first frame after).
    fn wal_restarts(dir: &std::path::Path) -> u32 {
        let head = std::fs::read(dir.join("w.db-wal")).unwrap();
        u32::from_be_bytes(head[12..16].try_into().unwrap())
    }

    /// `Db::open`'s checkpoints on a second connection, opened at the first round (the
    /// writer's table exists then).
    fn lazily_second(
        dir: &std::path::Path,
    ) -> impl FnMut() -> rusqlite::Result<(i32, i32)> + use<> {
        let (path, mut second) = (dir.join("w.db"), None::<Checkpoint>);
        move || second.get_or_insert_with(|| super::super::checkpointer(&path).expect("opened"))()
    }

    /// Rows in `t`, read on a connection of their own.
    fn rows(dir: &std::path::Path) -> i64 {
        let reader = Connection::open(dir.join("w.db")).unwrap();
        reader
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap()
    }

    /// 64 KiB rows until the WAL holds more than CHECKPOINT_PAGES: a round is asked for.
    /// How many rows that took.
    async fn fill_past_checkpoint(w: &Writer, dir: &std::path::Path) -> i64 {
        let mut i = 0;
        while wal_file_frames(dir) <= CHECKPOINT_PAGES {
            insert_blob(w, i).await;
            i += 1;
        }
        i
    }

    /// 40 MiB in 64 KiB rows, one batch at a time (ten times the WAL's checkpoint size):
    /// the WAL starts over (its file stays small) and every row reaches the database file.
    async fn wal_starts_over_and_every_row_is_kept(
        dir: &std::path::Path,
        beside: Option<Checkpoint>,
    ) {
        let w = file_writer(dir, beside);
        for i in 0..640 {
            insert_blob(&w, i).await;
        }
        // Without checkpoints the WAL reaches 48 MB. With them it holds some 4 MiB, and
        // more while a round beside the writer is late (the writer commits meanwhile).
        let wal_len = std::fs::metadata(dir.join("w.db-wal")).unwrap().len();
        assert!(wal_len < 24 * 1024 * 1024, "the WAL grew to {wal_len} B");
        let restarts = wal_restarts(dir);
        assert!(restarts >= 4, "the WAL started over {restarts} times");
        assert_eq!(rows(dir), 640);
        let db_len = std::fs::metadata(dir.join("w.db")).unwrap().len();
        assert!(
            db_len > 30 * 1024 * 1024,
            "checkpointed into the database: {db_len} B"
        );
    }

    #[tokio::test]
    async fn the_writer_checkpoints_the_wal_so_it_starts_over_and_every_row_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        wal_starts_over_and_every_row_is_kept(dir.path(), None).await;
    }

    #[tokio::test]
    async fn checkpoints_beside_the_writer_let_the_wal_start_over_and_keep_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let beside = Box::new(lazily_second(dir.path()));
        wal_starts_over_and_every_row_is_kept(dir.path(), Some(beside)).await;
    }

    #[tokio::test]
    async fn a_checkpoint_thread_that_fails_or_dies_leaves_the_copying_to_the_writer() {
        // Every round fails: the writer copies after the last round it may ask for.
        let failing: Checkpoint = Box::new(|| {
            Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                None,
            ))
        });
        let dir = tempfile::tempdir().unwrap();
        wal_starts_over_and_every_row_is_kept(dir.path(), Some(failing)).await;
        // The thread panics on its first round: the writer checkpoints by itself from then.
        // Until the thread is gone (a panic with RUST_BACKTRACE set takes its time to
        // print) the writer waits for the round and the WAL grows: so first write until
        // the WAL has started over once, then count.
        let dying: Checkpoint = Box::new(|| panic!("the checkpoint thread dies"));
        let dir = tempfile::tempdir().unwrap();
        let w = file_writer(dir.path(), Some(dying));
        let mut i = fill_past_checkpoint(&w, dir.path()).await;
        // A round was asked for (and the thread died in it): small rows until the writer
        // has noticed and copied the WAL itself.
        let since = std::time::Instant::now();
        while wal_restarts(dir.path()) == 0 {
            assert!(
                since.elapsed() < Duration::from_secs(60),
                "the writer never took the checkpoints over"
            );
            insert(&w, i).await.unwrap();
            i += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let before = wal_restarts(dir.path());
        for _ in 0..640 {
            insert_blob(&w, i).await;
            i += 1;
        }
        let restarts = wal_restarts(dir.path()) - before;
        assert!(restarts >= 4, "the WAL started over {restarts} times");
        assert_eq!(rows(dir.path()), i);
    }

    #[tokio::test]
    async fn writes_are_answered_while_a_checkpoint_runs_beside_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        // The checkpoint beside the writer waits at a gate the test opens.
        let (open, gate) = mpsc::channel::<()>();
        let (entered_tx, entered) = mpsc::channel::<()>();
        let mut second = lazily_second(dir.path());
        let checkpoint: Checkpoint = Box::new(move || {
            entered_tx.send(()).ok();
            gate.recv().ok();
            second()
        });
        let w = file_writer(dir.path(), Some(checkpoint));
        // Past CHECKPOINT_PAGES: the writer asks for a checkpoint, which is held.
        let mut i = fill_past_checkpoint(&w, dir.path()).await;
        entered
            .recv_timeout(Duration::from_secs(10))
            .expect("a checkpoint was asked for");
        // While it is held, the writer goes on: 100 more writes, each answered.
        for _ in 0..100 {
            tokio::time::timeout(Duration::from_secs(10), insert_blob(&w, i))
                .await
                .expect("a write waited for the checkpoint beside the writer");
            i += 1;
        }
        let held = wal_file_frames(dir.path());
        assert!(held > CHECKPOINT_PAGES + 1000, "the WAL held {held} frames");
        let restarts = wal_restarts(dir.path());
        // Let every round through: the WAL is copied, then starts over, again and again.
        // (with the sender gone, the gate lets every later round through at once)
        drop(open);
        for _ in 0..400 {
            insert_blob(&w, i).await;
            i += 1;
        }
        assert!(
            wal_restarts(dir.path()) >= restarts + 2,
            "the WAL started over {} times after the gate opened",
            wal_restarts(dir.path()) - restarts
        );
        // Only by what came while the last rounds caught up, not by the 400 rows.
        let grown = wal_file_frames(dir.path()) - held;
        assert!(
            grown < CHECKPOINT_PAGES,
            "the WAL file grew by {grown} frames"
        );
        assert_eq!(rows(dir.path()), i);
    }

    #[tokio::test]
    async fn a_failed_flush_fails_the_writes_it_covers_and_the_next_ones_go_on() {
        let failures = Arc::new(Mutex::new(1));
        let left = failures.clone();
        let flush = move || {
            let mut n = left.lock().unwrap();
            if *n > 0 {
                *n -= 1;
                return Err(std::io::Error::other("disk gone"));
            }
            Ok(())
        };
        let w = Writer::spawn(table(), WalSync::Pipelined(Box::new(flush)), None);
        let err = insert(&w, 1).await.unwrap_err().to_string();
        assert!(
            err.contains("could not be flushed") && err.contains("disk gone"),
            "{err}"
        );
        insert(&w, 2).await.unwrap();
    }
}
