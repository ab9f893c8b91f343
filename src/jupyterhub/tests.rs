use super::*;

/// A Hub double: knows a fixed set of tokens.
struct FakeHub(Vec<(&'static str, HubIdentity)>);

#[async_trait::async_trait]
impl HubApi for FakeHub {
    async fn identify(&self, token: &Secret) -> Result<Option<HubIdentity>, HubError> {
        Ok(self
            .0
            .iter()
            .find(|(t, _)| *t == token.expose())
            .map(|(_, id)| id.clone()))
    }
    async fn exchange_code(&self, code: &str) -> Result<Secret, HubError> {
        if code == "good" {
            Ok(Secret::new("t-alice"))
        } else {
            Err(HubError::BadCode)
        }
    }
    async fn standing(&self, name: &str) -> Result<Option<UserStanding>, HubError> {
        Ok(self
            .0
            .iter()
            .any(|(_, id)| id.name == name)
            .then(|| UserStanding {
                admin: name == "admin",
                groups: vec![],
            }))
    }
}

fn ident(name: &str, scopes: &[&str]) -> HubIdentity {
    HubIdentity {
        name: name.into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        kind: Some("user".into()),
    }
}

fn auth() -> Auth {
    let hub = FakeHub(vec![
        (
            "t-alice",
            ident("alice", &["access:services!service=otter_grade"]),
        ),
        ("t-broad", ident("bob", &["access:services"])),
        ("t-none", ident("carol", &["read:users"])),
    ]);
    Auth::new(
        Arc::new(hub),
        vec!["access:services!service=otter_grade".into()],
        &Secret::new("k"),
        Duration::from_secs(60),
        Duration::from_secs(60),
    )
}

#[tokio::test]
async fn tokens_need_the_access_scope() {
    let a = auth();
    assert_eq!(
        a.user_for_token(&Secret::new("t-alice"))
            .await
            .unwrap()
            .name,
        "alice"
    );
    assert_eq!(
        a.user_for_token(&Secret::new("t-broad"))
            .await
            .unwrap()
            .name,
        "bob"
    );
    assert!(matches!(
        a.user_for_token(&Secret::new("t-none")).await,
        Err(AuthError::MissingScope { .. })
    ));
    assert!(matches!(
        a.user_for_token(&Secret::new("nope")).await,
        Err(AuthError::InvalidToken)
    ));
}

#[tokio::test]
async fn any_one_of_several_access_scopes_is_enough() {
    let hub = FakeHub(vec![(
        "t",
        ident("zoe", &["access:services!service=otter_grade"]),
    )]);
    let a = Auth::new(
        Arc::new(hub),
        vec![
            "access:services".into(),
            "access:services!service=otter_grade".into(),
        ],
        &Secret::new("k"),
        Duration::from_secs(60),
        Duration::from_secs(60),
    );
    assert_eq!(
        a.user_for_token(&Secret::new("t")).await.unwrap().name,
        "zoe"
    );
}

#[tokio::test]
async fn oauth_code_gives_a_cookie_user() {
    let a = auth();
    let (user, token) = a.user_for_code("good").await.unwrap();
    assert_eq!((user.name.as_str(), token.expose()), ("alice", "t-alice"));
    assert!(matches!(
        a.user_for_code("bad").await,
        Err(AuthError::Hub(HubError::BadCode))
    ));
}

#[tokio::test]
async fn session_cookie_round_trips_and_forgeries_fail() {
    let a = auth();
    let t = Secret::new("t-alice");
    let cookie = a.session_cookie("alice", &t, "/", false);
    let jar = SignedCookieJar::new(a.key().clone()).add(cookie);
    assert_eq!(a.user_from_cookie(&jar).await.unwrap().name, "alice");
    // A session whose token the Hub no longer knows (user deleted, logged out) is over.
    let revoked = a.session_cookie("alice", &Secret::new("t-revoked"), "/", false);
    let jar = SignedCookieJar::new(a.key().clone()).add(revoked);
    assert!(matches!(
        a.user_from_cookie(&jar).await,
        Err(AuthError::BadCookie)
    ));
    // A token of someone else does not make a cookie theirs.
    let swapped = a.session_cookie("bob", &t, "/", false);
    let jar = SignedCookieJar::new(a.key().clone()).add(swapped);
    assert!(matches!(
        a.user_from_cookie(&jar).await,
        Err(AuthError::BadCookie)
    ));

    let other = Auth::new(
        Arc::new(FakeHub(vec![])),
        vec![],
        &Secret::new("other-key"),
        Duration::from_secs(1),
        Duration::from_secs(1),
    );
    let forged = SignedCookieJar::new(other.key().clone())
        .add(other.session_cookie("alice", &t, "/", false));
    // The forged cookie's signature does not verify under our key.
    let header = forged.get(SESSION_COOKIE).map(|c| c.to_string());
    assert!(header.is_some());
    let mut headers = axum::http::HeaderMap::new();
    headers.insert("cookie", header.unwrap().parse().unwrap());
    let ours = SignedCookieJar::from_headers(&headers, a.key().clone());
    assert!(matches!(
        a.user_from_cookie(&ours).await,
        Err(AuthError::Missing)
    ));
}

#[test]
fn xsrf_tokens_are_per_user() {
    let a = auth();
    let t = a.xsrf_token("alice");
    assert!(a.check_xsrf("alice", &t));
    assert!(!a.check_xsrf("bob", &t));
    assert!(!a.check_xsrf("alice", "zz"));
}
