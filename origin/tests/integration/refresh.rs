//! The refresh helper's four outcomes against the real service, and what the edge
//! sees after each: tokens verified by `tollgate-core` against the replicated,
//! signed denylist.

use std::sync::Arc;
use std::time::Duration;

use tollgate_core::jwk::{Jwk, KeyMaterial};
use tollgate_core::{Denylist, Reason};
use tollgate_origin::{
    AccessClaims, Algorithm, ClientConfig, Clock, InvalidRefresh, Issuer, IssuerConfig, KeySet, ManualClock,
    RefreshOutcome, Refresher, RevocationClient, SigningKey,
};

use super::harness::{wall_now, Service, ISSUER};

struct Setup {
    svc: Service,
    clock: ManualClock,
    refresher: Refresher,
    edge: RevocationClient,
}

fn setup(alg: Algorithm) -> Setup {
    let svc = Service::start(&[]);
    // The service runs on the wall clock, so the issuer's injected clock starts there.
    let clock = ManualClock::new(wall_now());
    let access = match alg {
        Algorithm::Rs256 => SigningKey::generate_rsa(2048).unwrap(),
        _ => SigningKey::generate(alg).unwrap(),
    };
    let issuer = Issuer::new(
        IssuerConfig::new(ISSUER, "https://api.test"),
        KeySet::new(access, clock.now()),
        KeySet::new(SigningKey::generate_es256().unwrap(), clock.now()),
    )
    .unwrap()
    .with_clock(Arc::new(clock.clone()));
    let client = RevocationClient::new(&svc.base, &svc.keys.write).unwrap().with_clock(Arc::new(clock.clone()));
    let edge = RevocationClient::from_config({
        let mut c = ClientConfig::new(&svc.base, &svc.keys.read);
        c.read_key = Some(svc.keys.read.clone());
        c
    })
    .unwrap();
    Setup { refresher: Refresher::new(Arc::new(issuer), client), svc, clock, edge }
}

/// The edge's view: the signed snapshot, checked with the service's key.
async fn edge_denylist(s: &Setup) -> Denylist {
    let jwk = s.edge.fetch_denylist_key().await.unwrap();
    let KeyMaterial::P256(key) = Jwk::from_object(jwk.as_object().unwrap()).unwrap().material else { panic!() };
    let r = reqwest::Client::new()
        .get(format!("{}/v1/denylist", s.svc.base))
        .bearer_auth(&s.svc.keys.read)
        .send()
        .await
        .unwrap();
    tollgate_core::wire::decode_snapshot(&r.bytes().await.unwrap(), &key).unwrap()
}

fn access_check(s: &Setup, token: &str, denylist: &Denylist) -> Result<(), Reason> {
    let now = s.clock.now() as i64;
    s.refresher.issuer().access_verifier().verify(token, now, Some(denylist)).map(|_| ()).map_err(|e| e.reason())
}

#[tokio::test]
async fn rotated_then_reuse_detected_revokes_the_session_at_the_edge() {
    for alg in [Algorithm::Es256, Algorithm::Rs256] {
        let s = setup(alg);
        let login = s.refresher.start(&AccessClaims::new("alice", "sess-1").roles(["user"])).await.unwrap();

        // 1. Rotated: a new pair; the access token carries the roles looked up now.
        let out = s
            .refresher
            .refresh(&login.refresh.token, |p| {
                assert_eq!((p.sub.as_str(), p.sid.as_str()), ("alice", "sess-1"));
                async { AccessClaims::new("ignored", "ignored").roles(["user", "admin"]) }
            })
            .await
            .unwrap();
        let RefreshOutcome::Rotated(r) = out else { panic!("{out:?}") };
        assert!(!r.grace);
        assert_eq!((r.pair.access.sub.as_str(), r.pair.access.sid.as_str()), ("alice", "sess-1"));
        assert_ne!(r.pair.refresh.jti, login.refresh.jti);
        let now = s.clock.now() as i64;
        let v = s.refresher.issuer().access_verifier().verify(&r.pair.access.token, now, None).unwrap();
        assert_eq!(v.header.alg(), Some(alg));
        assert_eq!(v.claims.get("roles").unwrap(), serde_json::json!(["user", "admin"]));
        s.refresher.verify(&r.pair.refresh.token).unwrap();
        let list = edge_denylist(&s).await;
        assert_eq!(access_check(&s, &r.pair.access.token, &list), Ok(()));

        // 2. ReuseDetected: the first refresh token again (a thief holding it).
        let out = s.refresher.refresh(&login.refresh.token, |_| async { AccessClaims::new("x", "y") }).await.unwrap();
        let RefreshOutcome::ReuseDetected { sid, seq: Some(seq) } = out else { panic!("{out:?}") };
        assert_eq!(sid, "sess-1");
        // Replicated: every access token of the session is refused at the edge.
        assert!(s.edge.wait_for_edge(seq, Duration::from_secs(10)).await.unwrap() >= seq);
        let list = edge_denylist(&s).await;
        assert_eq!(access_check(&s, &r.pair.access.token, &list), Err(Reason::Revoked));
        assert_eq!(access_check(&s, &login.access.token, &list), Err(Reason::Revoked));
        // And the rightful holder's newest refresh token is dead too.
        let out = s.refresher.refresh(&r.pair.refresh.token, |_| async { AccessClaims::new("x", "y") }).await.unwrap();
        assert_eq!(out, RefreshOutcome::Invalid(InvalidRefresh::SessionRevoked));
    }
}

