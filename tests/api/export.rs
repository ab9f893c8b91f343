//! `dump-grades` output, parsed as CSV, matches the database for each policy and filter.

use std::collections::BTreeMap;
use std::process::Command;

use otter_service::db::grades::NewGrade;
use otter_service::db::states::{GradeStatus, JobKind, PostState};
use otter_service::db::submissions::{NewSubmission, accept, enqueue_grade};
use otter_service::db::{grades, jobs, migrations_apply};
use rusqlite::Connection;

use crate::helpers::cli;

fn new_grade(score: Option<f64>) -> NewGrade {
    let (status, score) = match score {
        Some(x) => (GradeStatus::Graded, x),
        None => (GradeStatus::Timeout, 0.0),
    };
    NewGrade {
        status,
        score,
        max_score: 5.0,
        fraction: score / 5.0,
        tests_json: "[]".into(),
        public_feedback: String::new(),
        message: None,
        log_tail: None,
        integrity_flags: None,
    }
}

/// Claim the next grade job at `t` and store `score` for it, as a worker does.
fn grade_next(c: &Connection, t: i64, score: Option<f64>) {
    let job = jobs::claim_next(c, JobKind::Grade, t, 1000)
        .unwrap()
        .unwrap();
    jobs::finish(c, &job, t).unwrap();
    let g = new_grade(score);
    grades::insert(
        c,
        job.submission_id,
        job.id,
        &g,
        PostState::NotConfigured,
        t + 500,
    )
    .unwrap();
}

/// A database with grades for two users, two assignments, two sections; returns its path.
fn fixture(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("otter.db");
    let mut c = Connection::open(&path).unwrap();
    migrations_apply(&mut c).unwrap();
    let rows = [
        ("amy", "1", "lab1", Some(2.0)),
        ("amy", "1", "lab1", Some(4.0)),
        ("amy", "1", "lab1", Some(3.0)),
        ("bob", "1", "lab1", Some(5.0)),
        ("bob", "2", "lab2", None),
        ("o'neil, jr", "2", "lab2", Some(1.0)),
    ];
    for (i, (user, section, lab, score)) in rows.iter().enumerate() {
        let s = NewSubmission {
            user: user.to_string(),
            course: "8x".into(),
            section: section.to_string(),
            assignment: lab.to_string(),
            notebook: b"{}".to_vec(),
            notebook_path: None,
        };
        let t = 1_000_000 + i as i64 * 1000;
        accept(&c, &s, 3, t).unwrap();
        grade_next(&c, t, *score);
    }
    // Staff regrade amy's first submission last, and it scores 5/5: the newest grade in
    // time, but not the newest submission's.
    enqueue_grade(&c, 1, 3, 2_000_000).unwrap();
    grade_next(&c, 2_000_000, Some(5.0));
    path
}

fn dump(db: &std::path::Path, args: &[&str]) -> Vec<BTreeMap<String, String>> {
    let out = cli(db, &[&["dump-grades"], args].concat());
    let mut r = csv::Reader::from_reader(out.as_bytes());
    let headers = r.headers().unwrap().clone();
    for col in [
        "userid",
        "grade",
        "course",
        "section",
        "assignment",
        "timestamp",
    ] {
        assert!(headers.iter().any(|h| h == col), "missing column {col}");
    }
    r.records()
        .map(|row| {
            headers
                .iter()
                .zip(row.unwrap().iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// What the database says, computed independently with SQL.
fn expected(db: &std::path::Path, sql_filter: &str) -> Vec<(String, String, f64)> {
    let c = Connection::open(db).unwrap();
    let sql = format!(
        "SELECT s.user, s.assignment, g.fraction FROM grades g JOIN submissions s ON s.id = g.submission_id
         WHERE {sql_filter} ORDER BY g.graded_at, g.id"
    );
    let mut stmt = c.prepare(&sql).unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn triples(rows: &[BTreeMap<String, String>]) -> Vec<(String, String, f64)> {
    rows.iter()
        .map(|r| {
            (
                r["userid"].clone(),
                r["assignment"].clone(),
                r["grade"].parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn dump_grades_matches_the_database_for_each_policy_and_filter() {
    let dir = tempfile::tempdir().unwrap();
    let db = fixture(dir.path());
    assert_eq!(triples(&dump(&db, &[])), expected(&db, "1"));
    assert_eq!(
        triples(&dump(&db, &["--section", "2"])),
        expected(&db, "s.section = '2'")
    );
    assert_eq!(
        triples(&dump(&db, &["--assignment", "lab1", "--user", "amy"])),
        expected(&db, "s.user = 'amy'")
    );
    // latest: the newest grade of each student's newest graded submission.
    let latest = "g.id IN (SELECT MAX(g2.id) FROM grades g2 WHERE g2.submission_id IN (
                     SELECT MAX(s2.id) FROM submissions s2 JOIN grades g3 ON g3.submission_id = s2.id
                      GROUP BY s2.user, s2.course, s2.section, s2.assignment)
                   GROUP BY g2.submission_id)";
    let latest_rows = triples(&dump(&db, &["--policy", "latest"]));
    assert_eq!(latest_rows, expected(&db, latest));
    assert!(
        latest_rows.contains(&("amy".into(), "lab1".into(), 0.6)),
        "the regrade of amy's first submission does not displace her newest: {latest_rows:?}"
    );
    let best = dump(&db, &["--policy", "best"]);
    let amy: Vec<_> = best.iter().filter(|r| r["userid"] == "amy").collect();
    assert_eq!(amy.len(), 1);
    assert_eq!(amy[0]["grade"], "1", "amy's best is the regrade's 5/5");
    assert_eq!(best.len(), 4, "one row per student and assignment");
    let weird = best
        .iter()
        .find(|r| r["userid"] == "o'neil, jr")
        .expect("quoted name survives");
    assert_eq!(weird["section"], "2");
    // Writing to a file gives the same rows.
    let out = dir.path().join("grades.csv");
    let status = Command::new(env!("CARGO_BIN_EXE_otter-service"))
        .args(["dump-grades", "--policy", "latest", "--output"])
        .arg(&out)
        .env("OTTER_DATABASE__PATH", &db)
        .status()
        .unwrap();
    assert!(status.success());
    let mut r = csv::Reader::from_path(&out).unwrap();
    let users: Vec<String> = r.records().map(|row| row.unwrap()[0].to_string()).collect();
    let want: Vec<String> = expected(&db, latest)
        .into_iter()
        .map(|(u, _, _)| u)
        .collect();
    assert_eq!(users, want);
}

#[test]
fn a_user_name_a_spreadsheet_would_run_is_exported_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("otter.db");
    let mut c = Connection::open(&path).unwrap();
    migrations_apply(&mut c).unwrap();
    let s = NewSubmission {
        user: "=cmd|' /C calc'!A0".into(),
        course: "8x".into(),
        section: "1".into(),
        assignment: "lab1".into(),
        notebook: b"{}".to_vec(),
        notebook_path: None,
    };
    accept(&c, &s, 3, 1_000).unwrap();
    grade_next(&c, 1_000, Some(5.0));
    let rows = dump(&path, &[]);
    assert_eq!(rows[0]["userid"], "'=cmd|' /C calc'!A0");
    assert_eq!(rows[0]["grade"], "1", "numbers stay numbers");
}
