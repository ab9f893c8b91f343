//! Access tokens: the OAuth 2.0 client-credentials grant with a JWT client assertion
//! (RFC 7523, as LTI 1.3's security framework asks), one cached token per platform.

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, Header};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::{AgsError, Platform, SCORE_SCOPE, TokenStore, ToolKeys};
use crate::secret::Secret;

/// How long an assertion is valid: long enough for clock skew, short enough that a
/// captured one is soon useless.
const ASSERTION_SECS: i64 = 300;
/// A cached token is not used in its last minute (a post may take that long to arrive).
const EXPIRY_MARGIN_MS: i64 = 60_000;
/// When a platform does not say how long its token lives.
const DEFAULT_EXPIRES_SECS: i64 = 3600;

#[derive(Serialize)]
struct Assertion<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
}

/// A signed client assertion for `platform`, issued at `now_secs`.
pub fn client_assertion(
    keys: &ToolKeys,
    platform: &Platform,
    now_secs: i64,
) -> Result<String, AgsError> {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(keys.kid().to_string());
    let claims = Assertion {
        iss: &platform.client_id,
        sub: &platform.client_id,
        aud: &platform.audience,
        iat: now_secs,
        exp: now_secs + ASSERTION_SECS,
        jti: uuid::Uuid::new_v4().to_string(),
    };
    jsonwebtoken::encode(&header, &claims, keys.signing_key())
        .map_err(|e| AgsError::Config(format!("cannot sign a client assertion: {e}")))
}

/// The form a token request sends.
pub fn token_form(assertion: &str) -> [(&'static str, &str); 4] {
    [
        ("grant_type", "client_credentials"),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion),
        ("scope", SCORE_SCOPE),
    ]
}

#[derive(Deserialize)]
pub struct TokenAnswer {
    pub access_token: String,
    #[serde(default)]
    pub token_type: Option<String>,
    #[serde(default)]
    pub expires_in: Option<i64>,
}

impl TokenAnswer {
    /// The token and when it expires, or why it cannot be used.
    pub fn into_token(self, now_ms: i64) -> Result<(Secret, i64), AgsError> {
        if self.access_token.is_empty() {
            return Err(AgsError::BadToken("an empty access_token".into()));
        }
        if let Some(t) = &self.token_type
            && !t.eq_ignore_ascii_case("bearer")
        {
            return Err(AgsError::BadToken(format!(
                "token_type {t:?}, not a bearer token"
            )));
        }
        let secs = self
            .expires_in
            .filter(|s| *s > 0)
            .unwrap_or(DEFAULT_EXPIRES_SECS);
        Ok((Secret::new(self.access_token), now_ms + secs * 1000))
    }
}

/// One platform's token and when it expires (ms), behind its own lock.
type Slot = Arc<Mutex<Option<(Secret, i64)>>>;

/// Tokens per platform: in memory, backed by a [`TokenStore`]; one request at a time per
/// platform, so a burst of posts shares one token.
pub struct TokenCache {
    store: Option<Arc<dyn TokenStore>>,
    slots: std::sync::Mutex<HashMap<String, Slot>>,
}

impl TokenCache {
    pub fn new(store: Option<Arc<dyn TokenStore>>) -> Self {
        Self {
            store,
            slots: Default::default(),
        }
    }

    fn slot(&self, key: &str) -> Slot {
        self.slots
            .lock()
            .expect("token slots")
            .entry(key.to_string())
            .or_default()
            .clone()
    }

    /// A usable token for `key`: the cached one, the stored one, or a new one from
    /// `fetch`. `refused` is a token the platform just answered 401 to: never returned
    /// again.
    pub async fn get<F, Fut>(
        &self,
        key: &str,
        now_ms: i64,
        refused: Option<&Secret>,
        fetch: F,
    ) -> Result<Secret, AgsError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(Secret, i64), AgsError>>,
    {
        let slot = self.slot(key);
        let mut held = slot.lock().await;
        let usable = |t: &(Secret, i64)| {
            t.1 - EXPIRY_MARGIN_MS > now_ms && refused.is_none_or(|r| r.expose() != t.0.expose())
        };
        if let Some(t) = held.as_ref().filter(|t| usable(t)) {
            return Ok(t.0.clone());
        }
        if held.is_none()
            && let Some(store) = &self.store
            && let Some(t) = store.load(key).await
            && usable(&t)
        {
            let token = t.0.clone();
            *held = Some(t);
            return Ok(token);
        }
        let (token, expires) = fetch().await?;
        if let Some(store) = &self.store {
            store.save(key, &token, expires).await;
        }
        *held = Some((token.clone(), expires));
        Ok(token)
    }
}
