//! What the staff dashboard reads: per assignment, where its submissions stand, its
//! queue, its scores and questions, its integrity flags, dead submissions and edX posts.
//! Counts of submissions by state are the same rows `otter-service status` counts jobs of.

use std::collections::BTreeMap;

use rusqlite::{Connection, params};
use serde::Serialize;

use super::grades::{self, GradeFilter, GradeRecord};
use super::states::ScorePolicy;
use super::{DbError, format_ms};

/// One assignment's numbers.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct AssignmentRow {
    pub course: String,
    pub section: String,
    pub assignment: String,
    pub students: i64,
    pub submissions: i64,
    pub queued: i64,
    pub grading: i64,
    pub graded: i64,
    pub failed: i64,
    pub dead: i64,
    /// Grades the trusted evaluator flagged.
    pub flagged: i64,
    /// When the oldest submission still waiting was received (ms).
    pub oldest_waiting: Option<i64>,
}

/// The assignments of `courses` that have submissions, with their numbers.
pub fn assignments(conn: &Connection, courses: &[String]) -> Result<Vec<AssignmentRow>, DbError> {
    let courses = serde_json::to_string(courses).expect("a list of strings");
    let mut rows: BTreeMap<(String, String, String), AssignmentRow> = BTreeMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT course, section, assignment, COUNT(DISTINCT user), COUNT(*),
                SUM(state = 'queued'), SUM(state = 'grading'), SUM(state = 'graded'),
                SUM(state = 'failed'), SUM(state = 'dead'),
                MIN(CASE WHEN state = 'queued' THEN received_at END)
           FROM submissions WHERE course IN (SELECT value FROM json_each(?1))
          GROUP BY course, section, assignment",
    )?;
    let found = stmt.query_map([&courses], |r| {
        Ok(AssignmentRow {
            course: r.get(0)?,
            section: r.get(1)?,
            assignment: r.get(2)?,
            students: r.get(3)?,
            submissions: r.get(4)?,
            queued: r.get(5)?,
            grading: r.get(6)?,
            graded: r.get(7)?,
            failed: r.get(8)?,
            dead: r.get(9)?,
            flagged: 0,
            oldest_waiting: r.get(10)?,
        })
    })?;
    for row in found {
        let row = row?;
        let key = (
            row.course.clone(),
            row.section.clone(),
            row.assignment.clone(),
        );
        rows.insert(key, row);
    }
    let mut stmt = conn.prepare_cached(
        "SELECT s.course, s.section, s.assignment, COUNT(*)
           FROM grades g JOIN submissions s ON s.id = g.submission_id
          WHERE g.integrity_flags IS NOT NULL
            AND s.course IN (SELECT value FROM json_each(?1))
          GROUP BY s.course, s.section, s.assignment",
    )?;
    let flagged = stmt.query_map([&courses], |r| {
        Ok(((r.get(0)?, r.get(1)?, r.get(2)?), r.get::<_, i64>(3)?))
    })?;
    for f in flagged {
        let (key, n) = f?;
        if let Some(row) = rows.get_mut(&key) {
            row.flagged = n;
        }
    }
    Ok(rows.into_values().collect())
}

/// A submission in a staff list.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Line {
    pub submission_id: i64,
    pub user: String,
    pub received_at: String,
    pub state: String,
    /// The newest grade's score and maximum, if graded.
    pub score: Option<(f64, f64)>,
    /// Why it died, why it was flagged...
    pub detail: Option<String>,
}

/// One question's pass rate among the grades that count.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct QuestionRate {
    pub name: String,
    /// Students with full marks on it.
    pub passed: i64,
    pub students: i64,
}

/// One assignment in detail.
#[derive(Debug, Clone, Serialize)]
pub struct AssignmentDetail {
    pub row: AssignmentRow,
    /// Submissions received per hour: (hour start, ms; count).
    pub per_hour: Vec<(i64, i64)>,
    /// The grade that counts per student, under the assignment's policy.
    pub counting: Vec<GradeRecord>,
    pub questions: Vec<QuestionRate>,
    /// The newest submissions.
    pub recent: Vec<Line>,
    /// Submissions whose grading is dead, with the reason.
    pub dead: Vec<Line>,
    /// Flagged grades, with the flags.
    pub flagged: Vec<Line>,
    /// Counting grades per edX post state.
    pub posts: BTreeMap<String, i64>,
}

