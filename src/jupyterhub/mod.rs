//! Identity comes from JupyterHub only: a Hub token (`Authorization: token ...`), checked
//! with one `GET {api}/user` and cached briefly, or our signed session cookie, set at the
//! end of the Hub's OAuth flow. Never from `Referer`, `X-Otter-User` or the query string.

pub mod client;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum_extra::extract::cookie::{Cookie, Key, SameSite, SignedCookieJar};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};

pub use client::{HubApi, HubClient, HubError, HubIdentity, UserStanding};

use crate::secret::Secret;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "otter-service-session";
/// Name of the cookie holding the OAuth `state` while the browser is at the Hub.
pub const STATE_COOKIE: &str = "otter-service-oauth-state";

/// An authenticated JupyterHub user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubUser {
    pub name: String,
    /// How they proved it: a token needs no XSRF check, a cookie does.
    pub via_cookie: bool,
}

/// Why a request is not authenticated.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no JupyterHub token or session cookie")]
    Missing,
    #[error("JupyterHub does not recognise this token")]
    InvalidToken,
    #[error("user {user:?} lacks the scope {scope:?} needed to use this service")]
    MissingScope { user: String, scope: String },
    #[error("the session cookie is invalid or expired")]
    BadCookie,
    #[error("the user name {0:?} is reserved for {1}")]
    ReservedName(String, &'static str),
    #[error(transparent)]
    Hub(#[from] HubError),
}

/// Token checks, session cookies and XSRF tokens.
pub struct Auth {
    hub: Arc<dyn HubApi>,
    required_scopes: Vec<String>,
    /// Token digest -> user name, for `cache_ttl`.
    cache: Fresh<[u8; 32], String>,
    /// Users' admin flags and groups, for staff pages (as briefly as tokens).
    standings: Fresh<String, UserStanding>,
    session_ttl: Duration,
    key: Key,
    xsrf_key: [u8; 32],
}

impl Auth {
    /// `secret` signs cookies; it must be stable across restarts for sessions to survive.
    pub fn new(
        hub: Arc<dyn HubApi>,
        required_scopes: Vec<String>,
        secret: &Secret,
        cache_ttl: Duration,
        session_ttl: Duration,
    ) -> Self {
        let master: [u8; 32] = if secret.is_empty() {
            rand::random()
        } else {
            Sha256::digest(format!("otter-service-cookie:{}", secret.expose())).into()
        };
        let key = Key::from(&sha2::Sha512::digest(master));
        let xsrf_key = Sha256::digest([&master[..], b"xsrf"].concat()).into();
        Self {
            hub,
            required_scopes,
            cache: Fresh::new(cache_ttl),
            standings: Fresh::new(cache_ttl),
            session_ttl,
            key,
            xsrf_key,
        }
    }

    /// The cookie signing key.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// The user owning `token`, if the Hub knows it and it carries the required scopes.
    pub async fn user_for_token(&self, token: &Secret) -> Result<HubUser, AuthError> {
        let digest: [u8; 32] = Sha256::digest(token.expose()).into();
        if let Some(name) = self.cache.get(&digest) {
            return Ok(HubUser {
                name,
                via_cookie: false,
            });
        }
        let identity = self
            .hub
            .identify(token)
            .await?
            .ok_or(AuthError::InvalidToken)?;
        self.check_scopes(&identity)?;
        self.cache.insert(digest, identity.name.clone());
        Ok(HubUser {
            name: identity.name,
            via_cookie: false,
        })
    }

    /// User `name`'s admin flag and groups, from the Hub (cached for the token cache's
    /// time, so a removal from a staff group takes effect within it). A user the Hub does
    /// not know has no standing.
    pub async fn standing(&self, name: &str) -> Result<UserStanding, AuthError> {
        if let Some(standing) = self.standings.get(name) {
            return Ok(standing);
        }
        let standing = self.hub.standing(name).await?.unwrap_or_default();
        self.standings.insert(name.to_string(), standing.clone());
        Ok(standing)
    }

    /// Require one of the access scopes, as JupyterHub's own `HubAuth` does (a managed
    /// service gets `JUPYTERHUB_OAUTH_ACCESS_SCOPES` = a list any of which grants access).
    /// A held scope without a filter covers the filtered one: `access:services` covers
    /// `access:services!service=otter_grade`.
    pub fn check_scopes(&self, id: &HubIdentity) -> Result<(), AuthError> {
        // A Hub user named like an XQueue learner or a platform's user would see (and
        // be credited with) that user's submissions.
        if let Some(door) = crate::users::reserved_by(&id.name) {
            return Err(AuthError::ReservedName(id.name.clone(), door));
        }
        let holds = |need: &String| {
            let base = need.split('!').next().unwrap_or(need);
            id.scopes.iter().any(|have| have == need || have == base)
        };
        if self.required_scopes.is_empty() || self.required_scopes.iter().any(holds) {
            return Ok(());
        }
        Err(AuthError::MissingScope {
            user: id.name.clone(),
            scope: self.required_scopes.join(" or "),
        })
    }

    /// After the OAuth flow: who the access token belongs to, and the token (kept in the
    /// session cookie, so the session is re-checked with the Hub as a token is).
    pub async fn user_for_code(&self, code: &str) -> Result<(HubUser, Secret), AuthError> {
        let token = self.hub.exchange_code(code).await?;
        let identity = self
            .hub
            .identify(&token)
            .await?
            .ok_or(AuthError::InvalidToken)?;
        self.check_scopes(&identity)?;
        let user = HubUser {
            name: identity.name,
            via_cookie: true,
        };
        Ok((user, token))
    }

    /// A session cookie for `user`, valid for the session lifetime, carrying the OAuth
    /// access token the Hub gave us for them (signed, HttpOnly; as JupyterHub's own
    /// `HubOAuth` keeps it). Each use re-checks that token with the Hub at most every
    /// `token_cache_secs`: a user the Hub deleted or logged out loses the session then.
    pub fn session_cookie(
        &self,
        user: &str,
        token: &Secret,
        path: &str,
        secure: bool,
    ) -> Cookie<'static> {
        let expires = now_secs() + self.session_ttl.as_secs();
        let value =
            URL_SAFE_NO_PAD.encode(serde_json::json!([user, expires, token.expose()]).to_string());
        Cookie::build((SESSION_COOKIE, value))
            .path(path.to_string())
            .http_only(true)
            .secure(secure)
            .same_site(SameSite::Lax)
            .max_age(time::Duration::seconds(self.session_ttl.as_secs() as i64))
            .build()
    }

    /// The user of a valid session cookie, checked with the Hub (through the token
    /// cache); `Missing` without one (or with one this key cannot verify), `BadCookie`
    /// when it is tampered with, expired, or the Hub no longer knows its user's token.
    pub async fn user_from_cookie(&self, jar: &SignedCookieJar) -> Result<HubUser, AuthError> {
        let Some(cookie) = jar.get(SESSION_COOKIE) else {
            return Err(AuthError::Missing);
        };
        let decoded = URL_SAFE_NO_PAD
            .decode(cookie.value())
            .map_err(|_| AuthError::BadCookie)?;
        let (name, expires, token): (String, u64, String) =
            serde_json::from_slice(&decoded).map_err(|_| AuthError::BadCookie)?;
        if expires < now_secs() {
            return Err(AuthError::BadCookie);
        }
        let user = match self.user_for_token(&Secret::new(token)).await {
            Ok(u) => u,
            Err(AuthError::InvalidToken | AuthError::MissingScope { .. }) => {
                return Err(AuthError::BadCookie);
            }
            Err(e) => return Err(e),
        };
        if user.name != name {
            return Err(AuthError::BadCookie);
        }
        Ok(HubUser {
            name,
            via_cookie: true,
        })
    }

    /// The XSRF token a cookie-authenticated form must send back.
    pub fn xsrf_token(&self, user: &str) -> String {
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&self.xsrf_key).expect("any key size");
        mac.update(user.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether a state-changing browser request of `user` may go on: one authenticated
    /// by a Hub token always (a browser does not send it on its own), one by our cookie
    /// only with the page's XSRF `token`.
    pub fn xsrf_allows(&self, user: &HubUser, token: &str) -> bool {
        !user.via_cookie || self.check_xsrf(&user.name, token)
    }

    /// Constant-time check of an XSRF token.
    pub fn check_xsrf(&self, user: &str, token: &str) -> bool {
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&self.xsrf_key).expect("any key size");
        mac.update(user.as_bytes());
        hex::decode(token).is_ok_and(|t| mac.verify_slice(&t).is_ok())
    }
}

/// A map whose entries are good for `ttl`: what the Hub said, kept briefly.
struct Fresh<K, V> {
    map: Mutex<HashMap<K, (V, Instant)>>,
    ttl: Duration,
}

impl<K: std::hash::Hash + Eq, V: Clone> Fresh<K, V> {
    fn new(ttl: Duration) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    /// The value for `key` if it is younger than `ttl`.
    fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        let map = self.map.lock().expect("cache poisoned");
        map.get(key)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(v, _)| v.clone())
    }

    /// Keep `value` for `key`; past 10,000 entries, the stale ones go first.
    fn insert(&self, key: K, value: V) {
        let mut map = self.map.lock().expect("cache poisoned");
        if map.len() > 10_000 {
            map.retain(|_, (_, at)| at.elapsed() < self.ttl);
        }
        map.insert(key, (value, Instant::now()));
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests;
