//! Typed settings, built once in `main` from (in increasing priority) the embedded
//! defaults, an optional TOML file, `OTTER_<SECTION>__<FIELD>` environment variables and
//! JupyterHub's `JUPYTERHUB_*` variables. Handlers and jobs never read the environment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::db::states::ScorePolicy;
use crate::secret::Secret;

/// All settings. Every field has a default, so an empty file (or none) is valid.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub hub: HubSettings,
    pub database: DatabaseSettings,
    pub course: CourseSettings,
    pub grading: GradingSettings,
    pub docker: DockerSettings,
    pub lti: LtiSettings,
    pub lti13: Lti13Settings,
    pub hosts: HostsSettings,
    pub xqueue: XqueueSettings,
    pub platforms: PlatformSettings,
}

/// The platform API (`{prefix}api/v1/`) and its webhooks (docs/platform-api.md). Platforms
/// themselves are registered in the database (`otter-service platforms add`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlatformSettings {
    /// Networks (CIDR, e.g. `10.0.0.0/8`, or one address) webhooks may be sent to even
    /// though they are private, loopback or link-local. Default: none: a webhook URL that
    /// names or resolves to such an address is refused (a platform could otherwise make
    /// the service call the cloud's metadata endpoint or its own neighbours).
    pub webhook_allow_networks: Vec<String>,
    /// Seconds one delivery attempt may take. Default 10.
    pub webhook_timeout_secs: u64,
    /// How long a delivery is retried before it is given up (staff can redeliver), in
    /// hours. Default 72.
    pub webhook_retry_hours: u64,
    /// First retry delay in seconds (doubled each attempt, with jitter, up to an hour;
    /// a `Retry-After` from the receiver is honoured up to an hour). Default 5.
    pub webhook_retry_base_secs: u64,
    /// Deliveries in flight at once per platform. Default 8.
    pub webhook_concurrency: usize,
}

impl Default for PlatformSettings {
    fn default() -> Self {
        Self {
            webhook_allow_networks: Vec::new(),
            webhook_timeout_secs: 10,
            webhook_retry_hours: 72,
            webhook_retry_base_secs: 5,
            webhook_concurrency: 8,
        }
    }
}

/// edX external graders: XQueues this service pulls notebooks from (docs/xqueue.md).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct XqueueSettings {
    /// One entry per queue (`[[xqueue.queues]]`). Default: none.
    pub queues: Vec<XqueueQueue>,
}

/// One XQueue to pull from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct XqueueQueue {
    /// Our name for it: submissions are `xqueue:<name>:<anonymous id>`.
    pub name: String,
    /// The XQueue API's base URL, e.g. `https://courses.edx.org/xqueue/` (edX's LMS, edx-
    /// submissions) or a legacy xqueue server's `.../xqueue/`.
    pub url: String,
    /// The queue's name at XQueue (the problem's `queuename`).
    pub queue_name: String,
    pub username: String,
    pub password: Secret,
    /// File holding the password (wins over `password`).
    pub password_file: Option<PathBuf>,
    /// Seconds between polls of an empty queue. Default 1.
    pub poll_secs: u64,
    /// The courses whose assignments this queue may grade (when the problem's
    /// grader_payload does not name the assignment, the notebook's metadata does, and it
    /// must be one of these). Empty: only what grader_payloads name.
    pub courses: Vec<String>,
    /// `fraction` (default: edx-submissions, edX's LMS today, multiplies it by the
    /// problem's points) or `points` (a legacy xqueue's LMS takes the score as points).
    pub score: String,
    /// HTTP timeout in seconds. Default 20.
    pub timeout_secs: u64,
}

impl Default for XqueueQueue {
    fn default() -> Self {
        Self {
            name: String::new(),
            url: String::new(),
            queue_name: String::new(),
            username: String::new(),
            password: Secret::default(),
            password_file: None,
            poll_secs: 1,
            courses: Vec::new(),
            score: "fraction".into(),
            timeout_secs: 20,
        }
    }
}

