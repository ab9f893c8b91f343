//! `dump-grades`: grades as CSV, for staff.
//!
//! Columns: `userid, grade, course, section, assignment, timestamp` (gofer's dump, with
//! `assignment` for gofer's `lab`; `grade` is the fraction in [0, 1] that edX receives),
//! then `score, max_score, status, submission_id, grade_id, post_state`.

use std::collections::BTreeMap;
use std::io::Write;

use crate::db::format_ms;
use crate::db::grades::GradeRecord;

/// Which grades per student and assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Policy {
    /// Every grade.
    All,
    /// The most recent grade.
    Latest,
    /// The highest grade (the most recent among equals).
    Best,
}

/// Keep the grades `policy` asks for. `records` must be oldest first.
pub fn select(records: Vec<GradeRecord>, policy: Policy) -> Vec<GradeRecord> {
    if policy == Policy::All {
        return records;
    }
    let mut chosen: BTreeMap<(String, String, String, String), GradeRecord> = BTreeMap::new();
    for r in records {
        let key = (
            r.user.clone(),
            r.course.clone(),
            r.section.clone(),
            r.assignment.clone(),
        );
        let replace = match chosen.get(&key) {
            None => true,
            Some(_) if policy == Policy::Latest => true,
            Some(old) => r.fraction >= old.fraction,
        };
        if replace {
            chosen.insert(key, r);
        }
    }
    let mut out: Vec<GradeRecord> = chosen.into_values().collect();
    out.sort_by_key(|r| (r.graded_at, r.grade_id));
    out
}

/// Write `records` as CSV with a header row.
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
    ])?;
    for r in records {
        w.write_record([
            r.user.clone(),
            r.fraction.to_string(),
            r.course.clone(),
            r.section.clone(),
            r.assignment.clone(),
            format_ms(r.graded_at),
            r.score.to_string(),
            r.max_score.to_string(),
            r.status.clone(),
            r.submission_id.to_string(),
            r.grade_id.to_string(),
            r.post_state.clone(),
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
            status: "graded".into(),
            score: fraction * 5.0,
            max_score: 5.0,
            fraction,
            graded_at: id * 1000,
            post_state: "not_configured".into(),
        }
    }

    #[test]
    fn latest_and_best_pick_one_per_student() {
        let all = vec![
            rec(1, "a", 0.4),
            rec(2, "b", 1.0),
            rec(3, "a", 0.9),
            rec(4, "a", 0.2),
        ];
        let ids = |v: Vec<GradeRecord>| v.iter().map(|r| r.grade_id).collect::<Vec<_>>();
        assert_eq!(ids(select(all.clone(), Policy::All)), [1, 2, 3, 4]);
        assert_eq!(ids(select(all.clone(), Policy::Latest)), [2, 4]);
        assert_eq!(ids(select(all, Policy::Best)), [2, 3]);
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
