use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
use serde_json::json;

use super::keys::generate_pem;
use super::launch::NoLaunch;
use super::token::{TokenCache, client_assertion};
use super::*;
use crate::secret::Secret;

fn platform() -> Platform {
    let token_url = Url::parse("https://lms.example/api/lti_consumer/v1/token/abc").unwrap();
    Platform {
        issuer: "https://lms.example".into(),
        client_id: "client-1".into(),
        deployment_id: Some("1".into()),
        audience: token_url.to_string(),
        token_url,
    }
}

fn keys() -> ToolKeys {
    ToolKeys::from_pems(generate_pem().unwrap().as_bytes(), &[]).unwrap()
}

#[test]
fn the_assertion_is_signed_with_the_served_key_and_names_the_platform() {
    let keys = keys();
    let p = platform();
    let jwt = client_assertion(&keys, &p, 1_700_000_000).unwrap();
    let header = decode_header(&jwt).unwrap();
    assert_eq!(header.kid.as_deref(), Some(keys.kid()));
    // Verify with the public key as a platform gets it: from the served key set.
    let jwk = keys
        .jwks()
        .find(keys.kid())
        .expect("the signing key is in the set");
    let mut v = Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&[p.token_url.as_str()]);
    v.validate_exp = false;
    let claims = decode::<serde_json::Value>(&jwt, &DecodingKey::from_jwk(jwk).unwrap(), &v)
        .unwrap()
        .claims;
    assert_eq!(claims["iss"], "client-1");
    assert_eq!(claims["sub"], "client-1");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );
    let other = client_assertion(&keys, &p, 1_700_000_000).unwrap();
    let jti = |t: &str| {
        decode::<serde_json::Value>(t, &DecodingKey::from_jwk(jwk).unwrap(), &v)
            .unwrap()
            .claims["jti"]
            .clone()
    };
    assert_ne!(jti(&jwt), jti(&other), "every assertion has its own jti");
    // A key not in the set does not verify it (a tampered set is useless to a forger).
    let stranger = keys_set_of(&generate_pem().unwrap());
    let stranger_jwk = &stranger.jwks().keys[0];
    assert!(
        decode::<serde_json::Value>(&jwt, &DecodingKey::from_jwk(stranger_jwk).unwrap(), &v)
            .is_err()
    );
}

fn keys_set_of(pem: &str) -> ToolKeys {
    ToolKeys::from_pems(pem.as_bytes(), &[]).unwrap()
}

#[test]
fn rotation_serves_old_and_new_and_signs_with_the_new() {
    let (old, new) = (generate_pem().unwrap(), generate_pem().unwrap());
    let before = keys_set_of(&old);
    let during = ToolKeys::from_pems(new.as_bytes(), &[old.as_bytes()]).unwrap();
    assert_eq!(during.jwks().keys.len(), 2);
    assert!(during.jwks().find(before.kid()).is_some());
    assert_ne!(during.kid(), before.kid());
    assert_eq!(
        during.kid(),
        keys_set_of(&new).kid(),
        "kid is the key's own thumbprint"
    );
    let served = serde_json::to_value(during.jwks()).unwrap();
    assert!(
        !served.to_string().contains("\"d\""),
        "only public parts are served: {served}"
    );
    assert_eq!(served["keys"][0]["kty"], "RSA");
    assert_eq!(served["keys"][0]["alg"], "RS256");
    assert_eq!(served["keys"][0]["use"], "sig");
}

#[test]
fn bad_key_files_are_refused_without_printing_them() {
    let e = ToolKeys::from_pems(
        b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
        &[],
    )
    .unwrap_err();
    assert!(e.contains("not an RSA private key"), "{e}");
    assert!(!e.contains("not a key"), "{e}");
}

fn score(ts: i64) -> AgsScore {
    AgsScore {
        lineitem: Url::parse("https://lms.example/lti/3/lti-ags/7?type_id=2").unwrap(),
        user_id: "a1b2".into(),
        score_given: 7.5,
        score_maximum: 10.0,
        timestamp_ms: ts,
        submitted_at_ms: Some(ts - 60_000),
    }
}

#[test]
fn the_score_goes_to_the_line_items_scores_with_points_and_millisecond_time() {
    let s = score(1_700_000_000_123);
    assert_eq!(
        s.scores_url().as_str(),
        "https://lms.example/lti/3/lti-ags/7/scores?type_id=2"
    );
    let body = s.body().unwrap();
    assert_eq!(body["scoreGiven"], 7.5);
    assert_eq!(body["scoreMaximum"], 10.0);
    assert_eq!(body["userId"], "a1b2");
    assert_eq!(body["activityProgress"], "Completed");
    assert_eq!(body["gradingProgress"], "FullyGraded");
    assert_eq!(body["timestamp"], "2023-11-14T22:13:20.123Z");
    assert_eq!(
        body["submission"]["submittedAt"],
        "2023-11-14T22:12:20.123Z"
    );
    for (given, max) in [(f64::NAN, 10.0), (11.0, 10.0), (-1.0, 10.0), (1.0, 0.0)] {
        let bad = AgsScore {
            score_given: given,
            score_maximum: max,
            ..score(1)
        };
        assert!(
            matches!(bad.body(), Err(AgsError::InvalidPost(_))),
            "{given}/{max}"
        );
    }
}