/// How many of the newest submissions an assignment page lists.
const RECENT: i64 = 50;

/// The details of one assignment (all zeros before its first submission); `policy`
/// says which grade counts.
pub fn assignment(
    conn: &Connection,
    (course, section, assignment): (&str, &str, &str),
    policy: ScorePolicy,
) -> Result<AssignmentDetail, DbError> {
    let row = assignments(conn, &[course.to_string()])?
        .into_iter()
        .find(|r| r.section == section && r.assignment == assignment)
        .unwrap_or_else(|| AssignmentRow {
            course: course.into(),
            section: section.into(),
            assignment: assignment.into(),
            ..Default::default()
        });
    let key = params![course, section, assignment];
    let per_hour = conn
        .prepare_cached(
            "SELECT received_at / 3600000 * 3600000, COUNT(*) FROM submissions
              WHERE course = ?1 AND section = ?2 AND assignment = ?3 GROUP BY 1 ORDER BY 1",
        )?
        .query_map(key, |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let filter = GradeFilter {
        course: Some(course.into()),
        section: Some(section.into()),
        assignment: Some(assignment.into()),
        user: None,
    };
    let counting = grades::select(conn, &filter, Some(policy))?;
    let questions = question_rates(conn, &counting)?;
    let mut posts: BTreeMap<String, i64> = BTreeMap::new();
    for g in &counting {
        *posts.entry(g.post_state.to_string()).or_default() += 1;
    }
    let lines = |sql: &str| -> Result<Vec<Line>, DbError> {
        Ok(conn
            .prepare_cached(sql)?
            .query_map(params![course, section, assignment, RECENT], |r| {
                let score: Option<f64> = r.get(4)?;
                let max: Option<f64> = r.get(5)?;
                Ok(Line {
                    submission_id: r.get(0)?,
                    user: r.get(1)?,
                    received_at: format_ms(r.get(2)?),
                    state: r.get(3)?,
                    score: score.zip(max),
                    detail: r.get(6)?,
                })
            })?
            .collect::<Result<_, _>>()?)
    };
    const NEWEST_GRADE: &str = "LEFT JOIN grades g ON g.id =
        (SELECT MAX(id) FROM grades WHERE submission_id = s.id)";
    let recent = lines(&format!(
        "SELECT s.id, s.user, s.received_at, s.state, g.score, g.max_score, s.message
           FROM submissions s {NEWEST_GRADE}
          WHERE s.course = ?1 AND s.section = ?2 AND s.assignment = ?3
          ORDER BY s.id DESC LIMIT ?4"
    ))?;
    let dead = lines(
        "SELECT s.id, s.user, s.received_at, s.state, NULL, NULL,
                (SELECT last_error FROM jobs j WHERE j.submission_id = s.id AND j.kind = 'grade'
                  ORDER BY j.id DESC LIMIT 1)
           FROM submissions s
          WHERE s.course = ?1 AND s.section = ?2 AND s.assignment = ?3 AND s.state = 'dead'
          ORDER BY s.id DESC LIMIT ?4",
    )?;
    let flagged = lines(
        "SELECT s.id, s.user, s.received_at, s.state, g.score, g.max_score, g.integrity_flags
           FROM grades g JOIN submissions s ON s.id = g.submission_id
          WHERE s.course = ?1 AND s.section = ?2 AND s.assignment = ?3
            AND g.integrity_flags IS NOT NULL
          ORDER BY g.id DESC LIMIT ?4",
    )?;
    Ok(AssignmentDetail {
        row,
        per_hour,
        counting,
        questions,
        recent,
        dead,
        flagged,
        posts,
    })
}

/// Per question, how many of these grades have it at full marks.
fn question_rates(
    conn: &Connection,
    counting: &[GradeRecord],
) -> Result<Vec<QuestionRate>, DbError> {
    #[derive(serde::Deserialize)]
    struct Question {
        name: String,
        score: f64,
        max_score: f64,
    }
    let mut rates: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let mut stmt = conn.prepare_cached("SELECT tests FROM grades WHERE id = ?1")?;
    for g in counting {
        let tests: String = stmt.query_row([g.grade_id], |r| r.get(0))?;
        let questions: Vec<Question> = serde_json::from_str(&tests).unwrap_or_default();
        for q in questions {
            let rate = rates.entry(q.name).or_default();
            rate.1 += 1;
            if q.max_score > 0.0 && q.score >= q.max_score {
                rate.0 += 1;
            }
        }
    }
    Ok(rates
        .into_iter()
        .map(|(name, (passed, students))| QuestionRate {
            name,
            passed,
            students,
        })
        .collect())
}

/// The course of submission `id`, if it exists.
pub fn course_of(conn: &Connection, id: i64) -> Result<Option<String>, DbError> {
    use rusqlite::OptionalExtension;
    Ok(conn
        .prepare_cached("SELECT course FROM submissions WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?)
}

/// What staff see of one submission beyond the student's view.
#[derive(Debug, Clone, Serialize)]
pub struct StaffExtras {
    pub user: String,
    /// Each question's full output, hidden tests included (from the newest grade).
    pub tests_json: Option<String>,
    /// The grader's log tail or the evaluator's staff notes.
    pub log_tail: Option<String>,
    pub integrity_flags: Option<String>,
}

/// The staff-only parts of submission `id`, if it exists.
pub fn staff_extras(conn: &Connection, id: i64) -> Result<Option<StaffExtras>, DbError> {
    use rusqlite::OptionalExtension;
    Ok(conn
        .prepare_cached(
            "SELECT s.user, g.tests, g.log_tail, g.integrity_flags FROM submissions s
               LEFT JOIN grades g ON g.id = (SELECT MAX(id) FROM grades WHERE submission_id = s.id)
              WHERE s.id = ?1",
        )?
        .query_row([id], |r| {
            Ok(StaffExtras {
                user: r.get(0)?,
                tests_json: r.get(1)?,
                log_tail: r.get(2)?,
                integrity_flags: r.get(3)?,
            })
        })
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::states::PostState;
    use crate::db::submissions::{NewSubmission, accept};

    #[test]
    fn an_assignments_numbers_and_question_rates() {
        let mut c = Connection::open_in_memory().unwrap();
        crate::db::migrations_apply(&mut c).unwrap();
        let a = accept(&c, &NewSubmission::sample("ann"), 3, 3_600_000).unwrap();
        accept(&c, &NewSubmission::sample("ben"), 3, 3_600_100).unwrap();
        let job =
            crate::db::jobs::claim_next(&c, crate::db::states::JobKind::Grade, 4_000_000, 1000)
                .unwrap()
                .unwrap();
        assert_eq!(job.submission_id, a);
        let g = crate::db::grades::NewGrade {
            tests_json: r#"[{"name":"q1","score":1.0,"max_score":1.0},
                            {"name":"q2","score":0.0,"max_score":2.0}]"#
                .into(),
            integrity_flags: Some("imitated result line".into()),
            ..crate::db::grades::NewGrade::sample(3.0, 5.0)
        };
        crate::db::grades::insert(&c, a, job.id, &g, PostState::NotConfigured, 4_000_500).unwrap();
        crate::db::submissions::set_state(&c, a, crate::db::states::SubmissionState::Graded, None)
            .unwrap();
        let rows = assignments(&c, &["c".to_string()]).unwrap();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(
            (r.students, r.submissions, r.queued, r.graded, r.flagged),
            (2, 2, 1, 1, 1)
        );
        assert_eq!(r.oldest_waiting, Some(3_600_100));
        assert!(assignments(&c, &["other".to_string()]).unwrap().is_empty());
        let d = assignment(&c, ("c", "1", "a"), ScorePolicy::Latest).unwrap();
        assert_eq!(d.per_hour, vec![(3_600_000, 2)]);
        assert_eq!(
            d.questions,
            vec![
                QuestionRate {
                    name: "q1".into(),
                    passed: 1,
                    students: 1
                },
                QuestionRate {
                    name: "q2".into(),
                    passed: 0,
                    students: 1
                },
            ]
        );
        assert_eq!(d.flagged.len(), 1);
        assert_eq!(d.recent.len(), 2);
        assert_eq!(d.recent[1].score, Some((3.0, 5.0)));
    }
}
