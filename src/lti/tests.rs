//! Unit tests of URLs, sourcedIds, validation and answer classification. The real receiving
//! end (edX's own code) is exercised by `tests/lti_verifier.rs`.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

const COURSE: &str = "BerkeleyX+Data8.1x+2026";

fn base() -> Url {
    Url::parse("https://courses.edx.org").unwrap()
}

fn post(user: &str, score: f64) -> ScorePost {
    ScorePost {
        course_id: COURSE.into(),
        block_id: "0123abcd".into(),
        user: user.into(),
        score,
    }
}

fn client(base: Url) -> EdxOutcomesClient {
    EdxOutcomesClient::new(LtiConfig {
        edx_base_url: base,
        consumer_key: "key".into(),
        consumer_secret: Secret::new("hunter2"),
        timeout: Duration::from_secs(5),
    })
    .unwrap()
}

#[test]
fn outcome_url_has_edx_shape() {
    let want = "https://courses.edx.org/courses/course-v1:BerkeleyX+Data8.1x+2026/xblock/block-v1:BerkeleyX+Data8.1x+2026+type@lti_consumer+block@0123abcd/handler_noauth/outcome_service_handler";
    assert_eq!(outcome_url(&base(), COURSE, "0123abcd").as_str(), want);
    let local = Url::parse("http://127.0.0.1:8123/?x=1").unwrap();
    let got = outcome_url(&local, COURSE, "b");
    assert!(
        got.as_str()
            .starts_with("http://127.0.0.1:8123/courses/course-v1:")
    );
    assert_eq!(got.query(), None);
}

#[test]
fn sourced_id_has_edx_shape() {
    assert_eq!(
        sourced_id(&base(), COURSE, "0123abcd", "5f3a9c"),
        "course-v1%3ABerkeleyX+Data8.1x+2026:courses.edx.org-0123abcd:5f3a9c"
    );
    let local = Url::parse("http://127.0.0.1:8123").unwrap();
    assert_eq!(
        sourced_id(&local, COURSE, "b", "ann"),
        "course-v1%3ABerkeleyX+Data8.1x+2026:127.0.0.1:8123-b:ann"
    );
}

#[test]
fn sourced_id_user_survives_edx_split_and_unquote() {
    let user = "a:b%3A<&é";
    let sid = sourced_id(&base(), COURSE, "b", user);
    let last = sid.rsplit(':').next().unwrap();
    let unquoted = percent_encoding::percent_decode_str(last)
        .decode_utf8()
        .unwrap();
    assert_eq!(unquoted, user);
    assert!(sid.ends_with(":a%3Ab%253A<&é"), "{sid}");
}

#[test]
fn refuses_bad_posts_before_sending() {
    let c = client(base());
    for bad in [f64::NAN, -0.01, 1.01, f64::INFINITY] {
        let err = c.sign(&post("ann", bad)).unwrap_err();
        assert!(
            matches!(err, LtiError::InvalidPost(_)) && !err.is_transient(),
            "{err}"
        );
    }
    for user in ["", "a\u{0}b", "tab\there"] {
        assert!(matches!(
            c.sign(&post(user, 0.5)),
            Err(LtiError::InvalidPost(_))
        ));
    }
    let mut p = post("ann", 0.5);
    p.block_id = "b/../x?y".into();
    assert!(matches!(c.sign(&p), Err(LtiError::InvalidPost(_))));
    assert!(c.sign(&post("ann", 0.0)).is_ok() && c.sign(&post("ann", 1.0)).is_ok());
}

#[test]
fn refuses_bad_config() {
    let cfg = |url: &str, key: &str, secret: &str| LtiConfig {
        edx_base_url: Url::parse(url).unwrap(),
        consumer_key: key.into(),
        consumer_secret: Secret::new(secret),
        timeout: Duration::from_secs(1),
    };
    assert!(EdxOutcomesClient::new(cfg("ftp://x", "k", "s")).is_err());
    assert!(EdxOutcomesClient::new(cfg("https://x", "", "s")).is_err());
    assert!(EdxOutcomesClient::new(cfg("https://x", "k", "")).is_err());
    let debug = format!("{:?}", client(base()));
    assert!(!debug.contains("hunter2"), "{debug}");
}

