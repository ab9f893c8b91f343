//! Grader hosts on several real machines (tests/api/cluster.rs: network namespaces, each
//! with its own Docker engine): a burst spread over them, and the faults a pool of
//! machines has (a host and its engine killed, a host cut off past its lease, the service
//! restarted under the hosts' leases).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use otter_service::grading::docker::Evaluator;
use rusqlite::Connection;

use crate::cluster::{self, SERVICE_ADDR};
use crate::edx::{SECRET, StandIn};
use crate::helpers::{
    ServiceProcess, TestApp, cli, copy_of, sample, spawn_app_with, submit_to, wait_done,
};
use crate::hub::{free_port, hub};

const NOTEBOOKS: [&str; 3] = ["correct", "partial", "error"];

fn count(db: &Path, sql: &str) -> i64 {
    Connection::open(db)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

/// Per-question scores of each notebook with the service's own runner on this machine.
async fn expected() -> HashMap<&'static str, Vec<(String, f64)>> {
    let _shared = crate::docker::ENGINE.read().await;
    let mut want = HashMap::new();
    for name in NOTEBOOKS {
        let nb = sample(name).to_string().into_bytes();
        let o = crate::trusted::grade(Evaluator::Trusted, nb).await;
        want.insert(name, crate::trusted::per_question(&o));
    }
    want
}

fn add_host(db: &Path, name: &str) -> String {
    cli(db, &["hosts", "add", name]).trim().to_string()
}

/// `hosts list` as (name -> (state, in hand, graded)).
fn hosts(db: &Path) -> HashMap<String, (String, i64, i64)> {
    cli(db, &["hosts", "list"])
        .lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            (
                c[0].to_string(),
                (
                    c[1].to_string(),
                    c[3].parse().unwrap(),
                    c[4].parse().unwrap(),
                ),
            )
        })
        .collect()
}

/// The cluster of three namespaces with their engines (made on first use).
async fn up() -> &'static cluster::Cluster {
    tokio::task::spawn_blocking(|| cluster::cluster(3))
        .await
        .unwrap()
}

/// One grader host in each namespace of `c`, registered as `{prefix}{k}` with `slots`,
/// pulling from the host API on `port` of the service whose database is `db`.
fn pool(
    c: &cluster::Cluster,
    db: &Path,
    port: u16,
    prefix: &str,
    slots: usize,
) -> Vec<cluster::HostProcess> {
    c.hosts
        .iter()
        .map(|h| h.start_grader(port, &add_host(db, &format!("{prefix}{}", h.index)), slots))
        .collect()
}

/// The in-process service grading only through hosts, on the bridge's address.
async fn service(port: u16, lease_secs: u64, edx: Option<&StandIn>) -> TestApp {
    spawn_app_with(|s| {
        s.grading.workers = 0;
        s.hosts.bind = Some(format!("{SERVICE_ADDR}:{port}").parse().unwrap());
        s.hosts.allow_plain_http = true;
        s.hosts.lease_secs = lease_secs;
        if let Some(edx) = edx {
            crate::edx_posting::lti(s, edx, SECRET);
        }
    })
    .await
}

/// Students 0..n each submit `per` distinct copies, cycling through the notebooks.
async fn burst(
    app: &TestApp,
    prefix: &str,
    students: usize,
    per: usize,
) -> Vec<(String, String, &'static str, i64)> {
    let mut subs = Vec::new();
    for j in 0..per {
        for i in 0..students {
            let user = format!("{prefix}{i}");
            let token = hub().user_token(&user, None).await;
            let name = NOTEBOOKS[(i + j) % NOTEBOOKS.len()];
            let id = app.submit_ok(&token, &copy_of(&sample(name), j)).await;
            subs.push((user, token, name, id));
        }
    }
    subs
}

