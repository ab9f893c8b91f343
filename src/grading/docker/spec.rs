//! What a grading container is: its configuration (limits, labels, command) and the tar
//! archive it receives on stdin.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig};

use crate::grading::SandboxLimits;

/// Settings of the docker runner.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// The grader image (otter-grader + ipykernel).
    pub image: String,
    /// OCI runtime (e.g. `runsc`); `None` = the engine's default.
    pub runtime: Option<String>,
    /// Engine address; `None` = `DOCKER_HOST` or the local socket.
    pub docker_host: Option<String>,
    /// Cap on results.json.
    pub results_bytes: usize,
    /// Size of the `/tmp` tmpfs (the only writable place).
    pub tmpfs_bytes: u64,
    /// This service's instance id: every container is labelled with it, and only
    /// containers with it are swept as orphans.
    pub instance: String,
    /// What grades inside the container.
    pub evaluator: Evaluator,
    /// Warm containers kept waiting per shape (image and limits), trusted evaluator only;
    /// 0 = none (every job starts its own). See [`pool`].
    pub warm: usize,
    /// How long a warm container may wait for a job before it is removed.
    pub warm_idle: Duration,
}

/// What grades inside the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Evaluator {
    /// A bare `otter run`: the tests run in the student's kernel, so student code can
    /// change its own result (see `docs/security.md`).
    Otter,
    /// `otter_trusted` (`grader/`): the kernel runs as another user, the tests are
    /// evaluated outside it on plain data, and the result is authenticated.
    #[default]
    Trusted,
}

/// Label on every container we create (value `1`).
pub const LABEL: &str = "otter-service";
/// Label holding the grade job id, or [`WARM`] for a container waiting in the pool.
pub const JOB_LABEL: &str = "otter-service.job";
/// The job label of a warm container, which no job owns yet.
pub const WARM: &str = "warm";
/// Label holding the instance id of the service that made the container.
pub const INSTANCE_LABEL: &str = "otter-service.instance";
/// Marker before the base64 results.json on stdout.
pub const RESULTS_MARKER: &str = "OTTER-RESULTS ";

/// The container's program. The root filesystem is read-only and the job directory is a
/// size-limited tmpfs, which `docker cp` cannot reach, so the inputs arrive as a tar of
/// exactly `$OTTER_INPUT_BYTES` bytes on stdin (no bind mounts: a remote engine works the
/// same) and the results leave base64-encoded on stdout; stderr gets the log tail.
/// otter writes its results and log to `/results`, a tmpfs of its own, so a notebook that
/// fills `/tmp` cannot stop its own grade from being written.
const SCRIPT: &str = r#"set -eu
mkdir -p /tmp/job
cd /tmp/job
head -c "$OTTER_INPUT_BYTES" | tar -x
set +e
otter run -a autograder.zip -o /results submission.ipynb >/results/otter.log 2>&1
code=$?
tail -c "$OTTER_LOG_BYTES" /results/otter.log >&2
if [ -f /results/results.json ]; then printf '%s' "$OTTER_RESULTS_MARKER"; base64 -w0 /results/results.json; fi
exit $code
"#;

/// The container's program with the trusted evaluator (`grader/`, `otter_trusted`): it
/// runs as root with only the capabilities it needs to start the student's kernel as
/// uid 1000 with none (CHOWN, SETUID, SETGID, SETPCAP), to read the kernel's connection
/// file once the kernel owns it (DAC_READ_SEARCH) and to stop it (KILL). It starts the
/// kernel and imports the libraries first, then reads `<n>\n`, the n-byte tar and the
/// per-job key from stdin (root's stdin: the kernel cannot read it), so a warm container
/// waits there with no student code anywhere; the tests never leave its memory, and its
/// one result line carries an HMAC under the key.
fn trusted_command(limits: &SandboxLimits) -> Vec<String> {
    [
        "python",
        "-m",
        "otter_trusted",
        "--inputs-from-stdin",
        "--kernel-user",
        "1000:1000",
        "--log-limit",
        &limits.output_bytes.to_string(),
    ]
    .map(String::from)
    .to_vec()
}

