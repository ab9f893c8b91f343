//! The tool's RSA key pair and the public key set platforms fetch to check our client
//! assertions.
//!
//! Each key's `kid` is its RFC 7638 JWK thumbprint (SHA-256 of its canonical public
//! JWK, base64url): stable for a key, different for every key, nothing to configure.
//! Rotation: make a new key, point `lti13.private_key_file` at it and move the old file to
//! `lti13.retired_key_files`; the set then offers both (assertions are signed with the new
//! one only) until every platform has fetched the new set (edX fetches it on every token
//! request; Canvas and Moodle cache it), then drop the old file. docs/lti13.md says how.

use std::path::Path;

use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey};
use sha2::Digest;

/// A new 2048-bit RSA private key, PKCS#8 PEM (for `otter-service lti13 new-key`).
pub fn generate_pem() -> Result<String, String> {
    use aws_lc_rs::encoding::AsDer;
    let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
        .map_err(|_| "the RSA key generator failed".to_string())?;
    let der = key
        .as_der()
        .map_err(|_| "cannot encode the RSA key".to_string())?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    Ok(pem)
}

/// The signing key and the key set to serve.
pub struct ToolKeys {
    signing: EncodingKey,
    kid: String,
    set: JwkSet,
}

impl std::fmt::Debug for ToolKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolKeys").field("kid", &self.kid).finish()
    }
}

impl ToolKeys {
    /// Read the current private key and the retired ones (PEM, PKCS#1 or PKCS#8 RSA).
    /// Errors name the file, never the key.
    pub fn load(current: &Path, retired: &[impl AsRef<Path>]) -> Result<Self, String> {
        let read = |p: &Path| {
            let pem = std::fs::read(p).map_err(|e| format!("{}: cannot read: {e}", p.display()))?;
            Self::from_pem(&pem).map_err(|e| format!("{}: {e}", p.display()))
        };
        let (signing, jwk) = read(current)?;
        let mut keys = vec![jwk];
        for p in retired {
            let (_, jwk) = read(p.as_ref())?;
            if !keys.iter().any(|k| k.common.key_id == jwk.common.key_id) {
                keys.push(jwk);
            }
        }
        Ok(Self::assemble(signing, keys))
    }

    /// From PEM text: the current key, then retired ones.
    pub fn from_pems(current: &[u8], retired: &[&[u8]]) -> Result<Self, String> {
        let (signing, jwk) = Self::from_pem(current)?;
        let mut keys = vec![jwk];
        for pem in retired {
            keys.push(Self::from_pem(pem)?.1);
        }
        Ok(Self::assemble(signing, keys))
    }

    fn assemble(signing: EncodingKey, keys: Vec<Jwk>) -> Self {
        let kid = keys[0].common.key_id.clone().expect("every key has a kid");
        Self {
            signing,
            kid,
            set: JwkSet { keys },
        }
    }

    fn from_pem(pem: &[u8]) -> Result<(EncodingKey, Jwk), String> {
        let key = EncodingKey::from_rsa_pem(pem)
            .map_err(|e| format!("not an RSA private key in PEM form ({e})"))?;
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256)
            .map_err(|e| format!("cannot derive the public key ({e})"))?;
        let AlgorithmParameters::RSA(rsa) = &jwk.algorithm else {
            return Err("not an RSA key".into());
        };
        let bits = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&rsa.n)
            .map_or(0, |n| n.len() * 8);
        if bits < 2048 {
            return Err(format!(
                "an RSA key of {bits} bits; LTI 1.3 platforms need at least 2048"
            ));
        }
        // RFC 7638: the required members in lexicographic order, no whitespace.
        let canonical = format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, rsa.e, rsa.n);
        let thumbprint = sha2::Sha256::digest(canonical.as_bytes());
        jwk.common.key_id =
            Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(thumbprint));
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Ok((key, jwk))
    }

    /// The `kid` assertions are signed under.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub(crate) fn signing_key(&self) -> &EncodingKey {
        &self.signing
    }

    /// The public key set, as served at the JWKS URL.
    pub fn jwks(&self) -> &JwkSet {
        &self.set
    }
}
