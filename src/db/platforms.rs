//! Platforms (other systems that submit through `{prefix}api/v1/`, see `crate::platform`),
//! their submissions and the webhook outbox that tells them how each one ended.
//!
//! A platform is known by name and by the SHA-256 of its token (printed once by
//! `platforms add`, never stored). Its users are `platform:<name>:<its user id>`, so a
//! platform can never credit a JupyterHub user, nor another platform's. Deliveries are
//! made by the `platform_submission_ended` trigger (migration 11) whenever one of its
//! submissions is graded, fails or dies, so no path that ends a submission can forget one.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::notebooks::{self, StoredNotebook};
use super::states::SubmissionState;
use super::submissions::{self, Accepted, IntakeRules, NewSubmission};
use super::{DbError, events, jobs};

/// A registered platform, as its token finds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Platform {
    pub name: String,
    pub courses: Vec<String>,
    /// The priority classes it may ask for, the first being its default.
    pub priorities: Vec<String>,
    pub revoked: bool,
}

/// A platform as staff see it (`platforms list`).
#[derive(Debug, Clone, Serialize)]
pub struct PlatformView {
    pub name: String,
    pub courses: Vec<String>,
    pub priorities: Vec<String>,
    pub webhook_url: Option<String>,
    pub webhook_disabled: Option<String>,
    pub revoked: bool,
    pub submissions: i64,
    /// Deliveries by state.
    pub pending: i64,
    pub delivered: i64,
    pub failed: i64,
}

/// Where a platform's webhooks go and how they are signed.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: String,
    /// Signing secrets (`whsec_...`): the current one, then the one being retired.
    pub secrets: Vec<String>,
    pub disabled: bool,
}

/// A new platform.
pub struct NewPlatform<'a> {
    pub name: &'a str,
    pub token_sha256: &'a str,
    pub courses: &'a [String],
    pub priorities: &'a [String],
    pub webhook_url: Option<&'a str>,
    pub webhook_secret: &'a str,
}

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).expect("a list of strings serialises")
}

fn read_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// Register a platform. Refused if the name is taken.
pub fn add(conn: &Connection, p: &NewPlatform<'_>, now: i64) -> Result<(), DbError> {
    let taken: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM platforms WHERE name = ?1)",
        [p.name],
        |r| r.get(0),
    )?;
    if taken {
        return Err(DbError::Invalid(format!(
            "a platform named {:?} already exists (revoked ones keep their name: their \
             submissions keep pointing at it)",
            p.name
        )));
    }
    conn.execute(
        "INSERT INTO platforms (name, token_sha256, courses, priorities, webhook_url,
                                webhook_secret, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            p.name,
            p.token_sha256,
            json_list(p.courses),
            json_list(p.priorities),
            p.webhook_url,
            p.webhook_secret,
            now
        ],
    )?;
    Ok(())
}

/// The platform whose token hashes to `token_sha256` (revoked ones included: the caller
/// refuses them with a sentence).
pub fn by_token(conn: &Connection, token_sha256: &str) -> Result<Option<Platform>, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT name, courses, priorities, revoked_at IS NOT NULL FROM platforms
              WHERE token_sha256 = ?1",
        )?
        .query_row([token_sha256], |r| {
            Ok(Platform {
                name: r.get(0)?,
                courses: read_list(&r.get::<_, String>(1)?),
                priorities: read_list(&r.get::<_, String>(2)?),
                revoked: r.get(3)?,
            })
        })
        .optional()?)
}

/// Refuse a platform's token from now on (its submissions are still graded and its
/// webhooks still sent). False if there is no such platform.
pub fn revoke(conn: &Connection, name: &str, now: i64) -> Result<bool, DbError> {
    Ok(conn.execute(
        "UPDATE platforms SET revoked_at = COALESCE(revoked_at, ?2) WHERE name = ?1",
        params![name, now],
    )? > 0)
}

/// Set (or clear) a platform's webhook URL; this also takes back a 410's disabling, and
/// queues again what was held while it was disabled. False if there is no such platform.
pub fn set_webhook(conn: &Connection, name: &str, url: Option<&str>) -> Result<bool, DbError> {
    Ok(conn.execute(
        "UPDATE platforms SET webhook_url = ?2, webhook_disabled_at = NULL,
                webhook_disabled_why = NULL WHERE name = ?1",
        params![name, url],
    )? > 0)
}

