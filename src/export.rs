//! `dump-grades`: grades as CSV, for staff.
//!
//! Columns: `userid, grade, course, section, assignment, timestamp` (gofer's dump, with
//! `assignment` for gofer's `lab`; `grade` is the fraction in [0, 1] that counts and edX
//! receives: late credit and a staff override applied), then `score, max_score, status,
//! submission_id, grade_id, post_state, integrity_flags`, then the course calendar's
//! columns: `raw_grade` (the grade's own fraction), `credit` (percent), `late_secs` (after
//! the student's due date), `extension_secs`, `override_score`, `override_max_score`,
//! `override_reason` (empty where they do not apply).

use std::io::Write;

use crate::db::format_ms;
use crate::db::grades::GradeRecord;
use crate::db::states::ScorePolicy;

/// Which grades per student and assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Policy {
    /// Every grade.
    All,
    /// The grade that counts under `latest`: the newest submission's (its newest grade).
    Latest,
    /// The highest grade after late credit (the newest submission among equals).
    Best,
    /// The newest submission on time (extension included), else the newest.
    #[value(name = "latest_on_time")]
    LatestOnTime,
}

impl Policy {
    /// Which grade counts per student and assignment, or `None` for every grade.
    pub fn counting(self) -> Option<ScorePolicy> {
        match self {
            Policy::All => None,
            Policy::Latest => Some(ScorePolicy::Latest),
            Policy::Best => Some(ScorePolicy::Best),
            Policy::LatestOnTime => Some(ScorePolicy::LatestOnTime),
        }
    }
}

/// A text cell that a spreadsheet will not run as a formula: one starting with `=`, `+`,
/// `-`, `@`, a tab or a carriage return gets a leading `'` (OWASP's advice for CSV
/// injection; spreadsheets show the text as typed). Numbers are written as numbers.
fn cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// Write `records` as CSV with a header row. Text cells are made formula-safe.
pub fn write_csv<W: Write>(out: W, records: &[GradeRecord]) -> Result<(), csv::Error> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record([
        "userid",
        "grade",
        "course",
        "section",
        "assignment",
        "timestamp",
        "score",
        "max_score",
        "status",
        "submission_id",
        "grade_id",
        "post_state",
        "integrity_flags",
        "raw_grade",
        "credit",
        "late_secs",
        "extension_secs",
        "override_score",
        "override_max_score",
        "override_reason",
    ])?;
    for r in records {
        w.write_record([
            cell(&r.user),
            r.counted.to_string(),
            cell(&r.course),
            cell(&r.section),
            cell(&r.assignment),
            format_ms(r.graded_at),
            r.score.to_string(),
            r.max_score.to_string(),
            r.status.to_string(),
            r.submission_id.to_string(),
            r.grade_id.to_string(),
            r.post_state.to_string(),
            cell(r.integrity_flags.as_deref().unwrap_or("")),
            r.fraction.to_string(),
            opt(r.credit),
            opt(r.late_ms.map(|ms| ms / 1000)),
            opt(r.extension_ms.map(|ms| ms / 1000)),
            opt(r.overridden.as_ref().map(|o| o.0)),
            opt(r.overridden.as_ref().map(|o| o.1)),
            cell(r.overridden.as_ref().map_or("", |o| o.2.as_str())),
        ])?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: i64, user: &str, fraction: f64) -> GradeRecord {
        GradeRecord {
            grade_id: id,
            submission_id: id,
            user: user.into(),
            course: "c".into(),
            section: "1".into(),
            assignment: "a".into(),
            status: crate::db::states::GradeStatus::Graded,
            score: fraction * 5.0,
            max_score: 5.0,
            fraction,
            graded_at: id * 1000,
            post_state: crate::db::states::PostState::NotConfigured,
            integrity_flags: None,
            credit: None,
            late_ms: None,
            extension_ms: None,
            overridden: None,
            counted: fraction,
        }
    }

    #[test]
    fn cells_a_spreadsheet_would_run_are_neutralised() {
        let mut out = Vec::new();
        let evil = rec(1, "=HYPERLINK(\"http://x\",\"y\")", 0.5);
        write_csv(
            &mut out,
            &[
                evil,
                rec(2, "-2+3", 0.5),
                rec(3, "@SUM(A1)", 0.5),
                rec(4, "ann", 0.5),
            ],
        )
        .unwrap();
        let mut r = csv::Reader::from_reader(out.as_slice());
        let users: Vec<String> = r.records().map(|row| row.unwrap()[0].to_string()).collect();
        assert_eq!(
            users,
            [
                "'=HYPERLINK(\"http://x\",\"y\")",
                "'-2+3",
                "'@SUM(A1)",
                "ann"
            ]
        );
    }

    #[test]
    fn csv_has_header_and_quotes_awkward_names() {
        let mut out = Vec::new();
        write_csv(&mut out, &[rec(1, "o'neil, \"x\"", 0.5)]).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut r = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(&r.headers().unwrap()[0], "userid");
        let row = r.records().next().unwrap().unwrap();
        assert_eq!(&row[0], "o'neil, \"x\"");
        assert_eq!(&row[1], "0.5");
    }
}
