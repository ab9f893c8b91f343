//! The served OpenAPI document against the real service: Schemathesis (PyPI, from the venv
//! of scripts/setup-webhooks.sh) sends generated requests, valid and invalid, to every
//! endpoint of the document, authenticated as each kind of caller the endpoint serves
//! (a student, course staff, a platform, a grader host), and checks every answer: no 5xx,
//! and the status code, content type, headers and body all as the document says.

use std::path::PathBuf;
use tokio::process::Command;

use crate::helpers::{cli, sample, spawn_app_with};
use crate::hub::{SERVICE_TOKEN, free_port, hub};

fn schemathesis() -> PathBuf {
    let venv = std::env::var_os("WEBHOOKS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap())
                .join(".cache/otter-service/webhooks-venv")
        });
    let bin = venv.join("bin/schemathesis");
    assert!(
        bin.is_file(),
        "schemathesis missing at {}: run scripts/setup-webhooks.sh",
        bin.display()
    );
    bin
}

/// One Schemathesis run of the operations tagged `tag`, against `base`, with `auth` as the
/// `Authorization` header. Its output when it found anything.
async fn run(
    schema: &str,
    base: &str,
    tag: &str,
    auth: &str,
    dir: &std::path::Path,
) -> Option<String> {
    let out = Command::new(schemathesis())
        .arg("run")
        .arg(schema)
        .args(["--url", base])
        .args(["--include-tag", tag])
        .args(["-H", &format!("Authorization: {auth}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance,response_headers_conformance",
        ])
        .args(["--max-examples", "15", "--seed", "8", "--workers", "2"])
        .args(["--request-timeout", "30", "--max-redirects", "0"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .arg("--no-color")
        .env(
            "SCHEMATHESIS_HOOKS",
            crate::helpers::repo_path("tests/support/schemathesis_hooks.py"),
        )
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(dir)
        .output()
        .await
        .expect("run schemathesis");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("== schemathesis, {tag}:\n{report}");
    (!out.status.success()).then_some(report)
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_answer_off_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("otter.db");
    let host_port = free_port();
    let app = spawn_app_with(|s| {
        s.database.path = db.clone();
        s.grading.workers = 1;
        s.hosts.bind = Some(format!("127.0.0.1:{host_port}").parse().unwrap());
        s.hosts.claim_wait_secs = 1;
        // Staff pages read users' groups with the service's own token.
        s.hub.api_token = otter_service::secret::Secret::new(SERVICE_TOKEN);
    })
    .await;
    let root = app.url.split("/services/").next().unwrap().to_string();
    let schema = format!("{}openapi.json", app.url);
    let doc: serde_json::Value = reqwest::get(&schema).await.unwrap().json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");

    // A caller of each kind, and something of each to find.
    let student = hub().user_token("schema-student", None).await;
    app.submit_ok(&student, &sample("correct")).await;
    hub().add_to_group("demo-staff", "schema-staff").await;
    let staff = hub().user_token("schema-staff", None).await;
    let out = cli(&db, &["platforms", "add", "schema", "--courses", "demo"]);
    let platform = out.lines().next().unwrap().to_string();
    let host = cli(&db, &["hosts", "add", "schema-host"])
        .trim()
        .to_string();

    let runs = [
        ("students", root.as_str(), format!("token {student}")),
        ("service", root.as_str(), format!("token {student}")),
        ("staff", root.as_str(), format!("token {staff}")),
        ("platforms", root.as_str(), format!("Bearer {platform}")),
    ];
    let hosts_base = format!("http://127.0.0.1:{host_port}");
    let mut found = Vec::new();
    for (tag, base, auth) in runs
        .iter()
        .map(|(t, b, a)| (*t, b.to_string(), a.clone()))
        .chain([("hosts", hosts_base, format!("Bearer {host}"))])
    {
        if let Some(report) = run(&schema, &base, tag, &auth, dir.path()).await {
            found.push(format!("== {tag}\n{report}"));
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}