/// Every submission graded (not failed, not dead: nothing charged), exactly once, with
/// the scores the local runner gives.
async fn all_graded_once(
    app: &TestApp,
    subs: &[(String, String, &'static str, i64)],
    want: &HashMap<&'static str, Vec<(String, f64)>>,
    limit: Duration,
) {
    for (user, token, name, id) in subs {
        let v = app.wait_done(token, *id, limit).await;
        assert_eq!(v["state"], "graded", "{user} {name}: {v}");
        assert_eq!(
            &crate::trusted::question_scores(name, &v),
            &want[name],
            "{user} {name}"
        );
    }
    let n = subs.len() as i64;
    assert_eq!(
        count(&app.db_path, "SELECT COUNT(*) FROM grades"),
        n,
        "one grade each"
    );
    assert_eq!(
        count(
            &app.db_path,
            "SELECT COUNT(DISTINCT submission_id) FROM grades"
        ),
        n
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_from_ten_students_is_graded_once_each_over_three_hosts() {
    let _turn = cluster::TURN.lock().await;
    let want = expected().await;
    let c = up().await;
    let edx = StandIn::start(&[]);
    let port = free_port();
    let app = service(port, 30, Some(&edx)).await;
    let procs = pool(c, &app.db_path, port, "net", 2);
    let subs = burst(&app, "burst", 10, 6).await;
    assert_eq!(subs.len(), 60);
    all_graded_once(&app, &subs, &want, Duration::from_secs(900)).await;
    // Spread over every host.
    let spread = hosts(&app.db_path);
    for h in &c.hosts {
        let (_, _, graded) = spread[&format!("net{}", h.index)];
        assert!(graded > 0, "host net{} graded nothing: {spread:?}", h.index);
    }
    // edX (its own outcomes code) holds each student's counting score: their latest.
    for i in 0..10 {
        let (user, token, _, id) = subs
            .iter()
            .rev()
            .find(|s| s.0 == format!("burst{i}"))
            .unwrap();
        let v = crate::edx_posting::wait_post(&app.http, &app.url, token, *id, "posted").await;
        let fraction =
            v["grade"]["score"].as_f64().unwrap() / v["grade"]["max_score"].as_f64().unwrap();
        let held = edx.holds(user).await.unwrap_or(-1.0);
        assert!(
            (held - fraction).abs() < 1e-6,
            "{user}: edX holds {held}, counting {v}"
        );
    }
    for mut p in procs {
        p.stop();
    }
}

/// The host holding the most jobs, once hosts hold some.
async fn a_busy_host(db: &Path) -> String {
    let start = Instant::now();
    loop {
        let busy = hosts(db)
            .into_iter()
            .filter(|(_, (_, held, _))| *held > 0)
            .max_by_key(|(_, (_, held, _))| *held);
        if let Some((name, _)) = busy {
            return name;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no host took a job"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_and_its_engine_killed_mid_burst_lose_nothing_and_charge_nothing() {
    let _turn = cluster::TURN.lock().await;
    let want = expected().await;
    let c = up().await;
    let port = free_port();
    let app = service(port, 6, None).await;
    let mut procs = pool(c, &app.db_path, port, "kill", 2);
    let subs = burst(&app, "killed", 6, 3).await;
    let victim = a_busy_host(&app.db_path).await;
    let k: usize = victim.trim_start_matches("kill").parse().unwrap();
    let held = hosts(&app.db_path)[&victim].1;
    procs[k].kill9();
    c.hosts[k].kill_engine();
    all_graded_once(&app, &subs, &want, Duration::from_secs(600)).await;
    // What it held was graded elsewhere, in a later attempt on another host.
    let retaken = count(
        &app.db_path,
        &format!(
            "SELECT COUNT(*) FROM jobs WHERE kind = 'grade' AND attempts > 1 AND host != '{victim}'"
        ),
    );
    assert!(retaken >= held.min(1), "held {held}, retaken {retaken}");
    // Its engine comes back (stopping what ran under the killed one), left clean for the
    // next test.
    c.hosts[k].start_engine();
    c.hosts[k].remove_containers();
    for mut p in procs {
        p.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_cut_off_past_its_lease_has_its_late_results_refused() {
    let _turn = cluster::TURN.lock().await;
    let want = expected().await;
    let c = up().await;
    let port = free_port();
    let app = service(port, 3, None).await;
    let procs = pool(c, &app.db_path, port, "cut", 1);
    let subs = burst(&app, "cutoff", 4, 2).await;
    let victim = a_busy_host(&app.db_path).await;
    let k: usize = victim.trim_start_matches("cut").parse().unwrap();
    c.hosts[k].link(false);
    // Longer than its lease (3 s): the job is taken over by the others.
    tokio::time::sleep(Duration::from_secs(8)).await;
    c.hosts[k].link(true);
    all_graded_once(&app, &subs, &want, Duration::from_secs(600)).await;
    // The job it held was taken over; the cut host's result never became a grade.
    let retaken = count(&app.db_path, "SELECT COUNT(*) FROM jobs WHERE attempts > 1");
    assert!(retaken >= 1, "nothing was taken over from the cut host");
    let start = Instant::now();
    let told = |log: &str| {
        [
            "lease lost",
            "refused the result",
            "could not be sent before the lease ran out",
        ]
        .iter()
        .any(|w| log.contains(w))
    };
    while !told(&procs[k].log()) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{}",
            procs[k].log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        count(&app.db_path, "SELECT COUNT(*) FROM grades"),
        subs.len() as i64
    );
    for mut p in procs {
        p.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_restarted_under_the_hosts_leases_grades_each_once() {
    let _turn = cluster::TURN.lock().await;
    let want = expected().await;
    let c = up().await;
    let dir = tempfile::tempdir().unwrap();
    let (port, hosts_port) = (free_port(), free_port());
    let extra = format!(
        "workers = 0\n[hosts]\nbind = \"{SERVICE_ADDR}:{hosts_port}\"\nallow_plain_http = true\n\
         lease_secs = 30\n"
    );
    let toml = ServiceProcess::toml(dir.path(), port, &hub().api_url, "unused", &extra);
    let mut service = ServiceProcess::start(dir.path(), port, &toml);
    let procs = pool(c, &service.db_path, hosts_port, "rs", 2);
    let http = reqwest::Client::new();
    let mut subs = Vec::new();
    for i in 0..12 {
        let user = format!("restart{}", i % 4);
        let token = hub().user_token(&user, None).await;
        let name = NOTEBOOKS[i % 3];
        let id = submit_to(&http, &service.url(), &token, &copy_of(&sample(name), i)).await;
        subs.push((token, name, id));
    }
    a_busy_host(&service.db_path).await;
    let held: Vec<i64> = {
        let c = Connection::open(&service.db_path).unwrap();
        let mut q = c
            .prepare("SELECT id FROM jobs WHERE state = 'running' AND host IS NOT NULL")
            .unwrap();
        q.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    service.kill9();
    tokio::time::sleep(Duration::from_secs(2)).await;
    service.restart();
    for (token, name, id) in &subs {
        let v = wait_done(&http, &service.url(), token, *id, Duration::from_secs(600)).await;
        assert_eq!(v["state"], "graded", "{v}");
        assert_eq!(&crate::trusted::question_scores(name, &v), &want[name]);
    }
    assert_eq!(count(&service.db_path, "SELECT COUNT(*) FROM grades"), 12);
    // Leases are rows: the hosts went on with the jobs they held and completed them after
    // the restart, in the same attempt. (A claim answered in the instant of the kill
    // reaches no host and is taken over after its lease: hence "most".)
    let kept = held
        .iter()
        .filter(|id| {
            count(
                &service.db_path,
                &format!("SELECT attempts FROM jobs WHERE id = {id}"),
            ) == 1
        })
        .count();
    assert!(
        !held.is_empty() && kept * 2 > held.len(),
        "held {held:?}, kept {kept}"
    );
    for mut p in procs {
        p.stop();
    }
}

/// A host on another machine speaking plain HTTP is refused unless the operator allowed
/// it (hosts.allow_plain_http): its token would cross the network readable. The refusal
/// says what to do, and the token was never looked at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_from_another_machine_is_refused_unless_allowed() {
    let _turn = cluster::TURN.lock().await;
    let c = up().await;
    let port = free_port();
    let app = spawn_app_with(|s| {
        s.grading.workers = 0;
        s.hosts.bind = Some(format!("{SERVICE_ADDR}:{port}").parse().unwrap());
    })
    .await;
    let token = add_host(&app.db_path, "far");
    let mut host = c.hosts[0].start_grader(port, &token, 1);
    let start = Instant::now();
    while !host
        .log()
        .contains("plain HTTP from another machine is refused")
    {
        assert!(start.elapsed() < Duration::from_secs(30), "{}", host.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!host.log().contains(&token), "the token is never logged");
    let list = hosts(&app.db_path);
    assert_eq!(list["far"].0, "active");
    assert_eq!(
        count(
            &app.db_path,
            "SELECT COUNT(*) FROM hosts WHERE last_seen_at IS NOT NULL"
        ),
        0,
        "refused before anything it said was taken"
    );
    host.stop();
}

/// A host that floods the service with nonsense (unknown leases, malformed bodies,
/// oversize results, claims past its slots) gets 4xx answers, and students are served
/// and graded meanwhile by the other hosts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_host_gets_refusals_and_everyone_else_is_served() {
    let _turn = cluster::TURN.lock().await;
    let want = expected().await;
    let c = up().await;
    let port = free_port();
    let app = service(port, 30, None).await;
    let token = add_host(&app.db_path, "honest");
    let mut honest = c.hosts[1].start_grader(port, &token, 2);
    let bad = add_host(&app.db_path, "flood");
    let base = format!("http://{SERVICE_ADDR}:{port}/v1/");
    let http = reqwest::Client::new();
    let flood = tokio::spawn(async move {
        let mut codes = HashMap::new();
        let big = "x".repeat(17 * 1024 * 1024);
        for i in 0..600 {
            let (path, body) = match i % 4 {
                0 => (
                    format!("leases/{i}-no-such-lease/complete"),
                    r#"{"result":"retry","reason":"x"}"#.to_string(),
                ),
                1 => ("claim".to_string(), "{not json".to_string()),
                2 => (format!("leases/{i}/heartbeat"), String::new()),
                _ if i % 100 == 3 => ("leases/x/complete".to_string(), big.clone()),
                _ => (
                    format!("leases/{i}/release"),
                    r#"{"reason":"x"}"#.to_string(),
                ),
            };
            let oversize = body.len() > 16 * 1024 * 1024;
            // An oversize body on a connection of its own: the service closes it after
            // its 413, and a pooled connection it closed must not carry the next request.
            let client = if oversize {
                reqwest::Client::new()
            } else {
                http.clone()
            };
            let code = client
                .post(format!("{base}{path}"))
                .bearer_auth(&bad)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .map(|r| r.status().as_u16());
            let code = match code {
                Ok(code) => code,
                // The service answers 413 and may close the connection while the body is
                // still being sent: the client then sees the connection end instead.
                Err(_) if oversize => 413,
                Err(e) => panic!("request {i}: {e}"),
            };
            *codes.entry(code).or_insert(0) += 1;
        }
        codes
    });
    let subs = burst(&app, "flooded", 4, 2).await;
    let codes = flood.await.unwrap();
    assert!(
        codes.keys().all(|c| (400..500).contains(c)),
        "every nonsense request gets a 4xx: {codes:?}"
    );
    all_graded_once(&app, &subs, &want, Duration::from_secs(600)).await;
    let (code, _) = app.healthz().await;
    assert_ne!(code, 500);
    honest.stop();
}
