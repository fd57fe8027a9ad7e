//! The README's example: an issuer, the revocation client and the refresh flow of a
//! login service. Needs a revocation service at `TOLLGATE_REVOCATION_URL` (default
//! `http://127.0.0.1:8790`) and an `events:write` key in `TOLLGATE_EVENTS_KEY`:
//!
//! ```sh
//! TOLLGATE_EVENTS_KEY=tgk_… cargo run -p tollgate-origin --example quickstart
//! ```
//!
//! `TOLLGATE_ORIGIN_SECRET` is the Worker's assertion secret; `TOLLGATE_READ_KEY`, a
//! `denylist:read` key, makes it wait until the logout is replicated.

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use tollgate_origin::{
    random_id, AccessClaims, Algorithm, AssertionLayer, AssertionVerifier, EdgeIdentity, Issuer, IssuerConfig,
    RefreshOutcome, Refresher, RevocationClient, SystemClock,
};

/// `GET /profile`: the user the Worker verified, from its assertion only.
async fn profile(who: EdgeIdentity) -> String {
    who.sub.unwrap_or_default()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("TOLLGATE_REVOCATION_URL").unwrap_or_else(|_| "http://127.0.0.1:8790".into());
    let origin_secret = std::env::var("TOLLGATE_ORIGIN_SECRET").unwrap_or_else(|_| "x".repeat(32));
    // --- the README's 15 lines ---
    let config = IssuerConfig::new("https://auth.example", "https://api.example");
    let issuer = Arc::new(Issuer::generate(config, Algorithm::Es256, Arc::new(SystemClock))?);
    let client = RevocationClient::new(url, std::env::var("TOLLGATE_EVENTS_KEY")?)?;
    let auth = Refresher::new(issuer.clone(), client.clone());
    let jwks = issuer.jwks(); // serve jwks.body at /.well-known/jwks.json with jwks.cache_control
    let login = auth.start(&AccessClaims::new("alice", random_id()?).roles(["user"])).await?;
    match auth.refresh(&login.refresh.token, |_| async { AccessClaims::default().roles(["user"]) }).await? {
        RefreshOutcome::Rotated(r) => println!("new pair; access token until {}", r.pair.access.exp),
        RefreshOutcome::ReuseDetected { sid, .. } => println!("replayed refresh token: session {sid} revoked"),
        other => println!("sign in again: {other:?}"),
    }
    let ack = client.logout(&login.access.sid).await?; // the session dies at the edge
    let verifier = AssertionVerifier::hs256([origin_secret])?.audience("https://api.example");
    let app = Router::new().route("/profile", get(profile)).layer(AssertionLayer::new(verifier));
    // --- end ---
    let _: Router = app; // serve it with axum::serve(listener, app)
    if let Ok(read_key) = std::env::var("TOLLGATE_READ_KEY") {
        // With a denylist:read key: wait until the logout is replicated.
        let mut c = tollgate_origin::ClientConfig::new(client.config().base_url.clone(), read_key);
        c.read_key = Some(c.api_key.clone());
        let reached = RevocationClient::from_config(c)?.wait_for_edge(ack.seq, Duration::from_secs(5)).await?;
        println!("replicated up to seq {reached}");
    }
    println!("jwks {} ({}); logout seq {}", jwks.body.len(), jwks.cache_control, ack.seq);
    Ok(())
}
