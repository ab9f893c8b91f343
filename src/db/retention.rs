//! Retention: what old submissions keep. Notebook bodies, staff-only grading output,
//! events and delivered platform webhooks older than the cutoff are deleted (a webhook
//! that failed stays: staff may redeliver it); submissions, grades, scores and edX states
//! stay (they are the record). Submissions still waiting or `dead` keep their notebook
//! (staff may still regrade them). SQLite reuses the freed pages for new rows.

use rusqlite::{Connection, params};

use super::{DbError, events};

/// How much one prune removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub notebooks: usize,
    pub outputs: usize,
    pub events: usize,
    pub webhooks: usize,
}

/// Rows changed per statement, so a large first prune never holds the writer long.
const BATCH: i64 = 1000;

/// Prune what is older than `cutoff` (ms). Call repeatedly until it returns zeros; each
/// call does at most one batch of each kind.
pub fn prune(conn: &Connection, cutoff: i64, now: i64) -> Result<Pruned, DbError> {
    let notebooks = conn
        .prepare_cached(
            "UPDATE submissions SET notebook = x'', pruned_at = ?2
             WHERE id IN (SELECT id FROM submissions
                          WHERE received_at < ?1 AND pruned_at IS NULL
                            AND state IN ('graded', 'failed') LIMIT ?3)",
        )?
        .execute(params![cutoff, now, BATCH])?;
    let outputs = conn
        .prepare_cached(
            "UPDATE grades SET log_tail = NULL
             WHERE id IN (SELECT id FROM grades
                          WHERE graded_at < ?1 AND log_tail IS NOT NULL LIMIT ?2)",
        )?
        .execute(params![cutoff, BATCH])?;
    let events = conn
        .prepare_cached(
            "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE at < ?1 LIMIT ?2)",
        )?
        .execute(params![cutoff, BATCH])?;
    let webhooks = conn
        .prepare_cached(
            "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries
                WHERE state = 'delivered' AND delivered_at < ?1 LIMIT ?2)",
        )?
        .execute(params![cutoff, BATCH])?;
    let pruned = Pruned {
        notebooks,
        outputs,
        events,
        webhooks,
    };
    if pruned != Pruned::default() {
        let detail = format!(
            "{notebooks} notebooks, {outputs} outputs, {events} events, {webhooks} webhooks"
        );
        events::record(conn, now, None, None, "pruned", &detail)?;
    }
    Ok(pruned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::states::SubmissionState;
    use crate::db::submissions::{NewSubmission, accept, set_state};

    #[test]
    fn old_notebooks_and_events_go_scores_stay_and_waiting_work_is_kept() {
        let mut c = Connection::open_in_memory().unwrap();
        crate::db::migrations_apply(&mut c).unwrap();
        let sub = |at: i64| NewSubmission {
            user: "u".into(),
            course: "c".into(),
            section: "1".into(),
            assignment: "a".into(),
            notebook: format!("{{\"at\": {at}}}").into_bytes(),
            notebook_path: None,
        };
        let old_graded = accept(&c, &sub(1), 3, 1_000).unwrap();
        set_state(&c, old_graded, SubmissionState::Graded, None).unwrap();
        let old_waiting = accept(&c, &sub(2), 3, 1_000).unwrap();
        let new_graded = accept(&c, &sub(3), 3, 9_000).unwrap();
        set_state(&c, new_graded, SubmissionState::Graded, None).unwrap();
        let p = prune(&c, 5_000, 10_000).unwrap();
        assert_eq!(p.notebooks, 1);
        assert!(p.events >= 2, "{p:?}");
        let body = |id: i64| -> Vec<u8> {
            c.query_row(
                "SELECT notebook FROM submissions WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert!(body(old_graded).is_empty());
        assert!(!body(old_waiting).is_empty(), "still to be graded");
        assert!(!body(new_graded).is_empty(), "not old yet");
        // Platform webhooks: an old delivered one goes; a failed one (staff may redeliver)
        // and a pending one stay.
        c.execute_batch(
            "INSERT INTO platforms (name, token_sha256, courses, priorities, webhook_secret,
                                    created_at) VALUES ('p', 'x', '[]', '[]', 's', 0);",
        )
        .unwrap();
        for (msg, state, delivered_at) in [
            ("m1", "delivered", Some(2_000)),
            ("m2", "failed", None),
            ("m3", "pending", None),
            ("m4", "delivered", Some(9_000)),
        ] {
            c.execute(
                "INSERT INTO webhook_deliveries (msg_id, platform, submission_id, event, state,
                                                 next_at, created_at, delivered_at)
                 VALUES (?1, 'p', ?2, 'submission.graded', ?3, 0, 1000, ?4)",
                params![msg, old_graded, state, delivered_at],
            )
            .unwrap();
        }
        assert_eq!(prune(&c, 5_000, 10_001).unwrap().webhooks, 1);
        let left: Vec<String> = c
            .prepare("SELECT msg_id FROM webhook_deliveries ORDER BY msg_id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(left, ["m2", "m3", "m4"]);
        assert_eq!(
            prune(&c, 5_000, 10_002).unwrap(),
            Pruned::default(),
            "nothing left"
        );
    }
}
