//! The JupyterHub REST API: who owns a token, and the OAuth code exchange.

use std::time::Duration;

use serde::Deserialize;

use crate::secret::Secret;

/// What the Hub says about a token's owner.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HubIdentity {
    /// The user (or service) name.
    pub name: String,
    /// The token's scopes, as the Hub expanded them.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// `user` or `service`.
    #[serde(default)]
    pub kind: Option<String>,
}

/// What the Hub says about a user's standing: what staff access is decided from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct UserStanding {
    /// A Hub admin (staff of every course).
    #[serde(default)]
    pub admin: bool,
    /// The user's Hub groups (a course's `staff_group` makes its members staff).
    #[serde(default)]
    pub groups: Vec<String>,
}

/// Talking to the Hub failed (not: the Hub said no).
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("JupyterHub is unreachable: {0}")]
    Unreachable(String),
    #[error("JupyterHub answered {status}: {body}")]
    Unexpected { status: u16, body: String },
    #[error("the OAuth code was refused by JupyterHub")]
    BadCode,
}

/// The Hub, as this service needs it. A trait so unit tests can use a double.
#[async_trait::async_trait]
pub trait HubApi: Send + Sync + 'static {
    /// The owner of `token`, or `None` when the Hub does not know the token.
    async fn identify(&self, token: &Secret) -> Result<Option<HubIdentity>, HubError>;
    /// Exchange an OAuth authorization code for an access token.
    async fn exchange_code(&self, code: &str) -> Result<Secret, HubError>;
    /// User `name`'s admin flag and groups, read with the service's own token (which
    /// needs the `read:users` scope); `None` when the Hub has no such user.
    async fn standing(&self, name: &str) -> Result<Option<UserStanding>, HubError>;
    /// User `name`'s auth state (what the Hub's authenticator kept of the login: an LTI
    /// 1.3 launch's claims), read with the service's own token (which needs the
    /// `admin:auth_state` scope); `None` when the Hub has no such user or no auth state.
    async fn auth_state(&self, name: &str) -> Result<Option<serde_json::Value>, HubError> {
        let _ = name;
        Ok(None)
    }
}

/// The real Hub over HTTP.
pub struct HubClient {
    http: reqwest::Client,
    api_url: String,
    client_id: String,
    client_secret: Secret,
    redirect_uri: String,
}

impl HubClient {
    pub fn new(api_url: &str, client_id: &str, api_token: Secret, redirect_uri: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .expect("build HTTP client");
        Self {
            http,
            api_url: api_url.trim_end_matches('/').to_string(),
            client_id: client_id.to_string(),
            client_secret: api_token,
            redirect_uri: redirect_uri.to_string(),
        }
    }
}

impl HubClient {
    /// `GET {api}{path}` with `token`: the model, or `None` when the Hub answers one of
    /// `nobody` (no such token or user).
    async fn get_model<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        token: &Secret,
        nobody: &[u16],
    ) -> Result<Option<T>, HubError> {
        let resp = self
            .http
            .get(format!("{}{path}", self.api_url))
            .header("Authorization", format!("token {}", token.expose()))
            .send()
            .await
            .map_err(|e| HubError::Unreachable(e.without_url().to_string()))?;
        match resp.status().as_u16() {
            200 => resp
                .json()
                .await
                .map(Some)
                .map_err(|e| HubError::Unreachable(format!("bad {path} answer: {e}"))),
            status if nobody.contains(&status) => Ok(None),
            status => Err(HubError::Unexpected {
                status,
                body: resp
                    .text()
                    .await
                    .unwrap_or_default()
                    .chars()
                    .take(200)
                    .collect(),
            }),
        }
    }
}

#[async_trait::async_trait]
impl HubApi for HubClient {
    async fn identify(&self, token: &Secret) -> Result<Option<HubIdentity>, HubError> {
        // 403 (and 401 on some versions): the token belongs to nobody.
        self.get_model("/user", token, &[401, 403]).await
    }

    async fn standing(&self, name: &str) -> Result<Option<UserStanding>, HubError> {
        let name = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
        let path = format!("/users/{name}");
        self.get_model(&path, &self.client_secret, &[404]).await
    }

    async fn auth_state(&self, name: &str) -> Result<Option<serde_json::Value>, HubError> {
        #[derive(Deserialize)]
        struct WithAuthState {
            #[serde(default)]
            auth_state: Option<serde_json::Value>,
        }
        let name = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
        let path = format!("/users/{name}");
        let user: Option<WithAuthState> =
            self.get_model(&path, &self.client_secret, &[404]).await?;
        Ok(user.and_then(|u| u.auth_state).filter(|s| !s.is_null()))
    }

    async fn exchange_code(&self, code: &str) -> Result<Secret, HubError> {
        #[derive(Deserialize)]
        struct TokenResponse {
            access_token: String,
        }
        let form = [
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose()),
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.redirect_uri.as_str()),
        ];
        let resp = self
            .http
            .post(format!("{}/oauth2/token", self.api_url))
            .form(&form)
            .send()
            .await
            .map_err(|e| HubError::Unreachable(e.without_url().to_string()))?;
        match resp.status().as_u16() {
            200 => {
                let t: TokenResponse = resp
                    .json()
                    .await
                    .map_err(|e| HubError::Unreachable(format!("bad token answer: {e}")))?;
                Ok(Secret::new(t.access_token))
            }
            400 | 401 | 403 => Err(HubError::BadCode),
            status => Err(HubError::Unexpected {
                status,
                body: String::new(),
            }),
        }
    }
}
