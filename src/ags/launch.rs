//! Who a student is on an LTI 1.3 platform, from the launch the platform signed.
//!
//! JupyterHub's LTI13Authenticator (jupyterhub-ltiauthenticator) verifies a launch's
//! `id_token` against the platform's key set, then keeps its claims as the user's auth
//! state; the service reads that auth state with its own Hub token
//! ([`super::AuthStates`]). So the `sub` credited and the line item of a launch are what
//! the platform itself signed for that Hub user: nothing a browser sends (a header, the
//! Referer, a form field, the notebook's metadata) is consulted.

use serde_json::Value;

use super::Platform;

const DEPLOYMENT: &str = "https://purl.imsglobal.org/spec/lti/claim/deployment_id";
const RESOURCE_LINK: &str = "https://purl.imsglobal.org/spec/lti/claim/resource_link";
const AGS_ENDPOINT: &str = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint";

/// The parts of a verified launch the service uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub issuer: String,
    pub client_id: String,
    pub deployment_id: Option<String>,
    /// The platform's id for the student: the AGS `userId`.
    pub sub: String,
    pub resource_link_id: Option<String>,
    /// The line item the platform named for that resource link.
    pub lineitem: Option<String>,
}

/// Why an auth state gives no launch for a platform.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoLaunch {
    #[error("the user has no LTI 1.3 launch data")]
    Missing,
    #[error("the user's last launch came from another platform ({0})")]
    OtherPlatform(String),
    #[error("the user's launch data is not an LTI 1.3 launch: {0}")]
    Malformed(String),
}

impl Launch {
    /// The launch in `auth_state`, if it came from `platform` (its issuer, our client id
    /// among its audiences, and its deployment when the course config names one).
    pub fn from_auth_state(auth_state: &Value, platform: &Platform) -> Result<Launch, NoLaunch> {
        let Some(claims) = auth_state.as_object().filter(|o| !o.is_empty()) else {
            return Err(NoLaunch::Missing);
        };
        let text = |key: &str| claims.get(key).and_then(Value::as_str).map(str::to_string);
        let Some(issuer) = text("iss") else {
            return Err(NoLaunch::Missing);
        };
        let sub = text("sub")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| NoLaunch::Malformed("no sub".into()))?;
        let audiences: Vec<&str> = match claims.get("aud") {
            Some(Value::String(a)) => vec![a.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let deployment_id = text(DEPLOYMENT);
        if issuer != platform.issuer
            || !audiences.contains(&platform.client_id.as_str())
            || platform
                .deployment_id
                .as_ref()
                .is_some_and(|d| deployment_id.as_ref() != Some(d))
        {
            return Err(NoLaunch::OtherPlatform(issuer));
        }
        let resource_link_id = claims
            .get(RESOURCE_LINK)
            .and_then(|r| r.get("id"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let lineitem = claims
            .get(AGS_ENDPOINT)
            .and_then(|r| r.get("lineitem"))
            .and_then(Value::as_str)
            .map(str::to_string);
        Ok(Launch {
            issuer,
            client_id: platform.client_id.clone(),
            deployment_id,
            sub,
            resource_link_id,
            lineitem,
        })
    }
}
