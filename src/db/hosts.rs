//! Grader hosts: machines that pull grade jobs from the service (see `crate::hosts`).
//!
//! A host is known by name and by the SHA-256 of its token (the token is printed once by
//! `hosts add` and never stored). Its claims are ordinary claims of the job queue
//! ([`jobs::claim_next_as`]) with the host's name on the job: the claim token is the
//! lease id the host must show for every heartbeat and result, and a host's lease is
//! good only while it runs (renewed by heartbeat), so a host that was cut off, revoked or
//! overtaken can never store a result.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::jobs::{self, ClaimedJob};
use super::states::{HostState, JobKind, SubmissionState};
use super::{DbError, events, submissions};

/// A registered host, as its token finds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub name: String,
    pub tags: Vec<String>,
    pub state: HostState,
}

/// A host as staff see it (`hosts list`, `status`, the dashboard).
#[derive(Debug, Clone, Serialize)]
pub struct HostView {
    pub name: String,
    pub state: HostState,
    pub tags: Vec<String>,
    /// Slots the host said it has (0 before it first asked for work).
    pub slots: i64,
    /// Grade jobs it holds now.
    pub in_flight: i64,
    /// Grade jobs it finished (graded or failed), ever.
    pub finished: i64,
    pub last_seen_at: Option<i64>,
    pub version: Option<String>,
    pub images: Vec<String>,
}

/// What a host says about itself with each claim.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub slots: i64,
    pub version: String,
    pub images: Vec<String>,
}

/// Why the student sees their submission waiting again.
const REQUEUED_MESSAGE: &str =
    "Grading was interrupted by a problem on our side; it will be retried automatically.";

/// Register `name` with the hash of its token. Refused if the name is taken.
pub fn add(
    conn: &Connection,
    name: &str,
    tags: &[String],
    token_sha256: &str,
    now: i64,
) -> Result<(), DbError> {
    let taken: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM hosts WHERE name = ?1)",
        [name],
        |r| r.get(0),
    )?;
    if taken {
        return Err(DbError::Invalid(format!(
            "a host named {name:?} already exists (revoke it, or choose another name)"
        )));
    }
    conn.execute(
        "INSERT INTO hosts (name, token_sha256, tags, state, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            name,
            token_sha256,
            serde_json::to_string(tags).map_err(|e| DbError::Invalid(e.to_string()))?,
            HostState::Active,
            now
        ],
    )?;
    Ok(())
}

/// The host whose token hashes to `token_sha256`, revoked ones included (the caller
/// refuses them with a reason).
pub fn by_token(conn: &Connection, token_sha256: &str) -> Result<Option<Host>, DbError> {
    Ok(conn
        .prepare_cached("SELECT name, tags, state FROM hosts WHERE token_sha256 = ?1")?
        .query_row([token_sha256], |r| {
            Ok(Host {
                name: r.get(0)?,
                tags: json_list(r.get(1)?),
                state: r.get(2)?,
            })
        })
        .optional()?)
}

/// Record what `host` said about itself.
pub fn seen(conn: &Connection, host: &str, seen: &Seen, now: i64) -> Result<(), DbError> {
    let images =
        serde_json::to_string(&seen.images).map_err(|e| DbError::Invalid(e.to_string()))?;
    conn.prepare_cached(
        "UPDATE hosts SET last_seen_at = ?2, slots = ?3, version = ?4, images = ?5
          WHERE name = ?1",
    )?
    .execute(params![host, now, seen.slots, seen.version, images])?;
    Ok(())
}

