//! LTI 1.3 state: launches learned from the Hub's auth state, score timestamps, tokens.

use rusqlite::{Connection, OptionalExtension, params};

use super::DbError;

/// Remember a verified launch: the user's platform id, and its resource link's line item.
#[allow(clippy::too_many_arguments)]
pub fn record_launch(
    conn: &Connection,
    hub_user: &str,
    issuer: &str,
    client_id: &str,
    sub: &str,
    resource_link: Option<(&str, &str)>,
    now: i64,
) -> Result<(), DbError> {
    conn.prepare_cached(
        "INSERT INTO lti13_users (hub_user, issuer, client_id, sub, seen_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (hub_user, issuer, client_id)
         DO UPDATE SET sub = excluded.sub, seen_at = excluded.seen_at",
    )?
    .execute(params![hub_user, issuer, client_id, sub, now])?;
    if let Some((link, lineitem)) = resource_link {
        conn.prepare_cached(
            "INSERT INTO lti13_lineitems (issuer, client_id, resource_link_id, lineitem, seen_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (issuer, client_id, resource_link_id)
             DO UPDATE SET lineitem = excluded.lineitem, seen_at = excluded.seen_at",
        )?
        .execute(params![issuer, client_id, link, lineitem, now])?;
    }
    Ok(())
}

/// The user's platform id, as last launched.
pub fn sub(
    conn: &Connection,
    hub_user: &str,
    issuer: &str,
    client_id: &str,
) -> Result<Option<String>, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT sub FROM lti13_users WHERE hub_user = ?1 AND issuer = ?2 AND client_id = ?3",
        )?
        .query_row(params![hub_user, issuer, client_id], |r| r.get(0))
        .optional()?)
}

/// The line item a resource link was launched with.
pub fn lineitem(
    conn: &Connection,
    issuer: &str,
    client_id: &str,
    resource_link_id: &str,
) -> Result<Option<String>, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT lineitem FROM lti13_lineitems
              WHERE issuer = ?1 AND client_id = ?2 AND resource_link_id = ?3",
        )?
        .query_row(params![issuer, client_id, resource_link_id], |r| r.get(0))
        .optional()?)
}

/// Take the timestamp for the next post of `user_id` on `lineitem`: `now`, or 1 ms after
/// the newest taken before if that is not earlier (a clock step back, two posts in one
/// ms). Recorded before the post is sent, so a post whose answer never came still counts.
pub fn take_stamp(
    conn: &Connection,
    lineitem: &str,
    user_id: &str,
    now: i64,
) -> Result<i64, DbError> {
    Ok(conn
        .prepare_cached(
            "INSERT INTO ags_stamps (lineitem, user_id, stamp_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (lineitem, user_id)
             DO UPDATE SET stamp_ms = MAX(excluded.stamp_ms, stamp_ms + 1)
             RETURNING stamp_ms",
        )?
        .query_row(params![lineitem, user_id, now], |r| r.get(0))?)
}

/// The stored token of a platform and when it expires.
pub fn token(conn: &Connection, platform: &str) -> Result<Option<(String, i64)>, DbError> {
    Ok(conn
        .prepare_cached("SELECT token, expires_at FROM ags_tokens WHERE platform = ?1")?
        .query_row([platform], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

pub fn save_token(
    conn: &Connection,
    platform: &str,
    token: &str,
    expires_at: i64,
) -> Result<(), DbError> {
    conn.prepare_cached(
        "INSERT INTO ags_tokens (platform, token, expires_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (platform) DO UPDATE SET token = excluded.token,
                                              expires_at = excluded.expires_at",
    )?
    .execute(params![platform, token, expires_at])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_only_go_forward() {
        let mut c = Connection::open_in_memory().unwrap();
        crate::db::migrations::run(&mut c).unwrap();
        let take = |user, now| take_stamp(&c, "li", user, now).unwrap();
        assert_eq!(take("u", 1000), 1000);
        assert_eq!(take("u", 1000), 1001, "same ms");
        assert_eq!(take("u", 500), 1002, "clock stepped back");
        assert_eq!(take("u", 5000), 5000);
        assert_eq!(take("v", 10), 10, "per user");
    }
}
