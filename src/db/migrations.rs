//! Versioned schema migrations, run at start. `PRAGMA user_version` is the version; each
//! step runs in its own transaction, so a crash mid-migration leaves the previous version.

use rusqlite::Connection;

use super::DbError;

/// Each entry migrates from version `index` to `index + 1`. Never edit a released step.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE submissions (
    id            INTEGER PRIMARY KEY,
    user          TEXT NOT NULL,
    course        TEXT NOT NULL,
    section       TEXT NOT NULL,
    assignment    TEXT NOT NULL,
    notebook      BLOB NOT NULL,
    notebook_path TEXT,
    received_at   INTEGER NOT NULL,
    -- queued | grading | graded | failed | dead
    state         TEXT NOT NULL,
    -- for the student: why it failed or died
    message       TEXT
);
CREATE INDEX submissions_by_user ON submissions (user, id);
CREATE INDEX submissions_by_assignment ON submissions (course, section, assignment);

CREATE TABLE jobs (
    id            INTEGER PRIMARY KEY,
    -- grade | post_score
    kind          TEXT NOT NULL,
    submission_id INTEGER NOT NULL REFERENCES submissions (id),
    grade_id      INTEGER REFERENCES grades (id),
    -- queued | running | done | dead
    state         TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL,
    run_at        INTEGER NOT NULL,
    give_up_at    INTEGER,
    locked_until  INTEGER,
    claim         TEXT,
    last_error    TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX jobs_waiting ON jobs (kind, run_at, id) WHERE state = 'queued';
CREATE INDEX jobs_running ON jobs (kind, locked_until) WHERE state = 'running';
CREATE INDEX jobs_by_submission ON jobs (submission_id);

CREATE TABLE grades (
    id              INTEGER PRIMARY KEY,
    submission_id   INTEGER NOT NULL REFERENCES submissions (id),
    job_id          INTEGER NOT NULL UNIQUE REFERENCES jobs (id),
    -- graded | timeout | out_of_memory | no_results
    status          TEXT NOT NULL,
    score           REAL NOT NULL,
    max_score       REAL NOT NULL,
    fraction        REAL NOT NULL,
    tests           TEXT NOT NULL,
    public_feedback TEXT NOT NULL DEFAULT '',
    message         TEXT,
    log_tail        TEXT,
    graded_at       INTEGER NOT NULL,
    -- not_configured | pending | posted | dead | superseded
    post_state      TEXT NOT NULL,
    post_detail     TEXT,
    posted_score    REAL
);
CREATE INDEX grades_by_submission ON grades (submission_id);

CREATE TABLE events (
    id            INTEGER PRIMARY KEY,
    at            INTEGER NOT NULL,
    submission_id INTEGER,
    job_id        INTEGER,
    event         TEXT NOT NULL,
    detail        TEXT
);
CREATE INDEX events_by_submission ON events (submission_id, id);
"#,
    r#"
-- One post in flight per student and assignment: post jobs carry the key.
ALTER TABLE jobs ADD COLUMN post_key TEXT;
UPDATE jobs SET post_key = (SELECT json_array(user, course, section, assignment)
                              FROM submissions s WHERE s.id = jobs.submission_id)
 WHERE kind = 'post_score';
CREATE INDEX jobs_by_post_key ON jobs (post_key, state) WHERE post_key IS NOT NULL;
CREATE INDEX submissions_by_student ON submissions (user, course, section, assignment, id);

-- Whether an assignment's autograder grades at all (an empty notebook, in the grader
-- image): a run without results is charged to the student only when it does.
CREATE TABLE autograder_checks (
    zip_sha256  TEXT NOT NULL,
    runner      TEXT NOT NULL,
    course      TEXT NOT NULL,
    section     TEXT NOT NULL,
    assignment  TEXT NOT NULL,
    ok          INTEGER NOT NULL,
    detail      TEXT NOT NULL,
    checked_at  INTEGER NOT NULL,
    PRIMARY KEY (zip_sha256, runner)
);
"#,
    r#"
