//! LTI 1.1 Basic Outcomes: post a score to edX with a `replaceResultRequest`, signed with
//! OAuth 1.0 HMAC-SHA1 plus `oauth_body_hash` (z2p `email_client.rs` shape: one struct per
//! peer, one method per remote call, behind a trait so tests can swap a double).
//!
//! How an answer is classified (the posting job retries transient errors with backoff and
//! marks permanent ones `dead` with the reason at once):
//! - HTTP 200 with `imsx_codeMajor` `success`: [`PostOutcome::Posted`], the only success.
//! - HTTP 200 with `failure` or `unsupported`: [`PostOutcome::Rejected`], permanent. edX says
//!   `failure` for a bad signature (wrong secret), an unknown user, a score out of range, an
//!   unparseable body or a grade past due, and `unsupported` for an operation it does not
//!   implement; none of these changes by sending the same request again. Staff fix the cause
//!   (secret, course config) and re-post.
//! - Any other `imsx_codeMajor` (the spec's `processing`, or a value edX never sends): not a
//!   confirmation, so transient; `replaceResult` is idempotent, so a retry is harmless.
//! - Network error, timeout, HTTP 5xx, 408, 425, 429, or an answer that is not a POX
//!   envelope: transient. (An envelope that breaks only after a complete `imsx_codeMajor`
//!   still counts: edX's success description embeds the sourcedId unescaped.)
//! - Any other 3xx/4xx: permanent. edX's handler answers 200 for everything it understood,
//!   so a 404 means the outcome URL (course id, block id, base URL) is wrong and a 3xx means
//!   the base URL is (redirects are not followed: a redirected POST loses its body).
//!   Retrying the identical request cannot help; staff fix the course config and re-post.
//! - A post we refuse before sending (score NaN or outside [0, 1], a user XML cannot carry,
//!   an id with characters edX keys never have) and bad configuration: permanent.

mod client;
mod oauth;
mod xml;

use std::time::Duration;

use url::Url;

use crate::secret::Secret;

pub use client::{EdxOutcomesClient, SignedRequest, excerpt};

/// How to reach edX. Built once from settings.
#[derive(Clone, Debug)]
pub struct LtiConfig {
    /// Scheme and host of the LMS, e.g. `https://courses.edx.org` (`http://127.0.0.1:PORT`
    /// in tests). Its host[:port] is the `{EDX_URL}` of the outcome URL and sourcedId.
    pub edx_base_url: Url,
    /// The LTI passport's key, as configured in the edX LTI component.
    pub consumer_key: String,
    /// The LTI passport's secret. Never logged.
    pub consumer_secret: Secret,
    /// Bound on one whole request (connect, send, read the answer).
    pub timeout: Duration,
}

/// One score for one student on one edX LTI component.
#[derive(Clone, Debug, PartialEq)]
pub struct ScorePost {
    /// edX course id without the `course-v1:` prefix, e.g. `BerkeleyX+Data8.1x+2026`.
    pub course_id: String,
    /// The LTI component's block id.
    pub block_id: String,
    /// The edX user id (anonymous user id or username) edX knows the student by.
    pub user: String,
    /// A fraction in [0, 1].
    pub score: f64,
}

/// What edX answered to a post it understood.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PostOutcome {
    /// edX stored the score (`imsx_codeMajor` = `success`).
    Posted,
    /// edX answered and refused (`failure` or `unsupported`); sending again will not help.
    Rejected {
        code_major: String,
        description: String,
    },
}

/// Why a post did not reach a definite answer, or could not be sent at all.
#[derive(Debug, thiserror::Error)]
pub enum LtiError {
    #[error("LTI is misconfigured: {0}")]
    Config(String),
    #[error("score post refused before sending: {0}")]
    InvalidPost(String),
    #[error("edX did not answer within {0:?}")]
    Timeout(Duration, #[source] reqwest::Error),
    #[error("could not reach edX: {0}")]
    Network(#[source] reqwest::Error),
    #[error("edX answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("edX's answer is not an LTI outcomes response: {0}")]
    BadResponse(String),
    #[error(
        "edX answered imsx_codeMajor {code_major:?}, which does not confirm the score: {description}"
    )]
    Unconfirmed {
        code_major: String,
        description: String,
    },
}

