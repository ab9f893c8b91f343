//! The service image (Dockerfile, built by scripts/build-service-image.sh) serves
//! `/healthz` and grades the demo submission through the host's Docker engine.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::docker::{ENGINE, IMAGE};
use crate::helpers::{http_200, port, sample, submit_to, wait_done};
use crate::hub::hub;

const SERVICE_IMAGE: &str = "otter-service:dev";

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Removes the container (by id) when the test ends, however it ends.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

#[tokio::test]
async fn the_service_image_serves_healthz_and_grades_through_the_host_engine() {
    let _shared = ENGINE.read().await;
    let inspect = Command::new("docker")
        .args(["image", "inspect", SERVICE_IMAGE])
        .output()
        .unwrap();
    assert!(
        inspect.status.success(),
        "no {SERVICE_IMAGE}: run scripts/build-service-image.sh"
    );
    let data = tempfile::tempdir().unwrap();
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let gid = std::fs::metadata("/var/run/docker.sock")
        .unwrap()
        .gid()
        .to_string();
    let p = port();
    let api_url = hub().api_url.clone(); // start the Hub before timing the container
    let started = Instant::now();
    let id = docker(&[
        "run",
        "-d",
        "--network",
        "host",
        "--group-add",
        &gid,
        "-v",
        "/var/run/docker.sock:/var/run/docker.sock",
        "-v",
        &format!("{}:/data", data.path().display()),
        "-e",
        &format!("OTTER_SERVER__BIND=127.0.0.1:{p}"),
        "-e",
        &format!("OTTER_HUB__API_URL={api_url}"),
        "-e",
        &format!("OTTER_DOCKER__IMAGE={IMAGE}"),
        SERVICE_IMAGE,
    ]);
    let container = Container(id);
    let health = format!("http://127.0.0.1:{p}/healthz");
    while !http_200(&health) {
        let logs = Command::new("docker")
            .args(["logs", &container.0])
            .output()
            .unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not healthy: {}",
            String::from_utf8_lossy(&logs.stderr)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let cold_start = started.elapsed();
    let token = hub().user_token("vera", None).await;
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{p}/services/otter_grade/");
    let sid = submit_to(&http, &url, &token, &sample("correct")).await;
    let v = wait_done(&http, &url, &token, sid, Duration::from_secs(180)).await;
    assert_eq!(v["grade"]["score"], 5.0, "{v}");
    let size: f64 = docker(&["image", "inspect", "-f", "{{.Size}}", SERVICE_IMAGE])
        .parse()
        .unwrap();
    eprintln!(
        "service image {SERVICE_IMAGE}: {:.0} MB; container start to /healthz 200: {} ms",
        size / 1e6,
        cold_start.as_millis()
    );
}