/// Replace a platform's signing secret; the old one still signs (beside the new) until
/// `old_until`, so receivers can switch without refusing a delivery.
pub fn rotate_secret(
    conn: &Connection,
    name: &str,
    secret: &str,
    old_until: i64,
) -> Result<bool, DbError> {
    Ok(conn.execute(
        "UPDATE platforms SET webhook_secret_old = webhook_secret, webhook_secret_old_until = ?3,
                webhook_secret = ?2 WHERE name = ?1",
        params![name, secret, old_until],
    )? > 0)
}

/// Where `platform`'s webhooks go, if it has a URL.
pub fn endpoint(conn: &Connection, platform: &str, now: i64) -> Result<Option<Endpoint>, DbError> {
    let row = conn
        .prepare_cached(
            "SELECT webhook_url, webhook_secret, webhook_secret_old, webhook_secret_old_until,
                    webhook_disabled_at IS NOT NULL
               FROM platforms WHERE name = ?1",
        )?
        .query_row([platform], |r| {
            Ok((
                r.get::<_, Option<String>>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, bool>(4)?,
            ))
        })
        .optional()?;
    Ok(row.and_then(|(url, secret, old, until, disabled)| {
        let mut secrets = vec![secret];
        if let (Some(old), Some(until)) = (old, until)
            && until > now
        {
            secrets.push(old);
        }
        url.map(|url| Endpoint {
            url,
            secrets,
            disabled,
        })
    }))
}

/// Every platform, for staff.
pub fn list(conn: &Connection) -> Result<Vec<PlatformView>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT p.name, p.courses, p.priorities, p.webhook_url, p.webhook_disabled_why,
                p.revoked_at IS NOT NULL,
                (SELECT COUNT(*) FROM platform_submissions s WHERE s.platform = p.name),
                (SELECT COUNT(*) FROM webhook_deliveries d WHERE d.platform = p.name
                    AND d.state IN ('new', 'pending')),
                (SELECT COUNT(*) FROM webhook_deliveries d WHERE d.platform = p.name
                    AND d.state = 'delivered'),
                (SELECT COUNT(*) FROM webhook_deliveries d WHERE d.platform = p.name
                    AND d.state = 'failed')
           FROM platforms p ORDER BY p.name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(PlatformView {
            name: r.get(0)?,
            courses: read_list(&r.get::<_, String>(1)?),
            priorities: read_list(&r.get::<_, String>(2)?),
            webhook_url: r.get(3)?,
            webhook_disabled: r.get(4)?,
            revoked: r.get(5)?,
            submissions: r.get(6)?,
            pending: r.get(7)?,
            delivered: r.get(8)?,
            failed: r.get(9)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// How a platform's submission was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// As the JupyterHub door takes one (new, or an identical one still waiting).
    Accepted(Accepted),
    /// The idempotency key was used before for this same submission: that one, nothing
    /// new stored.
    Again(i64),
    /// The idempotency key was used before for a different notebook, user or assignment.
    KeyReused(i64),
}

impl Taken {
    pub fn id(self) -> i64 {
        match self {
            Taken::Accepted(a) => a.id(),
            Taken::Again(id) | Taken::KeyReused(id) => id,
        }
    }
}

/// What a platform's submission carries beside the notebook.
#[derive(Debug, Clone)]
pub struct PlatformSubmission {
    pub platform: String,
    pub platform_user: String,
    pub idempotency_key: Option<String>,
    /// The priority class's name and its `jobs.priority`.
    pub priority: (String, i64),
}

/// Take a platform's submission: by its idempotency key if that was used before, else
/// under the same rules as the JupyterHub door ([`submissions::submit`]), in the asked
/// priority class, in one write.
pub fn submit(
    conn: &Connection,
    p: &PlatformSubmission,
    s: &NewSubmission,
    stored: &StoredNotebook,
    rules: &IntakeRules,
    received: impl FnOnce(&Connection) -> Result<submissions::Received, DbError>,
    now: i64,
) -> Result<Taken, DbError> {
    if let Some(key) = &p.idempotency_key {
        let used: Option<(i64, bool, Option<String>)> = conn
            .prepare_cached(
                "SELECT k.submission_id,
                        s.user = ?3 AND s.course = ?4 AND s.section = ?5 AND s.assignment = ?6,
                        s.notebook_sha256
                   FROM platform_keys k JOIN submissions s ON s.id = k.submission_id
                  WHERE k.platform = ?1 AND k.idempotency_key = ?2",
            )?
            .query_row(
                params![p.platform, key, s.user, s.course, s.section, s.assignment],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get::<_, Option<bool>>(1)?.unwrap_or(false),
                        r.get(2)?,
                    ))
                },
            )
            .optional()?;
        if let Some((id, same_student, sha256)) = used {
            let same = same_student
                && match sha256 {
                    Some(h) if h == stored.sha256 => true,
                    // Stored by a zstd that compressed it differently (or before hashes).
                    _ => {
                        let kept: Vec<u8> = conn.query_row(
                            "SELECT notebook FROM submissions WHERE id = ?1",
                            [id],
                            |r| r.get(0),
                        )?;
                        notebooks::same_notebook(stored, kept)
                    }
                };
            return Ok(if same {
                Taken::Again(id)
            } else {
                Taken::KeyReused(id)
            });
        }
    }
    let taken = submissions::submit(conn, s, stored, rules, received, now)?;
    if let Accepted::New(id) = taken {
        conn.prepare_cached(
            "INSERT INTO platform_submissions
                (submission_id, platform, platform_user, idempotency_key, priority)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            id,
            p.platform,
            p.platform_user,
            p.idempotency_key,
            p.priority.0
        ])?;
        if p.priority.1 != jobs::STUDENT {
            conn.execute(
                "UPDATE jobs SET priority = ?2 WHERE submission_id = ?1 AND kind = 'grade'
                    AND state = 'queued'",
                params![id, p.priority.1],
            )?;
        }
    }
    // An identical notebook still waiting answers for this key too, from now on.
    if let Some(key) = &p.idempotency_key {
        conn.prepare_cached(
            "INSERT INTO platform_keys (platform, idempotency_key, submission_id)
             VALUES (?1, ?2, ?3)",
        )?
        .execute(params![p.platform, key, taken.id()])?;
    }
    Ok(Taken::Accepted(taken))
}