/// Posting scores with LTI 1.3 Assignment and Grade Services (docs/lti13.md). The
/// platforms are named in the course config (`lti13` of a section); these are the tool's
/// own keys. Retries, horizon and the score policy are `[lti]`'s.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Lti13Settings {
    /// The tool's RSA private key (PEM; `otter-service lti13 new-key FILE` makes one).
    /// Default: none (no LTI 1.3; a course config that asks for it stops the service).
    pub private_key_file: Option<PathBuf>,
    /// Keys being rotated out: still in the served key set, never used to sign.
    pub retired_key_files: Vec<PathBuf>,
    /// HTTP timeout for one token request or score post, in seconds. Default 20.
    pub timeout_secs: u64,
}

impl Default for Lti13Settings {
    fn default() -> Self {
        Self {
            private_key_file: None,
            retired_key_files: Vec::new(),
            timeout_secs: 20,
        }
    }
}

/// The grader hosts' door (docs/grader-hosts.md): a listener of its own, apart from the
/// students' (JupyterHub proxies the students' port; hosts connect to this one directly).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostsSettings {
    /// Address of the host API, e.g. `127.0.0.1:10102` behind a TLS proxy. Default: none
    /// (no host can connect; the service grades only with its own workers).
    pub bind: Option<SocketAddr>,
    /// Accept hosts' plain HTTP from addresses other than loopback. Off by default: put a
    /// TLS-terminating proxy on the same machine in front (its connections come from
    /// loopback). Only for a private network the operator trusts (the tests' namespaces).
    pub allow_plain_http: bool,
    /// A host's lease on a job in seconds; a host renews it every third of that. A host
    /// that misses it loses the job (it goes back to the queue) and its result is refused.
    /// Default 30.
    pub lease_secs: u64,
    /// Longest a claim waits for a job before answering "nothing" (long poll). Default 20.
    pub claim_wait_secs: u64,
    /// Largest result a host may send, in bytes. Default 16 MiB.
    pub max_result_bytes: usize,
}

impl Default for HostsSettings {
    fn default() -> Self {
        Self {
            bind: None,
            allow_plain_http: false,
            lease_secs: 30,
            claim_wait_secs: 20,
            max_result_bytes: 16 * 1024 * 1024,
        }
    }
}

/// A grader host's own settings (`otter-service grader --settings FILE`): which service
/// to pull from, with what token, and its Docker engine. Environment: `OTTER_GRADER_*`,
/// e.g. `OTTER_GRADER_TOKEN`, `OTTER_GRADER_DOCKER__HOST`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GraderSettings {
    /// The service's host API, e.g. `https://otter.example.edu:10102/`.
    pub service_url: String,
    /// This host's token (printed once by `otter-service hosts add`).
    pub token: Secret,
    /// File holding the token (a Kubernetes Secret mounted as a file); wins over `token`.
    pub token_file: Option<PathBuf>,
    /// Jobs graded at once. Default: number of CPU cores.
    pub slots: usize,
    /// Where fetched autograder zips are kept, by their SHA-256.
    pub cache_dir: PathBuf,
    /// Allow `http://` to a service that is not on loopback (a private network only).
    pub allow_plain_http: bool,
    /// Course grader images this host's engine has besides `docker.image` (built with
    /// `scripts/build-grader-image.sh --requirements ...`): it is given the assignments
    /// that name them.
    pub images: Vec<String>,
    /// The Docker engine and grader image, as for the service's own runner.
    pub docker: DockerSettings,
    /// Log lines as JSON (`json`) or text (`text`, default).
    pub log_format: String,
}

impl Default for GraderSettings {
    fn default() -> Self {
        Self {
            service_url: String::new(),
            token: Secret::default(),
            token_file: None,
            slots: std::thread::available_parallelism().map_or(2, |n| n.get()),
            cache_dir: std::env::temp_dir().join("otter-grader-cache"),
            allow_plain_http: false,
            images: Vec::new(),
            docker: DockerSettings::default(),
            log_format: "text".into(),
        }
    }
}