-- Fairness: grade jobs are claimed round-robin across students.
ALTER TABLE jobs ADD COLUMN user TEXT;
UPDATE jobs SET user = (SELECT user FROM submissions s WHERE s.id = jobs.submission_id);
CREATE INDEX jobs_by_user ON jobs (kind, state, user);
CREATE TABLE grading_turns (
    user            TEXT PRIMARY KEY,
    last_claimed_at INTEGER NOT NULL
);
-- An identical resubmission while the first is still queued is the same submission.
ALTER TABLE submissions ADD COLUMN notebook_sha256 TEXT;
-- Looked up by hash alone (the query names this index): the other columns sit after the
-- notebook blob in the row, and reaching them through a student's rows would read every
-- notebook of theirs.
CREATE INDEX submissions_by_content ON submissions (notebook_sha256, user);
-- Retention: when the notebook body (and staff output) of an old submission was pruned.
ALTER TABLE submissions ADD COLUMN pruned_at INTEGER;
-- Why the trusted evaluator flagged a grade (staff only).
ALTER TABLE grades ADD COLUMN integrity_flags TEXT;
"#,
    r#"
-- The trusted evaluator's audit of an autograder's tests (a JSON array of `case: finding`).
ALTER TABLE autograder_checks ADD COLUMN audit TEXT;
"#,
    r#"
-- A waiting submission's place in line (db/waiting.rs) reads each student's waiting jobs
-- in order from this index alone, without the rows.
CREATE INDEX jobs_waiting_by_user ON jobs (kind, user, run_at, id) WHERE state = 'queued';
"#,
    r#"
-- Grader hosts (db/hosts.rs): machines that pull grade jobs over HTTP with their own token.
CREATE TABLE hosts (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    -- SHA-256 (hex) of the host's token; the token itself is shown once and never stored.
    token_sha256  TEXT NOT NULL UNIQUE,
    -- JSON array of the tags given at `hosts add`.
    tags          TEXT NOT NULL,
    -- active | draining | revoked
    state         TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    -- What the host said in its last request.
    last_seen_at  INTEGER,
    slots         INTEGER NOT NULL DEFAULT 0,
    version       TEXT,
    images        TEXT
);
-- Which host holds a running grade job (NULL: a worker of the service itself); kept after
-- the job ends, with the lease it ended under, so a host's repeated completion is known.
ALTER TABLE jobs ADD COLUMN host TEXT;
ALTER TABLE jobs ADD COLUMN ended_lease TEXT;
CREATE INDEX jobs_by_ended_lease ON jobs (ended_lease) WHERE ended_lease IS NOT NULL;
CREATE INDEX jobs_by_host ON jobs (host) WHERE state = 'running';
"#,
    r#"
-- Priority class of a grade job: 0 = a student's submission, 1 = a staff regrade, which
-- is claimed only when no student's job is due (a regrade of a whole course must not
-- hold back the students who submit meanwhile).
ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
-- The claim's fairness query reads each student's first due job per class from here.
CREATE INDEX jobs_waiting_by_class ON jobs (kind, priority, user, run_at, id)
    WHERE state = 'queued';
"#,
    r#"