/// What a container is for: one job, or waiting in the warm pool for one.
#[derive(Debug, Clone, Copy)]
pub enum Slot {
    Job { job_id: i64, submission_id: i64 },
    Warm,
}

/// Where the grader image keeps the `otter_trusted` package.
pub const TRUSTED_PATH: &str = "/opt/otter-trusted";

/// The tar archive with the autograder and the notebook.
pub fn input_archive(zip: &[u8], notebook: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in [("autograder.zip", zip), ("submission.ipynb", notebook)] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, name, data)?;
    }
    tar.into_inner()
}

/// A container's shape, the key of the warm pool: its create body as JSON with sorted
/// keys (the labels and tmpfs maps are hash maps, whose order differs between two maps).
pub fn shape(body: &ContainerCreateBody) -> String {
    serde_json::to_value(body)
        .expect("a create body serialises")
        .to_string()
}

/// What the trusted evaluator reads on stdin: `<n>\n`, the n-byte tar, the key in hex.
pub fn trusted_input(archive: &[u8], key: &[u8]) -> Vec<u8> {
    let mut input = format!("{}\n", archive.len()).into_bytes();
    input.extend_from_slice(archive);
    input.extend_from_slice(format!("{}\n", hex::encode(key)).as_bytes());
    input
}

/// The create body for a container with `limits`, for `slot`; `input_bytes` of tar on
/// stdin (the otter evaluator's script reads exactly that many).
pub fn container(
    cfg: &DockerConfig,
    limits: &SandboxLimits,
    slot: Slot,
    input_bytes: usize,
) -> ContainerCreateBody {
    let (job, submission) = match slot {
        Slot::Job {
            job_id,
            submission_id,
        } => (job_id.to_string(), submission_id.to_string()),
        Slot::Warm => (WARM.to_string(), String::new()),
    };
    let labels = HashMap::from([
        (LABEL.to_string(), "1".to_string()),
        (JOB_LABEL.to_string(), job),
        (INSTANCE_LABEL.to_string(), cfg.instance.clone()),
        ("otter-service.submission".to_string(), submission),
    ]);
    let tmpfs = HashMap::from([
        (
            "/tmp".to_string(),
            format!("rw,nosuid,nodev,size={},mode=1777", cfg.tmpfs_bytes),
        ),
        (
            "/results".to_string(),
            format!(
                "rw,nosuid,nodev,noexec,size={},mode=1777",
                cfg.results_bytes + 2 * limits.output_bytes + (1 << 20)
            ),
        ),
    ]);
    let host = HostConfig {
        memory: Some(limits.memory_bytes as i64),
        // Equal to memory: no swap.
        memory_swap: Some(limits.memory_bytes as i64),
        nano_cpus: Some((limits.cpus * 1e9) as i64),
        pids_limit: Some(limits.pids),
        network_mode: Some(if limits.network { "bridge" } else { "none" }.to_string()),
        readonly_rootfs: Some(true),
        tmpfs: Some(tmpfs),
        cap_drop: Some(vec!["ALL".to_string()]),
        cap_add: match cfg.evaluator {
            Evaluator::Otter => None,
            Evaluator::Trusted => Some(
                [
                    "CHOWN",
                    "DAC_READ_SEARCH",
                    "SETUID",
                    "SETGID",
                    "SETPCAP",
                    "KILL",
                ]
                .map(String::from)
                .to_vec(),
            ),
        },
        security_opt: Some(vec!["no-new-privileges".to_string()]),
        runtime: cfg.runtime.clone(),
        // What the container writes reaches us through the attach stream (capped there);
        // a logging driver would keep all of it on the engine's disk.
        log_config: Some(HostConfigLogConfig {
            typ: Some("none".into()),
            config: None,
        }),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(limits.image.clone().unwrap_or_else(|| cfg.image.clone())),
        cmd: Some(match cfg.evaluator {
            Evaluator::Otter => vec!["sh".into(), "-c".into(), SCRIPT.into()],
            Evaluator::Trusted => trusted_command(limits),
        }),
        env: Some(vec![
            format!("OTTER_INPUT_BYTES={input_bytes}"),
            format!("OTTER_LOG_BYTES={}", limits.output_bytes),
            format!("OTTER_RESULTS_MARKER={RESULTS_MARKER}"),
            "HOME=/tmp".into(),
            "PATH=/opt/otter/bin:/usr/bin:/bin".into(),
            "LANG=C.UTF-8".into(),
            format!("PYTHONPATH={TRUSTED_PATH}"),
        ]),
        user: Some(
            match cfg.evaluator {
                Evaluator::Otter => "1000:1000",
                Evaluator::Trusted => "0:0",
            }
            .into(),
        ),
        working_dir: Some("/tmp".into()),
        labels: Some(labels),
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        open_stdin: Some(true),
        stdin_once: Some(true),
        tty: Some(false),
        host_config: Some(host),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grading::SandboxLimits;

    fn config(evaluator: Evaluator) -> DockerConfig {
        DockerConfig {
            image: "img".into(),
            runtime: None,
            docker_host: None,
            results_bytes: 1000,
            tmpfs_bytes: 1 << 20,
            instance: "i1".into(),
            evaluator,
            warm: 0,
            warm_idle: std::time::Duration::from_secs(60),
        }
    }

    const JOB: Slot = Slot::Job {
        job_id: 7,
        submission_id: 3,
    };

    #[test]
    fn containers_are_locked_down() {
        let c = container(
            &config(Evaluator::Otter),
            &SandboxLimits::default(),
            JOB,
            10,
        );
        let h = c.host_config.unwrap();
        assert_eq!(h.network_mode.as_deref(), Some("none"));
        assert_eq!(h.memory, h.memory_swap);
        assert_eq!(h.readonly_rootfs, Some(true));
        assert_eq!(h.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(c.user.as_deref(), Some("1000:1000"));
        assert_eq!(h.log_config.unwrap().typ.as_deref(), Some("none"));
        let labels = c.labels.unwrap();
        assert_eq!(
            (labels[JOB_LABEL].as_str(), labels[INSTANCE_LABEL].as_str()),
            ("7", "i1")
        );
    }

    #[test]
    fn the_trusted_evaluator_starts_as_root_with_only_the_capabilities_it_needs() {
        let limits = SandboxLimits::default();
        let c = container(&config(Evaluator::Trusted), &limits, JOB, 10);
        assert_eq!(c.user.as_deref(), Some("0:0"));
        assert!(c.cmd.unwrap().join(" ").contains("--kernel-user 1000:1000"));
        let warm = container(&config(Evaluator::Trusted), &limits, Slot::Warm, 0);
        assert_eq!(
            shape(&warm),
            shape(&container(
                &config(Evaluator::Trusted),
                &limits,
                Slot::Warm,
                0
            )),
            "two warm bodies of the same limits have one shape"
        );
        let other = SandboxLimits {
            memory_bytes: limits.memory_bytes * 2,
            ..limits.clone()
        };
        assert_ne!(
            shape(&warm),
            shape(&container(
                &config(Evaluator::Trusted),
                &other,
                Slot::Warm,
                0
            ))
        );
        assert_eq!(warm.labels.unwrap()[JOB_LABEL], WARM);
        assert_eq!(
            warm.host_config,
            container(&config(Evaluator::Trusted), &limits, JOB, 0).host_config
        );
        let h = c.host_config.unwrap();
        assert_eq!(h.cap_drop, Some(vec!["ALL".to_string()]));
        let added = h.cap_add.unwrap();
        assert!(
            !added
                .iter()
                .any(|c| c == "SYS_ADMIN" || c == "DAC_OVERRIDE" || c == "SYS_PTRACE")
        );
        assert_eq!(h.security_opt, Some(vec!["no-new-privileges".to_string()]));
    }

    #[test]
    fn archive_holds_both_files() {
        let bytes = input_archive(b"zip", b"{}").unwrap();
        let mut a = tar::Archive::new(bytes.as_slice());
        let names: Vec<String> = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["autograder.zip", "submission.ipynb"]);
    }
}
