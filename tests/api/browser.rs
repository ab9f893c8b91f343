//! The student's pages in a real browser (Chromium, scripts/setup-browser.sh): log in
//! through JupyterHub, upload a notebook with the page's form, read the score.

use std::path::PathBuf;
use std::process::Command;

use crate::helpers::{PREFIX, repo_path};
use crate::hub::{PASSWORD, hub};

pub fn browser_dir() -> PathBuf {
    std::env::var_os("OTTER_BROWSER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/otter-service/browser")
        })
}

#[test]
fn a_student_logs_in_uploads_with_the_form_and_sees_the_score() {
    let dir = browser_dir();
    assert!(
        dir.join("node_modules/playwright-core").exists()
            && PathBuf::from("/usr/bin/chromium").exists(),
        "no browser: run scripts/setup-browser.sh"
    );
    let h = hub();
    let shot = repo_path("target/browser-submission.png");
    let out = Command::new("node")
        .arg(repo_path("tests/browser/upload.mjs"))
        .env("HUB_URL", &h.hub_url)
        .env("PREFIX", PREFIX)
        .env("HUB_USER", "penny")
        .env("HUB_PASSWORD", PASSWORD)
        .env("NOTEBOOK", repo_path("tests/notebooks/partial.ipynb"))
        .env("SCREENSHOT", &shot)
        .env("PLAYWRIGHT_DIR", &dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser run failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(
        v["loggedIn"]
            .as_str()
            .unwrap()
            .contains("Logged in as penny"),
        "{v}"
    );
    assert!(
        v["uploadText"].as_str().unwrap().contains("was received"),
        "{v}"
    );
    let page = v["pageText"].as_str().unwrap();
    assert!(page.contains("Score: 3 / 5"), "{page}");
    assert!(
        page.contains("q2 results"),
        "public test feedback shown: {page}"
    );
    assert!(shot.exists());
}
