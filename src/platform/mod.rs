//! The platform API: other systems (an LMS integration, a bulk-regrade script, a practice
//! site) registered by staff submit notebooks under `{prefix}api/v1/` with their own token,
//! for their own users, in the courses they were granted, and are told how each submission
//! ended by a signed webhook (Standard Webhooks) from a durable outbox (docs/platform-api.md).
//!
//! - [`api`]: the endpoints (the same intake rules as the JupyterHub door).
//! - [`webhooks`]: the sender of the outbox (`db::platforms`), retried with backoff.
//! - [`signing`]: the `webhook-signature` header.
//! - [`guard`]: which addresses a webhook may reach.

pub mod admin;
pub mod api;
pub mod guard;
pub mod signing;
pub mod webhooks;

use base64::Engine;
use sha2::{Digest, Sha256};

/// Priority classes a platform may be granted, by name, with their `jobs.priority`.
/// `normal` is a student's; `low` is claimed only when no student's job is due (a bulk
/// regrade or practice site must not hold students up before a deadline).
pub const PRIORITIES: &[(&str, i64)] = &[
    ("normal", crate::db::jobs::STUDENT),
    ("low", crate::db::jobs::REGRADE),
];

/// The `jobs.priority` of a priority class's name.
pub fn priority_class(name: &str) -> Option<i64> {
    PRIORITIES.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
}

/// A new API token (`otp_` and 64 hex digits) and its SHA-256 (what is stored).
pub fn new_token() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let token = format!("otp_{}", hex::encode(bytes));
    (token.clone(), token_sha256(&token))
}

/// The stored form of a token. A plain hash is enough: tokens are 256 random bits, so
/// there is nothing to guess (a slow password hash would only slow every request).
pub fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new webhook signing secret in the Standard Webhooks form: `whsec_` and 32 random
/// bytes in base64.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// Check a platform or user name: 1 to 64 letters, digits, `-`, `_`, `.` or `@` (what
/// LMS user ids and e-mail-like ids are made of; never `:` or `/`, which would let one
/// name pass for another in `platform:<name>:<user>` or in a URL).
pub fn valid_name(kind: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "a {kind} is 1 to 64 letters, digits, '-', '_', '.' or '@' (got {:?})",
            name.chars().take(80).collect::<String>()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_pass_for_another_namespace_or_path() {
        for bad in ["", "a:b", "x/y", "../z", "a b", "é", &"a".repeat(65)] {
            assert!(valid_name("user id", bad).is_err(), "{bad:?}");
        }
        for good in ["alice", "s-12_3.x", "me@school.edu"] {
            valid_name("user id", good).unwrap();
        }
    }

    #[test]
    fn tokens_and_secrets_are_random_and_only_the_hash_is_kept() {
        let (t1, h1) = new_token();
        let (t2, _) = new_token();
        assert_ne!(t1, t2);
        assert!(t1.starts_with("otp_") && t1.len() == 68);
        assert_eq!(h1, token_sha256(&t1));
        assert!(!h1.contains(&t1[4..]));
        let s = new_secret();
        assert!(s.starts_with("whsec_"));
        let key = base64::engine::general_purpose::STANDARD
            .decode(&s[6..])
            .unwrap();
        assert_eq!(key.len(), 32);
    }
}