#[tokio::test]
async fn expired_and_invalid_never_reach_the_service() {
    let s = setup(Algorithm::Es256);
    let head = s.svc.head().await;
    let login = s.refresher.issuer().issue_pair(&AccessClaims::new("bob", "sess-2")).unwrap();

    // Invalid: an access token presented as a refresh token, garbage, a refresh token
    // of another issuer's key.
    let refused = |t: &str| match s.refresher.verify(t) {
        Err(RefreshOutcome::Invalid(InvalidRefresh::Token(r))) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(refused(&login.access.token), Reason::InvalidType);
    assert_eq!(refused("not.a.token"), Reason::Malformed);
    let other =
        Issuer::generate(IssuerConfig::new(ISSUER, "https://api.test"), Algorithm::Es256, Arc::new(s.clock.clone()))
            .unwrap();
    let foreign = other.issue_refresh(&tollgate_origin::RefreshClaims::new("bob", "sess-2")).unwrap();
    assert_eq!(refused(&foreign.token), Reason::UnknownKey);
    let out = s.refresher.refresh("x.y.z", |_| async { AccessClaims::new("a", "b") }).await.unwrap();
    assert_eq!(out, RefreshOutcome::Invalid(InvalidRefresh::Token(Reason::Malformed)));

    // Expired: seven days later.
    s.clock.advance(7 * 86_400);
    let out = s.refresher.refresh(&login.refresh.token, |_| async { AccessClaims::new("a", "b") }).await.unwrap();
    assert_eq!(out, RefreshOutcome::Expired);
    assert_eq!(s.svc.head().await, head, "nothing was posted");
}

#[tokio::test]
async fn refused_by_the_service_unknown_session_and_after_logout() {
    let s = setup(Algorithm::Es256);
    // Issued but never started at the service.
    let pair = s.refresher.issuer().issue_pair(&AccessClaims::new("carol", "never-started")).unwrap();
    let out = s.refresher.refresh(&pair.refresh.token, |_| async { AccessClaims::new("a", "b") }).await.unwrap();
    assert_eq!(out, RefreshOutcome::Invalid(InvalidRefresh::UnknownSession));
    assert_eq!(InvalidRefresh::UnknownSession.reason(), "unknown_session");

    // Logged out: the refresh token no longer rotates, the access token is revoked.
    let login = s.refresher.start(&AccessClaims::new("carol", "sess-3")).await.unwrap();
    let a = s.refresher.client().logout("sess-3").iss(ISSUER).await.unwrap();
    let out = s.refresher.refresh(&login.refresh.token, |_| async { AccessClaims::new("a", "b") }).await.unwrap();
    assert_eq!(out, RefreshOutcome::Invalid(InvalidRefresh::SessionRevoked));
    s.edge.wait_for_edge(a.seq, Duration::from_secs(10)).await.unwrap();
    assert_eq!(access_check(&s, &login.access.token, &edge_denylist(&s).await), Err(Reason::Revoked));

    // The service down: an error, not an outcome.
    let login = s.refresher.start(&AccessClaims::new("dave", "sess-4")).await.unwrap();
    drop(s.svc);
    let out = s.refresher.refresh(&login.refresh.token, |_| async { AccessClaims::new("a", "b") }).await;
    assert!(matches!(out, Err(tollgate_origin::RefreshError::Client(_))), "{out:?}");
}