impl GraderSettings {
    /// Load from the defaults, `file` (if any) and `OTTER_GRADER_*`.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        let mut fig = Figment::from(Serialized::defaults(GraderSettings::default()));
        if let Some(path) = file {
            fig = fig.merge(Toml::file_exact(path));
        }
        let mut s: GraderSettings = fig
            // OTTER_GRADER_SETTINGS names the file (the command line's --settings).
            .merge(
                Env::prefixed("OTTER_GRADER_")
                    .ignore(&["settings"])
                    .split("__"),
            )
            .extract()
            .map_err(Box::new)?;
        if let Some(file) = &s.token_file {
            let token = std::fs::read_to_string(file).map_err(|e| SettingsError::Bad {
                name: "token_file",
                problem: format!("cannot read {}: {e}", file.display()),
            })?;
            s.token = Secret::new(token.trim());
        }
        let url = url::Url::parse(&s.service_url).map_err(|e| SettingsError::Bad {
            name: "service_url",
            problem: format!("{:?} is not a URL: {e}", s.service_url),
        })?;
        let loopback = match url.host() {
            Some(url::Host::Ipv4(a)) => a.is_loopback(),
            Some(url::Host::Ipv6(a)) => a.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        if url.scheme() == "http" && !loopback && !s.allow_plain_http {
            return Err(SettingsError::Bad {
                name: "service_url",
                problem: format!(
                    "{url} is plain HTTP to another machine: the token would cross the \
                     network readable; use https:// (or allow_plain_http on a private network)"
                ),
            });
        }
        if !["http", "https"].contains(&url.scheme()) {
            return Err(SettingsError::Bad {
                name: "service_url",
                problem: format!("{url} is not http:// or https://"),
            });
        }
        if s.token.expose().is_empty() {
            return Err(SettingsError::Bad {
                name: "token",
                problem: "no token (token, token_file or OTTER_GRADER_TOKEN): \
                          `otter-service hosts add NAME` prints one"
                    .into(),
            });
        }
        if s.slots == 0 {
            return Err(SettingsError::Bad {
                name: "slots",
                problem: "a grader host needs at least one slot".into(),
            });
        }
        if !["otter", "trusted"].contains(&s.docker.evaluator.as_str()) {
            return Err(SettingsError::Bad {
                name: "docker.evaluator",
                problem: format!("{:?} is not one of otter, trusted", s.docker.evaluator),
            });
        }
        Ok(s)
    }
}

/// The HTTP server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to listen on. Default `127.0.0.1:10101`; use `0.0.0.0:10101` in a container.
    /// Overridden by the port of `JUPYTERHUB_SERVICE_URL` when the Hub manages us.
    pub bind: SocketAddr,
    /// URL prefix of every route. Default `/services/otter_grade/` (JupyterHub's service
    /// prefix); `JUPYTERHUB_SERVICE_PREFIX` overrides it.
    pub prefix: String,
    /// Largest accepted request body in bytes. Default 10 MiB.
    pub max_body_bytes: usize,
    /// Grade jobs queued or running beyond which submissions get 503 + Retry-After.
    /// Default 10000.
    pub max_queue_depth: u64,
    /// Seconds to let running work finish on shutdown. Default 30.
    pub shutdown_grace_secs: u64,
    /// The URL students reach JupyterHub at, e.g. `https://hub.example.edu`. When set, its
    /// scheme decides the session cookie's `Secure` flag and it starts the status URLs
    /// the service hands out; unset, the proxy's `X-Forwarded-*` headers (or `Host`) do.
    pub public_url: Option<String>,
    /// Log format: `text` (default) or `json`.
    pub log_format: String,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:10101".parse().expect("valid default address"),
            prefix: "/services/otter_grade/".into(),
            max_body_bytes: 10 * 1024 * 1024,
            max_queue_depth: 10_000,
            shutdown_grace_secs: 30,
            public_url: None,
            log_format: "text".into(),
        }
    }
}