#[test]
fn signed_request_carries_everything_and_hides_the_header() {
    let c = client(base());
    let a = c.sign(&post("ann", 0.5)).unwrap();
    let b = c.sign(&post("ann", 0.5)).unwrap();
    assert_ne!(a.message_id, b.message_id);
    assert!(
        a.body
            .contains(&format!("<imsx_messageIdentifier>{}<", a.message_id))
    );
    let hash = oauth::body_hash(a.body.as_bytes());
    let encoded = percent_encoding::utf8_percent_encode(&hash, percent_encoding::NON_ALPHANUMERIC);
    assert!(
        a.authorization
            .contains(&format!("oauth_body_hash=\"{encoded}\""))
    );
    for p in [
        "oauth_consumer_key=\"key\"",
        "oauth_signature_method=\"HMAC-SHA1\"",
        "oauth_version=\"1.0\"",
        "oauth_nonce=",
        "oauth_timestamp=",
        "oauth_signature=",
    ] {
        assert!(a.authorization.contains(p), "{p} missing");
    }
    let debug = format!("{a:?}");
    assert!(!debug.contains("oauth_signature") && debug.contains("[redacted]"));
}

#[test]
fn transient_or_permanent() {
    let status = |s| {
        LtiError::Status {
            status: s,
            body: String::new(),
        }
        .is_transient()
    };
    assert!(status(500) && status(502) && status(503) && status(429) && status(408));
    assert!(!status(404) && !status(400) && !status(401) && !status(403) && !status(302));
    assert!(LtiError::BadResponse("x".into()).is_transient());
    let unconfirmed = LtiError::Unconfirmed {
        code_major: "processing".into(),
        description: String::new(),
    };
    assert!(unconfirmed.is_transient());
    assert!(!LtiError::Config("x".into()).is_transient());
}

/// Serve one canned HTTP answer per connection; returns the base URL.
async fn canned(status_line: &'static str, body: &'static str) -> Url {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = vec![0u8; 64 * 1024];
            let _ = sock.read(&mut buf).await;
            let answer = format!(
                "HTTP/1.1 {status_line}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nLocation: https://elsewhere/\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(answer.as_bytes()).await;
        }
    });
    Url::parse(&format!("http://{addr}")).unwrap()
}

fn envelope(code: &str, description: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?><imsx_POXEnvelopeResponse xmlns=\"http://www.imsglobal.org/services/ltiv1p1/xsd/imsoms_v1p0\"><imsx_POXHeader><imsx_POXResponseHeaderInfo><imsx_statusInfo><imsx_codeMajor>{code}</imsx_codeMajor><imsx_description>{description}</imsx_description></imsx_statusInfo></imsx_POXResponseHeaderInfo></imsx_POXHeader><imsx_POXBody/></imsx_POXEnvelopeResponse>"
    )
}

async fn outcome(status_line: &'static str, body: String) -> Result<PostOutcome, LtiError> {
    let base = canned(status_line, Box::leak(body.into_boxed_str())).await;
    client(base).post_score(&post("ann", 0.5)).await
}

#[tokio::test]
async fn classifies_answers() {
    assert_eq!(
        outcome("200 OK", envelope("success", "ok")).await.unwrap(),
        PostOutcome::Posted
    );
    let rejected = outcome("200 OK", envelope("failure", "User not found."))
        .await
        .unwrap();
    assert_eq!(
        rejected,
        PostOutcome::Rejected {
            code_major: "failure".into(),
            description: "User not found.".into()
        }
    );
    let unsupported = outcome("200 OK", envelope("unsupported", "no"))
        .await
        .unwrap();
    assert!(matches!(unsupported, PostOutcome::Rejected { .. }));
    let processing = outcome("200 OK", envelope("processing", ""))
        .await
        .unwrap_err();
    assert!(matches!(processing, LtiError::Unconfirmed { .. }) && processing.is_transient());
    let garbage = outcome("200 OK", "<html>oops</html>".into())
        .await
        .unwrap_err();
    assert!(
        matches!(garbage, LtiError::BadResponse(_)) && garbage.is_transient(),
        "{garbage}"
    );
    let down = outcome("503 Service Unavailable", "down".into())
        .await
        .unwrap_err();
    assert!(matches!(down, LtiError::Status { status: 503, .. }) && down.is_transient());
    let missing = outcome("404 Not Found", "no such block".into())
        .await
        .unwrap_err();
    assert!(!missing.is_transient() && missing.to_string().contains("no such block"));
    let moved = outcome("302 Found", String::new()).await.unwrap_err();
    assert!(matches!(moved, LtiError::Status { status: 302, .. }) && !moved.is_transient());
}

#[tokio::test]
async fn refused_connection_is_transient() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    drop(listener);
    let err = client(base)
        .post_score(&post("ann", 0.5))
        .await
        .unwrap_err();
    assert!(
        matches!(err, LtiError::Network(_)) && err.is_transient(),
        "{err}"
    );
}
