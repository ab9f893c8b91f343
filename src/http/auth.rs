//! The `HubUser` extractor and the OAuth callback.

use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, SameSite, SignedCookieJar};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::ApiError;
use super::error::ErrorBody;
use crate::jupyterhub::{AuthError, HubUser, SESSION_COOKIE, STATE_COOKIE};
use crate::secret::Secret;

/// `Authorization: token <t>` or `Bearer <t>`.
fn token_from(headers: &HeaderMap) -> Option<Secret> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let ok = scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer");
    (ok && !token.trim().is_empty()).then(|| Secret::new(token.trim()))
}

/// Whether the request carries a cookie with `name`, signed or not.
fn has_cookie(headers: &HeaderMap, name: &str) -> bool {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .any(|c| c.trim().starts_with(&format!("{name}=")))
}

/// A browser page load, which can be sent through the Hub's login instead of a 401.
fn is_browser_get(parts: &Parts) -> bool {
    parts.method == Method::GET
        && parts
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"))
}

impl FromRequestParts<AppState> for HubUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        if let Some(token) = token_from(&parts.headers) {
            return Ok(app.auth.user_for_token(&token).await?);
        }
        let jar = SignedCookieJar::from_headers(&parts.headers, app.auth.key().clone());
        match app.auth.user_from_cookie(&jar).await {
            Ok(user) => Ok(user),
            // No session, one signed with a key we no longer have, one that expired or
            // whose user the Hub no longer knows: a page load logs in afresh...
            Err(AuthError::Missing | AuthError::BadCookie) if is_browser_get(parts) => {
                Err(login(app, parts))
            }
            // ...anything else is told it is not logged in.
            Err(AuthError::Missing) if has_cookie(&parts.headers, SESSION_COOKIE) => {
                Err(AuthError::BadCookie.into())
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// What we remember across the trip to the Hub.
#[derive(Serialize, Deserialize)]
struct OAuthState {
    state: String,
    next: String,
}

/// Start the OAuth flow: remember `state` and where to come back to, go to the Hub.
fn login(app: &AppState, parts: &Parts) -> ApiError {
    let s = &app.settings;
    let state = hex::encode(rand::random::<[u8; 16]>());
    let next = parts
        .uri
        .path_and_query()
        .map_or(s.server.prefix.clone(), |p| p.to_string());
    // Cookie values may not hold JSON's quotes and commas: base64 it.
    let json = serde_json::to_vec(&OAuthState {
        state: state.clone(),
        next,
    })
    .unwrap_or_default();
    let value = URL_SAFE_NO_PAD.encode(json);
    let cookie = Cookie::build((STATE_COOKIE, value))
        .path(s.server.prefix.clone())
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(time::Duration::minutes(10))
        .build();
    let jar = SignedCookieJar::new(app.auth.key().clone()).add(cookie);
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &s.hub.client_id)
        .append_pair("redirect_uri", &s.hub.oauth_callback_url)
        .append_pair("response_type", "code")
        .append_pair("state", &state)
        .finish();
    let location = format!("{}api/oauth2/authorize?{query}", s.hub.browser_hub_prefix);
    // The jar writes the *signed* cookie into the response.
    ApiError::Login(Box::new((jar, Redirect::to(&location)).into_response()))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// JupyterHub's OAuth callback: check `state`, exchange the code, set the session
/// cookie, and go back to the page that asked for the login.
#[utoipa::path(get, path = "/oauth_callback", tag = "students",
    params(Callback),
    responses(
        (status = 303, description = "Logged in: back to the service's page", headers(("location" = String))),
        (status = 400, description = "An incomplete, expired or forged login link", content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 403, description = "JupyterHub refused the login, or the code is not valid", content((String = "text/plain"), (ErrorBody = "application/json"))),
        (status = 503, description = "JupyterHub could not be reached", content((String = "text/plain"), (ErrorBody = "application/json"))),
    ))]
pub async fn oauth_callback(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Result<Response, ApiError> {
    let prefix = app.settings.server.prefix.clone();
    let jar = SignedCookieJar::from_headers(&headers, app.auth.key().clone());
    if let Some(error) = q.error {
        return Err(ApiError::Forbidden(format!(
            "JupyterHub refused the login: {error}"
        )));
    }
    let remembered: Option<OAuthState> = jar
        .get(STATE_COOKIE)
        .and_then(|c| URL_SAFE_NO_PAD.decode(c.value()).ok())
        .and_then(|v| serde_json::from_slice(&v).ok());
    let (Some(code), Some(state), Some(remembered)) = (q.code, q.state, remembered) else {
        return Err(ApiError::BadRequest(format!(
            "this login link is incomplete or expired; open {prefix} to log in again"
        )));
    };
    if remembered.state != state {
        return Err(ApiError::BadRequest(format!(
            "the login state does not match (a stale or forged link); open {prefix} to log in again"
        )));
    }
    let (user, token) = app.auth.user_for_code(&code).await?;
    tracing::info!(user = %user.name, "logged in through JupyterHub");
    let secure = secure_cookies(&app, &headers);
    let jar = jar
        .remove(Cookie::build(STATE_COOKIE).path(prefix.clone()))
        .add(app.auth.session_cookie(&user.name, &token, &prefix, secure));
    // Only ever send the browser back into this service (no open redirect).
    let next = if remembered.next.starts_with(&prefix) && !remembered.next.starts_with("//") {
        remembered.next
    } else {
        prefix
    };
    Ok((jar, Redirect::to(&next)).into_response())
}

/// Whether cookies get `Secure`: from the scheme of `server.public_url` when it is set
/// (what operators configure), else from the proxy's `X-Forwarded-Proto`.
fn secure_cookies(app: &AppState, headers: &HeaderMap) -> bool {
    match app.settings.server.public_url.as_deref() {
        Some(url) => url.to_ascii_lowercase().starts_with("https://"),
        None => headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https")),
    }
}

/// Forget the session here, then log out of JupyterHub too.
#[utoipa::path(get, path = "/logout", tag = "students",
    responses((status = 303, description = "To JupyterHub's logout", headers(("location" = String)))))]
pub async fn logout(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let prefix = app.settings.server.prefix.clone();
    // A removal cookie is only written for a cookie the request carried.
    let jar = axum_extra::extract::cookie::CookieJar::from_headers(&headers)
        .remove(Cookie::build(SESSION_COOKIE).path(prefix));
    let hub_logout = format!("{}logout", app.settings.hub.browser_hub_prefix);
    (jar, Redirect::to(&hub_logout)).into_response()
}