/// Claim the next grade job for `host`, leased until `now + lease_ms`, skipping the
/// assignments in `exclude` (see [`jobs::claim_next_as`]). Nothing for a host that is not
/// active.
pub fn claim(
    conn: &Connection,
    host: &str,
    now: i64,
    lease_ms: i64,
    exclude: &str,
) -> Result<Option<ClaimedJob>, DbError> {
    let state: Option<HostState> = conn
        .prepare_cached("SELECT state FROM hosts WHERE name = ?1")?
        .query_row([host], |r| r.get(0))
        .optional()?;
    if state != Some(HostState::Active) {
        return Ok(None);
    }
    // No more jobs in hand than the slots it said it has (graderqueue's
    // max_concurrent_tasks): a host that asks past them hoards nothing.
    let (slots, held): (i64, i64) = conn
        .prepare_cached(
            "SELECT slots, (SELECT COUNT(*) FROM jobs WHERE host = ?1 AND state = 'running'
                              AND locked_until >= ?2)
               FROM hosts WHERE name = ?1",
        )?
        .query_row(params![host, now], |r| Ok((r.get(0)?, r.get(1)?)))?;
    if held >= slots {
        return Ok(None);
    }
    let job = jobs::claim_next_as(conn, JobKind::Grade, now, lease_ms, Some(host), exclude)?;
    if let Some(j) = &job {
        submissions::set_state(conn, j.submission_id, SubmissionState::Grading, None)?;
    }
    Ok(job)
}

/// The job `host` holds under `lease`, if the lease is still running at `now`.
pub fn held(
    conn: &Connection,
    host: &str,
    lease: &str,
    now: i64,
) -> Result<Option<ClaimedJob>, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT id, submission_id, grade_id, attempts, max_attempts FROM jobs
              WHERE claim = ?1 AND host = ?2 AND state = 'running' AND locked_until >= ?3",
        )?
        .query_row(params![lease, host, now], |r| {
            Ok(ClaimedJob {
                id: r.get(0)?,
                kind: JobKind::Grade,
                submission_id: r.get(1)?,
                grade_id: r.get(2)?,
                attempt: r.get(3)?,
                max_attempts: r.get(4)?,
                claim: lease.to_string(),
            })
        })
        .optional()?)
}

/// Whether `host` already ended its `lease` (a result or a release was taken): a repeated
/// request for it is answered as the first was.
pub fn ended(conn: &Connection, host: &str, lease: &str) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM jobs WHERE ended_lease = ?1 AND host = ?2)")?
        .query_row(params![lease, host], |r| r.get(0))?)
}

