//! The trusted evaluator (grader/, `docker.evaluator = "trusted"`) in the real grader
//! image: honest notebooks score as with a bare `otter run`, and notebooks that attack
//! otter from inside score no more than their honest part and see no hidden test.

use otter_service::grading::docker::{DockerRunner, Evaluator};
use otter_service::grading::{GradeOutcome, GradeRequest, Runner, SandboxLimits};

use crate::docker::{ENGINE, config};
use crate::helpers::{repo_path, sample};

/// The hidden cases of the demo autograder (its tests/q*.py).
const HIDDEN: [&str; 5] = [
    "answer == 55",
    "square(-4) == 16",
    "square(0) == 0",
    "vowels('AEIOU xyz') == 5",
    "vowels('') == 0",
];

pub(crate) async fn grade(evaluator: Evaluator, notebook: Vec<u8>) -> GradeOutcome {
    let _shared = ENGINE.read().await;
    let mut cfg = config();
    cfg.evaluator = evaluator;
    let runner = DockerRunner::connect(cfg).await.unwrap();
    assert!(
        runner.readiness().await.ready,
        "engine and grader image needed"
    );
    let req = GradeRequest {
        job_id: rand::random::<u32>() as i64 + 2_000_000,
        submission_id: 1,
        notebook,
        autograder_zip: repo_path("course_config/materials/demo/demo1-autograder.zip"),
        limits: SandboxLimits {
            time_limit: std::time::Duration::from_secs(120),
            ..SandboxLimits::default()
        },
        started: Default::default(),
    };
    runner.grade(req).await.expect("no infrastructure fault")
}

pub(crate) fn per_question(o: &GradeOutcome) -> Vec<(String, f64)> {
    match o {
        GradeOutcome::Graded(r) => r.tests.iter().map(|t| (t.name.clone(), t.score)).collect(),
        other => panic!("not graded: {other:?}"),
    }
}

#[tokio::test]
async fn honest_notebooks_score_as_with_bare_otter() {
    for name in ["correct", "partial", "error"] {
        let nb = sample(name).to_string().into_bytes();
        let bare = per_question(&grade(Evaluator::Otter, nb.clone()).await);
        let trusted = per_question(&grade(Evaluator::Trusted, nb).await);
        assert_eq!(trusted, bare, "{name}");
    }
}

/// Every hidden case's code and the result markers, none of which a student may read.
fn must_not_show(text: &str, what: &str) {
    for hidden in HIDDEN {
        assert!(
            !text.contains(hidden),
            "{what} shows the hidden test {hidden}"
        );
    }
    for marker in ["OTTER-TRUSTED", "OTTER-RESULTS", "integrity"] {
        assert!(!text.contains(marker), "{what} shows {marker}");
    }
}

/// The hostile notebooks (grader/tests/hostile/) every door's tests send.
pub(crate) const HOSTILE: [&str; 13] = [
    "patch_runner",
    "unhide",
    "always_eq",
    "int_subclass",
    "numpy_subclass",
    "reduce",
    "monkeypatch",
    "read_tests",
    "fake_marker",
    "write_results",
    "signal_all",
    "stdout_everywhere",
    "print_env",
];

