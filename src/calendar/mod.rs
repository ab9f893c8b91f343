//! The course calendar: when an assignment opens, when it is due, how much credit a late
//! submission earns, and whether its results wait for staff to release them. The dates
//! are the course config's (`calendar` on an assignment, [`RawCalendar`]); what is one
//! student's alone (extensions, overrides) and what staff did (releases) is in the
//! database (`db::calendar`), never in the config file (accommodations are private).
//!
//! The model is PrairieLearn's credit timeline: full credit until `due`, then an ordered
//! list of late windows, each with a lower credit, then either closed (new submissions
//! are refused with a sentence saying since when) or a last credit. A student's extension
//! shifts every deadline of theirs (due and late windows, not the opening) by its length.
//!
//! The credit multiplies the raw score (80% credit on 9/10 counts 7.2/10). PrairieLearn
//! instead caps the score at the credit; a cap leaves a half-right late notebook its full
//! half, which reads to students as "late costs nothing" and is not what "take 20% off"
//! means to the courses we serve. The credit is recorded beside the raw score, never in
//! place of it.
//!
//! A submission's lateness is fixed when it is committed (our `received_at`, never a
//! time the client sends): a notebook accepted a second before the deadline and graded an
//! hour after it is on time, across restarts and regrades.

pub mod admin;
pub mod staff;
pub mod views;

use rusqlite::Connection;
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use crate::db::DbError;
use crate::db::calendar::{self as store, Lateness};
use crate::db::scores::StudentAssignment;

/// A time the course config gave, with the zone it was given in (shown in that zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moment {
    /// Milliseconds since the Unix epoch.
    pub ms: i64,
    offset: UtcOffset,
}

impl Moment {
    /// An RFC 3339 time with its zone, e.g. `2026-12-08T23:59:00-08:00`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = OffsetDateTime::parse(text.trim(), &Rfc3339).map_err(|e| {
            format!(
                "{text:?} is not an RFC 3339 time with its time zone \
                 (e.g. \"2026-12-08T23:59:00-08:00\" or \"2026-12-09T07:59:00Z\"): {e}"
            )
        })?;
        Ok(Moment {
            ms: (t.unix_timestamp_nanos() / 1_000_000) as i64,
            offset: t.offset(),
        })
    }

    /// The same zone, `by_ms` later.
    pub fn shifted(self, by_ms: i64) -> Self {
        Moment {
            ms: self.ms + by_ms,
            ..self
        }
    }

    fn datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(self.ms as i128 * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
            .to_offset(self.offset)
    }

    /// RFC 3339 in the zone the config gave (for JSON).
    pub fn rfc3339(self) -> String {
        self.datetime().format(&Rfc3339).unwrap_or_default()
    }

    /// `2026-12-08 23:59 (UTC-08:00)`, for people.
    pub fn human(self) -> String {
        let f = time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute] (UTC[offset_hour sign:mandatory]:[offset_minute])"
        );
        self.datetime().format(&f).unwrap_or_default()
    }
}

/// A late window: submissions after the previous deadline and up to `until` earn `credit`.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub until: Moment,
    /// Percent of the raw score that counts, below the previous window's.
    pub credit: f64,
}

/// What happens after the last deadline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AfterLast {
    /// New submissions are refused.
    Closed,
    /// New submissions are graded and earn this credit (percent; 0 for feedback only).
    Credit(f64),
}

/// When students see their results (score, per-question scores) and the LMS gets them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Results {
    /// As soon as graded.
    Shown,
    /// When staff release them (`otter-service calendar release`, the dashboard button).
    Held,
    /// At this time, or earlier when staff release them.
    HeldUntil(Moment),
}

/// One assignment's calendar, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Calendar {
    /// Submissions before this are refused (not shifted by extensions).
    pub release: Option<Moment>,
    pub due: Moment,
    pub late: Vec<Window>,
    pub after_last: AfterLast,
    pub results: Results,
}

/// `calendar` in the course config, on an assignment:
///
/// ```json
/// "calendar": {
///   "release": "2026-12-01T09:00:00-08:00",
///   "due": "2026-12-08T23:59:00-08:00",
///   "late": [{"until": "2026-12-10T23:59:00-08:00", "credit": 80}],
///   "after_last": "closed",
///   "hold_results": "manual"
/// }
/// ```
/// `after_last` is `"closed"` (the default) or a credit percent; `hold_results` is
/// `"manual"` or a time (absent: results are shown when graded).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawCalendar {
    #[serde(default)]
    release: Option<String>,
    due: String,
    #[serde(default)]
    late: Vec<RawWindow>,
    #[serde(default)]
    after_last: Option<serde_json::Value>,
    #[serde(default)]
    hold_results: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    until: String,
    credit: f64,
}

