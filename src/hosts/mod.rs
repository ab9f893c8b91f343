//! Grader hosts: grading on many machines. A host (`otter-service grader`) pulls jobs
//! from the service over HTTP with its own token, grades each with the same runner as the
//! service's own workers, holds a lease on it by heartbeat, and returns the outcome; the
//! service stores it as a local grade. [`api`] is the service's side, [`grader`] the
//! host's, [`protocol`] what they say (docs/grader-hosts.md). Hosts are registered,
//! drained and revoked by staff (`otter-service hosts`); their storage is `db::hosts`.

pub mod api;
pub mod grader;
pub mod protocol;

use sha2::{Digest, Sha256};

/// A new host token (shown once) and the hash that is stored.
pub fn new_token() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let token = format!("oth_{}", hex::encode(bytes));
    let sha = hex::encode(Sha256::digest(token.as_bytes()));
    (token, sha)
}
