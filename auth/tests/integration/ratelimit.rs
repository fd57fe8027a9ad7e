//! Rate limits: per account (progressive delay), per client network (with and without
//! trusted proxies; the X-Forwarded-For spoofing attempt), parallel guesses.

use serde_json::json;

use super::harness::{email, Stack, PASSWORD};
use crate::both_engines;

async fn guess(s: &Stack, e: &str, headers: &[(&str, &str)]) -> crate::integration::harness::Resp {
    s.post("/auth/login", json!({"email": e, "password": "wrong password!"}), headers).await
}

both_engines!(account_limit_is_a_delay_not_a_lockout, |s: Stack| async move {
    let e = email("acct");
    s.register(&e).await;
    for _ in 0..5 {
        assert_eq!(guess(&s, &e, &[]).await.status, 401);
    }
    let r = guess(&s, &e, &[]).await;
    assert_eq!((r.status, r.kind(), r.body["scope"].as_str()), (429, "rate_limited", Some("account")));
    assert_eq!(r.headers["retry-after"], "20");
    // Even the right password waits: the check comes before the password.
    let ok = s.post("/auth/login", json!({"email": e, "password": PASSWORD}), &[]).await;
    assert_eq!(ok.status, 429);
    // One attempt per interval after the burst: 20 s later the owner gets in.
    s.clock.advance_secs(20);
    let ok = s.post("/auth/login", json!({"email": e, "password": PASSWORD}), &[]).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    // A success clears the account's bucket.
    assert_eq!(guess(&s, &e, &[]).await.status, 401);
    assert!(s.state.metrics.rate_limited.get("account") >= 2);
});

both_engines!(
    parallel_guesses_cannot_slip_through,
    |c: &mut tollgate_auth::config::Config| c.max_concurrent_hashes = 8,
    |s: Stack| async move {
        let e = email("par");
        s.register(&e).await;
        let s = std::sync::Arc::new(s);
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (s, e) = (s.clone(), e.clone());
                tokio::spawn(async move { guess(&s, &e, &[]).await.status })
            })
            .collect();
        let mut codes = Vec::new();
        for t in tasks {
            codes.push(t.await.unwrap());
        }
        assert_eq!(codes.iter().filter(|c| **c == 401).count(), 5, "{codes:?}");
        assert_eq!(codes.iter().filter(|c| **c == 429).count(), 15, "{codes:?}");
    }
);

both_engines!(
    a_spoofed_forwarded_for_does_not_escape_the_ip_limit,
    |c: &mut tollgate_auth::config::Config| c.rate_login_ip =
        tollgate_auth::ratelimit::Quota { burst: 3, interval_ms: 60_000 },
    |s: Stack| async move {
        // No trusted proxies: the peer address is the client, whatever the header says.
        for i in 0..3 {
            let r = guess(&s, &email("ip"), &[("x-forwarded-for", &format!("203.0.113.{i}"))]).await;
            assert_eq!(r.status, 401);
        }
        let r = guess(&s, &email("ip"), &[("x-forwarded-for", "198.51.100.77")]).await;
        assert_eq!((r.status, r.body["scope"].as_str()), (429, Some("ip")));
    }
);

both_engines!(
    behind_a_trusted_proxy_the_right_most_untrusted_hop_counts,
    |c: &mut tollgate_auth::config::Config| {
        c.trusted_proxies = vec!["127.0.0.1/32".into()];
        c.rate_login_ip = tollgate_auth::ratelimit::Quota { burst: 2, interval_ms: 60_000 };
    },
    |s: Stack| async move {
        // The proxy appended the real client (192.0.2.10); the attacker varies the left-most entry.
        for i in 0..2 {
            let xff = format!("10.9.9.{i}, 192.0.2.10");
            assert_eq!(guess(&s, &email("px"), &[("x-forwarded-for", &xff)]).await.status, 401);
        }
        let r = guess(&s, &email("px"), &[("x-forwarded-for", "1.2.3.4, 192.0.2.10")]).await;
        assert_eq!((r.status, r.body["scope"].as_str()), (429, Some("ip")));
        // Another client behind the same proxy has its own bucket; IPv6 by /64.
        assert_eq!(guess(&s, &email("px"), &[("x-forwarded-for", "192.0.2.11")]).await.status, 401);
        assert_eq!(guess(&s, &email("px"), &[("x-forwarded-for", "2001:db8:1:2::1")]).await.status, 401);
        assert_eq!(guess(&s, &email("px"), &[("x-forwarded-for", "2001:db8:1:2::ffff")]).await.status, 401);
        let r = guess(&s, &email("px"), &[("x-forwarded-for", "2001:db8:1:2:abcd::9")]).await;
        assert_eq!(r.status, 429, "same /64");
    }
);