/// How we reach JupyterHub. Field defaults are overridden by the `JUPYTERHUB_*` variables
/// a Hub sets for a managed service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubSettings {
    /// Hub REST API, e.g. `http://127.0.0.1:8081/hub/api` (`JUPYTERHUB_API_URL`).
    pub api_url: String,
    /// The service's API token (`JUPYTERHUB_API_TOKEN`): OAuth client secret.
    pub api_token: Secret,
    /// Service name in the Hub's config. Default `otter_grade`.
    pub service_name: String,
    /// OAuth client id (`JUPYTERHUB_CLIENT_ID`). Default `service-{service_name}`.
    pub client_id: String,
    /// Browser-facing Hub prefix used for the OAuth authorize redirect, e.g. `/hub/` when
    /// the browser reaches us through the Hub's proxy (default), or a full URL
    /// `https://hub.example.org/hub/` (`JUPYTERHUB_HOST` + `JUPYTERHUB_BASE_URL`).
    pub browser_hub_prefix: String,
    /// OAuth redirect URI (`JUPYTERHUB_OAUTH_CALLBACK_URL`). Default `{prefix}oauth_callback`.
    pub oauth_callback_url: String,
    /// Scopes a user must hold (`JUPYTERHUB_OAUTH_ACCESS_SCOPES`, JSON list).
    /// Default `["access:services!service={service_name}"]`.
    pub access_scopes: Vec<String>,
    /// Key for signing the session cookie. Default: derived from `api_token`.
    pub cookie_secret: Secret,
    /// Seconds a token's user is cached after the Hub vouched for it. Default 60.
    pub token_cache_secs: u64,
    /// Seconds a session cookie stays valid. Default 8 hours.
    pub session_secs: u64,
}

impl Default for HubSettings {
    fn default() -> Self {
        Self {
            api_url: "http://127.0.0.1:8081/hub/api".into(),
            api_token: Secret::default(),
            service_name: "otter_grade".into(),
            client_id: String::new(),
            browser_hub_prefix: "/hub/".into(),
            oauth_callback_url: String::new(),
            access_scopes: Vec::new(),
            cookie_secret: Secret::default(),
            token_cache_secs: 60,
            session_secs: 8 * 3600,
        }
    }
}

/// The SQLite database.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Path of the database file. Default `otter-service.db`.
    pub path: PathBuf,
    /// Days after which a graded submission's notebook, its staff-only grading output, old
    /// events and delivered platform webhooks are deleted (scores, grades, edX states and
    /// failed webhooks are kept). 0 keeps everything. Default 365.
    pub retention_days: u64,
    /// Let the kernel reuse the page-cache pages of the database file's older part (all
    /// but its newest 32 MiB) once they are written, instead of growing the page cache
    /// with every notebook stored. On a virtual machine that hands free memory back to its
    /// host this saves a quarter of the intake's CPU (docs/benchmarks.md); what is
    /// released is read from the disk again when asked for (a notebook when it is
    /// graded). Default true.
    pub release_page_cache: bool,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            path: "otter-service.db".into(),
            retention_days: 365,
            release_page_cache: true,
        }
    }
}

/// Course configuration and autograder materials.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CourseSettings {
    /// otter-service's `course-config.json`. Default `course_config/course-config.json`.
    pub config: PathBuf,
    /// Directory holding `{subpath_to_zips}/{assignment}-autograder.zip`.
    /// Default `course_config/materials`.
    pub materials_root: PathBuf,
}

impl Default for CourseSettings {
    fn default() -> Self {
        Self {
            config: "course_config/course-config.json".into(),
            materials_root: "course_config/materials".into(),
        }
    }
}

/// The grading queue and sandbox defaults (per-assignment overrides in the course config).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GradingSettings {
    /// `docker`, `local`, or `auto` (default: docker when an engine answers, else local).
    pub runner: String,
    /// Concurrent grading runs. Default: number of CPU cores. 0 accepts and queues
    /// submissions without grading them (maintenance, intake benchmarks).
    pub workers: usize,
    /// Wall-clock limit per grade in seconds. Default 300.
    pub time_limit_secs: u64,
    /// Memory limit per grade in MiB. Default 2048.
    pub memory_mb: u64,
    /// CPU quota per grade in cores. Default 1.0.
    pub cpus: f64,
    /// Process limit per grade. Default 256.
    pub pids: i64,
    /// Bytes of grader output kept per run. Default 1 MiB.
    pub output_bytes: usize,
    /// Attempts before a grade job is `dead` (infrastructure faults only). Default 5.
    pub max_attempts: i64,
    /// Most submissions one student may have waiting or grading at once; more get 429
    /// with `Retry-After`. An identical resubmission of one still waiting is not counted
    /// (it is answered with that submission). Default 5.
    pub max_queued_per_student: u64,
    /// First retry delay in seconds; doubles each attempt. Default 10.
    pub retry_base_secs: u64,
    /// Lease length in seconds; renewed while grading. Default 60.
    pub lease_secs: u64,
    /// The `local` runner's Python environment: `otter` is `{python_env}/bin/otter`.
    /// Default `.venv-otter` (made by `scripts/setup-python.sh`).
    pub python_env: PathBuf,
}

