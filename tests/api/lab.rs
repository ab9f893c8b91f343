//! The Submit button (`clients/jupyter`, installed by scripts/setup-lab.sh) in real
//! JupyterLab 4 and Notebook 7 servers spawned by a real JupyterHub, submitting to the
//! real service (Docker runner) through the Hub's proxy, driven by Chromium.

use std::path::{Path, PathBuf};
use std::process::Command;

use rusqlite::Connection;
use serde_json::Value;

use crate::browser::browser_dir;
use crate::docker::ENGINE;
use crate::helpers::{copy_of, repo_path, sample};
use crate::hub::{HubSetup, PASSWORD, TestHub};

fn lab_venv() -> PathBuf {
    std::env::var_os("OTTER_LAB_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/otter-service/lab-venv")
        })
}

/// One press of Submit in the browser; what the dialog showed.
fn press_submit(hub: &TestHub, ui: &str, notebook: &str, expect: &str, edit: &str) -> Value {
    let shots = repo_path(&format!(
        "target/lab-{ui}-{}",
        notebook.replace(".ipynb", "")
    ));
    let out = Command::new("node")
        .arg(repo_path("tests/browser/lab.mjs"))
        .env("HUB_URL", &hub.hub_url)
        .env("HUB_USER", "penny")
        .env("HUB_PASSWORD", PASSWORD)
        .env("UI", ui)
        .env("NOTEBOOK", notebook)
        .env("EXPECT", expect)
        .env("EDIT", edit)
        .env("SHOTS", &shots)
        .env("PLAYWRIGHT_DIR", browser_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser run ({ui}, {notebook}) failed: {stdout}\n{}\nHub log: {}/jupyterhub.log",
        String::from_utf8_lossy(&out.stderr),
        hub.dir.display()
    );
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

fn stored_submissions(db: &Path) -> Vec<(String, String, Option<String>)> {
    let c = Connection::open(db).unwrap();
    let mut stmt = c
        .prepare("SELECT user, assignment, notebook_path FROM submissions ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_student_submits_from_jupyterlab_and_notebook_7_and_reads_the_result() {
    let venv = lab_venv();
    assert!(
        venv.join("bin/jupyterhub-singleuser").exists(),
        "no JupyterLab with the Submit extension at {}: run scripts/setup-lab.sh",
        venv.display()
    );
    let _shared = ENGINE.read().await;
    let homes = tempfile::Builder::new()
        .prefix("otter-lab-homes-")
        .tempdir()
        .unwrap();
    let home = homes.path().join("penny");
    std::fs::create_dir_all(&home).unwrap();
    let partial = sample("partial");
    let write = |name: &str, nb: &Value| {
        std::fs::write(home.join(name), serde_json::to_vec_pretty(nb).unwrap()).unwrap()
    };
    write("lab01.ipynb", &partial);
    write("nb7.ipynb", &copy_of(&partial, 7));
    let mut plain = partial.clone();
    plain["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("otter_service");
    write("untagged.ipynb", &plain);
    write("offline.ipynb", &copy_of(&partial, 9));

    // demo1 has a calendar (due far ahead): the panel shows the student's due date.
    let config_dir = tempfile::tempdir().unwrap();
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(crate::helpers::course_config()).unwrap())
            .unwrap();
    config["demo"]["1"]["assignments"]["demo1"] = serde_json::json!({
        "lti_block": "0123456789abcdef0123456789abcdef",
        "calendar": {"due": "2099-01-01T12:00:00Z"}
    });
    let dated = config_dir.path().join("course-config.json");
    std::fs::write(&dated, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    let plain_config = crate::helpers::course_config().display().to_string();
    let dated_config = dated.display().to_string();

    // Single-user servers run as this (root) user, from the lab venv, in per-user homes;
    // they reach the service through the Hub's proxy, as a z2jh server reaches
    // proxy-public.
    let setup = HubSetup {
        service_toml: Some(Box::new(move |t| {
            t.replace("runner = \"local\"", "runner = \"docker\"")
                .replace(&plain_config, &dated_config)
        })),
        hub_config: format!(
            r#"
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = "{homes}/{{username}}"
c.Spawner.cmd = ["{venv}/bin/jupyterhub-singleuser"]
c.Spawner.args = ["--allow-root"]
c.Spawner.default_url = "/lab"
c.Spawner.environment = {{"OTTER_SERVICE_URL": "@HUB_URL@/services/otter_grade/"}}
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
"#,
            homes = homes.path().display(),
            venv = venv.display(),
        ),
    };
    let mut hub = tokio::task::block_in_place(|| TestHub::start(&setup));
    let db = hub.service.db_path.clone();
    let run = |hub: &TestHub, ui: &str, nb: &str, expect: &str, edit: &str| {
        tokio::task::block_in_place(|| press_submit(hub, ui, nb, expect, edit))
    };

    // JupyterLab 4: the score, per-question scores and the public feedback in the dialog.
    let v = run(&hub, "lab", "lab01.ipynb", "score", "");
    assert_eq!(v["score"], "Score: 3 / 5", "{v}");
    assert!(
        v["dialog"]
            .as_str()
            .unwrap()
            .contains("Due 2099-01-01 12:00 (UTC+00:00)"),
        "the due date in the panel: {v}"
    );
    assert!(
        v["dueLabel"]
            .as_str()
            .is_some_and(|l| l.starts_with("due in ") && l.contains(" days")),
        "the due date beside the button, before pressing it: {v}"
    );
    let questions = v["questions"].as_str().unwrap();
    assert!(questions.contains("q1") && questions.contains("q3"), "{v}");
    assert!(
        v["feedback"].as_str().unwrap().contains("q2 results"),
        "public feedback shown: {v}"
    );
    assert!(v["edx"].as_str().is_some_and(|s| s.contains("edX")), "{v}");
    assert!(
        v["link"]
            .as_str()
            .unwrap()
            .contains("/services/otter_grade/submissions/"),
        "{v}"
    );
    // Identity came from the Hub token, the path was kept as information.
    assert_eq!(
        stored_submissions(&db),
        vec![(
            "penny".to_string(),
            "demo1".to_string(),
            Some("lab01.ipynb".to_string())
        )]
    );

    // Notebook 7: the same button, the same result.
    let v = run(&hub, "notebook", "nb7.ipynb", "score", "");
    assert_eq!(v["score"], "Score: 3 / 5", "{v}");
    assert!(
        v["feedback"].as_str().unwrap().contains("q2 results"),
        "{v}"
    );
    assert_eq!(stored_submissions(&db).len(), 2);

    // No course metadata: a sentence at once, and nothing is sent.
    let v = run(&hub, "lab", "untagged.ipynb", "message", "");
    let said = v["dialog"].as_str().unwrap();
    assert!(said.contains("not set up for grading"), "{v}");
    assert_eq!(stored_submissions(&db).len(), 2, "nothing was sent");

    // The service is down: a clear error, and the student's edit is saved.
    hub.service.kill9();
    let edit = "# typed just before Submit";
    let v = run(&hub, "lab", "offline.ipynb", "message", edit);
    let said = v["dialog"].as_str().unwrap();
    assert!(said.contains("Could not reach the grading service"), "{v}");
    let saved = std::fs::read_to_string(home.join("offline.ipynb")).unwrap();
    assert!(
        saved.contains(edit),
        "the notebook was saved before submitting"
    );
    hub.service.restart();
    assert_eq!(stored_submissions(&db).len(), 2);
}
