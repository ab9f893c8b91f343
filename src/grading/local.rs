//! The `local` runner: `otter run` in a subprocess from a configured Python environment.
//!
//! For development and tests, NOT a sandbox for untrusted code: the notebook runs as the
//! service's user with the service's filesystem. What it does bound: wall-clock time (the
//! whole process tree is killed), address space and file size (rlimits), and, where the
//! machine allows (root, or user namespaces), network and process lifetime: it runs in
//! fresh network and PID namespaces (`unshare`), so it has no network but loopback and
//! every process it starts dies with it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use super::{GradeOutcome, GradeRequest, Readiness, Runner, RunnerError, StudentFault, results};

/// Largest results.json read back.
const MAX_RESULTS_BYTES: u64 = 5 * 1024 * 1024;
/// Largest file the notebook may write (RLIMIT_FSIZE).
const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// How the subprocess is fenced in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isolation {
    /// `unshare --net --pid --fork --kill-child`: no network, the tree dies together.
    Namespaces,
    /// Only a process group (no root and no user namespaces here).
    ProcessGroup,
}

/// Runs `otter run` in a subprocess.
pub struct LocalRunner {
    otter: PathBuf,
    isolation: Isolation,
}

impl LocalRunner {
    /// A runner using `{python_env}/bin/otter`. Probes whether namespaces are available.
    pub async fn new(python_env: &Path) -> Self {
        let namespaces = Command::new("unshare")
            .args(["--net", "--pid", "--fork", "--kill-child", "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success());
        let isolation = if namespaces {
            Isolation::Namespaces
        } else {
            Isolation::ProcessGroup
        };
        tracing::warn!(
            ?isolation,
            "the local runner is for development: it is not a sandbox for untrusted code; \
             use the docker runner in production"
        );
        Self {
            otter: python_env.join("bin").join("otter"),
            isolation,
        }
    }

    fn command(&self, dir: &Path, req: &GradeRequest) -> Command {
        let otter_args = [
            "run",
            "-a",
            "autograder.zip",
            "-o",
            "out",
            "submission.ipynb",
        ];
        let mut cmd = match self.isolation {
            Isolation::Namespaces => {
                let mut c = Command::new("unshare");
                c.args(["--net", "--pid", "--fork", "--kill-child", "sh", "-c"]);
                // The kernel talks to otter over loopback, which starts down in a new netns.
                c.arg("ip link set lo up 2>/dev/null; exec \"$@\"")
                    .arg("sh");
                c.arg(&self.otter).args(otter_args);
                c
            }
            Isolation::ProcessGroup => {
                let mut c = Command::new(&self.otter);
                c.args(otter_args);
                c
            }
        };
        let bin = self.otter.parent().unwrap_or(Path::new("/"));
        let path = format!(
            "{}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            bin.display()
        );
        cmd.current_dir(dir)
            .env_clear()
            .env("PATH", path)
            .env("HOME", dir)
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let memory = req.limits.memory_bytes;
        // SAFETY: only async-signal-safe calls (setpgid, setrlimit) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::setpgid(0, 0);
                set_limit(libc::RLIMIT_AS, memory);
                set_limit(libc::RLIMIT_FSIZE, MAX_FILE_BYTES);
                set_limit(libc::RLIMIT_CORE, 0);
                Ok(())
            });
        }
        cmd
    }
}

fn set_limit(resource: libc::__rlimit_resource_t, value: u64) {
    let lim = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: plain syscall on a valid struct.
    unsafe {
        libc::setrlimit(resource, &lim);
    }
}

#[async_trait::async_trait]
impl Runner for LocalRunner {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn grade(&self, req: GradeRequest) -> Result<GradeOutcome, RunnerError> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("otter-job-{}-", req.job_id))
            .tempdir()
            .map_err(|e| RunnerError::Internal(format!("cannot make a temp dir: {e}")))?;
        tokio::fs::copy(&req.autograder_zip, dir.path().join("autograder.zip"))
            .await
            .map_err(|e| {
                RunnerError::Unavailable(format!(
                    "cannot read {}: {e}",
                    req.autograder_zip.display()
                ))
            })?;
        // otter refuses an output directory that does not exist.
        tokio::fs::create_dir(dir.path().join("out"))
            .await
            .map_err(|e| RunnerError::Internal(format!("cannot make the output dir: {e}")))?;
        tokio::fs::write(dir.path().join("submission.ipynb"), &req.notebook)
            .await
            .map_err(|e| RunnerError::Internal(format!("cannot write the notebook: {e}")))?;

        let mut child = self.command(dir.path(), &req).spawn().map_err(|e| {
            RunnerError::Unavailable(format!("cannot start {}: {e}", self.otter.display()))
        })?;
        req.started.mark();
        let pgid = child.id().map(|p| p as i32);
        let cap = req.limits.output_bytes;
        let out = tokio::spawn(read_tail(child.stdout.take(), cap));
        let err = tokio::spawn(read_tail(child.stderr.take(), cap));
        let waited = tokio::time::timeout(req.limits.time_limit, child.wait()).await;
        // Kill the whole group whatever happened: a finished otter may leave a kernel behind.
        if let Some(pgid) = pgid {
            // SAFETY: signalling our own child's process group.
            unsafe {
                libc::killpg(pgid, libc::SIGKILL);
            }
        }
        let _ = child.wait().await;
        let log = format!(
            "{}{}",
            out.await.unwrap_or_default(),
            err.await.unwrap_or_default()
        );
        let log_tail = tail(&log, cap);
        if waited.is_err() {
            return Ok(timeout_outcome(req.limits.time_limit, log_tail));
        }
        Ok(read_results(&dir.path().join("out/results.json"), log_tail).await)
    }

    async fn readiness(&self) -> Readiness {
        let ready = tokio::fs::metadata(&self.otter).await.is_ok();
        Readiness {
            ready,
            detail: if ready {
                format!("local runner: {}", self.otter.display())
            } else {
                format!(
                    "local runner: {} not found; run scripts/setup-python.sh",
                    self.otter.display()
                )
            },
        }
    }
}