impl Default for GradingSettings {
    fn default() -> Self {
        Self {
            runner: "auto".into(),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            time_limit_secs: 300,
            memory_mb: 2048,
            cpus: 1.0,
            pids: 256,
            output_bytes: 1024 * 1024,
            max_attempts: 5,
            max_queued_per_student: 5,
            retry_base_secs: 10,
            lease_secs: 60,
            python_env: default_python_env(),
        }
    }
}

/// Where `scripts/setup-python.sh` puts the otter environment unless told otherwise.
fn default_python_env() -> PathBuf {
    match std::env::var_os("HOME") {
        Some(home) => Path::new(&home).join(".cache/otter-service/otter-venv"),
        None => PathBuf::from(".venv-otter"),
    }
}

/// The `docker` runner.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DockerSettings {
    /// Grader image (built by `scripts/build-grader-image.sh`). Default `otter-grader:7.0.0`.
    pub image: String,
    /// OCI runtime, e.g. `runsc` for gVisor. Default: the engine's default (runc).
    pub runtime: Option<String>,
    /// Engine address; default: `DOCKER_HOST` or the local socket.
    pub host: Option<String>,
    /// Size of the scratch tmpfs in MiB. Default 256.
    pub tmpfs_mb: u64,
    /// Cap on results.json in bytes. Default 5 MiB.
    pub results_bytes: usize,
    /// Name of this service's containers on the engine (label `otter-service.instance`);
    /// the start-up sweep removes only its own. Default: derived from the host name and
    /// the database path, so a restarted service finds its leftovers and two services
    /// sharing an engine keep each other's containers.
    pub instance_id: Option<String>,
    /// What grades inside the container: `trusted` (default: the `grader/` evaluator, the
    /// student's kernel as another user, tests evaluated outside it on plain data, an
    /// authenticated result; needs a grader image built with it) or `otter` (a bare
    /// `otter run`, in which student code can set its own grade: docs/security.md).
    pub evaluator: String,
    /// Warm containers (trusted evaluator only): how many may wait, started and with
    /// the libraries imported, per image and limits. Default: `grading.workers`; 0 = none
    /// (every grade starts its own container). Each is used for one job, then removed.
    pub warm_containers: Option<usize>,
    /// A warm container that waits longer than this is removed (an idle service keeps
    /// none). Default 60.
    pub warm_idle_secs: u64,
}

impl Default for DockerSettings {
    fn default() -> Self {
        Self {
            image: "otter-grader:7.0.0".into(),
            runtime: None,
            host: None,
            tmpfs_mb: 256,
            results_bytes: 5 * 1024 * 1024,
            instance_id: None,
            evaluator: "trusted".into(),
            warm_containers: None,
            warm_idle_secs: 60,
        }
    }
}

impl DockerSettings {
    /// The docker runner's configuration: `warm_default` warm containers unless
    /// `warm_containers` says, its containers named `instance`.
    pub fn runner_config(
        &self,
        warm_default: usize,
        instance: String,
    ) -> crate::grading::docker::DockerConfig {
        use crate::grading::docker::{DockerConfig, Evaluator};
        DockerConfig {
            image: self.image.clone(),
            runtime: self.runtime.clone(),
            docker_host: self.host.clone(),
            results_bytes: self.results_bytes,
            tmpfs_bytes: self.tmpfs_mb * 1024 * 1024,
            instance,
            evaluator: match self.evaluator.as_str() {
                "otter" => Evaluator::Otter,
                _ => Evaluator::Trusted,
            },
            warm: self.warm_containers.unwrap_or(warm_default),
            warm_idle: std::time::Duration::from_secs(self.warm_idle_secs.max(1)),
        }
    }
}

