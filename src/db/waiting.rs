//! Where a submission stands in the grading queue, and how long it is likely to wait:
//! what the Submit button and the student's page show while a notebook waits.
//!
//! Grade jobs are claimed round-robin across students (see `jobs::pick_next`), so a
//! student's k-th waiting job has ahead of it their own k-1 earlier ones and, from every
//! other student with jobs waiting, up to k-1, plus one more from each who began waiting
//! earlier. That count is the position; it is an estimate (whose turn was last also
//! decides, and a student who submits later may still come before). The expected wait uses the median
//! of recent grading times (claim to grade, from the events table).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::DbError;

/// How many recent grades the typical grading time is taken from.
const RECENT_GRADES: i64 = 25;

/// Waiting jobs from which the counts of the other students are shared between places
/// for [`SHARED_FOR`] instead of read for each one.
const SHARED_FROM_JOBS: i64 = 1_000;
const SHARED_FOR: Duration = Duration::from_secs(1);

/// How many grade jobs each student has waiting, and since when: what a place needs to
/// know about everyone else. Reading it scans every waiting job (about 1 ms per 2,000
/// on the benchmark machine), which with a long queue was most of the cost of a
/// submission's place, and every Submit asks for one (intake with JSON answers, 2026-12-02:
/// 1,269 us of CPU per submission against 482 for the text answer). With
/// [`SHARED_FROM_JOBS`] or more waiting, one reading serves every place asked for in the
/// next second: the place of a submission behind a thousand others is an estimate that
/// moves anyway. With fewer it is read each time, so a short queue's places are exact.
#[derive(Default)]
pub struct Waiting {
    shared: Mutex<Option<Arc<Students>>>,
}

struct Students {
    read_at: Instant,
    jobs: i64,
    /// (student, waiting grade jobs, earliest `run_at`).
    each: Vec<(Option<String>, i64, i64)>,
}

impl Waiting {
    fn students(&self, conn: &Connection) -> Result<Arc<Students>, DbError> {
        let mut shared = self.shared.lock().expect("waiting counts poisoned");
        if let Some(s) = shared.as_ref()
            && s.jobs >= SHARED_FROM_JOBS
            && s.read_at.elapsed() < SHARED_FOR
        {
            return Ok(s.clone());
        }
        let each: Vec<(Option<String>, i64, i64)> = conn
            .prepare_cached(
                "SELECT user, COUNT(*), MIN(run_at) FROM jobs
                  WHERE kind = 'grade' AND state = 'queued' GROUP BY user",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        let fresh = Arc::new(Students {
            read_at: Instant::now(),
            jobs: each.iter().map(|e| e.1).sum(),
            each,
        });
        *shared = Some(fresh.clone());
        Ok(fresh)
    }
}

/// A submission's place in the grading queue.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct QueuePlace {
    /// 1 = graded next; 0 = being graded now.
    pub position: i64,
    /// Seconds until its grade is likely ready (`None` before anything was graded).
    pub expected_wait_secs: Option<f64>,
}

