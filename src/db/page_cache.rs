//! Let the kernel reuse the page-cache pages of the database file's older part once they
//! are written, instead of growing the page cache with every notebook stored
//! (`database.release_page_cache`).
//!
//! Why: on a virtual machine that hands free memory back to its host (virtio-balloon free
//! page reporting, as on this project's machines), a buffered write into a page the page
//! cache has not held lately costs the host backing that memory again: measured here
//! 15 - 20 us per 4 KiB page, against 1.4 us for a page just freed. The database grows by
//! about 6 pages per stored notebook (compressed), written when SQLite checkpoints the WAL
//! into the database file; in a profile of the intake benchmark that copy was a quarter of
//! the service's CPU, more than compressing the notebook. Released pages go back to the
//! kernel's free lists, and the file's next growth lands on them.
//!
//! What is released: each range of the file once it lies more than [`KEEP_BYTES`] behind
//! the file's end, once (what was there when the service started is left alone). A
//! released page is read from the disk again when asked for: a notebook when it is
//! graded, a page no connection has cached. The WAL, where every recent page is read
//! from, is never released. The kernel does not drop dirty pages (`POSIX_FADV_DONTNEED`
//! only starts their writeback), so nothing unwritten is lost or delayed.
//!
//! The descriptor this opens on the database file is never closed (see [`descriptor`]).

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// The newest part of the database file kept in the page cache: the tables and indexes
/// grow at the end, and their newest pages are the ones still being read and written.
pub const KEEP_BYTES: u64 = 32 * 1024 * 1024;

/// How often the file's length is looked at.
const EVERY: Duration = Duration::from_millis(250);

/// Where releasing has reached in a file of `len` bytes: everything before the returned
/// offset has been released, or was there at start.
#[derive(Debug)]
struct Releaser {
    done: u64,
}

impl Releaser {
    fn starting_at(len: u64) -> Self {
        Self {
            done: len.saturating_sub(KEEP_BYTES),
        }
    }

    /// The range to release now that the file is `len` bytes long, if any.
    fn next(&mut self, len: u64) -> Option<(u64, u64)> {
        let upto = len.saturating_sub(KEEP_BYTES);
        (upto > self.done).then(|| {
            let range = (self.done, upto - self.done);
            self.done = upto;
            range
        })
    }
}

/// A descriptor of the database file at `path`, opened once per process and never
/// closed. SQLite locks the database file with POSIX advisory locks, and closing *any*
/// descriptor of a file drops every such lock the process holds on it (SQLite's "How To
/// Corrupt An SQLite Database File", 2.2): a descriptor of ours closed while the service's
/// connections are open would let another process (the CLI) take the database for
/// unused and delete the live WAL. One descriptor per database path for the life of the
/// process costs nothing of note.
pub(super) fn descriptor(path: &Path) -> std::io::Result<Arc<File>> {
    static OPEN: Mutex<Option<HashMap<PathBuf, Arc<File>>>> = Mutex::new(None);
    let key = path.canonicalize()?;
    let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
    let open = open.get_or_insert_with(HashMap::new);
    if let Some(f) = open.get(&key) {
        return Ok(f.clone());
    }
    let f = Arc::new(File::open(&key)?);
    open.insert(key, f.clone());
    Ok(f)
}