/// Posting scores to edX (LTI 1.1 Basic Outcomes). Off while `consumer_key` is empty.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LtiSettings {
    /// edX base URL. Default `https://courses.edx.org`.
    pub edx_url: String,
    /// LTI consumer key.
    pub consumer_key: String,
    /// LTI consumer secret (or use `consumer_secret_file`).
    pub consumer_secret: Secret,
    /// File holding the consumer secret (wins over `consumer_secret`).
    pub consumer_secret_file: Option<PathBuf>,
    /// `latest` (default: the newest submission's grade) or `best`: which grade of a
    /// student's assignment counts, for edX and the student's page.
    pub post_score: ScorePolicy,
    /// Seconds to keep retrying a post before it is `dead`. Default 86400 (a day).
    pub retry_horizon_secs: u64,
    /// HTTP timeout for one post in seconds. Default 20.
    pub timeout_secs: u64,
    /// Longest wait between two tries of a post, in seconds. Default 1800.
    pub retry_max_secs: u64,
    /// LTI 1.3: how often a post that waits for the student's first launch from the
    /// platform looks again, in seconds (within `retry_horizon_secs`). Default 300.
    pub launch_wait_secs: u64,
}

impl Default for LtiSettings {
    fn default() -> Self {
        Self {
            edx_url: "https://courses.edx.org".into(),
            consumer_key: String::new(),
            consumer_secret: Secret::default(),
            consumer_secret_file: None,
            post_score: ScorePolicy::Latest,
            retry_horizon_secs: 86_400,
            timeout_secs: 20,
            retry_max_secs: 1800,
            launch_wait_secs: 300,
        }
    }
}

/// Settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid settings: {0}")]
    Invalid(#[from] Box<figment::Error>),
    #[error("invalid setting {name}: {problem}")]
    Bad { name: &'static str, problem: String },
}

impl Settings {
    /// Load from the embedded defaults, `file` (if any), `OTTER_*` and `JUPYTERHUB_*`.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        Self::load_from(file, |k| std::env::var(k).ok())
    }

    /// Like [`Settings::load`] with an explicit environment (for tests).
    pub fn load_from(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = file {
            fig = fig.merge(Toml::file_exact(path));
        }
        let mut s: Settings = fig
            // Only OTTER_<SECTION>__<FIELD>: other OTTER_* variables (OTTER_CONFIG, the
            // scripts' OTTER_VENV...) are not settings.
            .merge(
                Env::prefixed("OTTER_")
                    .filter(|k| k.as_str().contains("__"))
                    .split("__"),
            )
            .extract()
            .map_err(Box::new)?;
        s.apply_jupyterhub_env(env)?;
        s.derive_defaults()?;
        Ok(s)
    }

    /// Honour what a Hub sets for a managed service.
    fn apply_jupyterhub_env(
        &mut self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(), SettingsError> {
        let hub = &mut self.hub;
        if let Some(v) = env("JUPYTERHUB_API_URL") {
            hub.api_url = v;
        }
        if let Some(v) = env("JUPYTERHUB_API_TOKEN") {
            hub.api_token = Secret::new(v);
        }
        if let Some(v) = env("JUPYTERHUB_SERVICE_NAME") {
            hub.service_name = v;
        }
        if let Some(v) = env("JUPYTERHUB_CLIENT_ID") {
            hub.client_id = v;
        }
        if let Some(v) = env("JUPYTERHUB_OAUTH_CALLBACK_URL") {
            hub.oauth_callback_url = v;
        }
        if let Some(base) = env("JUPYTERHUB_BASE_URL") {
            let host = env("JUPYTERHUB_HOST").unwrap_or_default();
            hub.browser_hub_prefix = format!("{host}{}hub/", with_slashes(&base));
        }
        if let Some(v) = env("JUPYTERHUB_OAUTH_ACCESS_SCOPES") {
            hub.access_scopes = serde_json::from_str(&v).map_err(|e| SettingsError::Bad {
                name: "JUPYTERHUB_OAUTH_ACCESS_SCOPES",
                problem: format!("not a JSON list of strings: {e}"),
            })?;
        }
        if let Some(v) = env("JUPYTERHUB_SERVICE_PREFIX") {
            self.server.prefix = v;
        }
        if let Some(v) = env("JUPYTERHUB_SERVICE_URL") {
            let url = url::Url::parse(&v).map_err(|e| SettingsError::Bad {
                name: "JUPYTERHUB_SERVICE_URL",
                problem: e.to_string(),
            })?;
            if let Some(port) = url.port_or_known_default() {
                self.server.bind.set_port(port);
            }
        }
        Ok(())
    }

    /// Fill the defaults that depend on other fields, and check values.
    fn derive_defaults(&mut self) -> Result<(), SettingsError> {
        self.server.prefix = with_slashes(&self.server.prefix);
        let hub = &mut self.hub;
        if hub.client_id.is_empty() {
            hub.client_id = format!("service-{}", hub.service_name);
        }
        if hub.oauth_callback_url.is_empty() {
            hub.oauth_callback_url = format!("{}oauth_callback", self.server.prefix);
        }
        if hub.access_scopes.is_empty() {
            hub.access_scopes = vec![format!("access:services!service={}", hub.service_name)];
        }
        hub.browser_hub_prefix = with_slashes(&hub.browser_hub_prefix);
        if !["auto", "local", "docker"].contains(&self.grading.runner.as_str()) {
            return Err(SettingsError::Bad {
                name: "grading.runner",
                problem: format!(
                    "{:?} is not one of auto, local, docker",
                    self.grading.runner
                ),
            });
        }
        if !["otter", "trusted"].contains(&self.docker.evaluator.as_str()) {
            return Err(SettingsError::Bad {
                name: "docker.evaluator",
                problem: format!("{:?} is not one of otter, trusted", self.docker.evaluator),
            });
        }
        for q in &mut self.xqueue.queues {
            let bad = |problem: String| SettingsError::Bad {
                name: "xqueue.queues",
                problem,
            };
            if q.name.is_empty()
                || q.name.contains(':')
                || q.url.is_empty()
                || q.queue_name.is_empty()
            {
                return Err(bad(format!(
                    "queue {:?}: name (without ':'), url and queue_name are required",
                    q.name
                )));
            }
            if !["fraction", "points"].contains(&q.score.as_str()) {
                return Err(bad(format!(
                    "queue {:?}: score {:?} is not one of fraction, points",
                    q.name, q.score
                )));
            }
            if let Some(file) = &q.password_file {
                let pw = std::fs::read_to_string(file).map_err(|e| {
                    bad(format!(
                        "queue {:?}: cannot read {}: {e}",
                        q.name,
                        file.display()
                    ))
                })?;
                q.password = Secret::new(pw.trim());
            }
        }
        if let Some(file) = &self.lti.consumer_secret_file {
            let secret = std::fs::read_to_string(file).map_err(|e| SettingsError::Bad {
                name: "lti.consumer_secret_file",
                problem: format!("cannot read {}: {e}", file.display()),
            })?;
            self.lti.consumer_secret = Secret::new(secret.trim());
        }
        Ok(())
    }
}

/// `/a/b` -> `/a/b/`; `a` -> `/a/`; full URLs keep their scheme and host.
fn with_slashes(p: &str) -> String {
    let mut s = p.trim().to_string();
    if !s.starts_with('/') && !s.contains("://") {
        s.insert(0, '/');
    }
    if !s.ends_with('/') {
        s.push('/');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(env: &[(&str, &str)]) -> Settings {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::load_from(None, |k| env.get(k).cloned()).unwrap()
    }

    #[test]
    fn defaults_are_complete() {
        let s = load(&[]);
        assert_eq!(s.server.prefix, "/services/otter_grade/");
        assert_eq!(s.hub.client_id, "service-otter_grade");
        assert_eq!(
            s.hub.oauth_callback_url,
            "/services/otter_grade/oauth_callback"
        );
        assert_eq!(
            s.hub.access_scopes,
            vec!["access:services!service=otter_grade"]
        );
    }

    #[test]
    fn jupyterhub_managed_service_variables_win() {
        let s = load(&[
            ("JUPYTERHUB_API_URL", "http://hub:8081/hub/api"),
            ("JUPYTERHUB_API_TOKEN", "tok"),
            ("JUPYTERHUB_SERVICE_PREFIX", "/services/grader"),
            ("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10555"),
            (
                "JUPYTERHUB_OAUTH_ACCESS_SCOPES",
                r#"["access:services!service=grader"]"#,
            ),
            ("JUPYTERHUB_BASE_URL", "/"),
        ]);
        assert_eq!(s.server.prefix, "/services/grader/");
        assert_eq!(s.server.bind.port(), 10555);
        assert_eq!(s.hub.api_token.expose(), "tok");
        assert_eq!(s.hub.access_scopes, vec!["access:services!service=grader"]);
        assert_eq!(s.hub.browser_hub_prefix, "/hub/");
        assert!(!format!("{s:?}").contains("tok\""));
    }

    #[test]
    fn bad_scope_list_is_named() {
        let err = Settings::load_from(None, |k| {
            (k == "JUPYTERHUB_OAUTH_ACCESS_SCOPES").then(|| "nope".to_string())
        })
        .unwrap_err();
        assert!(err.to_string().contains("JUPYTERHUB_OAUTH_ACCESS_SCOPES"));
    }
}

#[cfg(test)]
mod unknown_keys {
    use super::*;

    #[test]
    fn a_misspelt_key_in_the_file_is_named_with_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("otter.toml");
        std::fs::write(&file, "[grading]\ntime_limit = 30\n").unwrap();
        let e = Settings::load_from(Some(&file), |_| None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("time_limit"), "{e}");
        assert!(e.contains("otter.toml"), "{e}");
    }
}

#[cfg(test)]
mod example_file {
    use super::*;

    #[test]
    fn the_annotated_example_is_a_valid_settings_file_with_the_defaults() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("deployment/otter.example.toml");
        let from_file = Settings::load_from(Some(&file), |_| None).expect("example loads");
        let defaults = Settings::load_from(None, |_| None).unwrap();
        assert_eq!(
            serde_json::to_value(&from_file.grading).unwrap(),
            serde_json::to_value(&defaults.grading).unwrap(),
            "the example's [grading] values are the defaults"
        );
        assert_eq!(
            from_file.database.retention_days,
            defaults.database.retention_days
        );
        assert_eq!(from_file.lti.post_score, defaults.lti.post_score);
    }
}

