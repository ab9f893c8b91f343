//! LTI 1.3 Advantage Assignment and Grade Services (AGS): post a student's score to a
//! line item of an LTI 1.3 platform (edX, Canvas, Moodle).
//!
//! - [`keys`]: the tool's RSA key pair, its `kid`, and the public key set the service
//!   serves at `{prefix}lti13/jwks.json` (the current key and retired ones, for rotation).
//! - [`token`]: the OAuth 2.0 client-credentials grant with a JWT client assertion
//!   (RFC 7523), cached per platform until shortly before it expires and kept across
//!   restarts by a [`TokenStore`].
//! - [`client`]: the score POST, with one token refresh on a 401.
//! - [`launch`]: who the student is on the platform (`sub`) and which line item a resource
//!   link has, read from the launch the platform signed and JupyterHub's
//!   LTI13Authenticator verified and kept as the user's auth state. Never from anything
//!   the client sends.
//!
//! How an answer is classified (the post job retries transient errors with backoff and
//! marks permanent ones `dead` with the reason at once), like LTI 1.1's:
//! - 200, 201, 202, 204 to the score POST: stored (the spec's answers; edX says 201).
//! - Network error, timeout, 5xx, 408, 425, 429 (with its `Retry-After`): transient.
//! - 401: the token was refused; one fresh token is asked for and the post sent again at
//!   once; a second 401 is permanent.
//! - Any other 4xx (a wrong line item URL, a user the platform does not know, a token
//!   without the score scope, a refused timestamp): permanent; staff fix the course
//!   config and re-post. The token endpoint's 4xx (`invalid_client`: our key set or
//!   client id is not what the platform has) likewise.

pub mod client;
pub mod keys;
pub mod launch;
pub mod token;

use std::time::Duration;

use url::Url;

pub use client::HttpAgsClient;
pub use keys::ToolKeys;
pub use launch::Launch;

/// The AGS scope a score post needs (the only one the service asks for).
pub const SCORE_SCOPE: &str = "https://purl.imsglobal.org/spec/lti-ags/scope/score";

/// An LTI 1.3 platform, as a course config section names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// The platform's `iss` in its launches, e.g. `https://courses.edx.org`.
    pub issuer: String,
    /// The client id the platform gave this tool (`aud` of its launches; `iss`/`sub` of
    /// our client assertions).
    pub client_id: String,
    /// The deployment launches must come from, when the course config names one.
    pub deployment_id: Option<String>,
    /// The platform's OAuth 2.0 token endpoint.
    pub token_url: Url,
    /// The `aud` of our client assertions: the token URL unless the platform says
    /// otherwise (Canvas, for one, names its own).
    pub audience: String,
}

impl Platform {
    /// One key per platform registration, for the token cache.
    pub fn cache_key(&self) -> String {
        serde_json::json!([self.token_url.as_str(), self.client_id]).to_string()
    }
}

/// How a course config names an assignment's line item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineItemRef {
    /// The line item's URL.
    Url(Url),
    /// The resource link the platform launches the assignment from: the line item is the
    /// one the platform put in a launch of it.
    ResourceLink(String),
}

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// An absolute http(s) URL without credentials or a fragment.
pub fn parse_http_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text.trim()).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{text:?} is not an http(s) URL"));
    }
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return Err(format!("{text:?} must not carry credentials or a fragment"));
    }
    Ok(url)
}

/// One score for one student on one line item.
#[derive(Debug, Clone, PartialEq)]
pub struct AgsScore {
    pub lineitem: Url,
    /// The platform's `sub` for the student (from the launch).
    pub user_id: String,
    /// Points, in `[0, score_maximum]`.
    pub score_given: f64,
    /// The assignment's points (> 0).
    pub score_maximum: f64,
    /// When the score was made, ms since the epoch: later than any earlier post of this
    /// student and line item (platforms refuse an equal or older one).
    pub timestamp_ms: i64,
    /// When the service received the submission that counts (AGS `submission.submittedAt`:
    /// the LMS can tell a late submission from a late post).
    pub submitted_at_ms: Option<i64>,
}

impl AgsScore {
    /// `{lineitem}/scores`, keeping the line item's query (Moodle puts its type there).
    pub fn scores_url(&self) -> Url {
        let mut url = self.lineitem.clone();
        let path = format!("{}/scores", url.path().trim_end_matches('/'));
        url.set_path(&path);
        url
    }

