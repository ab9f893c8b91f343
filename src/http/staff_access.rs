//! Who course staff are: the one check every staff route (the dashboard's pages and
//! actions, the calendar's actions) makes before anything is read or changed.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::AppState;
use super::error::ApiError;
use crate::jupyterhub::HubUser;

/// A request from course staff: who, and the courses they are staff of (never empty).
pub struct Staff {
    pub user: HubUser,
    pub courses: Vec<String>,
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let user = HubUser::from_request_parts(parts, app).await?;
        let standing = app.auth.standing(&user.name).await?;
        let courses = app.courses.staff_courses(standing.admin, &standing.groups);
        if courses.is_empty() {
            return Err(ApiError::Forbidden(
                "these pages are for course staff: JupyterHub admins and members of a \
                 course's staff group"
                    .into(),
            ));
        }
        Ok(Staff { user, courses })
    }
}

impl Staff {
    pub(super) fn of(&self, course: &str) -> Result<(), ApiError> {
        if self.courses.iter().any(|c| c == course) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "you are not staff of course {course:?}"
            )))
        }
    }

    /// Who did it, for the event log.
    pub(super) fn by(&self) -> String {
        format!("staff {} (dashboard)", self.user.name)
    }
}
