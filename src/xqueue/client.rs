//! One XQueue over HTTP: log in, pull, fetch the learner's file, answer.
//!
//! Two server shapes answer the same wire format: the legacy xqueue server (always HTTP
//! 200 with `{"return_code": 0|1, "content": ...}`, a 302 to its login page when the
//! session is gone) and edx-submissions' XQueue API inside edX's LMS (real status codes:
//! 401/403 when not logged in, 403 "Incorrect key for submission", 404 unknown id; Django
//! session + CSRF). Both are handled by reading the status *and* the `return_code`.

use std::sync::Arc;
use std::time::Duration;

use reqwest::cookie::{CookieStore, Jar};
use serde::Deserialize;
use url::Url;

use crate::secret::Secret;

/// A submission as XQueue served it.
#[derive(Debug, Clone)]
pub struct Served {
    /// The `xqueue_header` string exactly as served (put_result sends it back).
    pub header: String,
    /// XQueue's id for it (`submission_id` in the header).
    pub xqueue_id: String,
    /// The parsed `xqueue_body`.
    pub body: serde_json::Value,
    /// `xqueue_files`: file name to URL.
    pub files: Vec<(String, String)>,
}

/// What a request came to.
#[derive(Debug, thiserror::Error)]
pub enum XqError {
    #[error("XQueue could not be reached: {0}")]
    Network(String),
    #[error("XQueue is not logged in (HTTP {0})")]
    LoggedOut(u16),
    #[error("XQueue refused the login: {0}")]
    LoginRefused(String),
    #[error("XQueue no longer accepts this pull key: {0}")]
    StaleKey(String),
    #[error("XQueue answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("XQueue's answer is not what the XQueue API sends: {0}")]
    BadAnswer(String),
}

impl XqError {
    /// Whether trying the same request later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            XqError::Network(_) | XqError::LoggedOut(_) | XqError::BadAnswer(_) => true,
            XqError::Status { status, .. } => *status >= 500 || matches!(status, 408 | 425 | 429),
            XqError::LoginRefused(_) | XqError::StaleKey(_) => false,
        }
    }
}

#[derive(Deserialize)]
struct Reply {
    #[serde(default)]
    return_code: Option<i64>,
    #[serde(default)]
    content: serde_json::Value,
}

/// The XQueue API of one queue.
pub struct XqueueClient {
    http: reqwest::Client,
    jar: Arc<Jar>,
    base: Url,
    queue_name: String,
    username: String,
    password: Secret,
    max_file_bytes: usize,
}

