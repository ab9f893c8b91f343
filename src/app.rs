//! Wiring: build every part from [`Settings`], start the workers and the HTTP server,
//! and stop them in order.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use crate::ags::{AuthStates, HttpAgsClient, TokenStore, ToolKeys};
use crate::course::CourseConfig;
use crate::db::states::JobKind;
use crate::db::{Db, jobs, now_ms, retention};
use crate::grading::docker::DockerRunner;
use crate::grading::local::LocalRunner;
use crate::grading::{Runner, SandboxLimits};
use crate::hosts::api::HostApi;
pub use crate::http::{App, AppState};
use crate::jobs::checks::AutograderChecks;
use crate::jobs::grade::{GradeJob, GradeJobConfig};
use crate::jobs::post_score::{AgsPoster as PostAgs, PostScoreJob};
use crate::jupyterhub::{Auth, HubApi, HubClient};
use crate::lti::{EdxOutcomesClient, LtiConfig, OutcomesClient};
use crate::queue::worker;
use crate::settings::Settings;

/// A built service, bound to its port, not yet serving.
pub struct Service {
    pub app: AppState,
    listener: TcpListener,
    /// The grader hosts' listener (`hosts.bind`), bound with the students'.
    hosts_listener: Option<TcpListener>,
    outcomes: Option<Arc<dyn OutcomesClient>>,
    /// LTI 1.3: the client and where launches are read from.
    ags: Option<(Arc<HttpAgsClient>, Arc<dyn HubApi>)>,
}