#[cfg(test)]
mod grader_tests {
    use super::*;

    fn load(toml: &str) -> Result<GraderSettings, String> {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("grader.toml");
        std::fs::write(&f, toml).unwrap();
        GraderSettings::load(Some(&f)).map_err(|e| e.to_string())
    }

    #[test]
    fn a_grader_host_needs_a_token_and_tls_to_another_machine() {
        let ok = load("service_url = \"http://127.0.0.1:10102/\"\ntoken = \"oth_x\"\nslots = 2\n")
            .unwrap();
        assert_eq!((ok.slots, ok.token.expose()), (2, "oth_x"));
        let e = load("service_url = \"http://127.0.0.1:10102/\"\n").unwrap_err();
        assert!(e.contains("hosts add"), "{e}");
        let e =
            load("service_url = \"http://otter.example.edu:10102/\"\ntoken = \"t\"\n").unwrap_err();
        assert!(e.contains("plain HTTP to another machine"), "{e}");
        load("service_url = \"https://otter.example.edu/\"\ntoken = \"t\"\n").unwrap();
        load("service_url = \"http://10.0.0.2/\"\ntoken = \"t\"\nallow_plain_http = true\n")
            .unwrap();
        let e = load("service_url = \"ftp://x/\"\ntoken = \"t\"\n").unwrap_err();
        assert!(e.contains("not http"), "{e}");
        let e = load("service_url = \"https://x/\"\ntoken = \"t\"\nslotz = 2\n").unwrap_err();
        assert!(e.contains("slotz"), "{e}");
    }
}