/// Release the older pages of the database file at `path` every [`EVERY`], for as long as
/// `alive` (the database) can be upgraded.
pub fn spawn_releaser<T: Send + Sync + 'static>(path: &Path, alive: Weak<T>) {
    let opened = descriptor(path).and_then(|f| {
        let len = f.metadata()?.len();
        Ok((f, len))
    });
    let (file, len) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            tracing::warn!(db = %path.display(), error = %e,
                "the database file cannot be opened to release its page cache");
            return;
        }
    };
    let mut releaser = Releaser::starting_at(len);
    let spawned = std::thread::Builder::new()
        .name("db-pagecache".into())
        .spawn(move || {
            while alive.upgrade().is_some() {
                std::thread::sleep(EVERY);
                let Ok(len) = file.metadata().map(|m| m.len()) else {
                    continue;
                };
                if let Some((offset, len)) = releaser.next(len) {
                    // SAFETY: advice about a byte range of a descriptor that stays open.
                    unsafe {
                        libc::posix_fadvise(
                            file.as_raw_fd(),
                            offset as libc::off_t,
                            len as libc::off_t,
                            libc::POSIX_FADV_DONTNEED,
                        );
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the thread that releases the page cache");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn each_range_behind_the_newest_32_mib_is_released_once_and_what_was_there_never() {
        let mut r = Releaser::starting_at(100 * MIB);
        assert_eq!(r.next(100 * MIB), None, "the start's file is left alone");
        assert_eq!(r.next(120 * MIB), Some((68 * MIB, 20 * MIB)));
        assert_eq!(r.next(120 * MIB), None);
        assert_eq!(r.next(121 * MIB), Some((88 * MIB, MIB)));
        let mut small = Releaser::starting_at(MIB);
        assert_eq!(small.next(30 * MIB), None, "a small database keeps all");
        assert_eq!(small.next(33 * MIB), Some((0, MIB)));
    }

    #[test]
    fn the_releaser_never_drops_the_database_locks_of_this_process() {
        // SQLite's locks are POSIX locks: closing any descriptor of the file would drop
        // them. Hold a read lock as a connection does, start and stop a releaser (its
        // thread sees the database gone and ends), and the lock must still be held: a
        // child process cannot take a write lock.
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let path = dir.path().join("db");
        std::fs::write(&path, b"x").unwrap();
        let mine = File::open(&path).unwrap();
        let lock = libc::flock {
            l_type: libc::F_RDLCK as libc::c_short,
            l_whence: libc::SEEK_SET as libc::c_short,
            l_start: 0,
            l_len: 0,
            l_pid: 0,
        };
        // SAFETY: fcntl on a descriptor we own with a valid flock.
        assert_eq!(
            unsafe { libc::fcntl(mine.as_raw_fd(), libc::F_SETLK, &lock) },
            0
        );
        let alive = Arc::new(());
        spawn_releaser(&path, Arc::downgrade(&alive));
        drop(alive);
        std::thread::sleep(EVERY * 3);
        let script = format!(
            "import fcntl, sys\nf = open({:?}, 'r+')\ntry:\n    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n    sys.exit(1)\nexcept OSError:\n    sys.exit(0)\n",
            path.display().to_string()
        );
        let status = std::process::Command::new("python3")
            .args(["-c", &script])
            .status()
            .unwrap();
        assert!(status.success(), "another process took the write lock");
        drop(mine);
    }

    #[test]
    fn pages_written_and_synced_leave_the_page_cache() {
        // The kernel's own count of a file's cached pages, read with mincore.
        fn cached_pages(path: &Path) -> usize {
            let file = std::fs::File::open(path).unwrap();
            let len = file.metadata().unwrap().len() as usize;
            // SAFETY: a read-only shared mapping of a file we hold open, unmapped below;
            // mincore writes one byte per page into `vec`.
            unsafe {
                let map = libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ,
                    libc::MAP_SHARED,
                    file.as_raw_fd(),
                    0,
                );
                assert_ne!(map, libc::MAP_FAILED);
                let mut vec = vec![0u8; len.div_ceil(4096)];
                assert_eq!(libc::mincore(map, len, vec.as_mut_ptr()), 0);
                libc::munmap(map, len);
                vec.iter().filter(|b| **b & 1 == 1).count()
            }
        }
        // On disk, not in a tmpfs /tmp (whose pages are not a cache and are never dropped).
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let path = dir.path().join("db");
        std::fs::write(&path, b"").unwrap();
        let alive = Arc::new(());
        spawn_releaser(&path, Arc::downgrade(&alive));
        // Written as SQLite's checkpoints write: a few MiB at a time, each synced.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        let chunk = vec![1u8; (4 * MIB) as usize];
        for _ in 0..(KEEP_BYTES + 16 * MIB) / (4 * MIB) {
            std::io::Write::write_all(&mut file, &chunk).unwrap();
            file.sync_data().unwrap();
            std::thread::sleep(Duration::from_millis(30));
        }
        let behind = (16 * MIB / 4096) as usize;
        let all = ((KEEP_BYTES + 16 * MIB) / 4096) as usize;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while cached_pages(&path) > all - behind {
            assert!(
                std::time::Instant::now() < deadline,
                "{} of {all} pages still cached",
                cached_pages(&path)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // The newest 32 MiB stay.
        assert!(cached_pages(&path) >= (KEEP_BYTES / 4096) as usize * 9 / 10);
    }
}