impl Service {
    /// Open the database, load the course config, pick the runner, bind the port.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let hub: Arc<dyn HubApi> = Arc::new(HubClient::new(
            &settings.hub.api_url,
            &settings.hub.client_id,
            settings.hub.api_token.clone(),
            &settings.hub.oauth_callback_url,
        ));
        let runner = select_runner(&settings).await?;
        let outcomes = outcomes_client(&settings)?;
        Self::build_with(settings, hub, runner, outcomes).await
    }

    /// Like [`Service::build`] with the outside peers given (tests swap them).
    pub async fn build_with(
        settings: Settings,
        hub: Arc<dyn HubApi>,
        runner: Arc<dyn Runner>,
        outcomes: Option<Arc<dyn OutcomesClient>>,
    ) -> anyhow::Result<Self> {
        let courses = CourseConfig::load(&settings.course.config, &settings.course.materials_root)?;
        for (c, s, a, details) in courses.assignments() {
            if !details.autograder_zip.is_file() {
                tracing::warn!(course = c, section = s, assignment = a,
                    zip = %details.autograder_zip.display(), "autograder zip is missing; submissions to it will be refused");
            }
        }
        let db = Db::open(&settings.database.path)
            .with_context(|| format!("opening database {}", settings.database.path.display()))?;
        if settings.database.release_page_cache {
            db.release_written_pages();
        }
        let tool_keys = tool_keys(&settings, &courses)?;
        let ags = match &tool_keys {
            Some(keys) => {
                let store: Arc<dyn TokenStore> = Arc::new(DbTokens(db.clone()));
                let client = HttpAgsClient::new(
                    keys.clone(),
                    Some(store),
                    Duration::from_secs(settings.lti13.timeout_secs),
                )
                .context("lti13")?;
                Some((Arc::new(client), hub.clone()))
            }
            None => None,
        };
        let requeued = db.write(|c| jobs::requeue_expired(c, now_ms())).await?;
        let depth = db.read(|c| jobs::depth(c, JobKind::Grade)).await?;
        if requeued > 0 {
            tracing::info!(requeued, "re-queued jobs whose worker stopped");
        }
        // At start no job is running in this process, so every container of ours is an orphan.
        let removed = runner.remove_orphans(&[]).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "could not remove leftover grading runs");
            0
        });
        if removed > 0 {
            tracing::info!(removed, "removed leftover grading runs");
        }
        let listener = TcpListener::bind(settings.server.bind)
            .await
            .with_context(|| format!("binding {}", settings.server.bind))?;
        let hosts_listener = match settings.hosts.bind {
            Some(bind) => Some(
                TcpListener::bind(bind)
                    .await
                    .with_context(|| format!("binding hosts.bind {bind}"))?,
            ),
            None => None,
        };
        let h = &settings.hub;
        let auth = Auth::new(
            hub,
            h.access_scopes.clone(),
            if h.cookie_secret.is_empty() {
                &h.api_token
            } else {
                &h.cookie_secret
            },
            Duration::from_secs(h.token_cache_secs),
            Duration::from_secs(h.session_secs),
        );
        let app = Arc::new(App {
            lti_enabled: outcomes.is_some(),
            tool_keys,
            settings,
            db,
            courses: Arc::new(courses),
            auth,
            runner,
            grade_notify: Arc::new(Notify::new()),
            queue_depth: AtomicU64::new(depth),
            metrics: Arc::new(crate::metrics::Metrics::default()),
            clock: crate::clock::Clock::system(),
        });
        restamp_calendars(&app).await?;
        Ok(Self {
            app,
            listener,
            hosts_listener,
            outcomes,
            ags,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map_or(0, |a| a.port())
    }

    /// Serve until `stop` resolves; then stop claiming, let running work finish up to the
    /// grace period, and return.
    pub async fn run(
        mut self,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (tx, rx) = watch::channel(false);
        let (mut workers, grade) = self.start_workers(rx.clone());
        if let Some(listener) = self.hosts_listener.take() {
            workers.push(self.serve_hosts(listener, grade, rx.clone())?);
        }
        workers.extend(self.start_xqueues(rx.clone())?);
        let webhooks =
            crate::platform::webhooks::Sender::new(self.app.clone()).map_err(anyhow::Error::msg)?;
        workers.push(tokio::spawn(webhooks.run(rx.clone())));
        workers.push(tokio::spawn(refresh_depth(self.app.clone(), rx.clone())));
        workers.push(tokio::spawn(prune_hourly(self.app.clone(), rx.clone())));
        workers.push(tokio::spawn(release_when_due(self.app.clone(), rx)));
        let doc = openapi(&self.app.settings.server.prefix).to_json()?;
        let router = crate::http::router(self.app.clone())
            .merge(crate::platform::api::router(self.app.clone()))
            .layer(axum::Extension(crate::http::OpenApiJson(Arc::new(doc))));
        tracing::info!(addr = %self.listener.local_addr()?, prefix = %self.app.settings.server.prefix,
            runner = self.app.runner.name(), lti = self.app.lti_enabled, "otter-service listening");
        let router = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
        axum::serve(self.listener, router)
            .with_graceful_shutdown(async move {
                stop.await;
                tracing::info!("shutting down: no new jobs are claimed");
                let _ = tx.send(true);
            })
            .await?;
        let grace = Duration::from_secs(self.app.settings.server.shutdown_grace_secs);
        let all = futures_util::future::join_all(workers.iter_mut());
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!(
                "running jobs did not finish in time; their leases will expire and they will run again"
            );
            workers.iter().for_each(|w| w.abort());
        }
        self.app.runner.shutdown().await;
        Ok(())
    }

    /// One pull loop and one answer loop per configured XQueue (docs/xqueue.md).
    fn start_xqueues(
        &self,
        stop: watch::Receiver<bool>,
    ) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
        let s = &self.app.settings;
        let mut handles = Vec::new();
        for q in &s.xqueue.queues {
            let runner = crate::xqueue::QueueRunner::from_settings(
                q,
                self.app.db.clone(),
                self.app.courses.clone(),
                s.grading.max_attempts,
                s.server.max_body_bytes,
                self.app.grade_notify.clone(),
                Duration::from_secs(s.grading.retry_base_secs),
            )
            .map_err(anyhow::Error::msg)?;
            tracing::info!(queue = %q.name, url = %q.url, queue_name = %q.queue_name,
                "pulling from XQueue");
            handles.extend(runner.spawn(stop.clone()));
        }
        Ok(handles)
    }

    /// The grader hosts' listener (`hosts.bind`), until `stop`.
    fn serve_hosts(
        &self,
        listener: TcpListener,
        grade: Arc<GradeJob>,
        stop: watch::Receiver<bool>,
    ) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        let api = Arc::new(HostApi::new(
            self.app.db.clone(),
            grade,
            self.app.grade_notify.clone(),
            self.app.settings.hosts.clone(),
            self.app.metrics.clone(),
            stop.clone(),
        ));
        tracing::info!(addr = %listener.local_addr()?, "grader hosts' API listening");
        let (router, _, _) = crate::hosts::api::router(api);
        let router = router
            .layer(tower_http::trace::TraceLayer::new_for_http())
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        let mut stop = stop;
        Ok(tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "the grader hosts' API stopped");
            }
        }))
    }

    fn start_workers(
        &self,
        stop: watch::Receiver<bool>,
    ) -> (Vec<tokio::task::JoinHandle<()>>, Arc<GradeJob>) {
        let s = &self.app.settings;
        let lease = Duration::from_secs(s.grading.lease_secs.max(3));
        let post_notify = Arc::new(Notify::new());
        let grade = Arc::new(GradeJob {
            db: self.app.db.clone(),
            runner: self.app.runner.clone(),
            courses: self.app.courses.clone(),
            checks: Arc::new(AutograderChecks::new(
                self.app.db.clone(),
                self.app.runner.clone(),
            )),
            config: GradeJobConfig {
                limits: default_limits(s),
                retry_base: Duration::from_secs(s.grading.retry_base_secs),
                lti_enabled: self.app.lti_enabled,
                ags_enabled: self.ags.is_some(),
                post_horizon: Duration::from_secs(s.lti.retry_horizon_secs),
            },
            post_notify: post_notify.clone(),
            metrics: self.app.metrics.clone(),
        });
        let pool = |workers| worker::PoolConfig {
            workers,
            lease,
            idle_poll: Duration::from_secs(2),
            metrics: self.app.metrics.clone(),
        };
        let db = self.app.db.clone();
        let mut handles = worker::spawn(
            db.clone(),
            grade.clone(),
            self.app.grade_notify.clone(),
            pool(s.grading.workers),
            stop.clone(),
        );
        if self.outcomes.is_some() || self.ags.is_some() {
            let ags = self.ags.as_ref().map(|(client, hub)| PostAgs {
                client: client.clone(),
                auth_states: Arc::new(HubAuthStates(hub.clone())),
                launch_wait: Duration::from_secs(s.lti.launch_wait_secs),
            });
            let post = Arc::new(PostScoreJob {
                db: db.clone(),
                client: self.outcomes.clone(),
                ags,
                courses: self.app.courses.clone(),
                default_policy: s.lti.post_score,
                retry_base: Duration::from_secs(s.grading.retry_base_secs),
                retry_max: Duration::from_secs(s.lti.retry_max_secs),
                // Twice the request timeout: a request we gave up on has been answered
                // (or dropped) by edX before the current score is sent again.
                settle: Duration::from_secs(2 * s.lti.timeout_secs),
                clock: self.app.clock.clone(),
            });
            handles.extend(worker::spawn(db, post, post_notify, pool(2), stop));
        }
        (handles, grade)
    }
}

