//! What a student sees of the calendar: their due date (extension included) and the
//! credit a submission earns now ([`due_view`]), each submission's lateness, and held
//! results kept back ([`apply`]). The Submit panel, the 202 answer and the pages all read
//! these.

use rusqlite::Connection;

use super::{Calendar, Judged, span};
use crate::db::DbError;
use crate::db::calendar::{self as store, AssignmentKey, DueView, OverriddenScore};
use crate::db::scores::StudentAssignment;
use crate::db::states::GradeStatus;
use crate::db::submissions::SubmissionView;

/// What a student whose assignment has no dates sees.
pub fn no_dates() -> DueView {
    DueView {
        state: "none".into(),
        due: None,
        extension_secs: None,
        opens: None,
        credit_now: None,
        credit_until: None,
        results_held: false,
        overridden: None,
        sentence: "This assignment has no due date.".into(),
        short: String::new(),
    }
}

/// `key`'s student's calendar for the assignment at `now`.
pub fn due_view(
    conn: &Connection,
    calendar: Option<&Calendar>,
    key: &StudentAssignment,
    now: i64,
) -> Result<DueView, DbError> {
    let mut overridden = store::override_of(conn, key)?.map(|o| OverriddenScore {
        score: o.score,
        max_score: o.max_score,
        set_at: o.set_at,
    });
    let Some(cal) = calendar else {
        return Ok(DueView {
            overridden,
            ..no_dates()
        });
    };
    let shift = store::shift_of(conn, key)?;
    let due = cal.due.shifted(shift);
    let released = store::release_of(conn, &AssignmentKey::of(key))?.is_some();
    let held = !cal.results_shown(released, now);
    if held {
        // A score set by staff is a result too: it waits for the release with the rest.
        overridden = None;
    }
    let when = |t: i64| {
        if t >= now {
            format!("in {}", span(t - now))
        } else {
            format!("{} ago", span(now - t))
        }
    };
    let extension = if shift > 0 {
        format!(" (with your extension of {})", span(shift))
    } else {
        String::new()
    };
    let judged = cal.judge(now, shift);
    let short = match judged {
        Judged::NotYet { opens } => format!("opens in {}", span(opens.ms - now)),
        Judged::Open { late_ms: 0, .. } => format!("due in {}", span(due.ms - now)),
        Judged::Open {
            credit,
            until: Some(u),
            ..
        } => format!("late: {credit}% credit for {}", span(u.ms - now)),
        Judged::Open { credit, .. } => format!("late: {credit}% credit"),
        Judged::Closed { .. } => "closed".into(),
    };
    let (state, credit_now, credit_until, mut sentence) = match judged {
        Judged::NotYet { opens } => (
            "not_yet",
            None,
            None,
            format!(
                "Opens for submissions at {} ({}); due {}{extension}.",
                opens.human(),
                when(opens.ms),
                due.human()
            ),
        ),
        Judged::Open {
            credit: _,
            late_ms: 0,
            ..
        } => (
            "open",
            Some(100.0),
            Some(due),
            format!("Due {} ({}){extension}.", due.human(), when(due.ms)),
        ),
        Judged::Open { credit, until, .. } => {
            let lasts = match until {
                Some(u) => format!(" until {} ({})", u.human(), when(u.ms)),
                None => String::new(),
            };
            (
                "late",
                Some(credit),
                until,
                format!(
                    "Late: a submission now earns {credit}% credit{lasts}. It was due {}{extension}.",
                    due.human()
                ),
            )
        }
        Judged::Closed { since } => (
            "closed",
            None,
            None,
            format!(
                "Closed for submissions since {} ({}){extension}.",
                since.human(),
                when(since.ms)
            ),
        ),
    };
    if held {
        sentence.push_str(" Results are shown when course staff release them.");
    }
    if let Some(o) = &overridden {
        sentence.push_str(&format!(
            " Course staff set your score to {} / {}.",
            o.score, o.max_score
        ));
    }
    Ok(DueView {
        state: state.into(),
        due: Some(due.rfc3339()),
        extension_secs: (shift > 0).then_some(shift / 1000),
        opens: cal.release.map(|r| r.rfc3339()),
        credit_now,
        credit_until: credit_until.map(|u| u.rfc3339()),
        results_held: held,
        overridden,
        sentence,
        short,
    })
}

/// What students see of held results: a graded submission says it was graded, and its
/// grade (score, per-question scores, feedback) stays back until the release.
pub const HELD: &str =
    "Graded. Your results are shown when course staff release them for this assignment.";

/// Put the calendar on `views` as their owner sees them at `now`: held grades taken out
/// (and `results_held` set), and with `with_due`, each view's [`DueView`].
/// `calendar_of(course, section, assignment)` is the assignment's calendar.
pub fn apply(
    conn: &Connection,
    calendar_of: impl Fn(&str, &str, &str) -> Option<std::sync::Arc<Calendar>>,
    now: i64,
    views: &mut [SubmissionView],
    with_due: bool,
) -> Result<(), DbError> {
    for v in views.iter_mut() {
        let calendar = calendar_of(&v.course, &v.section, &v.assignment);
        let key = StudentAssignment {
            user: v.user.clone(),
            course: v.course.clone(),
            section: v.section.clone(),
            assignment: v.assignment.clone(),
        };
        // The due view knows whether results are held; without it, ask the release.
        let due = match with_due {
            true => Some(due_view(conn, calendar.as_deref(), &key, now)?),
            false => None,
        };
        let held = match (&due, &calendar) {
            (Some(d), _) => d.results_held,
            (None, Some(cal)) => {
                let released = store::release_of(conn, &AssignmentKey::of(&key))?.is_some();
                !cal.results_shown(released, now)
            }
            (None, None) => false,
        };
        if held {
            v.results_held = true;
            // Only a score is held: a notebook that could not be graded (time limit,
            // memory, no results) says so, so its student can submit again in time.
            if v.grade
                .as_ref()
                .is_some_and(|g| g.status == GradeStatus::Graded)
            {
                v.grade = None;
                v.message = Some(HELD.into());
            }
        }
        v.due = due;
    }
    Ok(())
}
