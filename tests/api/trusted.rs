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

async fn grade(evaluator: Evaluator, notebook: Vec<u8>) -> GradeOutcome {
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
    };
    runner.grade(req).await.expect("no infrastructure fault")
}

fn per_question(o: &GradeOutcome) -> Vec<(String, f64)> {
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

#[tokio::test]
async fn attacks_on_otter_from_inside_the_notebook_gain_nothing_and_see_no_hidden_test() {
    // Honest part of each: q1 right, q2 wrong, q3 2/3 (grader/tests/test_hostile.py).
    let honest = 1.0 + 0.0 + 0.66667;
    for name in [
        "patch_runner",
        "unhide",
        "always_eq",
        "read_tests",
        "fake_marker",
    ] {
        let path = repo_path(&format!("grader/tests/hostile/{name}.ipynb"));
        let nb = std::fs::read(&path).unwrap();
        let outcome = grade(Evaluator::Trusted, nb.clone()).await;
        let GradeOutcome::Graded(r) = &outcome else {
            panic!("{name}: {outcome:?}")
        };
        assert!(
            r.score <= honest + 1e-6,
            "{name} scored {} > {honest}",
            r.score
        );
        for hidden in HIDDEN {
            assert!(!r.public_feedback.contains(hidden), "{name} shows {hidden}");
        }
        if name == "patch_runner" {
            // The same notebook does fool a bare `otter run`.
            let GradeOutcome::Graded(bare) = grade(Evaluator::Otter, nb).await else {
                panic!("bare otter graded it")
            };
            assert!(
                bare.score > honest + 1e-6,
                "the attack is real: {}",
                bare.score
            );
        }
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
