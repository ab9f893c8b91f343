//! The AGS score POST over HTTP, with the token it needs.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};

use super::token::{TokenAnswer, TokenCache, client_assertion, token_form};
use super::{AgsClient, AgsError, AgsScore, Platform, TokenStore, ToolKeys};
use crate::lti::excerpt;
use crate::secret::Secret;

/// The most of an answer kept for an error message.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
pub const SCORE_MEDIA_TYPE: &str = "application/vnd.ims.lis.v1.score+json";

/// Posts scores to LTI 1.3 platforms.
pub struct HttpAgsClient {
    http: reqwest::Client,
    keys: Arc<ToolKeys>,
    tokens: TokenCache,
    timeout: Duration,
    /// Token requests made (for the benchmark and metrics: near 0 per post when cached).
    pub token_requests: std::sync::atomic::AtomicU64,
}

impl HttpAgsClient {
    pub fn new(
        keys: Arc<ToolKeys>,
        store: Option<Arc<dyn TokenStore>>,
        timeout: Duration,
    ) -> Result<Self, AgsError> {
        if timeout.is_zero() {
            return Err(AgsError::Config("the LTI 1.3 timeout is zero".into()));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirected POST loses its body, and a token must not follow a redirect
            // to another host: never follow.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| AgsError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            keys,
            tokens: TokenCache::new(store),
            timeout,
            token_requests: Default::default(),
        })
    }

    fn transport(&self, e: reqwest::Error) -> AgsError {
        if e.is_timeout() {
            AgsError::Timeout(self.timeout)
        } else {
            // Without the URL's query (it may carry a platform's signature).
            AgsError::Network(e.without_url().to_string())
        }
    }

    /// Ask the platform for a new token.
    async fn fetch_token(&self, platform: &Platform) -> Result<(Secret, i64), AgsError> {
        self.token_requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = super::now_ms();
        let assertion = client_assertion(&self.keys, platform, now / 1000)?;
        let response = self
            .http
            .post(platform.token_url.clone())
            .header(ACCEPT, "application/json")
            .form(&token_form(&assertion))
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = response.status().as_u16();
        let (body, _) = self.read(response).await?;
        if !(200..300).contains(&status) {
            return Err(if status >= 500 || matches!(status, 408 | 425 | 429) {
                AgsError::Status {
                    what: "the token request",
                    status,
                    body: excerpt(&body),
                    retry_after: None,
                }
            } else {
                AgsError::TokenRefused {
                    status,
                    body: excerpt(&body),
                }
            });
        }
        serde_json::from_str::<TokenAnswer>(&body)
            .map_err(|e| AgsError::BadToken(format!("not a token answer ({e})")))?
            .into_token(now)
    }

    async fn read(
        &self,
        mut response: reqwest::Response,
    ) -> Result<(String, Option<u64>), AgsError> {
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let mut answer = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(e))? {
            let room = MAX_ANSWER_BYTES - answer.len();
            answer.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if answer.len() == MAX_ANSWER_BYTES {
                break;
            }
        }
        Ok((String::from_utf8_lossy(&answer).into_owned(), retry_after))
    }

    /// One POST of `body` with `token`: the status, the answer's start, `Retry-After`.
    async fn send(
        &self,
        score: &AgsScore,
        body: &serde_json::Value,
        token: &Secret,
    ) -> Result<(u16, String, Option<u64>), AgsError> {
        let response = self
            .http
            .post(score.scores_url())
            .header(CONTENT_TYPE, SCORE_MEDIA_TYPE)
            .header(AUTHORIZATION, format!("Bearer {}", token.expose()))
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = response.status().as_u16();
        let (answer, retry_after) = self.read(response).await?;
        Ok((status, answer, retry_after))
    }
}

#[async_trait::async_trait]
impl AgsClient for HttpAgsClient {
    async fn post_score(&self, platform: &Platform, score: &AgsScore) -> Result<(), AgsError> {
        let body = score.body()?;
        let key = platform.cache_key();
        let mut refused: Option<Secret> = None;
        loop {
            let token = self
                .tokens
                .get(&key, super::now_ms(), refused.as_ref(), || {
                    self.fetch_token(platform)
                })
                .await?;
            let (status, answer, retry_after) = self.send(score, &body, &token).await?;
            match status {
                200..=204 => return Ok(()),
                // The token was revoked or expired early: one new token, one more try.
                401 if refused.is_none() => {
                    tracing::info!(platform = %platform.issuer,
                        "the platform refused our access token; asking for a new one");
                    refused = Some(token);
                }
                _ => {
                    return Err(AgsError::Status {
                        what: "the score post",
                        status,
                        body: excerpt(&answer),
                        retry_after,
                    });
                }
            }
        }
    }
}