/// A platform's own record of one of its submissions.
#[derive(Debug, Clone, Serialize)]
pub struct Owned {
    pub platform_user: String,
    pub idempotency_key: Option<String>,
    pub priority: String,
}

/// Submission `id` if `platform` made it.
pub fn owned(conn: &Connection, platform: &str, id: i64) -> Result<Option<Owned>, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT platform_user, idempotency_key, priority FROM platform_submissions
              WHERE submission_id = ?1 AND platform = ?2",
        )?
        .query_row(params![id, platform], |r| {
            Ok(Owned {
                platform_user: r.get(0)?,
                idempotency_key: r.get(1)?,
                priority: r.get(2)?,
            })
        })
        .optional()?)
}

/// The ids of a platform user's submissions, newest first, at most `limit`.
pub fn of_user(
    conn: &Connection,
    platform: &str,
    user: &str,
    limit: i64,
) -> Result<Vec<i64>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT submission_id FROM platform_submissions
          WHERE platform = ?1 AND platform_user = ?2 ORDER BY submission_id DESC LIMIT ?3",
    )?;
    let ids = stmt.query_map(params![platform, user, limit], |r| r.get(0))?;
    Ok(ids.collect::<Result<_, _>>()?)
}

/// What became of a cancel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancel {
    Cancelled,
    /// It is no longer waiting (being graded, or ended): nothing changed.
    TooLate(SubmissionState),
}

/// Cancel a waiting submission of `platform`: its grade job ends unrun, it ends
/// `cancelled` (no grade, no webhook). A submission being graded is not stopped.
pub fn cancel(conn: &Connection, platform: &str, id: i64, now: i64) -> Result<Cancel, DbError> {
    let state: SubmissionState =
        conn.query_row("SELECT state FROM submissions WHERE id = ?1", [id], |r| {
            r.get(0)
        })?;
    if state != SubmissionState::Queued {
        return Ok(Cancel::TooLate(state));
    }
    let stopped = conn.execute(
        "UPDATE jobs SET state = 'done', claim = NULL, locked_until = NULL,
                last_error = 'cancelled by the platform', updated_at = ?2
          WHERE submission_id = ?1 AND kind = 'grade' AND state = 'queued'",
        params![id, now],
    )?;
    if stopped == 0 {
        return Ok(Cancel::TooLate(SubmissionState::Grading));
    }
    submissions::set_state(
        conn,
        id,
        SubmissionState::Cancelled,
        Some("cancelled by the platform before it was graded"),
    )?;
    events::record(conn, now, Some(id), None, "cancelled", platform)?;
    Ok(Cancel::Cancelled)
}