impl Calendar {
    /// Check `raw` (at `at` in the config, for the error): every time has its zone, the
    /// deadlines follow each other, credits fall from 100 and stay within 0 to 100.
    pub fn parse(at: &str, raw: &RawCalendar) -> Result<Self, String> {
        let time = |key: &str, text: &str| {
            Moment::parse(text).map_err(|e| format!("key {:?}: {e}", format!("{at}.{key}")))
        };
        let release = raw
            .release
            .as_deref()
            .map(|t| time("release", t))
            .transpose()?;
        let due = time("due", &raw.due)?;
        if let Some(r) = release
            && r.ms >= due.ms
        {
            return Err(format!(
                "key {at:?}: release ({}) must come before due ({})",
                r.human(),
                due.human()
            ));
        }
        let (mut last, mut credit) = (due, 100.0);
        let mut late = Vec::new();
        for (i, w) in raw.late.iter().enumerate() {
            let key = format!("late[{i}]");
            let until = time(&format!("{key}.until"), &w.until)?;
            if until.ms <= last.ms {
                return Err(format!(
                    "key {:?}: {} must come after the deadline before it ({})",
                    format!("{at}.{key}.until"),
                    until.human(),
                    last.human()
                ));
            }
            if !(0.0..credit).contains(&w.credit) {
                return Err(format!(
                    "key {:?}: {} must be at least 0 and below the credit before it ({credit})",
                    format!("{at}.{key}.credit"),
                    w.credit
                ));
            }
            late.push(Window {
                until,
                credit: w.credit,
            });
            (last, credit) = (until, w.credit);
        }
        let after_last = match &raw.after_last {
            None => AfterLast::Closed,
            Some(serde_json::Value::String(s)) if s == "closed" => AfterLast::Closed,
            Some(serde_json::Value::Number(n))
                if n.as_f64().is_some_and(|c| (0.0..credit).contains(&c)) =>
            {
                AfterLast::Credit(n.as_f64().unwrap_or(0.0))
            }
            Some(other) => {
                return Err(format!(
                    "key {:?}: {other} must be \"closed\" or a credit at least 0 and below \
                     the last deadline's ({credit})",
                    format!("{at}.after_last")
                ));
            }
        };
        let results = match raw.hold_results.as_deref() {
            None => Results::Shown,
            Some("manual") => Results::Held,
            Some(t) => Results::HeldUntil(
                time("hold_results", t)
                    .map_err(|e| format!("{e} (or \"manual\" to hold until staff release them)"))?,
            ),
        };
        Ok(Calendar {
            release,
            due,
            late,
            after_last,
            results,
        })
    }

    /// The last deadline (due, or the last late window's end), shifted by `shift_ms`.
    pub fn last_deadline(&self, shift_ms: i64) -> Moment {
        self.late
            .last()
            .map_or(self.due, |w| w.until)
            .shifted(shift_ms)
    }

    /// What a submission committed at `at` earns, for a student whose deadlines are
    /// shifted by `shift_ms` (their extension). A deadline is inclusive: at `due` exactly
    /// is on time.
    pub fn judge(&self, at: i64, shift_ms: i64) -> Judged {
        if let Some(r) = self.release
            && at < r.ms
        {
            return Judged::NotYet { opens: r };
        }
        let due = self.due.shifted(shift_ms);
        if at <= due.ms {
            return Judged::Open {
                credit: 100.0,
                late_ms: 0,
                until: Some(due),
            };
        }
        for w in &self.late {
            let until = w.until.shifted(shift_ms);
            if at <= until.ms {
                return Judged::Open {
                    credit: w.credit,
                    late_ms: at - due.ms,
                    until: Some(until),
                };
            }
        }
        match self.after_last {
            AfterLast::Closed => Judged::Closed {
                since: self.last_deadline(shift_ms),
            },
            AfterLast::Credit(credit) => Judged::Open {
                credit,
                late_ms: at - due.ms,
                until: None,
            },
        }
    }

    /// The lateness to store on a submission committed at `at` (shift: the student's
    /// extension) when the calendar is applied again to stored work: before the release
    /// counts as on time, and after a closing as 0 credit (an extension was taken back,
    /// or the course changed its calendar).
    pub fn stamp_for(&self, at: i64, shift_ms: i64) -> Lateness {
        match self.judge(at, shift_ms) {
            Judged::Open {
                credit, late_ms, ..
            } => Lateness { credit, late_ms },
            Judged::NotYet { .. } => Lateness {
                credit: 100.0,
                late_ms: 0,
            },
            Judged::Closed { .. } => Lateness {
                credit: 0.0,
                late_ms: at - self.due.shifted(shift_ms).ms,
            },
        }
    }

