//! A lying kernel (issue 19) through the real service: notebooks that replace what the
//! kernel-side helper answers the trusted evaluator (grader/tests/hostile/lie_*.ipynb)
//! end on their first attempt, graded at no more than their honest part or refused as
//! the student's fault, flagged for staff with the reason (in `status` and on the
//! dashboard), and nothing the student reads shows a hidden test. Also otter's
//! assignment-name check: another assignment's notebook is refused with otter's sentence.

use crate::docker::ENGINE;
use crate::helpers::cli;
use crate::hub::{ADMIN_USER, SERVICE_TOKEN, hub};
use crate::trusted::{Hostile, question_scores, shown_to_the_student, submit_hostile};

/// No answer of these kernels could be read: the submission is the student's fault.
const UNREADABLE: [&str; 3] = ["lie_garbage", "lie_raise", "lie_nested"];

/// What staff read about each notebook's flag (a part of its reason).
fn reason(name: &str) -> &'static str {
    match name {
        "lie_module" => "not loaded by the grader",
        "lie_true" | "lie_oversized" => "not plain options",
        "lie_forged" => "well-formed kernel messages",
        _ => "well-formed reply",
    }
}

async fn submit(name: &str, warm: bool) -> Hostile {
    submit_hostile(name, warm, |s| {
        // The staff dashboard reads who is a Hub admin with the service's own token.
        s.hub.api_token = otter_service::secret::Secret::new(SERVICE_TOKEN);
    })
    .await
}

async fn lying_through_the_service(name: &str, warm: bool) {
    let _shared = ENGINE.read().await;
    let Hostile {
        app,
        token,
        id,
        view: v,
    } = submit(name, warm).await;
    assert_eq!(v["attempts"], 1, "{name}: ended on its first attempt: {v}");
    if UNREADABLE.contains(&name) {
        assert_eq!(v["state"], "failed", "{name}: {v}");
        assert_eq!(v["grade"]["status"], "refused", "{name}: {v}");
        let message = v["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("could not read any of your answers"),
            "{name} tells the student why: {v}"
        );
    } else {
        assert_eq!(v["state"], "graded", "{name}: {v}");
        let honest = [("q1", 1.0), ("q2", 0.0), ("q3", 0.66667)];
        let want: Vec<(String, f64)> = honest
            .iter()
            .map(|(q, s)| (q.to_string(), if name == "lie_forged" { *s } else { 0.0 }))
            .collect();
        assert_eq!(question_scores(name, &v), want, "{name}");
    }
    shown_to_the_student(name, &app, &token, id, &v).await;
    // Staff see the flag and its reason: in `status`...
    let status = cli(&app.db_path, &["status"]);
    assert!(
        status.contains("grades flagged by the trusted evaluator: 1")
            && status.contains(&format!("submission {id} (mallory, demo/1/demo1"))
            && status.contains(reason(name)),
        "{name}: {status}"
    );
    // ... and on the dashboard's page of the assignment.
    let admin = hub().user_token(ADMIN_USER, None).await;
    let route = (
        "GET",
        "staff/assignments/demo/1/demo1".into(),
        String::new(),
    );
    let (code, page) = crate::staff::call(&app, &admin, &route).await;
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains(reason(name)) && page.contains(&format!("{id}")),
        "{name}: the dashboard shows the flag: {page}"
    );
}

/// Each lying notebook its own test, in a container started for it and in a warm one.
mod lying_notebook_through_the_service {
    crate::trusted::cold_and_warm!(
        crate::lying_kernel::lying_through_the_service;
        lie_module,
        lie_true,
        lie_garbage,
        lie_raise,
        lie_nested,
        lie_types,
        lie_oversized,
        lie_forged,
    );
}

/// A right lab notebook whose otter metadata names another assignment is refused as
/// bare otter refuses it, on the first attempt, and nobody is flagged.
#[tokio::test]
async fn another_assignments_notebook_is_refused_with_otters_sentence() {
    let _shared = ENGINE.read().await;
    let Hostile { app, view: v, .. } = submit("wrong_assignment", false).await;
    assert_eq!(v["state"], "failed", "{v}");
    assert_eq!(v["grade"]["status"], "refused", "{v}");
    assert_eq!(v["attempts"], 1, "{v}");
    let message = v["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("Received submission for assignment 'lab99' (this is assignment 'demo1')"),
        "{v}"
    );
    let status = cli(&app.db_path, &["status"]);
    assert!(
        status.contains("grades flagged by the trusted evaluator: 0"),
        "{status}"
    );
}