    /// The `application/vnd.ims.lis.v1.score+json` body.
    pub fn body(&self) -> Result<serde_json::Value, AgsError> {
        let ok = |v: f64| v.is_finite() && v >= 0.0;
        if !ok(self.score_given)
            || !ok(self.score_maximum)
            || self.score_maximum == 0.0
            || self.score_given > self.score_maximum
        {
            return Err(AgsError::InvalidPost(format!(
                "score {} of {} is not a number between 0 and a positive maximum",
                self.score_given, self.score_maximum
            )));
        }
        if self.user_id.is_empty() || self.user_id.chars().any(char::is_control) {
            return Err(AgsError::InvalidPost(
                "the platform's user id is empty or has control characters".into(),
            ));
        }
        let mut body = serde_json::json!({
            "userId": self.user_id,
            "scoreGiven": self.score_given,
            "scoreMaximum": self.score_maximum,
            "activityProgress": "Completed",
            "gradingProgress": "FullyGraded",
            "timestamp": rfc3339_ms(self.timestamp_ms)?,
        });
        if let Some(at) = self.submitted_at_ms {
            body["submission"] = serde_json::json!({"submittedAt": rfc3339_ms(at)?});
        }
        Ok(body)
    }
}

/// `ms` as RFC 3339 UTC with milliseconds, e.g. `2026-12-03T02:21:05.123Z`.
fn rfc3339_ms(ms: i64) -> Result<String, AgsError> {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|e| AgsError::InvalidPost(format!("timestamp: {e}")))?;
    at.format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| AgsError::InvalidPost(format!("timestamp: {e}")))
}

/// Why a post did not reach a definite answer, or could not be sent at all.
#[derive(Debug, thiserror::Error)]
pub enum AgsError {
    #[error("LTI 1.3 is misconfigured: {0}")]
    Config(String),
    #[error("score post refused before sending: {0}")]
    InvalidPost(String),
    #[error("the platform did not answer within {0:?}")]
    Timeout(Duration),
    #[error("could not reach the platform: {0}")]
    Network(String),
    #[error("the platform's token endpoint refused our client assertion (HTTP {status}): {body}")]
    TokenRefused { status: u16, body: String },
    #[error("the platform answered HTTP {status} to {what}: {body}")]
    Status {
        what: &'static str,
        status: u16,
        body: String,
        /// `Retry-After` in seconds, when the platform sent one.
        retry_after: Option<u64>,
    },
    #[error("the platform's token answer is not usable: {0}")]
    BadToken(String),
}

impl AgsError {
    /// Whether sending the same post later may succeed. See the module docs.
    pub fn is_transient(&self) -> bool {
        match self {
            AgsError::Timeout(_) | AgsError::Network(_) | AgsError::BadToken(_) => true,
            AgsError::Status { status, .. } | AgsError::TokenRefused { status, .. } => {
                *status >= 500 || matches!(*status, 408 | 425 | 429)
            }
            AgsError::Config(_) | AgsError::InvalidPost(_) => false,
        }
    }

    /// The least wait the platform asked for.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AgsError::Status {
                retry_after: Some(s),
                ..
            } => Some(Duration::from_secs(*s)),
            _ => None,
        }
    }
}

/// A platform's access token, kept where the service keeps its state so a restart does
/// not ask for a new one. Tokens are bearer secrets: never logged.
#[async_trait::async_trait]
pub trait TokenStore: Send + Sync {
    /// The stored token for `key` and when it expires (ms since the epoch).
    async fn load(&self, key: &str) -> Option<(crate::secret::Secret, i64)>;
    /// Keep `token` for `key` until `expires_ms`.
    async fn save(&self, key: &str, token: &crate::secret::Secret, expires_ms: i64);
}

/// Sends scores to LTI 1.3 platforms.
#[async_trait::async_trait]
pub trait AgsClient: Send + Sync {
    async fn post_score(&self, platform: &Platform, score: &AgsScore) -> Result<(), AgsError>;
}

/// The user's JupyterHub auth state (what LTI13Authenticator stored from the user's last
/// verified launch), read with the service's own Hub token; `Ok(None)` when the Hub has
/// none for the user.
#[async_trait::async_trait]
pub trait AuthStates: Send + Sync {
    async fn auth_state(&self, hub_user: &str) -> Result<Option<serde_json::Value>, String>;
}

#[cfg(test)]
mod tests;
