//! Identity comes from JupyterHub only.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{sample, spawn_app, wait_done};
use crate::hub::{PASSWORD, hub};

#[tokio::test]
async fn hub_token_submission_is_graded_with_the_right_score() {
    let app = spawn_app().await;
    let token = hub().user_token("alice", None).await;
    let id = app.submit_ok(&token, &sample("correct")).await;
    let v = app.wait_done(&token, id, Duration::from_secs(120)).await;
    assert_eq!(v["state"], "graded", "{v}");
    assert_eq!(v["user"], "alice");
    let g = &v["grade"];
    assert_eq!(
        (g["score"].as_f64(), g["max_score"].as_f64()),
        (Some(5.0), Some(5.0)),
        "{v}"
    );
    assert_eq!(g["questions"].as_array().unwrap().len(), 3);
    assert!(!g["public_feedback"].as_str().unwrap().is_empty());
    // Per-question output may contain hidden tests: never sent to the student.
    assert!(!v.to_string().contains("staff_output"));
}

#[tokio::test]
async fn missing_invalid_and_unscoped_tokens_are_refused() {
    let app = spawn_app().await;
    let nb = serde_json::json!({ "nb": sample("correct") });
    let r = app.http.post(&app.url).json(&nb).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("not logged in"));

    let r = app
        .http
        .post(&app.url)
        .header("Authorization", "token not-a-real-token")
        .json(&nb)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    let unscoped = hub()
        .user_token("dave", Some(&["read:users:name!user"]))
        .await;
    let r = app
        .http
        .post(&app.url)
        .header("Authorization", format!("token {unscoped}"))
        .json(&nb)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("access:services!service=otter_grade")
    );

    // A browser page load without a session goes to the Hub's OAuth flow instead.
    let r = app
        .http
        .get(&app.url)
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    let location = r.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with("/hub/api/oauth2/authorize?client_id=service-otter_grade"),
        "{location}"
    );
}

