//! Several real grader hosts on one machine: each in a network namespace of its own
//! (`ip netns`, a veth pair on a test bridge), with a Docker engine of its own (own data
//! root, exec root, pid file and socket, the grader image loaded into it), running the
//! real `otter-service grader`. The service listens on the bridge's address; the hosts
//! reach it, and nothing else, over their veth. Addresses are link-local ones the tests
//! assign themselves (169.254.77.0/24). Everything is stopped by PID and removed when the
//! test binary exits; leftovers of a run that was killed are removed by the next.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::hub::stop_at_exit;

/// The service's address on the test bridge.
pub const SERVICE_ADDR: &str = "169.254.77.1";
const IMAGE: &str = "otter-grader:7.0.0";

/// One namespace with its engine.
pub struct NetHost {
    pub index: usize,
    pub ns: String,
    /// `unix://.../docker.sock` of its engine.
    pub docker_host: String,
    pub dir: PathBuf,
    /// The root side of its veth pair (down = the host is cut off).
    pub veth: String,
    dockerd: Mutex<Option<Child>>,
}

/// The namespaces of this test binary, made once.
pub struct Cluster {
    pub hosts: Vec<NetHost>,
}

/// What the exit handler removes.
static MADE: Mutex<Vec<Made>> = Mutex::new(Vec::new());

enum Made {
    Netns(String),
    Link(String),
    Engine { pid: u32, dir: PathBuf },
}

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn quiet(cmd: &str, args: &[&str]) {
    let _ = Command::new(cmd)
        .args(args)
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .status();
}

fn in_ns(ns: &str, args: &[&str]) {
    let mut all = vec!["netns", "exec", ns];
    all.extend_from_slice(args);
    run("ip", &all);
}

/// Our names carry the test binary's PID: `otn<pid>-<k>` namespaces, `otb<pid>` bridge.
fn tag() -> u32 {
    std::process::id()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Remove what a killed earlier run left: its engines (by the PID in their pid file),
/// namespaces, bridge and directories.
fn sweep_leftovers() {
    let listed = Command::new("ip").args(["netns", "list"]).output().unwrap();
    for line in String::from_utf8_lossy(&listed.stdout).lines() {
        let ns = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = ns.strip_prefix("otn") else {
            continue;
        };
        let owner: u32 = rest
            .split('-')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        if owner == 0 || alive(owner) {
            continue;
        }
        let dir = std::env::temp_dir().join(ns);
        stop_engine_in(&dir);
        quiet("ip", &["netns", "del", ns]);
        let _ = std::fs::remove_dir_all(&dir);
    }
    let links = Command::new("ip")
        .args(["-o", "link", "show", "type", "bridge"])
        .output()
        .unwrap();
    for line in String::from_utf8_lossy(&links.stdout).lines() {
        let name = line.split(':').nth(1).unwrap_or("").trim();
        if let Some(owner) = name.strip_prefix("otb").and_then(|p| p.parse::<u32>().ok())
            && !alive(owner)
        {
            quiet("ip", &["link", "del", name]);
        }
    }
}

/// SIGTERM the engine whose pid file is in `dir`, and wait for it (its mounts go with it).
fn stop_engine_in(dir: &Path) {
    let pid = std::fs::read_to_string(dir.join("dockerd.pid"))
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok());
    if let Some(pid) = pid {
        stop_pid(pid);
    }
}

fn stop_pid(pid: u32) {
    if !alive(pid) {
        return;
    }
    // SAFETY: signalling an engine this test binary (or a dead earlier run) started.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let start = Instant::now();
    while alive(pid) && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
}

extern "C" fn remove_all() {
    let Ok(mut made) = MADE.lock() else { return };
    for m in made.drain(..).rev() {
        match m {
            Made::Engine { pid, dir } => {
                stop_pid(pid);
                let _ = std::fs::remove_dir_all(&dir);
            }
            Made::Netns(ns) => quiet("ip", &["netns", "del", &ns]),
            Made::Link(l) => quiet("ip", &["link", "del", &l]),
        }
    }
}

fn remember(m: Made) {
    static REGISTERED: OnceLock<()> = OnceLock::new();
    REGISTERED.get_or_init(|| {
        // SAFETY: registering a plain extern "C" function.
        unsafe {
            libc::atexit(remove_all);
        }
    });
    MADE.lock().unwrap().push(m);
}

/// The cluster of this test binary: `n` hosts (made on first use; later callers get the
/// same ones, so tests that share it take [`crate::docker::ENGINE`]-like turns through
/// [`TURN`]).
pub fn cluster(n: usize) -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    let c = CLUSTER.get_or_init(|| make(n));
    assert!(c.hosts.len() >= n, "the cluster was made with fewer hosts");
    c
}

