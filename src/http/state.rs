//! What a request handler can reach. Built by [`crate::app`], which wires the service;
//! the HTTP layer depends on nothing above it.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use tokio::sync::Notify;

use crate::calendar::staff::Scope;
use crate::clock::Clock;
use crate::course::{Assignment, CourseConfig, Passback};
use crate::db::Db;
use crate::db::scores::StudentAssignment;
use crate::db::states::ScorePolicy;
use crate::grading::Runner;
use crate::jupyterhub::Auth;
use crate::metrics::Metrics;
use crate::settings::Settings;

/// Everything a request handler can reach.
pub struct App {
    pub settings: Settings,
    pub db: Db,
    pub courses: Arc<CourseConfig>,
    pub auth: Auth,
    pub runner: Arc<dyn Runner>,
    /// Woken when a grade job is queued.
    pub grade_notify: Arc<Notify>,
    /// Whether scores are posted to edX.
    pub lti_enabled: bool,
    /// The LTI 1.3 tool keys, when configured: their public set is served.
    pub tool_keys: Option<Arc<crate::ags::ToolKeys>>,
    /// Grade jobs waiting or running: refreshed from the database every half second and
    /// counted up by each accepted submission in between, so the backpressure check costs
    /// nothing per request (counting 10,000 rows per submission would).
    pub queue_depth: AtomicU64,
    /// What `/metrics` reports.
    pub metrics: Arc<Metrics>,
    /// The course calendar's clock (tests move it).
    pub clock: Clock,
}

/// Shared state of the router.
pub type AppState = Arc<App>;

impl App {
    /// The LMS post horizon (ms) when `a`'s scores are posted by this service, else `None`.
    pub fn post_horizon(&self, a: &Assignment) -> Option<i64> {
        let posts = match a.passback() {
            Some(Passback::Lti11) => self.lti_enabled,
            Some(Passback::Ags) => self.tool_keys.is_some(),
            None => false,
        };
        posts.then_some(self.settings.lti.retry_horizon_secs as i64 * 1000)
    }

    /// How a calendar action by `by` at `now` reaches assignment `a`.
    pub fn calendar_scope<'a>(&self, a: &'a Assignment, by: &'a str, now: i64) -> Scope<'a> {
        Scope {
            calendar: a.calendar.as_deref(),
            policy: a.post_score.unwrap_or(self.settings.lti.post_score),
            post_horizon_ms: self.post_horizon(a),
            by,
            now,
        }
    }

    /// Which grade counts for a student's assignment: the course config's choice for
    /// the assignment, else the service default (`lti.post_score`).
    pub fn policy_for(&self) -> impl Fn(&StudentAssignment) -> ScorePolicy + Send + 'static {
        let courses = self.courses.clone();
        let default = self.settings.lti.post_score;
        move |k: &StudentAssignment| {
            courses
                .find(&k.course, &k.section, &k.assignment)
                .ok()
                .and_then(|a| a.post_score)
                .unwrap_or(default)
        }
    }
}