/// Per-question scores a hostile notebook (grader/tests/hostile/make_hostile.py) earns:
/// its honest part is q1 right, q2 wrong and q3 `return 0` (2/3); an attack that answers
/// with objects that cannot cross as data fails those questions instead.
pub(crate) fn earned(name: &str) -> [(&'static str, f64); 3] {
    match name {
        "always_eq" | "int_subclass" | "reduce" | "numpy_subclass" => {
            [("q1", 1.0), ("q2", 0.0), ("q3", 0.0)]
        }
        // q1 is answered with the string '55'.
        "monkeypatch" => [("q1", 0.0), ("q2", 0.0), ("q3", 0.66667)],
        _ => [("q1", 1.0), ("q2", 0.0), ("q3", 0.66667)],
    }
}

/// A hostile notebook (grader/tests/hostile/NAME.ipynb) submitted as a student to the
/// real service, graded in the real grader image in a container started for it (cold)
/// or in a warm one, and waited for. `adjust` changes the service's settings.
pub(crate) struct Hostile {
    pub app: crate::helpers::TestApp,
    pub token: String,
    pub id: i64,
    /// The submission's JSON view when it was done.
    pub view: serde_json::Value,
}

pub(crate) async fn submit_hostile(
    name: &str,
    warm: bool,
    adjust: impl FnOnce(&mut otter_service::settings::Settings),
) -> Hostile {
    let runner = crate::warm::warm_runner(usize::from(warm)).await;
    let app = crate::helpers::spawn_app_with_runner(
        adjust,
        Some(runner.clone() as std::sync::Arc<dyn Runner>),
    )
    .await;
    let token = crate::hub::hub().user_token("mallory", None).await;
    if warm {
        // An honest submission first: its job starts the warm container the attack gets.
        let first = app.submit_ok(&token, &sample("correct")).await;
        let v = app
            .wait_done(&token, first, std::time::Duration::from_secs(120))
            .await;
        assert_eq!(v["grade"]["score"], 5.0, "{v}");
        crate::warm::until_warm(&runner, 1).await;
    }
    let path = repo_path(&format!("grader/tests/hostile/{name}.ipynb"));
    let nb: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let id = app.submit_ok(&token, &nb).await;
    let view = app
        .wait_done(&token, id, std::time::Duration::from_secs(180))
        .await;
    assert_eq!(
        runner.pool_stats().taken,
        u64::from(warm),
        "{name}: graded in a warm container: {warm}"
    );
    // Nothing more is graded here: the warm container started after the job goes now,
    // as when the service stops (a test's runtime ends before a drop could remove it).
    runner.shutdown().await;
    let left = crate::warm::containers(runner.instance(), None).await;
    assert!(left.is_empty(), "{name}: containers left: {left:?}");
    Hostile {
        app,
        token,
        id,
        view,
    }
}

/// Per-question scores of a graded submission's view.
pub(crate) fn question_scores(name: &str, v: &serde_json::Value) -> Vec<(String, f64)> {
    v["grade"]["questions"]
        .as_array()
        .unwrap_or_else(|| panic!("{name}: no per-question scores in {v}"))
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["score"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// The honest part of every hostile notebook: q1 right, q2 wrong, q3 `return 0`.
const HONEST: f64 = 1.0 + 0.0 + 0.66667;

/// One hostile notebook through the service: it gets exactly what its honest part earns,
/// and neither the submission's JSON nor its page shows a hidden test or a result line.
async fn hostile_through_the_service(name: &str, warm: bool) {
    let _shared = ENGINE.read().await;
    let Hostile {
        app,
        token,
        id,
        view: v,
    } = submit_hostile(name, warm, |_| {}).await;
    assert_eq!(v["state"], "graded", "{name}: {v}");
    let want: Vec<(String, f64)> = earned(name)
        .iter()
        .map(|(q, s)| (q.to_string(), *s))
        .collect();
    assert_eq!(question_scores(name, &v), want, "{name}");
    let page = shown_to_the_student(name, &app, &token, id, &v).await;
    assert!(
        page.contains("q3"),
        "{name}: the page shows the grade: {page}"
    );
}

/// What a hostile submission shows its student: no more than the honest part, and
/// neither its JSON `v` nor its page (returned) shows a hidden test or a result line.
pub(crate) async fn shown_to_the_student(
    name: &str,
    app: &crate::helpers::TestApp,
    token: &str,
    id: i64,
    v: &serde_json::Value,
) -> String {
    assert!(
        v["grade"]["score"].as_f64().unwrap() <= HONEST + 1e-6,
        "{name}: {v}"
    );
    must_not_show(&v.to_string(), &format!("{name}'s JSON"));
    let page = app.page(token, id).await;
    must_not_show(&page, &format!("{name}'s page"));
    page
}

/// One test per notebook name, run by `$run(name, warm)` in a container started for the
/// job (module `cold`) and in a warm one (module `warm`, `docker.warm_containers`).
macro_rules! cold_and_warm {
    ($run:path; $($name:ident),* $(,)?) => {
        /// In a container started for the job.
        mod cold {$(
            #[tokio::test]
            async fn $name() {
                $run(stringify!($name), false).await
            }
        )*}
        /// In a warm container (`docker.warm_containers`).
        mod warm {$(
            #[tokio::test]
            async fn $name() {
                $run(stringify!($name), true).await
            }
        )*}
    };
}
pub(crate) use cold_and_warm;

/// The hostile set through the service, one test each (grader/tests/hostile/: attacks on
/// otter, doctest, builtins and numpy from a cell; objects and subclasses that claim to
/// equal anything; `__reduce__`; reading the tests from disk; fake results files, result
/// lines on every path to the container's stdout, signals to every process; printing the
/// environment and /proc).
mod hostile_notebook_through_the_service {
    crate::trusted::cold_and_warm!(
        crate::trusted::hostile_through_the_service;
        patch_runner,
        unhide,
        always_eq,
        int_subclass,
        numpy_subclass,
        reduce,
        monkeypatch,
        read_tests,
        fake_marker,
        write_results,
        signal_all,
        stdout_everywhere,
        print_env,
    );
}

/// The test set is real: the attacks on the runner's results channel and on otter fool
/// the `otter` evaluator (bare `otter run`, everything as one user), so the tests above
/// can fail. (`stdout_everywhere` is not here: against that runner it kills otter, and
/// the container's end is taken for an infrastructure fault.)
#[tokio::test]
async fn the_same_attacks_fool_a_bare_otter_run() {
    for name in ["patch_runner", "write_results"] {
        let nb = std::fs::read(repo_path(&format!("grader/tests/hostile/{name}.ipynb"))).unwrap();
        let GradeOutcome::Graded(bare) = grade(Evaluator::Otter, nb).await else {
            panic!("{name}: bare otter graded it")
        };
        assert!(bare.score > HONEST + 1e-6, "{name}: {}", bare.score);
    }
}

#[tokio::test]
async fn hostile_endings_are_classified_as_with_bare_otter() {
    use otter_service::grading::StudentFault;
    let limits = |secs| SandboxLimits {
        time_limit: std::time::Duration::from_secs(secs),
        memory_bytes: 400 << 20,
        ..SandboxLimits::default()
    };
    for (name, secs, want) in [
        ("kill_kernel", 120, StudentFault::NoResults),
        ("infinite_loop", 15, StudentFault::Timeout),
        ("memory_bomb", 60, StudentFault::OutOfMemory),
    ] {
        let _shared = ENGINE.read().await;
        let mut cfg = config();
        cfg.evaluator = Evaluator::Trusted;
        let runner = DockerRunner::connect(cfg).await.unwrap();
        let req = GradeRequest {
            job_id: rand::random::<u32>() as i64 + 3_000_000,
            submission_id: 1,
            notebook: sample(name).to_string().into_bytes(),
            autograder_zip: repo_path("course_config/materials/demo/demo1-autograder.zip"),
            limits: limits(secs),
            started: Default::default(),
        };
        let outcome = runner.grade(req).await;
        match outcome.unwrap_or_else(|e| panic!("{name}: {e}")) {
            GradeOutcome::Failed { fault, .. } => assert_eq!(fault, want, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn through_the_service_a_flagged_submission_is_shown_to_staff_not_to_the_student() {
    let _shared = ENGINE.read().await;
    let mut cfg = config();
    cfg.evaluator = Evaluator::Trusted;
    let runner: std::sync::Arc<dyn Runner> =
        std::sync::Arc::new(DockerRunner::connect(cfg).await.unwrap());
    let app = crate::helpers::spawn_app_with_runner(|_| {}, Some(runner)).await;
    let token = crate::hub::hub().user_token("flora", None).await;
    let path = repo_path("grader/tests/hostile/always_eq.ipynb");
    let nb: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let id = app.submit_ok(&token, &nb).await;
    let v = app
        .wait_done(&token, id, std::time::Duration::from_secs(120))
        .await;
    assert_eq!(v["state"], "graded", "{v}");
    assert!(v["grade"]["score"].as_f64().unwrap() <= 1.0 + 1e-9, "{v}");
    let student_view = v.to_string();
    assert!(
        !student_view.contains("integrity"),
        "flags are for staff: {student_view}"
    );
    let csv = crate::helpers::cli(&app.db_path, &["dump-grades"]);
    let mut r = csv::Reader::from_reader(csv.as_bytes());
    let row = r
        .deserialize::<std::collections::HashMap<String, String>>()
        .next()
        .unwrap()
        .unwrap();
    assert!(!row["integrity_flags"].is_empty(), "{row:?}");
    let status = crate::helpers::cli(&app.db_path, &["status"]);
    assert!(
        status.contains("grades flagged by the trusted evaluator: 1"),
        "{status}"
    );
}

/// An evaluator that signs a full-marks result under a key of its own choosing: what a
/// student who could write the container's stdout would send.
const FORGER: &str = r#"import base64, hashlib, hmac, json, sys
sys.stdin.buffer.readline()  # the per-job key, unused
doc = json.dumps({"version": 1, "score": 5, "max_score": 5, "flagged": [],
    "questions": [{"name": q, "score": s, "max_score": s, "feedback": ""}
                  for q, s in (("q1", 1), ("q2", 2), ("q3", 2))]}).encode()
mac = hmac.new(b"a key the student chose", doc, hashlib.sha256).hexdigest()
print("OTTER-TRUSTED", mac, base64.b64encode(doc).decode())
"#;

/// The grader image changed by `docker create`, `cp` and `commit` (no build, no network):
/// its evaluator's entry point replaced by `main`, and `change` (a Dockerfile instruction)
/// applied. Removed when dropped.
struct ForgedImage(String);

impl ForgedImage {
    fn build(main: Option<&str>, change: Option<&str>) -> Self {
        let name = format!("otter-grader:forged-{:08x}", rand::random::<u32>());
        let dir = tempfile::tempdir().unwrap();
        let docker = |args: &[&str]| {
            let out = std::process::Command::new("docker")
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "docker {args:?}: {out:?}");
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        };
        let id = docker(&["create", crate::docker::IMAGE, "true"]);
        if let Some(main) = main {
            let file = dir.path().join("__main__.py");
            std::fs::write(&file, main).unwrap();
            let target = format!("{id}:/opt/otter-trusted/otter_trusted/__main__.py");
            docker(&["cp", file.to_str().unwrap(), &target]);
        }
        let mut commit = vec!["commit"];
        if let Some(change) = change {
            commit.extend(["--change", change]);
        }
        commit.extend([id.as_str(), name.as_str()]);
        docker(&commit);
        docker(&["rm", &id]);
        Self(name)
    }
}

impl Drop for ForgedImage {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["image", "rm", "-f", &self.0])
            .output();
    }
}

#[tokio::test]
async fn a_result_that_fails_its_check_is_no_grade_and_ends_dead_after_one_retry() {
    let _shared = ENGINE.read().await;
    let forged = ForgedImage::build(Some(FORGER), None);
    let mut cfg = config();
    cfg.evaluator = Evaluator::Trusted;
    cfg.image = forged.0.clone();
    let runner: std::sync::Arc<dyn Runner> =
        std::sync::Arc::new(DockerRunner::connect(cfg).await.unwrap());
    let app = crate::helpers::spawn_app_with_runner(|_| {}, Some(runner)).await;
    let token = crate::hub::hub().user_token("mallory", None).await;
    let id = app.submit_ok(&token, &sample("partial")).await;
    let v = app
        .wait_done(&token, id, std::time::Duration::from_secs(120))
        .await;
    assert_eq!(v["state"], "dead", "{v}");
    assert!(v["grade"].is_null(), "a forged result is no grade: {v}");
    assert_eq!(v["attempts"], 2, "retried once, then dead: {v}");
    let db = rusqlite::Connection::open(&app.db_path).unwrap();
    let error: String = db
        .query_row(
            "SELECT last_error FROM jobs WHERE submission_id = ?1 AND kind = 'grade'",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    assert!(error.contains("integrity failure"), "{error}");
    let grades: i64 = db
        .query_row("SELECT COUNT(*) FROM grades", [], |r| r.get(0))
        .unwrap();
    assert_eq!(grades, 0);
    let status = crate::helpers::cli(&app.db_path, &["status"]);
    assert!(
        status.contains("integrity failure"),
        "staff see why: {status}"
    );
}

#[tokio::test]
async fn an_image_without_the_trusted_evaluator_is_not_ready_and_says_what_to_do() {
    let _shared = ENGINE.read().await;
    let plain = ForgedImage::build(None, Some("LABEL otter-service.evaluator="));
    let mut cfg = config();
    cfg.image = plain.0.clone();
    let ready = DockerRunner::connect(cfg.clone())
        .await
        .unwrap()
        .readiness()
        .await;
    assert!(!ready.ready, "{ready:?}");
    assert!(
        ready.detail.contains("has no trusted evaluator")
            && ready.detail.contains("build-grader-image.sh"),
        "{}",
        ready.detail
    );
    // An operator who chose the otter evaluator can use it, and is told what that means.
    cfg.evaluator = Evaluator::Otter;
    let ready = DockerRunner::connect(cfg).await.unwrap().readiness().await;
    assert!(ready.ready, "{ready:?}");
    assert!(
        ready.detail.contains("can set its own grade"),
        "{}",
        ready.detail
    );
}

/// The demo autograder with one more hidden case in q2, which passes a lambda into the
/// student's function (a construct the trusted evaluator cannot check as data).
fn demo_zip_with_a_lambda_case() -> Vec<u8> {
    use std::io::{Read, Write};
    let demo = std::fs::read(repo_path(
        "course_config/materials/demo/demo1-autograder.zip",
    ))
    .unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(demo)).unwrap();
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).unwrap();
        let name = file.name().unwrap().to_string();
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        if name == "tests/q2.py" {
            let public =
                "{'code': '>>> assert square(3) == 9\\n', 'hidden': False, 'locked': False},";
            assert!(text.contains(public), "{text}");
            text = text.replace(
                public,
                &format!(
                    "{public} {{'code': '>>> assert (lambda f: f(5))(square) == 25\\n', \
                     'hidden': True, 'locked': False}},"
                ),
            );
        }
        out.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        out.write_all(text.as_bytes()).unwrap();
    }
    out.finish().unwrap().into_inner()
}

#[tokio::test]
async fn staff_learn_which_tests_cannot_be_checked_as_data_when_an_assignment_is_first_graded() {
    let _shared = ENGINE.read().await;
    let course = tempfile::tempdir().unwrap();
    crate::helpers::course_with_zip(course.path(), &demo_zip_with_a_lambda_case());
    let mut cfg = config();
    cfg.evaluator = Evaluator::Trusted;
    let runner: std::sync::Arc<dyn Runner> =
        std::sync::Arc::new(DockerRunner::connect(cfg).await.unwrap());
    let app = crate::helpers::spawn_app_with_runner(
        |s| {
            s.course.config = course.path().join("course-config.json");
            s.course.materials_root = course.path().join("materials");
        },
        Some(runner),
    )
    .await;
    let status = crate::helpers::cli(&app.db_path, &["status"]);
    assert!(
        status.contains("autograder audits: no test relies"),
        "nothing graded yet: {status}"
    );
    let token = crate::hub::hub().user_token("flora", None).await;
    let id = app.submit_ok(&token, &sample("correct")).await;
    let v = app
        .wait_done(&token, id, std::time::Duration::from_secs(120))
        .await;
    assert_eq!(v["state"], "graded", "{v}");
    assert!(
        !v.to_string().contains("lambda"),
        "the audit is for staff: {v}"
    );
    let status = crate::helpers::cli(&app.db_path, &["status"]);
    assert!(
        status.contains("autograder audits: 1 assignment(s)")
            && status.contains("demo/1/demo1:")
            && status.contains("q2 case 2 (hidden): defines a lambda"),
        "{status}"
    );
}

#[tokio::test]
async fn healthz_names_a_course_image_that_cannot_grade() {
    let _shared = ENGINE.read().await;
    let course = tempfile::tempdir().unwrap();
    let mut courses: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo_path("course_config/course-config.json")).unwrap(),
    )
    .unwrap();
    let missing = format!("otter-grader:missing-{:08x}", rand::random::<u32>());
    courses["demo"]["1"]["image"] = missing.clone().into();
    let file = course.path().join("course-config.json");
    std::fs::write(&file, courses.to_string()).unwrap();
    let mut cfg = config();
    cfg.evaluator = Evaluator::Trusted;
    let runner: std::sync::Arc<dyn Runner> =
        std::sync::Arc::new(DockerRunner::connect(cfg).await.unwrap());
    let app =
        crate::helpers::spawn_app_with_runner(|s| s.course.config = file.clone(), Some(runner))
            .await;
    let (code, v) = app.healthz().await;
    // The default image grades: the service is up, and says which course cannot.
    assert_eq!(code, 200);
    assert_eq!(v["status"], "degraded", "{v}");
    let not_ready = &v["course_images_not_ready"][0];
    assert_eq!(not_ready["image"], missing.as_str(), "{v}");
    assert_eq!(not_ready["assignments"][0], "demo/1/demo1", "{v}");
    assert!(
        not_ready["detail"].as_str().unwrap().contains("is missing"),
        "{v}"
    );
}