    /// A fingerprint of the rules that make stamps (a changed one restamps at start).
    pub fn fingerprint(calendar: Option<&Calendar>) -> String {
        use sha2::Digest;
        let text = match calendar {
            None => "none".to_string(),
            Some(c) => format!(
                "{:?}|{:?}|{:?}|{:?}",
                c.release, c.due, c.late, c.after_last
            ),
        };
        hex::encode(&sha2::Sha256::digest(text)[..12])
    }

    /// Whether results are shown at `now`, given whether staff released them.
    pub fn results_shown(&self, released: bool, now: i64) -> bool {
        match self.results {
            Results::Shown => true,
            Results::Held => released,
            Results::HeldUntil(t) => released || now >= t.ms,
        }
    }
}

/// What the calendar says of a submission at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Judged {
    /// Not released yet: refused.
    NotYet { opens: Moment },
    /// Accepted with this credit (percent), `late_ms` after the student's due date (0 on
    /// time); this credit lasts `until` (none: for good).
    Open {
        credit: f64,
        late_ms: i64,
        until: Option<Moment>,
    },
    /// Closed since `since`: refused.
    Closed { since: Moment },
}

impl Judged {
    /// Why a submission is refused, for the student; `None` when it is taken.
    pub fn refusal(&self, assignment: &str) -> Option<String> {
        match self {
            Judged::NotYet { opens } => Some(format!(
                "{assignment} opens for submissions at {}; nothing was stored.",
                opens.human()
            )),
            Judged::Closed { since } => Some(format!(
                "{assignment} closed for submissions at {}; nothing was stored. Ask course \
                 staff if you need an extension.",
                since.human()
            )),
            Judged::Open { .. } => None,
        }
    }
}

/// Judge a submission of `key` committed at `now` under `calendar`: the lateness to store
/// with it, or [`DbError::Closed`] saying why it is refused. Runs on the writer, in the
/// transaction that stores the submission, so the time judged is the commit's.
pub fn admit(
    conn: &Connection,
    calendar: Option<&Calendar>,
    key: &StudentAssignment,
    now: i64,
) -> Result<Option<Lateness>, DbError> {
    let Some(cal) = calendar else {
        return Ok(None);
    };
    let shift = store::shift_of(conn, key)?;
    let judged = cal.judge(now, shift);
    match judged.refusal(&key.assignment) {
        None => Ok(Some(cal.stamp_for(now, shift))),
        Some(why) => Err(DbError::Closed(why)),
    }
}

/// How much later a student's deadlines move for an extension asked for as a new due
/// date (`until`, RFC 3339 with its zone; it wins when given) or as days and hours: at
/// least a minute and at most a year. The dashboard and the CLI both ask here.
pub fn extension_ms(
    due: Moment,
    days: Option<f64>,
    hours: Option<f64>,
    until: Option<&str>,
) -> Result<i64, String> {
    let ms = match until.filter(|u| !u.trim().is_empty()) {
        Some(u) => Moment::parse(u).map_err(|e| format!("until: {e}"))?.ms - due.ms,
        None => {
            let h = days.unwrap_or(0.0) * 24.0 + hours.unwrap_or(0.0);
            if !h.is_finite() {
                return Err("days and hours must be numbers".into());
            }
            (h * 3_600_000.0) as i64
        }
    };
    if !(60_000..=366 * 86_400_000).contains(&ms) {
        return Err(
            "an extension is at least a minute and at most a year later than the due date".into(),
        );
    }
    Ok(ms)
}

/// A staff action's reason as recorded: trimmed, at most 500 characters; `None` when
/// empty (every action must say why).
pub fn reason(text: &str) -> Option<String> {
    let r = text.trim();
    (!r.is_empty()).then(|| r.chars().take(500).collect())
}

/// "3 hours", "2 days", "1 day 12 hours", "45 minutes", "20 seconds": how long, for
/// people. Days keep their hours (an extension of a day and a half is not "2 days").
pub fn span(ms: i64) -> String {
    let secs = ms.max(0) / 1000;
    let unit = |n: i64, unit: &str| {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    if secs < 60 {
        unit(secs, "second")
    } else if secs < 90 * 60 {
        unit((secs + 30) / 60, "minute")
    } else if secs < 36 * 3600 && secs != 86_400 {
        unit((secs + 1800) / 3600, "hour")
    } else {
        let hours = (secs + 1800) / 3600;
        match (hours / 24, hours % 24) {
            (d, 0) => unit(d, "day"),
            (d, h) => format!("{} {}", unit(d, "day"), unit(h, "hour")),
        }
    }
}

#[cfg(test)]
mod tests;