/// One webhook event to send.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: i64,
    pub msg_id: String,
    pub platform: String,
    pub submission_id: i64,
    pub event: String,
    /// `None` until prepared ([`prepare`]).
    pub body: Option<String>,
    pub attempts: i64,
    pub created_at: i64,
}

/// Deliveries due at `now` (oldest first), at most `limit`, of platforms whose endpoint
/// is not disabled.
pub fn due(conn: &Connection, now: i64, limit: i64) -> Result<Vec<Delivery>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT d.id, d.msg_id, d.platform, d.submission_id, d.event, d.body, d.attempts,
                d.created_at
           FROM webhook_deliveries d JOIN platforms p ON p.name = d.platform
          WHERE d.state IN ('new', 'pending') AND d.next_at <= ?1
            AND p.webhook_url IS NOT NULL AND p.webhook_disabled_at IS NULL
          ORDER BY d.next_at, d.id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![now, limit], |r| {
        Ok(Delivery {
            id: r.get(0)?,
            msg_id: r.get(1)?,
            platform: r.get(2)?,
            submission_id: r.get(3)?,
            event: r.get(4)?,
            body: r.get(5)?,
            attempts: r.get(6)?,
            created_at: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Whether delivery `id` is still waiting with `attempts` made: a sender that read it
/// before another attempt was recorded must not send it again.
pub fn still_due(conn: &Connection, id: i64, attempts: i64) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM webhook_deliveries
              WHERE id = ?1 AND attempts = ?2 AND state IN ('new', 'pending')",
        )?
        .query_row(params![id, attempts], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The earliest time a delivery is due (for the sender's sleep).
pub fn next_due(conn: &Connection) -> Result<Option<i64>, DbError> {
    Ok(conn.query_row(
        "SELECT MIN(next_at) FROM webhook_deliveries WHERE state IN ('new', 'pending')",
        [],
        |r| r.get(0),
    )?)
}

/// Fix the body of delivery `id` (once: a body already fixed is kept and returned).
pub fn prepare(conn: &Connection, id: i64, body: &str) -> Result<String, DbError> {
    conn.execute(
        "UPDATE webhook_deliveries SET body = ?2, state = 'pending' WHERE id = ?1 AND body IS NULL",
        params![id, body],
    )?;
    Ok(conn.query_row(
        "SELECT body FROM webhook_deliveries WHERE id = ?1",
        [id],
        |r| r.get(0),
    )?)
}

/// How one attempt went.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The receiver answered 2xx.
    Delivered { status: u16 },
    /// Try again at `next_at`.
    Retry {
        status: Option<u16>,
        error: String,
        next_at: i64,
    },
    /// Given up (out of time, or refused for good): staff may redeliver.
    Failed { status: Option<u16>, error: String },
    /// 410 Gone: this delivery waits, and the platform's endpoint is disabled until staff
    /// set its webhook again.
    Gone,
}

/// Record one attempt of delivery `d`.
pub fn attempted(
    conn: &Connection,
    d: &Delivery,
    outcome: &Outcome,
    now: i64,
) -> Result<(), DbError> {
    let n = d.attempts + 1;
    match outcome {
        Outcome::Delivered { status } => conn.execute(
            "UPDATE webhook_deliveries SET state = 'delivered', attempts = ?2, last_status = ?3,
                    last_error = NULL, delivered_at = ?4 WHERE id = ?1",
            params![d.id, n, status, now],
        )?,
        Outcome::Retry {
            status,
            error,
            next_at,
        } => conn.execute(
            "UPDATE webhook_deliveries SET attempts = ?2, last_status = ?3, last_error = ?4,
                    next_at = ?5 WHERE id = ?1",
            params![d.id, n, status, error, next_at],
        )?,
        Outcome::Failed { status, error } => conn.execute(
            "UPDATE webhook_deliveries SET state = 'failed', attempts = ?2, last_status = ?3,
                    last_error = ?4 WHERE id = ?1",
            params![d.id, n, status, error],
        )?,
        Outcome::Gone => {
            conn.execute(
                "UPDATE platforms SET webhook_disabled_at = ?2,
                        webhook_disabled_why = 'the receiver answered 410 Gone'
                  WHERE name = ?1 AND webhook_disabled_at IS NULL",
                params![d.platform, now],
            )?;
            conn.execute(
                "UPDATE webhook_deliveries SET attempts = ?2, last_status = 410,
                        last_error = 'the receiver answered 410 Gone: the endpoint is disabled'
                  WHERE id = ?1",
                params![d.id, n],
            )?
        }
    };
    let what = match outcome {
        Outcome::Delivered { .. } => "webhook_delivered",
        Outcome::Retry { .. } => "webhook_retry",
        Outcome::Failed { .. } => "webhook_failed",
        Outcome::Gone => "webhook_gone",
    };
    let detail = match outcome {
        Outcome::Delivered { status } => format!("{} {} ({status})", d.event, d.msg_id),
        Outcome::Retry { error, .. } | Outcome::Failed { error, .. } => {
            format!("{} {}: {error}", d.event, d.msg_id)
        }
        Outcome::Gone => format!("{} {}: 410 Gone", d.event, d.msg_id),
    };
    events::record(conn, now, Some(d.submission_id), None, what, &detail)
}

/// Queue a platform's failed deliveries again (staff, after fixing the receiver).
pub fn redeliver(conn: &Connection, platform: &str, now: i64) -> Result<usize, DbError> {
    Ok(conn.execute(
        "UPDATE webhook_deliveries SET state = CASE WHEN body IS NULL THEN 'new' ELSE 'pending' END,
                next_at = ?2 WHERE platform = ?1 AND state = 'failed'",
        params![platform, now],
    )?)
}

/// Deliveries per platform and state (`new` counts as `pending`), for `/metrics`.
pub fn counts(conn: &Connection) -> Result<Vec<(String, String, i64)>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT platform, CASE state WHEN 'new' THEN 'pending' ELSE state END AS s, COUNT(*)
           FROM webhook_deliveries GROUP BY platform, s",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::notebooks;
    use crate::db::submissions::Received;

    #[test]
    fn a_retry_of_a_notebook_stored_by_another_zstd_is_the_same_submission() {
        let mut c = Connection::open_in_memory().unwrap();
        crate::db::migrations_apply(&mut c).unwrap();
        c.execute(
            "INSERT INTO platforms (name, token_sha256, courses, priorities, webhook_secret,
                                    created_at) VALUES ('p', 'h', '[]', '[]', 's', 0)",
            [],
        )
        .unwrap();
        let p = PlatformSubmission {
            platform: "p".into(),
            platform_user: "u".into(),
            idempotency_key: Some("k".into()),
            priority: ("student".into(), jobs::STUDENT),
        };
        let notebook = br#"{"cells": [], "metadata": {}, "text": "abcabcabcabcabcabcabcabc"}"#;
        let mut s = NewSubmission::sample("platform:p:u");
        s.notebook = notebook.to_vec();
        let submit = |stored: &StoredNotebook, s: &NewSubmission| {
            super::submit(
                &c,
                &p,
                s,
                stored,
                &IntakeRules {
                    max_attempts: 3,
                    per_student: 5,
                },
                |_| Ok(Received::at(1)),
                1,
            )
            .unwrap()
        };
        // First taken as a zstd that compressed differently would have stored it: here,
        // kept as sent (as before notebooks were compressed), hashed as such.
        let as_sent = StoredNotebook {
            bytes: notebook.to_vec(),
            sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(notebook)),
        };
        let first = submit(&as_sent, &s);
        assert!(matches!(first, Taken::Accepted(Accepted::New(_))));
        let packed = notebooks::pack(notebook);
        assert_ne!(packed.sha256, as_sent.sha256);
        assert_eq!(submit(&packed, &s), Taken::Again(first.id()));
        // Another notebook under the same key is still refused.
        let other = notebooks::pack(br#"{"cells": [], "metadata": {}, "text": "other"}"#);
        assert_eq!(submit(&other, &s), Taken::KeyReused(first.id()));
    }
}