/// The place of `submission_id` if its grade job is waiting or running; `workers` is how
/// many jobs are graded at once; `waiting` shares the other students' counts between
/// places when the queue is long.
pub fn place(
    conn: &Connection,
    submission_id: i64,
    now: i64,
    workers: usize,
    waiting: &Waiting,
) -> Result<Option<QueuePlace>, DbError> {
    let job: Option<(i64, String, i64, Option<String>)> = conn
        .prepare_cached(
            "SELECT id, state, run_at, user FROM jobs
              WHERE submission_id = ?1 AND kind = 'grade' AND state IN ('queued', 'running')
              ORDER BY id DESC LIMIT 1",
        )?
        .query_row([submission_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    let Some((job_id, state, run_at, user)) = job else {
        return Ok(None);
    };
    let typical = typical_grading_ms(conn)?;
    if state == "running" {
        let claimed: Option<i64> = conn
            .prepare_cached(
                "SELECT MAX(at) FROM events
                  WHERE submission_id = ?1 AND job_id = ?2 AND event = 'job_claimed'",
            )?
            .query_row(params![submission_id, job_id], |r| r.get(0))?;
        let elapsed = claimed.map_or(0, |at| (now - at).max(0));
        return Ok(Some(QueuePlace {
            position: 0,
            expected_wait_secs: typical.map(|t| secs((t - elapsed).max(0))),
        }));
    }
    // This job's turn among its student's waiting jobs (1 = their next), and when the
    // student's earliest waiting job was queued.
    let (turn, first): (i64, i64) = conn
        .prepare_cached(
            "SELECT SUM(run_at < ?2 OR (run_at = ?2 AND id <= ?3)), MIN(run_at) FROM jobs
              WHERE kind = 'grade' AND state = 'queued' AND user IS ?1",
        )?
        .query_row(params![user, run_at, job_id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    // Every other student waiting gets as many turns before this round as they have jobs
    // (up to turn - 1), and one in this round if their wait began earlier.
    let others: i64 = waiting
        .students(conn)?
        .each
        .iter()
        .filter(|(them, _, _)| *them != user)
        .map(|&(_, n, their_first)| n.min(turn - 1) + i64::from(n >= turn && their_first < first))
        .sum();
    let running: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM jobs WHERE kind = 'grade' AND state = 'running'")?
        .query_row([], |r| r.get(0))?;
    let ahead = turn - 1 + others;
    Ok(Some(QueuePlace {
        position: ahead + 1,
        expected_wait_secs: typical.map(|t| secs(expected_wait_ms(t, ahead, running, workers))),
    }))
}

/// The wait of a job with `ahead` jobs before it while `running` are being graded by
/// `workers`, each taking `typical` ms: until enough of those are done that a worker is
/// free for it, then its own grading.
fn expected_wait_ms(typical: i64, ahead: i64, running: i64, workers: usize) -> i64 {
    let workers = workers.max(1) as i64;
    let before_a_free_worker = (ahead + running + 1 - workers).max(0);
    // Rounds of `workers` jobs at a time, rounded up.
    let rounds = (before_a_free_worker + workers - 1) / workers;
    typical * rounds + typical
}

/// Median milliseconds from a grade job's claim to its grade, over the recent grades.
fn typical_grading_ms(conn: &Connection) -> Result<Option<i64>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT g.graded_at - (SELECT MAX(e.at) FROM events e
                                WHERE e.submission_id = g.submission_id AND e.job_id = g.job_id
                                  AND e.event = 'job_claimed')
           FROM grades g ORDER BY g.id DESC LIMIT ?1",
    )?;
    let mut times: Vec<i64> = stmt
        .query_map([RECENT_GRADES], |r| r.get::<_, Option<i64>>(0))?
        .filter_map(|t| t.transpose())
        .collect::<Result<_, _>>()?;
    if times.is_empty() {
        return Ok(None);
    }
    times.sort_unstable();
    Ok(Some(times[times.len() / 2].max(0)))
}

fn secs(ms: i64) -> f64 {
    (ms as f64 / 100.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::jobs::{self, claim_next};
    use crate::db::states::JobKind;
    use crate::db::submissions::{NewSubmission, accept};

    fn conn() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        crate::db::migrations_apply(&mut c).unwrap();
        c
    }

    /// Claim the next grade job at `at` and store its grade `took` ms later.
    fn grade_next(c: &Connection, at: i64, took: i64) -> i64 {
        let job = claim_next(c, JobKind::Grade, at, 60_000).unwrap().unwrap();
        let g = crate::db::grades::NewGrade::sample(1.0, 1.0);
        let not_posted = crate::db::states::PostState::NotConfigured;
        crate::db::grades::insert(c, job.submission_id, job.id, &g, not_posted, at + took).unwrap();
        assert!(jobs::finish(c, &job, at + took).unwrap());
        job.submission_id
    }

    #[test]
    fn places_follow_the_round_robin_turns() {
        let c = conn();
        let mut now = 1000;
        let mut submit = |user: &str| {
            now += 10;
            accept(&c, &NewSubmission::sample(user), 3, now).unwrap()
        };
        let hog: Vec<i64> = (0..3).map(|_| submit("hog")).collect();
        let ann = submit("ann");
        let ben = submit("ben");
        let position = |id| {
            place(&c, id, 5000, 1, &Waiting::default())
                .unwrap()
                .unwrap()
                .position
        };
        // Round one: hog, ann, ben (by when each began waiting); then hog's 2nd and 3rd.
        assert_eq!(
            [hog[0], ann, ben, hog[1], hog[2]].map(position),
            [1, 2, 3, 4, 5]
        );
        // And the queue really runs in that order.
        let order: Vec<i64> = (0..5).map(|i| grade_next(&c, 6000 + i * 100, 50)).collect();
        assert_eq!(order, vec![hog[0], ann, ben, hog[1], hog[2]]);
        assert_eq!(
            place(&c, hog[2], 7000, 1, &Waiting::default()).unwrap(),
            None,
            "graded: no place"
        );
    }

    #[test]
    fn a_long_queue_shares_the_other_students_counts_and_a_short_one_does_not() {
        let c = conn();
        let waiting = Waiting::default();
        let position = |id| place(&c, id, 5000, 1, &waiting).unwrap().unwrap().position;
        // Short queue: a student who arrives later is counted at once.
        let ann = accept(&c, &NewSubmission::sample("ann"), 3, 1).unwrap();
        let ann2 = accept(&c, &NewSubmission::sample("ann"), 3, 2).unwrap();
        assert_eq!(position(ann2), 2);
        accept(&c, &NewSubmission::sample("ben"), 3, 3).unwrap();
        assert_eq!(
            position(ann2),
            3,
            "ben's first turn comes before ann's second"
        );
        // Long queue (1,200 jobs): the same places as read afresh...
        let mut ids = vec![ann];
        for i in 0..400 {
            for k in 0..3 {
                let user = format!("s{i}");
                ids.push(accept(&c, &NewSubmission::sample(&user), 3, 10 + i * 3 + k).unwrap());
            }
        }
        for &id in ids.iter().step_by(37) {
            let fresh = place(&c, id, 5000, 1, &Waiting::default()).unwrap();
            assert_eq!(place(&c, id, 5000, 1, &waiting).unwrap(), fresh);
        }
        // ... and for the next second the counts are shared: a newcomer's first job is
        // not yet seen by the others' places, while the newcomer's own place is right.
        let before = position(ids[100]);
        let late = accept(&c, &NewSubmission::sample("late"), 3, 0).unwrap();
        assert_eq!(
            position(ids[100]),
            before,
            "shared counts, read before `late` came"
        );
        assert_eq!(
            place(&c, ids[100], 5000, 1, &Waiting::default())
                .unwrap()
                .unwrap()
                .position,
            before + 1,
            "read afresh, `late` (waiting since 0) comes first"
        );
        assert_eq!(position(late), 1);
    }

    #[test]
    fn the_expected_wait_comes_from_recent_grading_times() {
        let c = conn();
        let first = accept(&c, &NewSubmission::sample("a"), 3, 0).unwrap();
        assert_eq!(
            place(&c, first, 10, 2, &Waiting::default())
                .unwrap()
                .unwrap()
                .expected_wait_secs,
            None,
            "nothing graded yet: no estimate"
        );
        // Four grades took 2, 9, 4 and 4 seconds: the median is 4.
        for i in 0..3 {
            accept(&c, &NewSubmission::sample(&format!("g{i}")), 3, 100 + i).unwrap();
        }
        grade_next(&c, 20_000, 2000);
        grade_next(&c, 30_000, 9000);
        grade_next(&c, 40_000, 4000);
        grade_next(&c, 50_000, 4000);
        // Two waiting on two idle workers: each about its own grading.
        let a = accept(&c, &NewSubmission::sample("x"), 3, 60_000).unwrap();
        let b = accept(&c, &NewSubmission::sample("y"), 3, 60_001).unwrap();
        let wait = |id, now| place(&c, id, now, 2, &Waiting::default()).unwrap().unwrap();
        assert_eq!(
            wait(b, 60_002),
            QueuePlace {
                position: 2,
                expected_wait_secs: Some(4.0)
            }
        );
        // One is being graded for a second: 3 seconds left; the other still 4.
        claim_next(&c, JobKind::Grade, 61_000, 60_000)
            .unwrap()
            .unwrap();
        assert_eq!(
            wait(a, 62_000),
            QueuePlace {
                position: 0,
                expected_wait_secs: Some(3.0)
            }
        );
        // With one worker, the other waits for that one, then its own.
        assert_eq!(
            place(&c, b, 62_000, 1, &Waiting::default())
                .unwrap()
                .unwrap(),
            QueuePlace {
                position: 1,
                expected_wait_secs: Some(8.0)
            }
        );
    }

    #[test]
    fn a_job_with_a_free_worker_waits_only_for_its_own_grading() {
        assert_eq!(expected_wait_ms(2000, 0, 0, 2), 2000);
        assert_eq!(expected_wait_ms(2000, 0, 1, 2), 2000);
    }

    #[test]
    fn a_job_behind_busy_workers_waits_for_rounds_of_them() {
        // 2 workers busy, nothing else ahead: one round, then its own.
        assert_eq!(expected_wait_ms(2000, 0, 2, 2), 4000);
        // 2 busy + 3 ahead on 2 workers: 4 must finish first, 2 rounds.
        assert_eq!(expected_wait_ms(2000, 3, 2, 2), 6000);
        // One worker: every job before it is a round.
        assert_eq!(expected_wait_ms(1000, 4, 1, 1), 6000);
    }
}