#[test]
fn answers_are_classified_like_the_lti_1_1_posts() {
    let status = |status| AgsError::Status {
        what: "the score post",
        status,
        body: String::new(),
        retry_after: Some(3),
    };
    for s in [500, 502, 503, 408, 425, 429] {
        assert!(status(s).is_transient(), "{s}");
    }
    for s in [400, 403, 404, 409, 422] {
        assert!(!status(s).is_transient(), "{s}");
    }
    assert_eq!(
        status(429).retry_after(),
        Some(std::time::Duration::from_secs(3))
    );
    let refused = AgsError::TokenRefused {
        status: 400,
        body: "invalid_client".into(),
    };
    assert!(!refused.is_transient());
}

#[test]
fn a_launch_counts_only_for_its_own_platform() {
    let p = platform();
    let state = json!({
        "iss": "https://lms.example", "aud": ["client-1"], "sub": "a1b2",
        "https://purl.imsglobal.org/spec/lti/claim/deployment_id": "1",
        "https://purl.imsglobal.org/spec/lti/claim/resource_link": {"id": "block-v1:x"},
        "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint":
            {"lineitem": "https://lms.example/li/7", "scope": [SCORE_SCOPE]},
    });
    let l = Launch::from_auth_state(&state, &p).unwrap();
    assert_eq!(l.sub, "a1b2");
    assert_eq!(l.resource_link_id.as_deref(), Some("block-v1:x"));
    assert_eq!(l.lineitem.as_deref(), Some("https://lms.example/li/7"));
    let with = |k: &str, v: serde_json::Value| {
        let mut s = state.clone();
        s[k] = v;
        Launch::from_auth_state(&s, &p)
    };
    assert!(matches!(
        with("iss", json!("https://evil.example")),
        Err(NoLaunch::OtherPlatform(_))
    ));
    assert!(matches!(
        with("aud", json!("client-2")),
        Err(NoLaunch::OtherPlatform(_))
    ));
    assert!(matches!(
        with(
            "https://purl.imsglobal.org/spec/lti/claim/deployment_id",
            json!("2")
        ),
        Err(NoLaunch::OtherPlatform(_))
    ));
    assert!(matches!(
        with("sub", json!("")),
        Err(NoLaunch::Malformed(_))
    ));
    assert_eq!(
        Launch::from_auth_state(&json!(null), &p),
        Err(NoLaunch::Missing)
    );
    assert_eq!(
        Launch::from_auth_state(&json!({}), &p),
        Err(NoLaunch::Missing)
    );
}

#[derive(Default)]
struct MemStore(std::sync::Mutex<Option<(Secret, i64)>>, AtomicUsize);

#[async_trait::async_trait]
impl TokenStore for MemStore {
    async fn load(&self, _key: &str) -> Option<(Secret, i64)> {
        self.0.lock().unwrap().clone()
    }
    async fn save(&self, _key: &str, token: &Secret, expires_ms: i64) {
        self.1.fetch_add(1, Ordering::SeqCst);
        *self.0.lock().unwrap() = Some((token.clone(), expires_ms));
    }
}

#[tokio::test]
async fn one_token_serves_many_posts_and_survives_a_restart() {
    let store = Arc::new(MemStore::default());
    let fetches = AtomicUsize::new(0);
    let fetch = || async {
        let n = fetches.fetch_add(1, Ordering::SeqCst);
        Ok((Secret::new(format!("t{n}")), 10_000_000))
    };
    let cache = TokenCache::new(Some(store.clone()));
    for _ in 0..5 {
        assert_eq!(
            cache.get("k", 1000, None, fetch).await.unwrap().expose(),
            "t0"
        );
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    // A new process: the stored token, no request.
    let restarted = TokenCache::new(Some(store.clone()));
    assert_eq!(
        restarted
            .get("k", 2000, None, fetch)
            .await
            .unwrap()
            .expose(),
        "t0"
    );
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    // Refused (401): a new one, and the refused one never again.
    let refused = Secret::new("t0");
    assert_eq!(
        restarted
            .get("k", 3000, Some(&refused), fetch)
            .await
            .unwrap()
            .expose(),
        "t1"
    );
    assert_eq!(
        restarted
            .get("k", 3000, None, fetch)
            .await
            .unwrap()
            .expose(),
        "t1"
    );
    // Within a minute of its expiry: a new one.
    assert_eq!(
        restarted
            .get("k", 9_950_000, None, fetch)
            .await
            .unwrap()
            .expose(),
        "t2"
    );
    assert_eq!(store.1.load(Ordering::SeqCst), 3);
}