/// One test at a time uses the cluster.
pub static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn make(n: usize) -> Cluster {
    sweep_leftovers();
    let started = Instant::now();
    let bridge = format!("otb{}", tag());
    run("ip", &["link", "add", &bridge, "type", "bridge"]);
    remember(Made::Link(bridge.clone()));
    run(
        "ip",
        &["addr", "add", &format!("{SERVICE_ADDR}/24"), "dev", &bridge],
    );
    run("ip", &["link", "set", &bridge, "up"]);
    // The grader image, saved once and loaded into every engine.
    let image_tar = std::env::temp_dir().join(format!("otn{}-image.tar", tag()));
    run(
        "docker",
        &["save", "-o", image_tar.to_str().unwrap(), IMAGE],
    );
    let mut hosts = Vec::new();
    for k in 0..n {
        let ns = format!("otn{}-{k}", tag());
        let dir = std::env::temp_dir().join(&ns);
        std::fs::create_dir_all(&dir).unwrap();
        run("ip", &["netns", "add", &ns]);
        remember(Made::Netns(ns.clone()));
        let (root_side, ns_side) = (
            format!("otv{}{k}", tag() % 100_000),
            format!("oth{}{k}", tag() % 100_000),
        );
        run(
            "ip",
            &[
                "link", "add", &root_side, "type", "veth", "peer", "name", &ns_side,
            ],
        );
        remember(Made::Link(root_side.clone()));
        run("ip", &["link", "set", &root_side, "master", &bridge]);
        run("ip", &["link", "set", &root_side, "up"]);
        run("ip", &["link", "set", &ns_side, "netns", &ns]);
        let addr = format!("169.254.77.{}", 10 + k);
        in_ns(
            &ns,
            &["ip", "addr", "add", &format!("{addr}/24"), "dev", &ns_side],
        );
        in_ns(&ns, &["ip", "link", "set", &ns_side, "up"]);
        in_ns(&ns, &["ip", "link", "set", "lo", "up"]);
        let host = NetHost {
            index: k,
            docker_host: format!("unix://{}", dir.join("docker.sock").display()),
            ns,
            dir,
            veth: root_side,
            dockerd: Mutex::new(None),
        };
        host.start_engine();
        run(
            "docker",
            &[
                "-H",
                &host.docker_host,
                "load",
                "-q",
                "-i",
                image_tar.to_str().unwrap(),
            ],
        );
        hosts.push(host);
    }
    let _ = std::fs::remove_file(&image_tar);
    eprintln!(
        "cluster: {n} hosts with their engines in {:.1?}",
        started.elapsed()
    );
    Cluster { hosts }
}

impl NetHost {
    /// Start (or start again) this namespace's engine and wait until it answers.
    pub fn start_engine(&self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("dockerd.log"))
            .unwrap();
        // `ip netns exec` remounts /sys and loses the cgroup mounts dockerd needs:
        // entering only the network namespace keeps them (../shared/DESIGN.md).
        let child = Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{}", self.ns))
            .arg("dockerd")
            .args(["--data-root", self.dir.join("data").to_str().unwrap()])
            .args(["--exec-root", self.dir.join("exec").to_str().unwrap()])
            .args(["--pidfile", self.dir.join("dockerd.pid").to_str().unwrap()])
            .args(["-H", &self.docker_host])
            .args(["--bridge=none", "--iptables=false", "--ip6tables=false"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start dockerd in the namespace");
        remember(Made::Engine {
            pid: child.id(),
            dir: self.dir.clone(),
        });
        *self.dockerd.lock().unwrap() = Some(child);
        let start = Instant::now();
        loop {
            let ok = Command::new("docker")
                .args(["-H", &self.docker_host, "info", "--format", "{{.ID}}"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "dockerd in {} did not start; see {}/dockerd.log",
                self.ns,
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `kill -9` its engine: dockerd and its containerd (the containers' shims stay, as
    /// on a machine whose engine crashed, until the engine starts again and stops them).
    pub fn kill_engine(&self) {
        let pids = Command::new("ip")
            .args(["netns", "pids", &self.ns])
            .output()
            .unwrap();
        for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if ["containerd", "dockerd"].contains(&comm.trim()) {
                quiet("kill", &["-9", pid]);
            }
        }
        if let Some(mut c) = self.dockerd.lock().unwrap().take() {
            let _ = c.wait();
        }
    }

    /// Remove every container on its engine.
    pub fn remove_containers(&self) {
        let ids = Command::new("docker")
            .args(["-H", &self.docker_host, "ps", "-aq"])
            .output()
            .unwrap();
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            quiet("docker", &["-H", &self.docker_host, "rm", "-f", id]);
        }
    }

    /// Cut the host off the network (`up = false`) or bring it back.
    pub fn link(&self, up: bool) {
        run(
            "ip",
            &["link", "set", &self.veth, if up { "up" } else { "down" }],
        );
    }

    /// Start `otter-service grader` in this namespace against the service's host API on
    /// `port`, with `token` and `slots`.
    pub fn start_grader(&self, port: u16, token: &str, slots: usize) -> HostProcess {
        let settings = self
            .dir
            .join(format!("grader-{}.toml", rand::random::<u32>()));
        let instance = format!(
            "otter-nethost-{}-{:06x}",
            self.index,
            rand::random::<u32>() >> 8
        );
        std::fs::write(
            &settings,
            format!(
                "service_url = \"http://{SERVICE_ADDR}:{port}/\"\nallow_plain_http = true\n\
                 slots = {slots}\ncache_dir = \"{cache}\"\n[docker]\nhost = \"{docker}\"\n\
                 instance_id = \"{instance}\"\nwarm_containers = {slots}\n",
                cache = self.dir.join("cache").display(),
                docker = self.docker_host,
            ),
        )
        .unwrap();
        let log = self.dir.join("grader.log");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{}", self.ns))
            .arg(env!("CARGO_BIN_EXE_otter-service"))
            .args(["grader", "--settings"])
            .arg(&settings)
            .env("OTTER_GRADER_TOKEN", token)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start the grader host in its namespace");
        HostProcess::new(child, log)
    }
}

/// A grader host process in a namespace.
pub struct HostProcess {
    child: Option<Child>,
    pub log: PathBuf,
}

impl HostProcess {
    /// A started grader host whose output goes to `log`; stopped at exit at the latest.
    pub fn new(child: Child, log: PathBuf) -> Self {
        stop_at_exit(child.id());
        HostProcess {
            child: Some(child),
            log,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `kill -9`: no drain, no cleanup.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, waited for: the drain.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let _ = c.wait();
        }
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
