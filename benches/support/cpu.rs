//! Whose CPU a benchmark measured: the service's, the load generator's (this process) and
//! everything else on the machine, read from `/proc` and `getrusage`; and pinning of the
//! service and the generator to different cores, so the generator cannot take the
//! service's core.

use std::time::Instant;

/// Clock ticks per second of `/proc`'s CPU times.
fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// User + system CPU seconds of process `pid` (all its threads).
pub fn process_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces) follow the last ')';
    // the state letter is skipped by the parse, so utime and stime are the 11th and 12th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let ticks = f.get(10).copied().unwrap_or(0.0) + f.get(11).copied().unwrap_or(0.0);
    ticks / ticks_per_sec()
}

/// User + system CPU seconds of this process (the load generator), children excluded.
pub fn own_secs() -> f64 {
    // SAFETY: getrusage writes into the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(u.ru_utime) + secs(u.ru_stime)
}

/// CPU seconds the whole machine spent busy (all cores; idle and I/O wait excluded).
pub fn machine_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    let f: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let busy: f64 =
        f.iter().take(8).sum::<f64>() - f.get(3).unwrap_or(&0.0) - f.get(4).unwrap_or(&0.0);
    busy / ticks_per_sec()
}

/// The cores this process may run on.
pub fn allowed_cores() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is an empty set; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    if unsafe { libc::sched_getaffinity(0, size, &mut set) } != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

/// The set of `cores`, as sched_setaffinity takes it.
fn cpu_set(cores: &[usize]) -> libc::cpu_set_t {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET only writes inside it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &core in cores {
        unsafe { libc::CPU_SET(core, &mut set) };
    }
    set
}

/// Pin every thread of process `pid` to `cores` (threads it starts later inherit them).
/// False if any thread could not be pinned.
pub fn pin(pid: u32, cores: &[usize]) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    let set = cpu_set(cores);
    let mut all = true;
    for task in tasks.flatten() {
        let Some(tid) = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<i32>().ok())
        else {
            continue;
        };
        let size = std::mem::size_of::<libc::cpu_set_t>();
        all &= unsafe { libc::sched_setaffinity(tid, size, &set) } == 0;
    }
    all
}

/// Run `start` (which starts the service) with this thread on the last allowed core only,
/// when `apart` and the machine has two or more, so the service starts on the core
/// [`place_apart`] keeps it on and sizes itself for one core (its async runtime starts one
/// worker per core it may use), as a service deployed on a one-core allotment would.
/// Pinned only after it started, it would run two runtime workers time-sliced on one core.
pub fn start_on_service_core<T>(apart: bool, start: impl FnOnce() -> T) -> T {
    let cores = allowed_cores();
    let Some(&last) = cores.last().filter(|_| apart && cores.len() > 1) else {
        return start();
    };
    let set_thread = |cores: &[usize]| {
        // SAFETY: a valid set for the calling thread (tid 0).
        unsafe {
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &cpu_set(cores))
        }
    };
    set_thread(&[last]);
    let started = start();
    set_thread(&cores);
    started
}

/// CPU seconds read at one moment: the service's, the generator's, the machine's.
#[derive(Clone, Copy)]
pub struct Snapshot {
    at: Instant,
    service: f64,
    generator: f64,
    machine: f64,
}

impl Snapshot {
    pub fn take(service_pid: u32) -> Self {
        Self {
            at: Instant::now(),
            service: process_secs(service_pid),
            generator: own_secs(),
            machine: machine_secs(),
        }
    }

    /// Wall seconds, the service's and the generator's CPU seconds since `earlier`.
    #[allow(dead_code)] // the intake benchmark prints `report_since` instead
    pub fn spent_since(&self, earlier: &Snapshot) -> (f64, f64, f64) {
        (
            (self.at - earlier.at).as_secs_f64(),
            self.service - earlier.service,
            self.generator - earlier.generator,
        )
    }

    /// What was spent since `earlier`, per accepted submission (`n` of them).
    pub fn report_since(&self, earlier: &Snapshot, n: u64, placement: &str) -> String {
        let wall = (self.at - earlier.at).as_secs_f64();
        let service = self.service - earlier.service;
        let generator = self.generator - earlier.generator;
        let others = (self.machine - earlier.machine - service - generator).max(0.0);
        let per = |s: f64| 1e6 * s / n.max(1) as f64;
        format!(
            "CPU over {wall:.1} s ({placement}):\n  \
             service        {service:5.1} s = {:4.2} cores, {:4.0} us per accepted submission\n  \
             load generator {generator:5.1} s = {:4.2} cores, {:4.0} us per accepted submission\n  \
             everything else on the machine (JupyterHub, other work) {others:.1} s = {:.2} cores",
            service / wall,
            per(service),
            generator / wall,
            per(generator),
            others / wall,
        )
    }
}

/// Pin the service to one core and this process (the load generator) to the others,
/// when asked and the machine has two or more; says where each runs.
pub fn place_apart(service: u32, apart: bool) -> String {
    let cores = allowed_cores();
    let Some((&last, rest)) = cores
        .split_last()
        .filter(|(_, rest)| apart && !rest.is_empty())
    else {
        return format!(
            "not pinned: service and load generator share {} cores",
            cores.len()
        );
    };
    if pin(service, &[last]) && pin(std::process::id(), rest) {
        format!("service pinned to core {last}, load generator to cores {rest:?}")
    } else {
        // Undo a half-done pinning: both back on every core.
        pin(service, &cores);
        pin(std::process::id(), &cores);
        format!(
            "pinning refused: service and load generator share {} cores",
            cores.len()
        )
    }
}
