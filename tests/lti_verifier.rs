//! The LTI client against edX's own outcomes code: tests/support/edx_stand_in.py runs
//! lti-consumer-xblock's `OutcomeService` (body hash + HMAC-SHA1 verification, XML parsing,
//! edX's answers) from the venv made by scripts/setup-edx-verifier.sh. Each test starts its
//! own stand-in on a free 127.0.0.1 port and stops it by PID when done.

#[path = "support/edx.rs"]
mod edx;

use std::time::{Duration, Instant};

use edx::{SECRET, StandIn};

use otter_service::lti::{
    EdxOutcomesClient, LtiConfig, LtiError, OutcomesClient, PostOutcome, ScorePost, sourced_id,
};
use otter_service::secret::Secret;

const COURSE: &str = "BerkeleyX+Data8.1x+2026";
const BLOCK: &str = "8f1c2d3e4b5a";

fn post(user: &str, score: f64) -> ScorePost {
    ScorePost {
        course_id: COURSE.into(),
        block_id: BLOCK.into(),
        user: user.into(),
        score,
    }
}

const TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_post_is_recorded_with_user_and_score() {
    let edx = StandIn::start(&[]);
    let client = edx.client(SECRET, TIMEOUT);
    let outcome = client.post_score(&post("5f3a9c0d", 0.875)).await.unwrap();
    assert_eq!(outcome, PostOutcome::Posted);
    let scores = edx.scores().await;
    assert_eq!(scores.len(), 1, "{scores:?}");
    let s = &scores[0];
    assert_eq!(s["user"], "5f3a9c0d");
    assert_eq!(s["score"], 0.875);
    assert_eq!(s["course_id"], COURSE);
    assert_eq!(s["block_id"], BLOCK);
    assert_eq!(
        s["sourced_id"],
        sourced_id(&edx.base, COURSE, BLOCK, "5f3a9c0d")
    );
}

#[tokio::test]
async fn markup_and_non_ascii_in_the_user_arrive_exactly() {
    let edx = StandIn::start(&[]);
    // Escaped in our XML and read back by edX's lxml parser; `:` and `%` survive edX's
    // split-and-unquote. (edX's success answer then embeds the raw `<b>`: not well-formed
    // after imsx_codeMajor, which the client tolerates.)
    let user = "ann<b>&amp;\"c' é漢字 a:b 50%";
    let outcome = edx
        .client(SECRET, TIMEOUT)
        .post_score(&post(user, 0.0))
        .await
        .unwrap();
    assert_eq!(outcome, PostOutcome::Posted);
    let scores = edx.scores().await;
    assert_eq!(scores[0]["user"], user);
    assert_eq!(scores[0]["score"], 0.0);
}

#[tokio::test]
async fn a_wrong_secret_is_rejected_with_edx_description() {
    let edx = StandIn::start(&[]);
    let outcome = edx
        .client("not-the-secret", TIMEOUT)
        .post_score(&post("ann", 0.5))
        .await;
    let PostOutcome::Rejected {
        code_major,
        description,
    } = outcome.unwrap()
    else {
        panic!("accepted with a wrong secret");
    };
    assert_eq!(code_major, "failure");
    assert_eq!(
        description,
        "OAuth verification error: OAuth signature verification has failed."
    );
    assert!(edx.scores().await.is_empty());
}

#[tokio::test]
async fn a_tampered_body_is_rejected() {
    let edx = StandIn::start(&[]);
    let client = edx.client(SECRET, TIMEOUT);
    let mut req = client.sign(&post("ann", 0.25)).unwrap();
    assert!(req.body.contains("<textString>0.25</textString>"));
    req.body = req.body.replace("<textString>0.25<", "<textString>1<");
    let outcome = client.send(&req).await.unwrap();
    let PostOutcome::Rejected { description, .. } = outcome else {
        panic!("a tampered body was accepted");
    };
    assert_eq!(
        description,
        "OAuth verification error: OAuth body hash verification has failed."
    );
    assert!(edx.scores().await.is_empty());
}

#[tokio::test]
async fn replays_and_foreign_keys_are_rejected() {
    let edx = StandIn::start(&[]);
    let client = edx.client(SECRET, TIMEOUT);
    let req = client.sign(&post("ann", 0.5)).unwrap();
    assert_eq!(client.send(&req).await.unwrap(), PostOutcome::Posted);
    let PostOutcome::Rejected { description, .. } = client.send(&req).await.unwrap() else {
        panic!("a replayed nonce was accepted");
    };
    assert!(description.contains("nonce already used"), "{description}");

    let foreign = EdxOutcomesClient::new(LtiConfig {
        edx_base_url: edx.base.clone(),
        consumer_key: "someone-else".into(),
        consumer_secret: Secret::new(SECRET),
        timeout: TIMEOUT,
    })
    .unwrap();
    let outcome = foreign.post_score(&post("ann", 0.5)).await.unwrap();
    assert!(
        matches!(outcome, PostOutcome::Rejected { .. }),
        "{outcome:?}"
    );
    assert_eq!(edx.scores().await.len(), 1);
}

#[tokio::test]
async fn an_unknown_user_is_rejected() {
    let edx = StandIn::start(&["ghost"]);
    let outcome = edx
        .client(SECRET, TIMEOUT)
        .post_score(&post("ghost", 0.5))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        PostOutcome::Rejected {
            code_major: "failure".into(),
            description: "User not found.".into()
        }
    );
    assert!(edx.scores().await.is_empty());
}

#[tokio::test]
async fn server_errors_garbage_and_hangs_are_transient() {
    let edx = StandIn::start(&[]);
    let client = edx.client(SECRET, Duration::from_secs(1));

    edx.set_mode("500").await;
    let err = client.post_score(&post("ann", 0.5)).await.unwrap_err();
    assert!(
        matches!(err, LtiError::Status { status: 500, .. }) && err.is_transient(),
        "{err}"
    );

    edx.set_mode("garbage").await;
    let err = client.post_score(&post("ann", 0.5)).await.unwrap_err();
    assert!(
        matches!(err, LtiError::BadResponse(_)) && err.is_transient(),
        "{err}"
    );

    edx.set_mode("hang").await;
    let started = Instant::now();
    let err = client.post_score(&post("ann", 0.5)).await.unwrap_err();
    assert!(
        matches!(err, LtiError::Timeout(..)) && err.is_transient(),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    edx.set_mode("ok").await;
    assert_eq!(
        client.post_score(&post("ann", 0.5)).await.unwrap(),
        PostOutcome::Posted
    );
    assert_eq!(edx.scores().await.len(), 1);
}

#[tokio::test]
async fn a_stopped_edx_refuses_connections_transiently() {
    let mut edx = StandIn::start(&[]);
    let client = edx.client(SECRET, TIMEOUT);
    edx.stop();
    let err = client.post_score(&post("ann", 0.5)).await.unwrap_err();
    assert!(
        matches!(err, LtiError::Network(_)) && err.is_transient(),
        "{err}"
    );
}