/// Course, section and assignment of a submission.
pub fn assignment_of(
    conn: &Connection,
    submission_id: i64,
) -> Result<(String, String, String, String), DbError> {
    Ok(conn
        .prepare_cached("SELECT course, section, assignment, user FROM submissions WHERE id = ?1")?
        .query_row([submission_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?)
}

/// Extend `host`'s `lease` to `until`. False when it is not held or already expired.
pub fn renew(
    conn: &Connection,
    host: &str,
    lease: &str,
    now: i64,
    until: i64,
) -> Result<bool, DbError> {
    let n = conn
        .prepare_cached(
            "UPDATE jobs SET locked_until = ?4
              WHERE claim = ?1 AND host = ?2 AND state = 'running' AND locked_until >= ?3",
        )?
        .execute(params![lease, host, now, until])?;
    Ok(n == 1)
}

/// Put every job `host` holds back in the queue at once, runnable now: the attempt it
/// spent stays counted (as any attempt that ended on our side; never the student's), and
/// the old lease is void. Returns how many.
pub fn requeue_held(conn: &Connection, host: &str, why: &str, now: i64) -> Result<usize, DbError> {
    // One without an attempt left expires now instead: the next claim ends it `dead`
    // (every queued job has an attempt left; see `jobs::requeue_expired`).
    conn.prepare_cached(
        "UPDATE jobs SET locked_until = 0, last_error = ?3, updated_at = ?2
          WHERE host = ?1 AND state = 'running' AND attempts >= max_attempts",
    )?
    .execute(params![host, now, why])?;
    let held: Vec<(i64, i64)> = conn
        .prepare_cached(
            "UPDATE jobs SET state = 'queued', claim = NULL, locked_until = NULL, run_at = ?2,
                    last_error = ?3, updated_at = ?2
              WHERE host = ?1 AND state = 'running' AND attempts < max_attempts
              RETURNING id, submission_id",
        )?
        .query_map(params![host, now, why], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (job, submission) in &held {
        submissions::set_state(
            conn,
            *submission,
            SubmissionState::Queued,
            Some(REQUEUED_MESSAGE),
        )?;
        events::record(conn, now, Some(*submission), Some(*job), "job_retry", why)?;
    }
    Ok(held.len())
}

/// Set `name`'s state; revoking also puts what it holds back in the queue. Returns the
/// jobs put back. Unknown names are an error.
pub fn set_state(
    conn: &Connection,
    name: &str,
    state: HostState,
    now: i64,
) -> Result<usize, DbError> {
    let now_state: Option<HostState> = conn
        .query_row("SELECT state FROM hosts WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?;
    match now_state {
        None => return Err(DbError::Invalid(format!("no host named {name:?}"))),
        // A revoked token may be in the wrong hands: it is never taken back.
        Some(HostState::Revoked) if state != HostState::Revoked => {
            return Err(DbError::Invalid(format!(
                "host {name:?} was revoked, for good; add the machine again under a new name"
            )));
        }
        Some(_) => {}
    }
    conn.execute(
        "UPDATE hosts SET state = ?2 WHERE name = ?1",
        params![name, state],
    )?;
    if state == HostState::Revoked {
        return requeue_held(conn, name, &format!("host {name} was revoked"), now);
    }
    Ok(0)
}

/// Every host, by name.
pub fn list(conn: &Connection) -> Result<Vec<HostView>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT name, state, tags, slots, last_seen_at, version, images,
                (SELECT COUNT(*) FROM jobs j WHERE j.host = h.name AND j.state = 'running'),
                (SELECT COUNT(*) FROM grades g JOIN jobs j ON j.id = g.job_id
                  WHERE j.host = h.name)
           FROM hosts h ORDER BY name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(HostView {
            name: r.get(0)?,
            state: r.get(1)?,
            tags: json_list(r.get(2)?),
            slots: r.get(3)?,
            last_seen_at: r.get(4)?,
            version: r.get(5)?,
            images: json_list(r.get::<_, Option<String>>(6)?.unwrap_or_default()),
            in_flight: r.get(7)?,
            finished: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A host that asked for work within this long counts as connected.
pub const CONNECTED_WITHIN_MS: i64 = 60_000;

/// The grading capacity of the hosts, for an autoscaler (`/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Capacity {
    /// Active hosts that asked for work within [`CONNECTED_WITHIN_MS`].
    pub connected: i64,
    /// Their slots in all.
    pub slots: i64,
    /// Grade jobs held by hosts now.
    pub busy: i64,
}

/// The hosts' capacity at `now`.
pub fn capacity(conn: &Connection, now: i64) -> Result<Capacity, DbError> {
    let (connected, slots): (i64, i64) = conn
        .prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(slots), 0) FROM hosts
              WHERE state = 'active' AND last_seen_at >= ?1",
        )?
        .query_row([now - CONNECTED_WITHIN_MS], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let busy: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM jobs WHERE state = 'running' AND kind = 'grade'
               AND host IS NOT NULL",
        )?
        .query_row([], |r| r.get(0))?;
    Ok(Capacity {
        connected,
        slots,
        busy,
    })
}

/// Queued grade jobs of one assignment that no grader can take now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unroutable {
    pub course: String,
    pub section: String,
    pub assignment: String,
    /// What a host must offer (tags, its image).
    pub needs: Vec<String>,
    pub jobs: i64,
    /// When the oldest of them was queued (ms).
    pub oldest: i64,
}

/// The queued grade jobs that no grader can take at `now`: their assignment's needs
/// (`needs_of`: `None` for an assignment the config no longer has, which any grader
/// settles) are offered by no connected active host, and the service's own workers
/// (`local`: whether it has any) cannot take it (`Some((needs, local_ok))`).
pub fn unroutable(
    conn: &Connection,
    now: i64,
    local: bool,
    needs_of: impl Fn(&str, &str, &str) -> Option<(Vec<String>, bool)>,
) -> Result<Vec<Unroutable>, DbError> {
    let offers: Vec<Vec<String>> = list(conn)?
        .into_iter()
        .filter(|h| {
            h.state == HostState::Active
                && h.last_seen_at
                    .is_some_and(|t| t >= now - CONNECTED_WITHIN_MS)
        })
        .map(|h| h.tags.into_iter().chain(h.images).collect())
        .collect();
    let waiting: Vec<(String, String, String, i64, i64)> = conn
        .prepare_cached(
            "SELECT s.course, s.section, s.assignment, COUNT(*), MIN(j.created_at)
               FROM jobs j JOIN submissions s ON s.id = j.submission_id
              WHERE j.kind = 'grade' AND j.state = 'queued'
              GROUP BY s.course, s.section, s.assignment",
        )?
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<Result<_, _>>()?;
    Ok(waiting
        .into_iter()
        .filter_map(|(course, section, assignment, jobs, oldest)| {
            let (needs, local_ok) = needs_of(&course, &section, &assignment)?;
            let someone =
                (local && local_ok) || offers.iter().any(|o| needs.iter().all(|n| o.contains(n)));
            (!someone).then_some(Unroutable {
                course,
                section,
                assignment,
                needs,
                jobs,
                oldest,
            })
        })
        .collect())
}

fn json_list(text: String) -> Vec<String> {
    serde_json::from_str(&text).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::submissions::{NewSubmission, accept};

    fn conn() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        crate::db::migrations_apply(&mut c).unwrap();
        c
    }

    /// Register `name` and let it say it has 4 slots.
    fn host(c: &Connection, name: &str, token_sha: &str, tags: &[String]) {
        add(c, name, tags, token_sha, 0).unwrap();
        let said = Seen {
            slots: 4,
            ..Seen::default()
        };
        seen(c, name, &said, 0).unwrap();
    }

    #[test]
    fn a_host_holds_no_more_jobs_than_its_slots() {
        let c = conn();
        host(&c, "small", "aa", &[]);
        let said = Seen {
            slots: 1,
            ..Seen::default()
        };
        seen(&c, "small", &said, 0).unwrap();
        accept(&c, &NewSubmission::sample("ann"), 3, 1).unwrap();
        accept(&c, &NewSubmission::sample("ben"), 3, 2).unwrap();
        assert!(claim(&c, "small", 10, 1_000, "[]").unwrap().is_some());
        assert!(
            claim(&c, "small", 11, 1_000, "[]").unwrap().is_none(),
            "one slot, one job"
        );
        // Its lease ran out: that job no longer counts (it is anyone's to take over).
        assert!(claim(&c, "small", 2_000, 1_000, "[]").unwrap().is_some());
    }

    #[test]
    fn a_lease_is_the_holders_only_while_it_runs() {
        let c = conn();
        host(&c, "h1", "aa", &[]);
        host(&c, "h2", "bb", &[]);
        assert!(add(&c, "h1", &[], "cc", 0).is_err(), "names are unique");
        let sub = accept(&c, &NewSubmission::sample("ann"), 3, 1).unwrap();
        let job = claim(&c, "h1", 10, 1_000, "[]").unwrap().unwrap();
        assert_eq!(job.submission_id, sub);
        let lease = job.claim.clone();
        // Another host's name with the right lease, or the right host with another lease.
        assert!(held(&c, "h2", &lease, 20).unwrap().is_none());
        assert!(held(&c, "h1", "not-a-lease", 20).unwrap().is_none());
        assert!(!renew(&c, "h2", &lease, 20, 5_000).unwrap());
        // Renewed while it runs; refused once it has expired, even if nobody took it.
        assert!(renew(&c, "h1", &lease, 500, 2_000).unwrap());
        assert!(held(&c, "h1", &lease, 1_999).unwrap().is_some());
        assert!(held(&c, "h1", &lease, 2_001).unwrap().is_none());
        assert!(!renew(&c, "h1", &lease, 2_001, 9_000).unwrap());
        assert!(
            !jobs::finish(&c, &job, 2_001).unwrap(),
            "an expired host lease stores nothing"
        );
        // Taken over by h2: h1's lease is void for good.
        let again = claim(&c, "h2", 2_002, 1_000, "[]").unwrap().unwrap();
        assert_eq!((again.id, again.attempt), (job.id, 2));
        assert!(!jobs::finish(&c, &job, 2_003).unwrap());
        assert!(jobs::finish(&c, &again, 2_003).unwrap());
        assert!(!jobs::finish(&c, &again, 2_004).unwrap(), "once only");
        assert!(
            ended(&c, "h2", &again.claim).unwrap(),
            "known as ended: a repeat is answered"
        );
        assert!(
            !ended(&c, "h1", &again.claim).unwrap(),
            "but only to its host"
        );
        assert!(
            !ended(&c, "h1", &lease).unwrap(),
            "a lease taken over never ended well"
        );
    }

    #[test]
    fn a_claim_skips_the_assignments_its_host_cannot_grade_and_keeps_the_turns() {
        let c = conn();
        host(&c, "plain", "aa", &[]);
        let gpu_job = |user: &str, at| {
            let mut s = NewSubmission::sample(user);
            s.assignment = "gpu-lab".into();
            accept(&c, &s, 3, at).unwrap()
        };
        let first = gpu_job("ann", 1);
        let other = accept(&c, &NewSubmission::sample("ben"), 3, 2).unwrap();
        let skip = r#"[["c","1","gpu-lab"]]"#;
        let got = claim(&c, "plain", 10, 60_000, skip).unwrap().unwrap();
        assert_eq!(
            got.submission_id, other,
            "ann's turn comes first, but not to this host"
        );
        assert!(
            claim(&c, "plain", 11, 60_000, skip).unwrap().is_none(),
            "left waiting"
        );
        let taken = claim(&c, "plain", 12, 60_000, "[]").unwrap().unwrap();
        assert_eq!(taken.submission_id, first, "a host that can take it does");
        // An expired lease of a skipped assignment is not taken over by this host either.
        assert!(
            claim(&c, "plain", 70_000, 60_000, skip)
                .unwrap()
                .is_some_and(|j| j.submission_id == other)
        );
        assert!(claim(&c, "plain", 70_001, 60_000, skip).unwrap().is_none());
    }

    #[test]
    fn revoking_puts_what_the_host_holds_back_and_drained_hosts_get_nothing() {
        let c = conn();
        host(&c, "h1", "aa", &["gpu".into()]);
        accept(&c, &NewSubmission::sample("ann"), 3, 1).unwrap();
        accept(&c, &NewSubmission::sample("ben"), 3, 2).unwrap();
        let job = claim(&c, "h1", 10, 60_000, "[]").unwrap().unwrap();
        set_state(&c, "h1", HostState::Draining, 11).unwrap();
        assert!(
            claim(&c, "h1", 12, 60_000, "[]").unwrap().is_none(),
            "draining: nothing new"
        );
        assert!(
            held(&c, "h1", &job.claim, 13).unwrap().is_some(),
            "but keeps its job"
        );
        assert_eq!(set_state(&c, "h1", HostState::Revoked, 14).unwrap(), 1);
        assert!(held(&c, "h1", &job.claim, 15).unwrap().is_none());
        assert!(
            !jobs::finish(&c, &job, 15).unwrap(),
            "a revoked host's result is refused"
        );
        // Back in the queue at once, for anyone.
        host(&c, "h2", "bb", &[]);
        let next: Vec<i64> = (0..2)
            .map(|_| {
                claim(&c, "h2", 16, 60_000, "[]")
                    .unwrap()
                    .unwrap()
                    .submission_id
            })
            .collect();
        assert!(next.contains(&job.submission_id));
        let hosts = list(&c).unwrap();
        assert_eq!(hosts[0].state, HostState::Revoked);
        assert_eq!(hosts[0].tags, vec!["gpu".to_string()]);
        assert_eq!((hosts[1].name.as_str(), hosts[1].in_flight), ("h2", 2));
        assert!(set_state(&c, "nobody", HostState::Revoked, 0).is_err());
        assert!(
            set_state(&c, "h1", HostState::Active, 20).is_err(),
            "revoked for good"
        );
        assert_eq!(by_token(&c, "bb").unwrap().unwrap().name, "h2");
        assert!(by_token(&c, "zz").unwrap().is_none());
    }
}
