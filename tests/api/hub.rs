//! A real JupyterHub (DummyAuthenticator) on 127.0.0.1, started once per test binary.
//!
//! Our service is registered as an *external* service named `otter_grade` at a port
//! reserved here; [`TestHub::start`] starts one instance of the real `otter-service` binary
//! on that port first (JupyterHub 6 waits for external services), so requests through the
//! Hub's proxy reach it. Other tests start their own in-process service and only use the
//! Hub to check tokens.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::json;

use super::helpers::{ServiceProcess, http_200};

pub const SERVICE_TOKEN: &str = "otter-test-service-token-0123456789";
const ADMIN_TOKEN: &str = "otter-test-admin-token-0123456789";
pub const PASSWORD: &str = "test-password";
/// The test Hubs' admin user.
pub const ADMIN_USER: &str = "ada";

/// The Hub and the service registered with it.
pub struct TestHub {
    pub hub_url: String,
    pub api_url: String,
    /// Kept alive (and stopped at exit) for as long as the Hub runs.
    pub service: ServiceProcess,
    /// The jupyterhub process (stopped by PID at exit).
    _process: Mutex<Child>,
    pub dir: PathBuf,
}

/// What a Hub of one's own adds to the shared Hub's setup.
#[derive(Default)]
pub struct HubSetup {
    /// Rewrites the registered service's settings file.
    pub service_toml: Option<Box<dyn Fn(String) -> String>>,
    /// Appended to `jupyterhub_config.py`.
    pub hub_config: String,
}

/// PIDs to stop when the test binary exits (statics are never dropped).
static PIDS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

extern "C" fn stop_all() {
    if let Ok(pids) = PIDS.lock() {
        for pid in pids.iter().rev() {
            // SAFETY: signalling processes we started.
            unsafe {
                libc::kill(*pid as i32, libc::SIGTERM);
            }
        }
    }
}

/// Remember a child to stop at exit.
pub fn stop_at_exit(pid: u32) {
    static REGISTERED: OnceLock<()> = OnceLock::new();
    REGISTERED.get_or_init(|| {
        // SAFETY: registering a plain extern "C" function.
        unsafe {
            libc::atexit(stop_all);
        }
    });
    PIDS.lock().unwrap().push(pid);
}

/// Forget a child that has ended (its pid may be reused by someone else's process).
fn forget_at_exit(pid: u32) {
    PIDS.lock().unwrap().retain(|p| *p != pid);
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn hub_venv() -> PathBuf {
    std::env::var_os("OTTER_HUB_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/otter-service/hub-venv")
        })
}

/// The shared Hub, started on first use.
pub fn hub() -> &'static TestHub {
    static HUB: OnceLock<TestHub> = OnceLock::new();
    HUB.get_or_init(|| TestHub::start(&HubSetup::default()))
}

