//! The Standard Webhooks signature (<https://www.standardwebhooks.com/>): `webhook-id`,
//! `webhook-timestamp` (Unix seconds) and `webhook-signature`, a space-separated list of
//! `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, one per secret in use (two
//! while a secret is being rotated). The secret is `whsec_` and its key in base64.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The key of a `whsec_...` secret.
pub fn key(secret: &str) -> Result<Vec<u8>, String> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    B64.decode(b64)
        .map_err(|_| "a webhook secret is whsec_ and base64".to_string())
}

/// The `webhook-signature` header for one delivery, signed with each of `secrets`
/// (secrets that do not decode are skipped; they are made by us).
pub fn signature(secrets: &[String], msg_id: &str, timestamp: i64, body: &str) -> String {
    let signed = format!("{msg_id}.{timestamp}.{body}");
    secrets
        .iter()
        .filter_map(|s| key(s).ok())
        .map(|k| {
            let mut mac = Hmac::<Sha256>::new_from_slice(&k).expect("HMAC takes any key size");
            mac.update(signed.as_bytes());
            format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_specifications_example() {
        // The example of the Standard Webhooks specification (and of its reference
        // libraries' tests): this secret, id, timestamp and body give this signature.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string();
        let sig = signature(
            &[secret],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_rotation_signs_with_both_secrets() {
        let a = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string();
        let b = super::super::new_secret();
        let both = signature(&[b.clone(), a.clone()], "msg_1", 1, "{}");
        let parts: Vec<&str> = both.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], signature(&[b], "msg_1", 1, "{}"));
        assert_eq!(parts[1], signature(&[a], "msg_1", 1, "{}"));
    }
}