-- LTI 1.3: what the service learned from the launches the platforms signed (read from
-- the Hub's auth state): each Hub user's platform id (sub) per platform, and the line
-- item of each resource link.
CREATE TABLE lti13_users (
    hub_user   TEXT NOT NULL,
    issuer     TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    sub        TEXT NOT NULL,
    seen_at    INTEGER NOT NULL,
    PRIMARY KEY (hub_user, issuer, client_id)
);
CREATE TABLE lti13_lineitems (
    issuer           TEXT NOT NULL,
    client_id        TEXT NOT NULL,
    resource_link_id TEXT NOT NULL,
    lineitem         TEXT NOT NULL,
    seen_at          INTEGER NOT NULL,
    PRIMARY KEY (issuer, client_id, resource_link_id)
);
-- The newest score timestamp sent (or about to be sent) per line item and platform user:
-- the next post's is always later, even after a post whose answer never came.
CREATE TABLE ags_stamps (
    lineitem  TEXT NOT NULL,
    user_id   TEXT NOT NULL,
    stamp_ms  INTEGER NOT NULL,
    PRIMARY KEY (lineitem, user_id)
);
-- Each platform's access token until it expires, so a restart does not ask again.
-- A bearer secret: never logged, never shown; it lives about an hour.
CREATE TABLE ags_tokens (
    platform    TEXT PRIMARY KEY,
    token       TEXT NOT NULL,
    expires_at  INTEGER NOT NULL
);
"#,
    r#"
-- XQueue: each submission pulled from an XQueue, the header whose pull key answers it (the
-- newest served), and where its answer stands. One row per (queue, XQueue's id): a
-- submission served again is never graded twice.
CREATE TABLE xqueue_items (
    id                INTEGER PRIMARY KEY,
    queue             TEXT NOT NULL,
    xqueue_id         TEXT NOT NULL,
    header            TEXT NOT NULL,
    anon_id           TEXT NOT NULL,
    -- NULL: refused before grading (refusal says why; answered as a 0)
    submission_id     INTEGER REFERENCES submissions (id),
    refusal           TEXT,
    -- waiting | answered | failed
    state             TEXT NOT NULL,
    answered_grade_id INTEGER,
    noted_grade_id    INTEGER,
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_try_at       INTEGER NOT NULL,
    last_error        TEXT,
    pulled_at         INTEGER NOT NULL,
    answered_at       INTEGER,
    UNIQUE (queue, xqueue_id)
);
CREATE INDEX xqueue_items_due ON xqueue_items (queue, state, next_try_at);
CREATE INDEX xqueue_items_by_submission ON xqueue_items (submission_id);
"#,
    r#"
-- No change to the tables: from this version on, submissions.notebook may hold the
-- notebook zstd-compressed (db/notebooks.rs). An older build would hand those bytes to
-- grading as they are, so this version makes it refuse the database instead ("newer than
-- this build knows"), as a rollback must.
"#,
    r#"
-- Platforms: other systems registered by staff (`otter-service platforms add`) that submit
-- through `{prefix}api/v1/` with a token (only its SHA-256 is kept) and get signed
-- completion webhooks (Standard Webhooks). `courses` and `priorities` are JSON lists.
-- `webhook_secret` is the signing secret; `webhook_secret_old` is still signed with during
-- a rotation, until `webhook_secret_old_until`.
CREATE TABLE platforms (
    name                     TEXT PRIMARY KEY,
    token_sha256             TEXT NOT NULL UNIQUE,
    courses                  TEXT NOT NULL,
    priorities               TEXT NOT NULL,
    webhook_url              TEXT,
    webhook_secret           TEXT NOT NULL,
    webhook_secret_old       TEXT,
    webhook_secret_old_until INTEGER,
    -- set when the receiver answered 410 Gone: nothing is sent until staff set it again
    webhook_disabled_at      INTEGER,
    webhook_disabled_why     TEXT,
    created_at               INTEGER NOT NULL,
    revoked_at               INTEGER
);
-- Each submission a platform made: its own user id, the idempotency key it came with,
-- its priority class.
CREATE TABLE platform_submissions (
    submission_id   INTEGER PRIMARY KEY REFERENCES submissions (id),
    platform        TEXT NOT NULL REFERENCES platforms (name),
    platform_user   TEXT NOT NULL,
    idempotency_key TEXT,
    priority        TEXT NOT NULL
);
-- Every idempotency key a platform used, and the submission it answers with (two keys
-- may answer with one submission: an identical notebook that was still waiting).
CREATE TABLE platform_keys (
    platform        TEXT NOT NULL REFERENCES platforms (name),
    idempotency_key TEXT NOT NULL,
    submission_id   INTEGER NOT NULL REFERENCES submissions (id),
    PRIMARY KEY (platform, idempotency_key)
);
CREATE INDEX platform_submissions_by_user ON platform_submissions (platform, platform_user, submission_id);
-- The webhook outbox: one row per event. `msg_id` is the `webhook-id`, the same on every
-- attempt; `body` is fixed when the event is first prepared (NULL until then), so every
-- attempt sends the same bytes. state: new (not prepared) | pending | delivered |
-- failed (gave up, or the receiver refused for good: staff may redeliver).
CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY,
    msg_id          TEXT NOT NULL UNIQUE,
    platform        TEXT NOT NULL REFERENCES platforms (name),
    submission_id   INTEGER NOT NULL REFERENCES submissions (id),
    event           TEXT NOT NULL,
    body            TEXT,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_at         INTEGER NOT NULL,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    delivered_at    INTEGER
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_at);
CREATE INDEX webhook_deliveries_by_submission ON webhook_deliveries (submission_id);
-- Every path that ends a platform's submission (a local worker, a grader host, a retry
-- that gave up, a staff regrade) sets its state; this turns each ending into an event, so
-- no path can forget one. A platform without a webhook gets none.
CREATE TRIGGER platform_submission_ended AFTER UPDATE OF state ON submissions
WHEN NEW.state IN ('graded', 'failed', 'dead') AND OLD.state IS NOT NEW.state
BEGIN
    INSERT INTO webhook_deliveries (msg_id, platform, submission_id, event, state, next_at, created_at)
    SELECT 'msg_' || lower(hex(randomblob(16))), p.name, NEW.id, 'submission.' || NEW.state,
           'new', 0, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
      FROM platform_submissions ps JOIN platforms p ON p.name = ps.platform
     WHERE ps.submission_id = NEW.id AND p.webhook_url IS NOT NULL;
END;
"#,
    r#"
-- The course calendar (src/calendar). A submission's lateness, fixed when it is committed
-- and recomputed only when the student's extension or the assignment's calendar changes:
-- credit is the percent of the raw score that counts, late_ms how long after the
-- student's due date it came (0: on time). Both NULL: the assignment has no calendar.
ALTER TABLE submissions ADD COLUMN credit REAL;
ALTER TABLE submissions ADD COLUMN late_ms INTEGER;
-- One extension per student and assignment (a new one replaces it): it shifts that
-- student's deadlines by shift_ms.
CREATE TABLE extensions (
    course     TEXT NOT NULL,
    section    TEXT NOT NULL,
    assignment TEXT NOT NULL,
    user       TEXT NOT NULL,
    shift_ms   INTEGER NOT NULL,
    reason     TEXT NOT NULL,
    granted_by TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (course, section, assignment, user)
);
-- A score set by staff for a student's assignment: it counts instead of any grade
-- (grades stay as they are and count again when it is removed).
CREATE TABLE score_overrides (
    course     TEXT NOT NULL,
    section    TEXT NOT NULL,
    assignment TEXT NOT NULL,
    user       TEXT NOT NULL,
    score      REAL NOT NULL,
    max_score  REAL NOT NULL,
    reason     TEXT NOT NULL,
    set_by     TEXT NOT NULL,
    set_at     INTEGER NOT NULL,
    PRIMARY KEY (course, section, assignment, user)
);
-- Held results released (by staff, or by the calendar's hold_results time).
CREATE TABLE result_releases (
    course      TEXT NOT NULL,
    section     TEXT NOT NULL,
    assignment  TEXT NOT NULL,
    released_at INTEGER NOT NULL,
    released_by TEXT NOT NULL,
    PRIMARY KEY (course, section, assignment)
);
-- Every calendar action (extensions, overrides, releases, recomputed credit), kept for
-- good: retention does not prune it.
CREATE TABLE calendar_log (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    course     TEXT NOT NULL,
    section    TEXT NOT NULL,
    assignment TEXT NOT NULL,
    user       TEXT,
    action     TEXT NOT NULL,
    detail     TEXT NOT NULL
);
CREATE INDEX calendar_log_by_assignment ON calendar_log (course, section, assignment, id);
-- The calendar each assignment's stored credits were computed with (its fingerprint):
-- a changed calendar in the course config recomputes them at start.
CREATE TABLE calendar_stamps (
    course      TEXT NOT NULL,
    section     TEXT NOT NULL,
    assignment  TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    PRIMARY KEY (course, section, assignment)
);
"#,
];

/// Bring the schema to the newest version.
pub fn run(conn: &mut Connection) -> Result<(), DbError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let current = usize::try_from(current).unwrap_or(usize::MAX);
    if current > MIGRATIONS.len() {
        return Err(DbError::Invalid(format!(
            "the database has schema version {current}, newer than this build knows ({}); \
             run a newer otter-service",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}