impl TestHub {
    /// Start the Hub, again on new ports if it could not bind (a free port found by
    /// binding port 0 can be taken by another process before the Hub binds it).
    pub fn start(setup: &HubSetup) -> TestHub {
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start(setup) {
                Ok(hub) => return hub,
                Err(why) => {
                    eprintln!("test JupyterHub did not start, trying other ports: {why}");
                    last = why;
                }
            }
        }
        panic!("JupyterHub did not start three times: {last}");
    }

    fn try_start(setup: &HubSetup) -> Result<TestHub, String> {
        let venv = hub_venv();
        let jupyterhub = venv.join("bin/jupyterhub");
        let chp = venv.join("node_modules/.bin/configurable-http-proxy");
        assert!(
            jupyterhub.exists() && chp.exists(),
            "JupyterHub is not installed at {}: run scripts/setup-jupyterhub.sh",
            venv.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("otter-test-hub-")
            .tempdir()
            .unwrap()
            .keep();
        let (hub_port, api_port, proxy_port, service_port) =
            (free_port(), free_port(), free_port(), free_port());
        let api_url = format!("http://127.0.0.1:{api_port}/hub/api");
        // The service first: JupyterHub 6 waits up to 30 s for an external service.
        let service = ServiceProcess::start_for_hub(
            &dir,
            service_port,
            &api_url,
            SERVICE_TOKEN,
            setup.service_toml.as_deref(),
        );
        let config = format!(
            r#"
c = get_config()  # noqa
c.JupyterHub.bind_url = "http://127.0.0.1:{hub_port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_port}"
c.ConfigurableHTTPProxy.command = ["{chp}"]
c.ConfigurableHTTPProxy.pid_file = "{dir}/proxy.pid"
c.JupyterHub.db_url = "sqlite:///{dir}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{dir}/cookie_secret"
c.JupyterHub.pid_file = "{dir}/jupyterhub.pid"
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = "{PASSWORD}"
c.Authenticator.allow_all = True
# A Hub admin (staff of every course). Only the Hub's own config makes admins: an API
# token cannot grant admin without being an admin.
c.Authenticator.admin_users = {{"{ADMIN_USER}"}}
c.JupyterHub.services = [
    {{"name": "otter_grade", "url": "http://127.0.0.1:{service_port}",
      "api_token": "{SERVICE_TOKEN}", "oauth_no_confirm": True}},
    {{"name": "test-admin", "api_token": "{ADMIN_TOKEN}"}},
]
# As deployment/jupyterhub/ documents: users, and their servers' tokens (for the Submit
# button's server extension), may reach the service.
c.JupyterHub.load_roles = [
    {{"name": "user", "scopes": ["self", "access:services!service=otter_grade"]}},
    {{"name": "server", "scopes": ["users:activity!user", "access:servers!server",
                                 "access:services!service=otter_grade"]}},
    {{"name": "test-admin", "scopes": ["admin:users", "tokens", "list:users", "admin:groups",
                                      "groups"],
      "services": ["test-admin"]}},
    # Staff pages: the service reads users' admin flag and groups. LTI 1.3: it reads the
    # launch the Hub's authenticator kept as a user's auth state (docs/lti13.md).
    {{"name": "otter-reads-users", "scopes": ["read:users", "admin:auth_state"],
      "services": ["otter_grade"]}},
]
# Auth state (an LTI 1.3 launch's claims, as LTI13Authenticator keeps them), encrypted
# with a test key.
c.Authenticator.enable_auth_state = True
c.CryptKeeper.keys = [bytes(range(32))]
{extra}
"#,
            chp = chp.display(),
            dir = dir.display(),
            extra = setup
                .hub_config
                .replace("@HUB_URL@", &format!("http://127.0.0.1:{hub_port}")),
        );
        std::fs::write(dir.join("jupyterhub_config.py"), config).unwrap();
        let log = std::fs::File::create(dir.join("jupyterhub.log")).unwrap();
        let path = format!(
            "{}:{}",
            venv.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let child: Child = Command::new(&jupyterhub)
            .args(["-f", "jupyterhub_config.py"])
            .current_dir(&dir)
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start jupyterhub");
        stop_at_exit(child.id());
        let hub = TestHub {
            hub_url: format!("http://127.0.0.1:{hub_port}"),
            api_url,
            service,
            _process: Mutex::new(child),
            dir,
        };
        let ready = hub.wait_ready(Duration::from_secs(90));
        // The proxy outlives a SIGTERMed (or failed) hub unless stopped too.
        let proxy: Option<i32> = std::fs::read_to_string(hub.dir.join("proxy.pid"))
            .ok()
            .and_then(|pid| pid.trim().parse().ok());
        if let Err(why) = ready {
            let mut child = hub._process.lock().unwrap();
            let _ = child.kill();
            let _ = child.wait();
            forget_at_exit(child.id());
            drop(child);
            if let Some(pid) = proxy {
                // SAFETY: signalling the proxy this Hub started, by its pid file.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
            return Err(why);
        }
        if let Some(pid) = proxy {
            stop_at_exit(pid as u32);
        }
        Ok(hub)
    }

    /// Until the Hub answers; `Err` if its process ended or `limit` passed.
    fn wait_ready(&self, limit: Duration) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if http_200(&format!("{}/hub/api/", self.hub_url)) {
                return Ok(());
            }
            if let Ok(Some(status)) = self._process.lock().unwrap().try_wait() {
                return Err(format!(
                    "JupyterHub exited ({status}); see {}/jupyterhub.log",
                    self.dir.display()
                ));
            }
            if start.elapsed() > limit {
                return Err(format!(
                    "JupyterHub did not start within {limit:?}; see {}/jupyterhub.log",
                    self.dir.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Admin call to the Hub API.
    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: serde_json::Value,
    ) -> reqwest::Response {
        reqwest::Client::new()
            .request(method, format!("{}{path}", self.api_url))
            .header("Authorization", format!("token {ADMIN_TOKEN}"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Delete user `name` from the Hub (their tokens go with them).
    pub async fn delete_user(&self, name: &str) {
        let r = self
            .admin(
                reqwest::Method::DELETE,
                &format!("/users/{name}"),
                json!({}),
            )
            .await;
        assert!(r.status().is_success(), "delete user: {}", r.status());
    }

    /// Put `name` (created if needed) into Hub group `group` (created if needed).
    pub async fn add_to_group(&self, group: &str, name: &str) {
        let r = self
            .admin(reqwest::Method::POST, &format!("/users/{name}"), json!({}))
            .await;
        assert!(r.status().is_success() || r.status() == 409);
        let r = self
            .admin(
                reqwest::Method::POST,
                &format!("/groups/{group}"),
                json!({}),
            )
            .await;
        assert!(
            r.status().is_success() || r.status() == 409,
            "group: {}",
            r.status()
        );
        let r = self
            .admin(
                reqwest::Method::POST,
                &format!("/groups/{group}/users"),
                json!({"users": [name]}),
            )
            .await;
        assert!(r.status().is_success(), "add to group: {}", r.status());
    }

    /// Create user `name` unless the Hub has them.
    async fn ensure_user(&self, name: &str) {
        let r = self
            .admin(reqwest::Method::POST, &format!("/users/{name}"), json!({}))
            .await;
        assert!(
            r.status().is_success() || r.status() == 409,
            "create user: {}",
            r.status()
        );
    }

    /// Set `name`'s auth state as the Hub's authenticator would at login (created if
    /// needed): what LTI13Authenticator keeps of a verified launch.
    pub async fn set_auth_state(&self, name: &str, state: serde_json::Value) {
        self.ensure_user(name).await;
        let r = self
            .admin(
                reqwest::Method::PATCH,
                &format!("/users/{name}"),
                json!({"auth_state": state}),
            )
            .await;
        assert!(r.status().is_success(), "set auth state: {}", r.status());
    }

    /// Create `name` (if needed) and a token for them. `scopes: None` = the user's own
    /// permissions (which include the access scope, through the `user` role).
    pub async fn user_token(&self, name: &str, scopes: Option<&[&str]>) -> String {
        self.ensure_user(name).await;
        let body = match scopes {
            Some(s) => json!({"note": "otter test", "scopes": s}),
            None => json!({"note": "otter test"}),
        };
        let r = self
            .admin(
                reqwest::Method::POST,
                &format!("/users/{name}/tokens"),
                body,
            )
            .await;
        assert!(
            r.status().is_success(),
            "create token: {} {}",
            r.status(),
            r.text().await.unwrap()
        );
        let v: serde_json::Value = r.json().await.unwrap();
        v["token"].as_str().unwrap().to_string()
    }
}