/// Keep [`App::queue_depth`] close to the truth until shutdown.
async fn refresh_depth(app: AppState, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        if let Ok(depth) = app.db.read(|c| jobs::depth(c, JobKind::Grade)).await {
            app.queue_depth.store(depth, Ordering::Relaxed);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Stamp the submissions of every assignment whose calendar changed in the course config
/// since they were stamped (and queue posts for scores that moved): at start, before
/// anything is served.
async fn restamp_calendars(app: &AppState) -> anyhow::Result<()> {
    for (c, s, a, details) in app.courses.assignments() {
        let key = crate::db::calendar::AssignmentKey {
            course: c.into(),
            section: s.into(),
            assignment: a.into(),
        };
        let (app2, details) = (app.clone(), details.clone());
        let moved = app
            .db
            .write(move |conn| {
                let scope = app2.calendar_scope(&details, "course config", app2.clock.now());
                crate::calendar::staff::unhold_shown(conn, &scope, &key)?;
                crate::calendar::staff::restamp_assignment(conn, &scope, &key)
            })
            .await?;
        if moved > 0 {
            tracing::info!(
                course = c,
                section = s,
                assignment = a,
                moved,
                "the calendar changed: scores that count moved and are posted again"
            );
        }
    }
    Ok(())
}

/// Release held results whose `hold_results` time has come, every 5 seconds until
/// shutdown (a staff release needs no wait: it is done when asked).
async fn release_when_due(app: AppState, mut stop: watch::Receiver<bool>) {
    use crate::calendar::Results;
    let dated: Vec<_> = app
        .courses
        .assignments()
        .filter_map(|(c, s, a, d)| match d.calendar.as_deref()?.results {
            Results::HeldUntil(t) => {
                Some((c.to_string(), s.to_string(), a.to_string(), t.ms, d.clone()))
            }
            _ => None,
        })
        .collect();
    if dated.is_empty() {
        return;
    }
    let mut done = std::collections::HashSet::new();
    while !*stop.borrow() {
        let now = app.clock.now();
        for (c, s, a, at, details) in &dated {
            if now < *at || done.contains(&(c, s, a)) {
                continue;
            }
            let key = crate::db::calendar::AssignmentKey {
                course: c.clone(),
                section: s.clone(),
                assignment: a.clone(),
            };
            let (app2, details) = (app.clone(), details.clone());
            let released = app
                .db
                .write(move |conn| {
                    let by = "calendar (hold_results time)";
                    let scope = app2.calendar_scope(&details, by, now);
                    crate::calendar::staff::release(conn, &scope, &key)
                })
                .await;
            match released {
                Ok(n) => {
                    if let Some(n) = n {
                        tracing::info!(course = %c, section = %s, assignment = %a, students = n,
                            "held results released at their time");
                    }
                    done.insert((c, s, a));
                }
                Err(e) => tracing::warn!(error = %e, "releasing held results failed; trying again"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Apply `database.retention_days` at start and every hour until shutdown.
async fn prune_hourly(app: AppState, mut stop: watch::Receiver<bool>) {
    let days = app.settings.database.retention_days;
    if days == 0 {
        return;
    }
    while !*stop.borrow() {
        let cutoff = now_ms() - days as i64 * 86_400_000;
        match prune_all(&app.db, cutoff).await {
            Ok(p) if p != Default::default() => tracing::info!(?p, days, "pruned old submissions"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "pruning old submissions failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Prune in batches until nothing older than `cutoff` is left.
pub async fn prune_all(db: &Db, cutoff: i64) -> Result<retention::Pruned, crate::db::DbError> {
    let mut total = retention::Pruned::default();
    loop {
        let p = db
            .write(move |c| retention::prune(c, cutoff, now_ms()))
            .await?;
        if p == retention::Pruned::default() {
            return Ok(total);
        }
        total.notebooks += p.notebooks;
        total.outputs += p.outputs;
        total.events += p.events;
        total.webhooks += p.webhooks;
    }
}

/// Sandbox defaults from settings.
pub fn default_limits(s: &Settings) -> SandboxLimits {
    SandboxLimits {
        time_limit: Duration::from_secs(s.grading.time_limit_secs),
        memory_bytes: s.grading.memory_mb * 1024 * 1024,
        cpus: s.grading.cpus,
        pids: s.grading.pids,
        network: false,
        output_bytes: s.grading.output_bytes,
        image: None,
    }
}

/// The runner named by `grading.runner`. `auto` means `docker`: the local runner is not a
/// sandbox, so it runs only when named. A Docker engine that is down or lacks the image
/// at start is not an error: the service accepts and queues, `/healthz` says why nothing
/// is graded, and grading starts when the engine is ready.
async fn select_runner(s: &Settings) -> anyhow::Result<Arc<dyn Runner>> {
    let cfg = s.docker.runner_config(s.grading.workers, instance_id(s));
    if s.grading.runner == "local" {
        return Ok(Arc::new(LocalRunner::new(&s.grading.python_env).await));
    }
    let docker = DockerRunner::connect(cfg)
        .await
        .context("connecting to the Docker engine (docker.host or DOCKER_HOST)")?;
    let ready = docker.readiness().await;
    if !ready.ready {
        tracing::warn!(detail = %ready.detail,
            "the docker runner is not ready: submissions are accepted and wait until it is");
    }
    Ok(Arc::new(docker))
}

/// This service's name for its containers (`docker.instance_id`, else derived from the
/// host name and the database path): the start-up sweep removes only containers with it,
/// so two services sharing an engine keep each other's.
pub fn instance_id(s: &Settings) -> String {
    if let Some(id) = s.docker.instance_id.as_deref().filter(|i| !i.is_empty()) {
        return id.to_string();
    }
    use sha2::Digest;
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let db = std::path::absolute(&s.database.path).unwrap_or_else(|_| s.database.path.clone());
    let digest = sha2::Sha256::digest(format!("{}\n{}", host.trim(), db.display()));
    hex::encode(&digest[..6])
}

/// The LTI 1.3 tool keys when `lti13.private_key_file` is set; an error when a course
/// config section asks for LTI 1.3 without them (its scores could never be posted).
fn tool_keys(s: &Settings, courses: &CourseConfig) -> anyhow::Result<Option<Arc<ToolKeys>>> {
    let wants = courses
        .assignments()
        .find(|(_, _, _, a)| a.ags.is_some())
        .map(|(c, sec, _, _)| format!("{c}.{sec}"));
    let Some(file) = &s.lti13.private_key_file else {
        if let Some(at) = wants {
            anyhow::bail!(
                "course config section {at:?} posts with LTI 1.3 (lti13), but \
                 lti13.private_key_file is not set: make a key with \
                 `otter-service lti13 new-key FILE` (docs/lti13.md)"
            );
        }
        return Ok(None);
    };
    let keys = ToolKeys::load(file, &s.lti13.retired_key_files)
        .map_err(|e| anyhow::anyhow!("lti13.private_key_file: {e}"))?;
    tracing::info!(
        kid = keys.kid(),
        keys = keys.jwks().keys.len(),
        "LTI 1.3 tool keys loaded"
    );
    Ok(Some(Arc::new(keys)))
}

/// Platform access tokens kept in the database.
struct DbTokens(Db);

#[async_trait::async_trait]
impl TokenStore for DbTokens {
    async fn load(&self, key: &str) -> Option<(crate::secret::Secret, i64)> {
        let key = key.to_string();
        let found = self
            .0
            .read(move |c| crate::db::lti13::token(c, &key))
            .await
            .ok()??;
        Some((crate::secret::Secret::new(found.0), found.1))
    }

    async fn save(&self, key: &str, token: &crate::secret::Secret, expires_ms: i64) {
        let (key, token) = (key.to_string(), token.expose().to_string());
        let saved = self
            .0
            .write(move |c| crate::db::lti13::save_token(c, &key, &token, expires_ms))
            .await;
        if let Err(e) = saved {
            tracing::warn!(error = %e, "could not keep the platform's access token");
        }
    }
}

/// The Hub users' auth state, for LTI 1.3 launches.
struct HubAuthStates(Arc<dyn HubApi>);

#[async_trait::async_trait]
impl AuthStates for HubAuthStates {
    async fn auth_state(&self, hub_user: &str) -> Result<Option<serde_json::Value>, String> {
        self.0.auth_state(hub_user).await.map_err(|e| e.to_string())
    }
}

/// The edX client when LTI credentials are configured.
pub fn outcomes_client(s: &Settings) -> anyhow::Result<Option<Arc<dyn OutcomesClient>>> {
    if s.lti.consumer_key.is_empty() {
        tracing::info!("lti.consumer_key is empty: grades are stored but not posted to edX");
        return Ok(None);
    }
    let cfg = LtiConfig {
        edx_base_url: url::Url::parse(&s.lti.edx_url).context("lti.edx_url")?,
        consumer_key: s.lti.consumer_key.clone(),
        consumer_secret: s.lti.consumer_secret.clone(),
        timeout: Duration::from_secs(s.lti.timeout_secs),
    };
    Ok(Some(Arc::new(EdxOutcomesClient::new(cfg)?)))
}

/// The service's OpenAPI 3.1 document with every route under `prefix` (the students',
/// staff's and platforms' APIs, `/metrics`, `/healthz`) and the grader hosts' API (served
/// on its own listener, `hosts.bind`), each made from its handlers (`crate::openapi`).
pub fn openapi(prefix: &str) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::security::{
        ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
    };
    use utoipa::openapi::tag::TagBuilder;
    use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApiBuilder};
    let (_, mut paths, mut schemas) = crate::http::documented(prefix)
        .merge(crate::platform::api::documented(prefix))
        .into_parts();
    let (_, host_paths, host_schemas) = crate::hosts::api::documented().into_parts();
    paths.merge(host_paths);
    schemas.extend(host_schemas);
    schemas.sort_by(|a, b| a.0.cmp(&b.0));
    schemas.dedup_by(|a, b| a.0 == b.0);
    let bearer = |what: &str| {
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(what))
                .build(),
        )
    };
    let mut components = ComponentsBuilder::new()
        .security_scheme(
            "hub_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`token <a JupyterHub API token of the user>`",
            ))),
        )
        .security_scheme(
            "hub_session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::jupyterhub::SESSION_COOKIE,
                "The service's session, set by its OAuth login through JupyterHub",
            ))),
        )
        .security_scheme(
            "platform_token",
            bearer("A platform's token, printed once by `otter-service platforms add`"),
        )
        .security_scheme(
            "host_token",
            bearer("A grader host's token, printed once by `otter-service hosts add`"),
        );
    for (name, schema) in schemas {
        components = components.schema(name, schema);
    }
    let tag = |name: &str, what: &str| TagBuilder::new().name(name).description(Some(what)).build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("otter-service")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Grades Jupyter notebooks with otter-grader's tests in locked-down \
                     containers. Students submit through JupyterHub, other systems through \
                     the platform API (with signed completion webhooks: docs/platform-api.md), \
                     and grader hosts pull work through the host API, which is served on its \
                     own listener (`hosts.bind`), not under the service's prefix.",
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(components.build()))
        .tags(Some([
            tag("students", "What a JupyterHub user submits and reads"),
            tag(
                "staff",
                "Course staff's pages and actions (JupyterHub admins and staff groups)",
            ),
            tag(
                "platforms",
                "Registered platforms: submissions for their own users",
            ),
            tag("service", "Health, metrics, keys and this document"),
            tag(
                "hosts",
                "Grader hosts (served on `hosts.bind`, not under the prefix)",
            ),
        ]))
        .build()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_openapi_document_in_the_repository_is_the_one_the_code_makes() {
        let prefix = crate::settings::Settings::default().server.prefix;
        let made = super::openapi(&prefix).to_pretty_json().unwrap();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
        let kept = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            kept.trim_end() == made.trim_end(),
            "docs/openapi.json is not the document the code makes: run \
             `cargo run -q -- openapi > docs/openapi.json` and commit it"
        );
    }
}
