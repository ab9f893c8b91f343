//! Bad input gets a 4xx that names the problem; the service keeps serving.

use serde_json::{Value, json};

use crate::helpers::{copy_of, sample, spawn_app, spawn_app_with};
use crate::hub::hub;

fn with_meta(mut nb: Value, meta: Value) -> Value {
    nb["metadata"] = meta;
    nb
}

async fn post_raw(
    app: &crate::helpers::TestApp,
    token: &str,
    ct: &str,
    body: Vec<u8>,
) -> (u16, String) {
    let r = app
        .http
        .post(&app.url)
        .header("Authorization", format!("token {token}"))
        .header("Content-Type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn each_bad_submission_gets_a_4xx_naming_the_problem() {
    let app = spawn_app_with(|s| s.server.max_body_bytes = 200_000).await;
    let token = hub().user_token("ivan", None).await;
    let good = sample("correct");
    let otter = |c: &str, s: &str, a: &str| json!({"otter_service": {"course": c, "section": s, "assignment": a}});
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "not JSON",
            b"this is not json".to_vec(),
            400,
            "not valid JSON",
        ),
        (
            "not a notebook",
            br#"{"nb": [1, 2, 3]}"#.to_vec(),
            400,
            "not a Jupyter notebook",
        ),
        (
            "no metadata",
            with_meta(good.clone(), json!({})).to_string().into_bytes(),
            400,
            "metadata.otter_service",
        ),
        (
            "missing key",
            with_meta(
                good.clone(),
                json!({"otter_service": {"course": "demo", "section": "1"}}),
            )
            .to_string()
            .into_bytes(),
            400,
            "otter_service.assignment",
        ),
        (
            "unknown course",
            with_meta(good.clone(), otter("nope", "1", "demo1"))
                .to_string()
                .into_bytes(),
            400,
            "unknown course \"nope\"",
        ),
        (
            "unknown section",
            with_meta(good.clone(), otter("demo", "9", "demo1"))
                .to_string()
                .into_bytes(),
            400,
            "unknown section \"9\"",
        ),
        (
            "unknown assignment",
            with_meta(good.clone(), otter("demo", "1", "hw99"))
                .to_string()
                .into_bytes(),
            400,
            "unknown assignment \"hw99\"",
        ),
        (
            "path traversal",
            with_meta(good.clone(), otter("demo", "1", "../../etc/passwd"))
                .to_string()
                .into_bytes(),
            400,
            "path separator",
        ),
        (
            "too large",
            json!({"nb": good.clone(), "pad": "x".repeat(300_000)})
                .to_string()
                .into_bytes(),
            413,
            "larger than the limit",
        ),
    ];
    for (what, body, status, needle) in cases {
        let (code, text) = post_raw(&app, &token, "application/json", body).await;
        assert_eq!(code, status, "{what}: {text}");
        assert!(
            text.contains(needle),
            "{what}: {text:?} should mention {needle:?}"
        );
    }
    // Nothing was stored, and a good submission still goes through.
    let r = app.submit(&token, &good).await;
    assert_eq!(r.status(), 202);
    let health = app
        .http
        .get(format!("{}healthz", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(app.list(&token).await.len(), 1);
}

#[tokio::test]
async fn json_errors_for_json_clients() {
    let app = spawn_app().await;
    let token = hub().user_token("ivan", None).await;
    let r = app
        .http
        .post(&app.url)
        .header("Authorization", format!("token {token}"))
        .header("Accept", "application/json")
        .header("Content-Type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], 400);
    assert!(v["error"].as_str().unwrap().contains("not valid JSON"));
}

#[tokio::test]
async fn missing_autograder_zip_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("course-config.json");
    std::fs::write(
        &config,
        json!({"demo": {"1": {"course_id": "X+Demo+2026", "subpath_to_zips": "demo",
            "assignments": {"demo1": "blk", "ghost": "blk2"}}}})
        .to_string(),
    )
    .unwrap();
    let app = spawn_app_with(|s| s.course.config = config.clone()).await;
    let token = hub().user_token("judy", None).await;
    let mut nb = sample("correct");
    nb["metadata"]["otter_service"]["assignment"] = json!("ghost");
    let r = app.submit(&token, &nb).await;
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.unwrap();
    let error = v["error"].as_str().unwrap();
    assert!(error.contains("\"ghost\" has no autograder"), "{error}");
}

#[tokio::test]
async fn the_three_body_forms_and_gofer_metadata_are_accepted() {
    let app = spawn_app().await;
    let token = hub().user_token("ken", None).await;
    let nb = sample("correct");
    // A raw notebook body.
    let (code, text) = post_raw(
        &app,
        &token,
        "application/json",
        nb.to_string().into_bytes(),
    )
    .await;
    assert_eq!(code, 202, "{text}");
    assert!(
        text.contains("received") && text.contains("/services/otter_grade/submissions/"),
        "{text}"
    );
    // A multipart upload of an .ipynb file (token auth needs no XSRF token).
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(nb.to_string().into_bytes()).file_name("demo1.ipynb"),
    );
    let r = app
        .http
        .post(&app.url)
        .header("Authorization", format!("token {token}"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    // gofer_service metadata.
    let gofer = with_meta(
        nb.clone(),
        json!({"course": "demo", "section": 1, "lab": "demo1", "kernelspec": nb["metadata"]["kernelspec"]}),
    );
    assert_eq!(app.submit(&token, &gofer).await.status(), 202);
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after_and_keeps_what_it_accepted() {
    let app = spawn_app_with(|s| {
        s.server.max_queue_depth = 2;
        s.grading.workers = 0;
    })
    .await;
    let token = hub().user_token("olga", None).await;
    let nb = sample("correct");
    app.submit_ok(&token, &copy_of(&nb, 1)).await;
    app.submit_ok(&token, &copy_of(&nb, 2)).await;
    let r = app.submit(&token, &copy_of(&nb, 3)).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "60");
    let v: Value = r.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().contains("queue is full"));
    assert_eq!(app.list(&token).await.len(), 2);
}

#[tokio::test]
async fn an_oversize_upload_is_answered_with_a_413_the_client_can_read() {
    let app = spawn_app_with(|s| s.server.max_body_bytes = 1 << 20).await;
    let token = hub().user_token("ursula", None).await;
    // 100 MB sent in one go: the client must read the answer, not a connection reset.
    let r = app
        .http
        .post(&app.url)
        .header("Authorization", format!("token {token}"))
        .header("Content-Type", "application/json")
        .body(vec![b' '; 100 << 20])
        .send()
        .await
        .expect("an answer, not a reset");
    assert_eq!(r.status(), 413);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("larger than the limit of 1048576 bytes"),
        "{text}"
    );

    // A client that asks first is answered before it sends the body.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let url = url::Url::parse(&app.url).unwrap();
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", url.port().unwrap()))
        .await
        .unwrap();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: token {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        url.path(),
        100 << 20
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), s.read(&mut answer))
        .await
        .expect("answered without the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}