impl LtiError {
    /// Whether sending the same post later may succeed. See the module docs for the rules.
    pub fn is_transient(&self) -> bool {
        match self {
            LtiError::Timeout(..)
            | LtiError::Network(_)
            | LtiError::BadResponse(_)
            | LtiError::Unconfirmed { .. } => true,
            LtiError::Status { status, .. } => *status >= 500 || matches!(*status, 408 | 425 | 429),
            LtiError::Config(_) | LtiError::InvalidPost(_) => false,
        }
    }
}

/// Sends scores to an LTI 1.1 tool consumer (edX).
#[async_trait::async_trait]
pub trait OutcomesClient: Send + Sync {
    /// Replace the student's score on the component with `post.score`.
    async fn post_score(&self, post: &ScorePost) -> Result<PostOutcome, LtiError>;
}

/// `{EDX_URL}`: host[:port] of the base URL (the port only when not the scheme's default).
fn edx_host(base: &Url) -> String {
    let host = base.host_str().unwrap_or_default();
    match base.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// edX's outcome service URL for one LTI component:
/// `{base}/courses/course-v1:{course_id}/xblock/block-v1:{course_id}+type@lti_consumer+block@{block_id}/handler_noauth/outcome_service_handler`.
/// `base` must be an http(s) URL; its path (normally `/`) is kept as a prefix, its query dropped.
pub fn outcome_url(base: &Url, course_id: &str, block_id: &str) -> Url {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty().extend([
            "courses",
            &format!("course-v1:{course_id}"),
            "xblock",
            &format!("block-v1:{course_id}+type@lti_consumer+block@{block_id}"),
            "handler_noauth",
            "outcome_service_handler",
        ]);
    }
    url
}

/// The `lis_result_sourcedid` edX would have given us at launch:
/// `course-v1%3A{course_id}:{EDX_URL}-{block_id}:{user}`.
///
/// edX finds the user as `unquote(sourcedId.split(':')[-1])` (lti_consumer/outcomes.py), so
/// `%` and `:` in the user are percent-encoded (`%25`, `%3A`) and edX recovers the exact name;
/// every other character (including `<`, `&` and non-ASCII) is kept as is and XML-escaped
/// later. Ordinary edX ids (hex anonymous ids, usernames) contain neither, so for them this
/// is exactly the documented format.
pub fn sourced_id(base: &Url, course_id: &str, block_id: &str, user: &str) -> String {
    let user = user.replace('%', "%25").replace(':', "%3A");
    format!(
        "course-v1%3A{course_id}:{}-{block_id}:{user}",
        edx_host(base)
    )
}

impl ScorePost {
    /// Refuse, before anything is sent, what edX cannot take or what would change the URL.
    fn validate(&self) -> Result<(), LtiError> {
        if !(0.0..=1.0).contains(&self.score) {
            return Err(LtiError::InvalidPost(format!(
                "score {} is not a number in [0, 1]",
                self.score
            )));
        }
        check_key("course id", &self.course_id)?;
        check_key("block id", &self.block_id)?;
        // XML 1.0 cannot carry control characters, not even as character references.
        let bad_char = |c: char| c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}';
        if self.user.is_empty() || self.user.chars().any(bad_char) {
            return Err(LtiError::InvalidPost(format!(
                "user {:?} is empty or has control characters",
                self.user
            )));
        }
        Ok(())
    }
}

/// edX course and block keys are made of `[\w\-~.:]` (opaque-keys), joined by `+`.
/// Anything else (`/`, `?`, `#`, `%`, spaces) would change the URL's meaning.
fn check_key(what: &str, value: &str) -> Result<(), LtiError> {
    let ok = |c: char| c.is_alphanumeric() || "_-~.:+".contains(c);
    if value.is_empty() || !value.chars().all(ok) {
        return Err(LtiError::InvalidPost(format!(
            "{what} {value:?} is empty or has characters edX ids never have"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