#[tokio::test]
async fn forged_cookie_and_foreign_headers_do_not_authenticate() {
    let app = spawn_app().await;
    let r = app
        .http
        .get(format!("{}submissions", app.url))
        .header(
            "Cookie",
            "otter-service-session=WyJhbGljZSIsOTk5OTk5OTk5OV0",
        )
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .http
        .post(&app.url)
        .header("Referer", "http://127.0.0.1/user/alice/notebooks/lab.ipynb")
        .header("X-Otter-User", "alice")
        .json(&serde_json::json!({ "nb": sample("correct") }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        401,
        "Referer / X-Otter-User must not identify anyone"
    );
}

#[tokio::test]
async fn referer_naming_another_user_changes_nothing_and_owners_only_see_their_own() {
    let app = spawn_app().await;
    let erin = hub().user_token("erin", None).await;
    let frank = hub().user_token("frank", None).await;
    let r = app
        .http
        .post(&app.url)
        .header("Authorization", format!("token {erin}"))
        .header(
            "Referer",
            "http://127.0.0.1/user/frank/notebooks/demo1.ipynb",
        )
        .header("X-Otter-User", "frank")
        .header("Accept", "application/json")
        .json(&serde_json::json!({ "nb": sample("correct") }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["submission_id"]
        .as_i64()
        .unwrap();
    let (code, v) = app.status(&erin, id).await;
    assert_eq!((code, v["user"].as_str()), (200, Some("erin")));
    let (code, _) = app.status(&frank, id).await;
    assert_eq!(
        code, 404,
        "another user's submission must look like it does not exist"
    );
    assert_eq!(app.list(&frank).await.len(), 0);
}

/// Log in to the Hub like a browser: GET the service page through the Hub's proxy,
/// follow the redirects to the Hub's login form, post it, land back on our page.
pub async fn browser_login(user: &str) -> (reqwest::Client, String) {
    let h = hub();
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let page = format!("{}{}", h.hub_url, crate::helpers::PREFIX);
    let r = browser
        .get(&page)
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    let login_url = r.url().clone();
    let html = r.text().await.unwrap();
    assert!(
        login_url.path().ends_with("/hub/login"),
        "expected the Hub's login page, got {login_url}"
    );
    let xsrf = crate::helpers::form_field(&html, "_xsrf").expect("xsrf field on the login page");
    let r = browser
        .post(login_url.as_str())
        .header("Accept", "text/html")
        .form(&[("username", user), ("password", PASSWORD), ("_xsrf", &xsrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.url());
    assert_eq!(
        r.url().path(),
        crate::helpers::PREFIX,
        "back on our page after the OAuth callback"
    );
    let body = r.text().await.unwrap();
    assert!(
        body.contains(&format!("Logged in as <b>{user}</b>")),
        "{body}"
    );
    (browser, page)
}

#[tokio::test]
async fn browser_oauth_flow_sets_a_cookie_that_reads_own_submissions() {
    let (browser, page) = browser_login("grace").await;
    // Submit with the session cookie, as the Notebook extension's fetch() does.
    let r = browser
        .post(&page)
        .header("Accept", "application/json")
        .json(&serde_json::json!({ "nb": sample("partial") }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["submission_id"]
        .as_i64()
        .unwrap();
    let token = hub().user_token("grace", None).await;
    let v = wait_done(&browser, &page, &token, id, Duration::from_secs(120)).await;
    assert_eq!(v["state"], "graded");
    let html = browser
        .get(format!("{page}submissions/{id}"))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(&format!("Submission {id}")) && html.contains("Score:"),
        "{html}"
    );

    // A cookie-authenticated upload that is not JSON needs our XSRF token.
    let form = reqwest::multipart::Form::new().part(
        "notebook",
        reqwest::multipart::Part::bytes(sample("correct").to_string().into_bytes())
            .file_name("demo1.ipynb"),
    );
    let r = browser.post(&page).multipart(form).send().await.unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn a_deleted_hub_users_session_stops_working_and_logout_ends_it() {
    let (browser, page) = browser_login("hank").await;
    let list = |b: &reqwest::Client| {
        b.get(format!("{page}submissions"))
            .header("Accept", "application/json")
            .send()
    };
    assert_eq!(list(&browser).await.unwrap().status(), 200);
    hub().delete_user("hank").await;
    // The service re-checks a session with the Hub every token_cache_secs (5 s here).
    let start = std::time::Instant::now();
    loop {
        let code = list(&browser).await.unwrap().status();
        if code == 401 {
            break;
        }
        assert_eq!(code, 200);
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the deleted user's session still works"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Logging out removes our session and sends the browser on to the Hub's logout.
    let (browser, page) = browser_login("ines").await;
    assert_eq!(list(&browser).await.unwrap().status(), 200);
    let r = browser.get(format!("{page}logout")).send().await.unwrap();
    assert!(
        r.url().path().starts_with("/hub/"),
        "ended at the Hub: {}",
        r.url()
    );
    assert_eq!(
        list(&browser).await.unwrap().status(),
        401,
        "our session is gone"
    );
}

#[tokio::test]
async fn a_page_load_with_a_cookie_we_cannot_read_logs_in_afresh() {
    // A cookie signed with another key (a rotated cookie_secret), on a browser page load.
    let app = spawn_app().await;
    let r = app
        .http
        .get(format!("{}submissions", app.url))
        .header(
            "Cookie",
            "otter-service-session=WyJhbGljZSIsOTk5OTk5OTk5OV0",
        )
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    let to = r.headers()["location"].to_str().unwrap();
    assert!(to.contains("/hub/api/oauth2/authorize?"), "{to}");
}

#[tokio::test]
async fn healthz_shows_details_only_to_an_unproxied_local_caller() {
    let app = spawn_app().await;
    let local: Value = reqwest::get(format!("{}healthz", app.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(local["runner"]["detail"].is_string(), "{local}");
    let proxied: Value = app
        .http
        .get(format!("{}healthz", app.url))
        .header("X-Forwarded-For", "203.0.113.9")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        proxied,
        serde_json::json!({"status": local["status"]}),
        "{proxied}"
    );
}
