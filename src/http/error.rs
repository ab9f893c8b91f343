//! The one place that turns errors into HTTP status codes.
//!
//! Bodies are a short human sentence (the classic Notebook extension shows `response.text()`
//! in an alert); [`json_errors`] rewrites them as `{"error": ..., "status": ...}` for clients
//! that send `Accept: application/json`. A 500 carries no internals: the cause is logged.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::course::LookupError;
use crate::db::DbError;
use crate::jupyterhub::AuthError;
use crate::notebook::MetadataError;

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    #[error("the request body is larger than the limit of {limit} bytes; submit only the notebook")]
    TooLarge { limit: usize },
    #[error("{0}")]
    Unprocessable(String),
    #[error("the grading queue is full right now; please submit again in a minute")]
    QueueFull { retry_after_secs: u64 },
    #[error(
        "you already have {limit} submissions waiting to be graded; wait until one is graded, \
         then submit again (each waiting submission will be graded)"
    )]
    TooManyWaiting { limit: u64, retry_after_secs: u64 },
    #[error("{0}")]
    Unavailable(String),
    /// The course calendar refuses submissions now (not open yet, or closed).
    #[error("{0}")]
    Closed(String),
    /// Send the browser to the Hub's OAuth flow.
    /// The redirect response, with its signed state cookie.
    #[error("redirecting to JupyterHub to log in")]
    Login(Box<Response>),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// What kind of refusal this is, as a `/metrics` label (a fixed set of words).
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized(_) | ApiError::Login(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound => "not_found",
            ApiError::TooLarge { .. } => "too_large",
            ApiError::Unprocessable(_) => "unprocessable",
            ApiError::QueueFull { .. } => "queue_full",
            ApiError::TooManyWaiting { .. } => "too_many_waiting",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Closed(_) => "closed",
            ApiError::Internal(_) => "internal",
        }
    }
}

/// An error as a client that sent `Accept: application/json` reads it (else the body is
/// the `error` sentence as text/plain).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What was wrong, in a sentence.
    pub error: String,
    pub status: u16,
}

/// The message of an error response, kept for [`json_errors`].
#[derive(Clone)]
struct ErrorMessage(String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Login(resp) = self {
            return *resp;
        }
        let status = match &self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::Closed(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::QueueFull { .. } | ApiError::Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::TooManyWaiting { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Login(_) => StatusCode::FOUND,
            ApiError::Internal(e) => {
                tracing::error!(error = ?e, "request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let message = self.to_string();
        let mut resp = (status, format!("{message}\n")).into_response();
        let headers = resp.headers_mut();
        match &self {
            ApiError::QueueFull { retry_after_secs }
            | ApiError::TooManyWaiting {
                retry_after_secs, ..
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            ApiError::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("token"));
            }
            _ => {}
        }
        resp.extensions_mut().insert(ErrorMessage(message));
        resp
    }
}

impl From<MetadataError> for ApiError {
    fn from(e: MetadataError) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

impl From<LookupError> for ApiError {
    fn from(e: LookupError) -> Self {
        ApiError::BadRequest(format!(
            "{e}; check the notebook metadata or download a fresh copy of the assignment"
        ))
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::QueueFull { .. } => ApiError::QueueFull {
                retry_after_secs: 60,
            },
            DbError::StudentQueueFull { limit } => ApiError::TooManyWaiting {
                limit,
                retry_after_secs: 30,
            },
            DbError::Closed(why) => ApiError::Closed(why),
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Missing | AuthError::BadCookie => ApiError::Unauthorized(format!(
                "{e}. You are not logged in to the grading service: open the grading service's page \
                 from JupyterHub once in this browser (it logs you in), then submit again."
            )),
            AuthError::InvalidToken => {
                ApiError::Forbidden(format!("{e}; log in to JupyterHub again"))
            }
            AuthError::ReservedName(..) => ApiError::Forbidden(e.to_string()),
            AuthError::MissingScope { .. } => ApiError::Forbidden(format!(
                "{e}; ask the Hub administrator to grant it to the `user` role"
            )),
            AuthError::Hub(h) => {
                tracing::error!(error = %h, "JupyterHub request failed");
                ApiError::Unavailable(
                    "JupyterHub could not confirm who you are right now; try again in a minute"
                        .into(),
                )
            }
        }
    }
}

/// The sentence of a response made from an [`ApiError`], if it is one.
pub fn message_of(resp: &Response) -> Option<String> {
    resp.extensions().get::<ErrorMessage>().map(|m| m.0.clone())
}

/// Rewrite error bodies as JSON for clients that ask for JSON.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let wants_json = wants_json(req.headers());
    let resp = next.run(req).await;
    if !wants_json {
        return resp;
    }
    let Some(ErrorMessage(message)) = resp.extensions().get::<ErrorMessage>().cloned() else {
        return resp;
    };
    let (mut parts, _) = resp.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = ErrorBody {
        error: message,
        status: parts.status.as_u16(),
    };
    let body = serde_json::to_string(&body).expect("an error body serialises");
    Response::from_parts(parts, body.into())
}

/// True when the client asked for JSON.
pub fn wants_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"))
}
