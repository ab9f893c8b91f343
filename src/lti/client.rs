//! The HTTP client that posts scores to edX's outcome service.

use std::fmt;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use url::Url;

use super::xml::{self, Status};
use super::{LtiConfig, LtiError, OutcomesClient, PostOutcome, ScorePost, oauth};

/// How much of an answer we read; edX's are under 1 KiB (but echo a bad request body).
const MAX_ANSWER_BYTES: usize = 256 * 1024;
/// How much of an unexpected answer goes into an error message.
const EXCERPT_CHARS: usize = 200;

/// Posts scores to edX (LTI 1.1 Basic Outcomes).
#[derive(Debug)]
pub struct EdxOutcomesClient {
    http: reqwest::Client,
    cfg: LtiConfig,
}

/// A signed outcomes request, ready to send. Built by [`EdxOutcomesClient::sign`]; tests
/// alter it after signing to check that edX refuses a tampered body.
#[derive(Clone)]
pub struct SignedRequest {
    pub url: Url,
    /// The exact bytes `oauth_body_hash` covers.
    pub body: String,
    /// The `Authorization` header value. Not a secret, but never logged either.
    pub authorization: String,
    /// The `imsx_messageIdentifier`, unique per request.
    pub message_id: String,
}

impl fmt::Debug for SignedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedRequest")
            .field("url", &self.url.as_str())
            .field("message_id", &self.message_id)
            .field("body_len", &self.body.len())
            .field("authorization", &"[redacted]")
            .finish()
    }
}

impl EdxOutcomesClient {
    /// A client for `cfg`; refuses a base URL that is not http(s) with a host, an empty key or
    /// secret, and a zero timeout.
    pub fn new(cfg: LtiConfig) -> Result<Self, LtiError> {
        let base = &cfg.edx_base_url;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(LtiError::Config(format!(
                "edX base URL {base} is not an http(s) URL with a host"
            )));
        }
        if cfg.consumer_key.is_empty() || cfg.consumer_secret.is_empty() {
            return Err(LtiError::Config(
                "the LTI consumer key or secret is empty".into(),
            ));
        }
        if cfg.timeout.is_zero() {
            return Err(LtiError::Config("the LTI timeout is zero".into()));
        }
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            // A redirected POST becomes a GET without the body: never follow.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("otter-service/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| LtiError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { http, cfg })
    }

    /// Build and sign the `replaceResultRequest` for `post`, with a fresh message id, nonce
    /// and timestamp.
    pub fn sign(&self, post: &ScorePost) -> Result<SignedRequest, LtiError> {
        post.validate()?;
        let base = &self.cfg.edx_base_url;
        let url = super::outcome_url(base, &post.course_id, &post.block_id);
        let sourced_id = super::sourced_id(base, &post.course_id, &post.block_id, &post.user);
        let message_id = uuid::Uuid::new_v4().to_string();
        let body = xml::replace_result_request(&message_id, &sourced_id, post.score);
        let nonce = oauth::new_nonce();
        let stamp = oauth::Stamp {
            nonce: &nonce,
            timestamp: oauth::now(),
        };
        let authorization = oauth::authorization(
            &self.cfg.consumer_key,
            self.cfg.consumer_secret.expose(),
            &url,
            &oauth::body_hash(body.as_bytes()),
            &stamp,
        );
        Ok(SignedRequest {
            url,
            body,
            authorization,
            message_id,
        })
    }

    /// Send a signed request and classify the answer (see the module docs).
    pub async fn send(&self, req: &SignedRequest) -> Result<PostOutcome, LtiError> {
        let mut response = self
            .http
            .post(req.url.clone())
            .header(CONTENT_TYPE, "application/xml")
            .header(AUTHORIZATION, &req.authorization)
            .body(req.body.clone())
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        let status = response.status();
        let mut answer = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(e))?
        {
            let room = MAX_ANSWER_BYTES - answer.len();
            answer.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if answer.len() == MAX_ANSWER_BYTES {
                break;
            }
        }
        let answer = String::from_utf8_lossy(&answer);
        if !status.is_success() {
            return Err(LtiError::Status {
                status: status.as_u16(),
                body: excerpt(&answer),
            });
        }
        let Status {
            code_major,
            description,
        } = xml::parse_response(&answer)
            .map_err(|why| LtiError::BadResponse(format!("{why}; answer: {}", excerpt(&answer))))?;
        match code_major.as_str() {
            "success" => Ok(PostOutcome::Posted),
            "failure" | "unsupported" => Ok(PostOutcome::Rejected {
                code_major,
                description,
            }),
            _ => Err(LtiError::Unconfirmed {
                code_major,
                description,
            }),
        }
    }

    fn transport_error(&self, e: reqwest::Error) -> LtiError {
        if e.is_timeout() {
            LtiError::Timeout(self.cfg.timeout, e)
        } else {
            LtiError::Network(e)
        }
    }
}

#[async_trait::async_trait]
impl OutcomesClient for EdxOutcomesClient {
    async fn post_score(&self, post: &ScorePost) -> Result<PostOutcome, LtiError> {
        let req = self.sign(post)?;
        let outcome = self.send(&req).await;
        match &outcome {
            Ok(PostOutcome::Posted) => tracing::info!(
                user = %post.user, course_id = %post.course_id, block_id = %post.block_id,
                score = post.score, message_id = %req.message_id, "edX stored the score"
            ),
            Ok(PostOutcome::Rejected {
                code_major,
                description,
            }) => tracing::warn!(
                user = %post.user, course_id = %post.course_id, block_id = %post.block_id,
                %code_major, %description, message_id = %req.message_id, "edX refused the score"
            ),
            Err(e) => tracing::warn!(
                user = %post.user, course_id = %post.course_id, block_id = %post.block_id,
                error = %e, transient = e.is_transient(), "score not posted to edX"
            ),
        }
        outcome
    }
}

/// The start of an answer, on one line, for an error message.
pub fn excerpt(answer: &str) -> String {
    let one_line = answer.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}...", &one_line[..cut]),
        None => one_line,
    }
}