/// The student-facing ending of a run killed at the time limit.
pub fn timeout_outcome(limit: Duration, log_tail: String) -> GradeOutcome {
    GradeOutcome::Failed {
        fault: StudentFault::Timeout,
        message: format!(
            "Grading stopped after the time limit of {} seconds. Look for a loop that never \
             ends or a cell that waits forever, then submit again.",
            limit.as_secs()
        ),
        log_tail,
        integrity_flags: Vec::new(),
    }
}

/// Parse results.json, or explain why there is none.
async fn read_results(path: &Path, log_tail: String) -> GradeOutcome {
    let bytes = match tokio::fs::metadata(path).await {
        Ok(m) if m.len() > MAX_RESULTS_BYTES => None,
        Ok(_) => tokio::fs::read(path).await.ok(),
        Err(_) => None,
    };
    match bytes.map(|b| results::parse(&b)) {
        Some(Ok(r)) => GradeOutcome::Graded(r),
        _ => no_results_outcome(&log_tail),
    }
}

/// The ending when otter wrote no usable results.
pub fn no_results_outcome(log_tail: &str) -> GradeOutcome {
    let memory = log_tail.contains("MemoryError") || log_tail.contains("Cannot allocate memory");
    let disk = log_tail.contains("No space left on device");
    let (fault, message) = if disk {
        (
            StudentFault::NoResults,
            "Your notebook filled the disk space grading allows, so it could not be graded. \
             Write less data to files, then submit again.",
        )
    } else if memory {
        (
            StudentFault::OutOfMemory,
            "Your notebook used more memory than grading allows, so it could not be graded. \
             Reduce the size of the data your code builds, then submit again.",
        )
    } else {
        (
            StudentFault::NoResults,
            "The autograder produced no results: the notebook's kernel died or the notebook \
             stopped it (for example sys.exit(), os._exit() or killing the kernel). Make sure \
             every cell runs from top to bottom with Kernel > Restart & Run All, then submit again.",
        )
    };
    GradeOutcome::Failed {
        fault,
        message: message.into(),
        log_tail: log_tail.to_string(),
        integrity_flags: Vec::new(),
    }
}

/// Read a stream to its end, keeping only the last `cap` bytes.
async fn read_tail(stream: Option<impl AsyncRead + Unpin>, cap: usize) -> String {
    let Some(mut s) = stream else {
        return String::new();
    };
    let mut kept: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = s.read(&mut buf).await {
        if n == 0 {
            break;
        }
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > 2 * cap {
            kept.drain(..kept.len() - cap);
        }
    }
    tail(&String::from_utf8_lossy(&kept), cap)
}

/// The last `cap` bytes of `s`, cut at a character boundary.
pub fn tail(s: &str, cap: usize) -> String {
    if s.len() <= cap {
        return s.to_string();
    }
    let mut start = s.len() - cap;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].to_string()
}

/// The last non-empty line of a log, at most 300 characters (a one-line reason).
pub fn last_line(log: &str) -> String {
    log.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no output")
        .chars()
        .take(300)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_end_on_a_char_boundary() {
        assert_eq!(tail("abcdef", 3), "def");
        assert_eq!(tail("aé", 1), "");
        assert_eq!(tail("ab", 10), "ab");
    }

    #[test]
    fn memory_errors_are_named_in_the_no_results_message() {
        let GradeOutcome::Failed { fault, .. } = no_results_outcome("...MemoryError...") else {
            panic!("expected a failure");
        };
        assert_eq!(fault, StudentFault::OutOfMemory);
    }
}