impl XqueueClient {
    pub fn new(
        base: &str,
        queue_name: &str,
        username: &str,
        password: Secret,
        timeout: Duration,
        max_file_bytes: usize,
    ) -> Result<Self, String> {
        let mut base = Url::parse(base).map_err(|e| format!("url {base:?}: {e}"))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(format!("url {base}: not http(s)"));
        }
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let jar = Arc::new(Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .timeout(timeout)
            .connect_timeout(timeout)
            // A file must come from XQueue itself, and a redirect is how a session ends
            // on the legacy server: never follow one.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            http,
            jar,
            base,
            queue_name: queue_name.to_string(),
            username: username.to_string(),
            password,
            max_file_bytes,
        })
    }

    fn url(&self, path: &str) -> Url {
        self.base.join(path).expect("a relative path joins")
    }

    fn csrf(&self) -> Option<String> {
        let cookies = self.jar.cookies(&self.base)?;
        cookies.to_str().ok()?.split(';').find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == "csrftoken").then(|| v.to_string())
        })
    }

    fn net(e: reqwest::Error) -> XqError {
        XqError::Network(e.without_url().to_string())
    }

    async fn read(resp: reqwest::Response) -> Result<(u16, String), XqError> {
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(Self::net)?;
        Ok((status, text.chars().take(2000).collect()))
    }

    /// Log in (a session cookie; a CSRF cookie first where the server sets one).
    pub async fn login(&self) -> Result<(), XqError> {
        // GET sets edx-submissions' csrftoken; the legacy server just answers.
        let _ = self
            .http
            .get(self.url("login/"))
            .send()
            .await
            .map_err(Self::net)?;
        let mut req = self
            .http
            .post(self.url("login/"))
            .header("Referer", self.base.as_str())
            .form(&[
                ("username", self.username.as_str()),
                ("password", self.password.expose()),
            ]);
        if let Some(token) = self.csrf() {
            req = req.header("X-CSRFToken", token);
        }
        let (status, text) = Self::read(req.send().await.map_err(Self::net)?).await?;
        match (status, parse_reply(&text)) {
            (200, Some(r)) if r.return_code == Some(0) => Ok(()),
            (200, Some(r)) => Err(XqError::LoginRefused(content_text(&r.content))),
            (400 | 401 | 403, _) => Err(XqError::LoginRefused(excerpt(&text))),
            (s, _) if s >= 500 => Err(XqError::Status {
                status: s,
                body: excerpt(&text),
            }),
            (s, _) => Err(XqError::BadAnswer(format!(
                "login: HTTP {s}: {}",
                excerpt(&text)
            ))),
        }
    }

    /// Pull one submission; `None` when the queue is empty.
    pub async fn get_submission(&self) -> Result<Option<Served>, XqError> {
        let mut url = self.url("get_submission/");
        url.query_pairs_mut()
            .append_pair("queue_name", &self.queue_name);
        let (status, text) =
            Self::read(self.http.get(url).send().await.map_err(Self::net)?).await?;
        match status {
            200 => {}
            301..=303 | 307 | 308 | 401 | 403 => return Err(XqError::LoggedOut(status)),
            s => {
                return Err(XqError::Status {
                    status: s,
                    body: excerpt(&text),
                });
            }
        }
        let reply = parse_reply(&text)
            .ok_or_else(|| XqError::BadAnswer(format!("get_submission: {}", excerpt(&text))))?;
        if reply.return_code != Some(0) {
            let content = content_text(&reply.content);
            if content.contains("login") {
                return Err(XqError::LoggedOut(status));
            }
            return Ok(None); // "Queue 'x' is empty"
        }
        parse_served(&reply.content).map(Some)
    }

    /// Answer `header`'s submission with `body` (the grader reply JSON).
    pub async fn put_result(&self, header: &str, body: &str) -> Result<(), XqError> {
        let mut req = self
            .http
            .post(self.url("put_result/"))
            .header("Referer", self.base.as_str())
            .form(&[("xqueue_header", header), ("xqueue_body", body)]);
        if let Some(token) = self.csrf() {
            req = req.header("X-CSRFToken", token);
        }
        let (status, text) = Self::read(req.send().await.map_err(Self::net)?).await?;
        let reply = parse_reply(&text);
        let content = reply
            .as_ref()
            .map(|r| content_text(&r.content))
            .unwrap_or_default();
        let stale = content.to_ascii_lowercase().contains("incorrect key");
        match status {
            200 => match reply {
                Some(r) if r.return_code == Some(0) => Ok(()),
                Some(_) if stale => Err(XqError::StaleKey(content)),
                Some(r) => Err(XqError::Status {
                    status,
                    body: content_text(&r.content),
                }),
                None => Err(XqError::BadAnswer(format!(
                    "put_result: {}",
                    excerpt(&text)
                ))),
            },
            403 if stale => Err(XqError::StaleKey(content)),
            301..=303 | 307 | 308 | 401 | 403 => Err(XqError::LoggedOut(status)),
            s => Err(XqError::Status {
                status: s,
                body: if content.is_empty() {
                    excerpt(&text)
                } else {
                    content
                },
            }),
        }
    }

    /// The learner's file: only from XQueue's own origin (scheme, host and port), no
    /// redirects, at most `max_file_bytes`.
    pub async fn fetch_file(&self, url: &str) -> Result<Vec<u8>, String> {
        let url = Url::parse(url).map_err(|e| format!("the file URL is not a URL ({e})"))?;
        if url.origin() != self.base.origin() {
            return Err(format!(
                "the file is not on XQueue's own server ({}), so it is not fetched",
                url.host_str().unwrap_or("no host")
            ));
        }
        let mut resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("the file could not be fetched: {}", e.without_url()))?;
        if !resp.status().is_success() {
            return Err(format!(
                "the file could not be fetched (HTTP {})",
                resp.status()
            ));
        }
        if resp
            .content_length()
            .is_some_and(|n| n > self.max_file_bytes as u64)
        {
            return Err(self.too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("the file could not be fetched: {}", e.without_url()))?
        {
            if body.len() + chunk.len() > self.max_file_bytes {
                return Err(self.too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn too_large(&self) -> String {
        format!(
            "the file is larger than the limit of {} bytes; submit only the notebook",
            self.max_file_bytes
        )
    }
}

fn parse_reply(text: &str) -> Option<Reply> {
    serde_json::from_str(text).ok()
}

fn content_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn excerpt(text: &str) -> String {
    crate::lti::excerpt(text)
}

/// A JSON value, or a string holding JSON (XQueue nests JSON in strings).
fn nested(v: &serde_json::Value) -> Option<serde_json::Value> {
    match v {
        serde_json::Value::String(s) => serde_json::from_str(s).ok(),
        serde_json::Value::Null => None,
        other => Some(other.clone()),
    }
}

/// `content` of a get_submission answer.
pub fn parse_served(content: &serde_json::Value) -> Result<Served, XqError> {
    let bad = |what: &str| XqError::BadAnswer(format!("get_submission: {what}"));
    let outer = nested(content).ok_or_else(|| bad("content is not JSON"))?;
    let header = match outer.get("xqueue_header") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v @ serde_json::Value::Object(_)) => v.to_string(),
        _ => return Err(bad("no xqueue_header")),
    };
    let parsed_header = nested(&serde_json::Value::String(header.clone()))
        .ok_or_else(|| bad("xqueue_header is not JSON"))?;
    let xqueue_id = match parsed_header.get("submission_id") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => return Err(bad("xqueue_header has no submission_id")),
    };
    if parsed_header.get("submission_key").is_none() {
        return Err(bad("xqueue_header has no submission_key"));
    }
    let body = outer
        .get("xqueue_body")
        .and_then(nested)
        .unwrap_or(serde_json::Value::Null);
    let files = outer
        .get("xqueue_files")
        .and_then(nested)
        .and_then(|f| f.as_object().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| v.as_str().map(|u| (k, u.to_string())))
        .collect();
    Ok(Served {
        header,
        xqueue_id,
        body,
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> XqueueClient {
        XqueueClient::new(
            "http://127.0.0.1:9/xqueue",
            "q",
            "u",
            Secret::new("p"),
            Duration::from_secs(1),
            1000,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_file_anywhere_but_xqueues_own_origin_is_never_fetched() {
        let c = client();
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://127.0.0.1:10/xqueue/file",
            "https://127.0.0.1:9/xqueue/file",
            "file:///etc/passwd",
            "http://localhost:9/file",
        ] {
            let e = c.fetch_file(url).await.unwrap_err();
            assert!(e.contains("not on XQueue's own server"), "{url}: {e}");
        }
        // The same origin is tried (nothing listens on port 9 here: a fetch error).
        let e = c
            .fetch_file("http://127.0.0.1:9/media/x")
            .await
            .unwrap_err();
        assert!(e.contains("could not be fetched"), "{e}");
    }

    #[test]
    fn both_server_shapes_parse_and_the_header_is_kept_verbatim() {
        // edx-submissions: content is a JSON string of strings.
        let header = r#"{"submission_id": 7, "submission_key": "k1"}"#;
        let content = serde_json::json!({
            "xqueue_header": header,
            "xqueue_body": r#"{"grader_payload": "{\"grader\": \"c/s/a\"}", "student_info": "{\"anonymous_student_id\": \"abc\"}", "student_response": ""}"#,
            "xqueue_files": r#"{"lab.ipynb": "http://x/media/1"}"#,
        })
        .to_string();
        let s = parse_served(&serde_json::Value::String(content)).unwrap();
        assert_eq!((s.header.as_str(), s.xqueue_id.as_str()), (header, "7"));
        assert_eq!(
            s.files,
            vec![("lab.ipynb".to_string(), "http://x/media/1".to_string())]
        );
        // A header without a pull key is not a submission.
        let bad = serde_json::json!({"xqueue_header": r#"{"submission_id": 7}"#});
        assert!(parse_served(&bad).is_err());
    }
}
