//! `otter-service calendar ...`: extensions (one student, a list, or a CSV file), score
//! overrides, releases of held results, and what an assignment's calendar holds. The same
//! actions as the dashboard's (`calendar::staff`), recorded in the calendar log as done by
//! `cli`; the running service posts what they queue.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use rusqlite::Connection;

use super::staff::{self as actions, Moved, Scope};
use super::{Moment, span};
use crate::db::calendar::{self as store, AssignmentKey};
use crate::db::now_ms;
use crate::db::states::ScorePolicy;

/// Which assignment.
#[derive(Debug, Args)]
pub struct Which {
    #[arg(long)]
    course: String,
    #[arg(long)]
    section: String,
    #[arg(long)]
    assignment: String,
}

#[derive(Debug, Subcommand)]
pub enum CalendarCommand {
    /// Give students more time: each one's deadlines (due and late windows) move later.
    /// A new extension replaces the student's old one.
    Extend {
        #[command(flatten)]
        which: Which,
        /// The students (comma-separated), or --csv.
        #[arg(long, value_delimiter = ',', required_unless_present = "csv")]
        users: Vec<String>,
        /// A CSV file with a header: `user` and any of `days`, `hours`, `until`, `reason`
        /// (a row's own values win over the flags).
        #[arg(long)]
        csv: Option<PathBuf>,
        #[arg(long)]
        days: Option<f64>,
        #[arg(long)]
        hours: Option<f64>,
        /// The new due date (RFC 3339 with its zone) instead of days/hours.
        #[arg(long)]
        until: Option<String>,
        /// Why (recorded).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Take students' extensions back.
    Unextend {
        #[command(flatten)]
        which: Which,
        #[arg(long, value_delimiter = ',', required = true)]
        users: Vec<String>,
        #[arg(long)]
        reason: String,
    },
    /// Set the score that counts for one student (instead of their grades), or --remove it.
    Override {
        #[command(flatten)]
        which: Which,
        #[arg(long)]
        user: String,
        #[arg(long, required_unless_present = "remove")]
        score: Option<f64>,
        #[arg(long, required_unless_present = "remove")]
        max_score: Option<f64>,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        remove: bool,
    },
    /// Release held results: students see them, and their scores go to the LMS.
    Release {
        #[command(flatten)]
        which: Which,
    },
    /// The assignment's extensions, overrides, release and calendar log.
    Show {
        #[command(flatten)]
        which: Which,
    },
}

/// One extension asked for.
struct Ask {
    user: String,
    shift_ms: i64,
    reason: String,
}

fn shift(
    due: Moment,
    days: Option<f64>,
    hours: Option<f64>,
    until: Option<&str>,
) -> anyhow::Result<i64> {
    super::extension_ms(due, days, hours, until).map_err(anyhow::Error::msg)
}

#[allow(clippy::too_many_arguments)]
fn asks(
    due: Moment,
    users: &[String],
    csv_file: Option<&PathBuf>,
    days: Option<f64>,
    hours: Option<f64>,
    until: Option<&str>,
    reason: Option<&str>,
) -> anyhow::Result<Vec<Ask>> {
    let mut out = Vec::new();
    for u in users.iter().filter(|u| !u.trim().is_empty()) {
        let reason = reason_of(reason.unwrap_or(""))?;
        out.push(Ask {
            user: u.trim().into(),
            shift_ms: shift(due, days, hours, until)?,
            reason,
        });
    }
    if let Some(file) = csv_file {
        let mut r =
            csv::Reader::from_path(file).with_context(|| format!("reading {}", file.display()))?;
        let headers = r.headers()?.clone();
        let col = |name: &str| headers.iter().position(|h| h.trim() == name);
        let user_col = col("user").context("the CSV needs a `user` column")?;
        for (i, row) in r.records().enumerate() {
            let row = row?;
            let line = i + 2;
            let get = |name: &str| {
                col(name)
                    .and_then(|c| row.get(c))
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
            };
            let num = |name: &str| -> anyhow::Result<Option<f64>> {
                get(name)
                    .map(|v| v.parse::<f64>())
                    .transpose()
                    .with_context(|| format!("line {line}: {name} is not a number"))
            };
            let user = row.get(user_col).unwrap_or("").trim();
            anyhow::ensure!(!user.is_empty(), "line {line}: no user");
            let (d, h, t) = match (num("days")?, num("hours")?, get("until")) {
                (None, None, None) => (days, hours, until),
                (d, h, t) => (d, h, t),
            };
            let reason = get("reason")
                .or(reason)
                .with_context(|| format!("line {line}: no reason (column or --reason)"))?;
            out.push(Ask {
                user: user.into(),
                shift_ms: shift(due, d, h, t).with_context(|| format!("line {line}"))?,
                reason: reason_of(reason).with_context(|| format!("line {line}"))?,
            });
        }
    }
    anyhow::ensure!(!out.is_empty(), "name at least one student");
    Ok(out)
}

/// The assignment a command names, as the course config and settings make it (resolved
/// by the CLI).
pub struct Target {
    pub calendar: Option<std::sync::Arc<super::Calendar>>,
    pub policy: ScorePolicy,
    /// The LMS post's horizon (ms) when its scores are posted, else `None`.
    pub post_horizon_ms: Option<i64>,
}

impl CalendarCommand {
    /// The assignment it names: (course, section, assignment).
    pub fn assignment(&self) -> (&str, &str, &str) {
        let w = match self {
            CalendarCommand::Extend { which, .. }
            | CalendarCommand::Unextend { which, .. }
            | CalendarCommand::Override { which, .. }
            | CalendarCommand::Release { which }
            | CalendarCommand::Show { which } => which,
        };
        (&w.course, &w.section, &w.assignment)
    }
}

fn print_moved(m: &Moved) {
    let pct = actions::percent;
    println!(
        "{}: score that counts {} -> {}{}",
        m.user,
        pct(m.before),
        pct(m.after),
        if m.posted {
            " (sent to the LMS again)"
        } else {
            ""
        }
    );
}

/// A reason as recorded: trimmed, at most 500 characters, never empty.
fn reason_of(reason: &str) -> anyhow::Result<String> {
    let r = reason.trim();
    anyhow::ensure!(
        !r.is_empty(),
        "say why: --reason (it is recorded with the action)"
    );
    Ok(r.chars().take(500).collect())
}

/// Run a calendar command on `target` against the service's database.
pub fn run(conn: &mut Connection, target: &Target, command: CalendarCommand) -> anyhow::Result<()> {
    let (course, section, assignment) = command.assignment();
    let key = AssignmentKey {
        course: course.into(),
        section: section.into(),
        assignment: assignment.into(),
    };
    let scope = Scope {
        calendar: target.calendar.as_deref(),
        policy: target.policy,
        post_horizon_ms: target.post_horizon_ms,
        by: "cli",
        now: now_ms(),
    };
    let tx = conn.transaction()?;
    match command {
        CalendarCommand::Extend {
            users,
            csv,
            days,
            hours,
            until,
            reason,
            ..
        } => {
            let cal = target.calendar.as_deref().with_context(|| {
                format!("{} has no calendar in the course config", key.assignment)
            })?;
            let asks = asks(
                cal.due,
                &users,
                csv.as_ref(),
                days,
                hours,
                until.as_deref(),
                reason.as_deref(),
            )?;
            for ask in &asks {
                let m = actions::grant(
                    &tx,
                    &scope,
                    &key.student(&ask.user),
                    ask.shift_ms,
                    &ask.reason,
                )?;
                print!("extended by {}: ", span(ask.shift_ms));
                print_moved(&m);
            }
        }
        CalendarCommand::Unextend { users, reason, .. } => {
            let reason = reason_of(&reason)?;
            for u in &users {
                match actions::revoke(&tx, &scope, &key.student(u), &reason)? {
                    Some(m) => print_moved(&m),
                    None => println!("{u}: had no extension"),
                }
            }
        }
        CalendarCommand::Override {
            user,
            score,
            max_score,
            reason,
            remove,
            ..
        } => {
            let student = key.student(&user);
            let reason = reason_of(&reason)?;
            let m = if remove {
                actions::clear_override(&tx, &scope, &student, &reason)?
            } else {
                let (s, m) = score.zip(max_score).context("--score and --max-score")?;
                Some(actions::set_override(&tx, &scope, &student, s, m, &reason)?)
            };
            match m {
                Some(m) => print_moved(&m),
                None => println!("{user}: had no override"),
            }
        }
        CalendarCommand::Release { .. } => match actions::release(&tx, &scope, &key)? {
            Some(n) => println!("released the results of {n} student(s)"),
            None => println!("these results were released before"),
        },
        CalendarCommand::Show { .. } => {
            for e in store::extensions(&tx, &key)? {
                println!(
                    "extension {}: {} more ({}; {} at {})",
                    e.user,
                    span(e.shift_ms),
                    e.reason,
                    e.granted_by,
                    e.granted_at
                );
            }
            for o in store::overrides(&tx, &key)? {
                println!(
                    "override {}: {} / {} ({}; {} at {})",
                    o.user, o.score, o.max_score, o.reason, o.set_by, o.set_at
                );
            }
            if let Some(r) = store::release_of(&tx, &key)? {
                println!("released at {} by {}", r.released_at, r.released_by);
            }
            for l in store::log_of(&tx, &key, 1000)? {
                println!(
                    "{} {} {} {}: {}",
                    l.at,
                    l.actor,
                    l.user.unwrap_or_default(),
                    l.action,
                    l.detail
                );
            }
        }
    }
    tx.commit()?;
    Ok(())
}
