//! The revocation service through `tollgate-origin`'s `RevocationClient`: start a
//! refresh family, rotate it, end it, report reuse, revoke a subject. The client keeps
//! one idempotency key per logical call across its retries (connection errors,
//! timeouts and 503 only). Every call here is acknowledged only once the event is
//! durable at the service, and so on its way to the edge; when the service cannot be
//! reached the request fails with 503 `revocation_unavailable`, never a silent success.

use std::time::Duration;

use tollgate_origin::client::{ClientConfig, Event, RevocationClient, Rotation, SessionStart};
use tollgate_origin::{ClientError, ServiceErrorKind};

use crate::config::Config;
use crate::error::ApiError;

/// What a rotation at the revocation service came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The family moved to the new token (or this was a retry of that rotation).
    Rotated,
    /// The presented token was an earlier one: the service revoked the family.
    ReuseDetected,
    /// The family was already revoked (logout, reuse) or is unknown there.
    Revoked,
}

/// The login service's view of the revocation service.
#[derive(Debug, Clone)]
pub struct Revocation {
    client: RevocationClient,
    issuer: String,
}

impl Revocation {
    /// A client for `config.revocation_url` with its `events:write` key.
    pub fn new(config: &Config) -> anyhow::Result<Revocation> {
        let mut cc = ClientConfig::new(config.revocation_url.clone(), config.revocation_token.clone());
        cc.attempt_timeout = Duration::from_secs(2);
        cc.call_timeout = Duration::from_secs(5);
        cc.entry_life = Duration::from_secs(config.access_ttl_secs + 120);
        let client = RevocationClient::from_config(cc).map_err(|e| anyhow::anyhow!("revocation client: {e}"))?;
        Ok(Revocation { client, issuer: config.issuer.clone() })
    }

    /// The underlying client.
    pub fn client(&self) -> &RevocationClient {
        &self.client
    }

    /// Starts the refresh family `sid` whose first token is `jti`.
    pub async fn start_session(&self, sid: &str, sub: &str, jti: &str, exp: u64) -> Result<(), ApiError> {
        let start = SessionStart::new(sid, sub, jti, exp).iss(&self.issuer);
        self.client.start_session(&start).await.map(|_| ()).map_err(unavailable)
    }

    /// Rotates `sid` from `presented` to `next`.
    pub async fn rotate(&self, sid: &str, presented: &str, next: &str, exp: u64) -> Result<RotateOutcome, ApiError> {
        let rotation = Rotation::new(sid, presented, next, exp).iss(&self.issuer);
        match self.client.rotate(&rotation).await {
            Ok(tollgate_origin::client::RotateOutcome::ReuseDetected { .. }) => Ok(RotateOutcome::ReuseDetected),
            Ok(_) => Ok(RotateOutcome::Rotated),
            Err(e) => match e.kind() {
                Some(
                    ServiceErrorKind::SessionRevoked
                    | ServiceErrorKind::UnknownSession
                    | ServiceErrorKind::UnknownToken,
                ) => Ok(RotateOutcome::Revoked),
                _ => Err(unavailable(e)),
            },
        }
    }

    /// Ends the family `sid` (its access tokens are refused at the edge). Returns the seq.
    pub async fn logout(&self, sid: &str, exp: u64) -> Result<u64, ApiError> {
        self.client.logout(sid).iss(&self.issuer).exp(exp).send().await.map(|a| a.seq).map_err(unavailable)
    }

    /// Reports reuse of `jti` in family `sid` (the family is revoked). Returns the seq.
    pub async fn reuse_detected(&self, sid: &str, jti: &str, exp: u64) -> Result<u64, ApiError> {
        let event = Event::reuse_detected(sid, jti).iss(&self.issuer).exp(exp);
        self.client.post(event).await.map(|a| a.seq).map_err(unavailable)
    }

    /// Revokes every token of `sub` issued before `before` and ends the families
    /// `sessions` (`(sid, exp)`), in one atomic batch. Returns the last seq.
    pub async fn revoke_subject(
        &self,
        sub: &str,
        before: u64,
        exp: u64,
        sessions: &[(String, u64)],
    ) -> Result<u64, ApiError> {
        let mut events = vec![Event::revoke_subject(sub, before).iss(&self.issuer).exp(exp)];
        events.extend(sessions.iter().map(|(sid, e)| Event::logout(sid).iss(&self.issuer).exp(*e)));
        let appended = self.client.post_batch(&events).await.map_err(unavailable)?;
        Ok(appended.iter().map(|a| a.seq).max().unwrap_or(0))
    }
}

/// A failed call: 503 when the service could not be reached or was overloaded; an
/// opaque 500 (details in the log) when it refused what this service sent.
fn unavailable(e: ClientError) -> ApiError {
    match &e {
        ClientError::Unreachable { .. } | ClientError::Deadline { .. } => {
            tracing::error!(error = %e, "the revocation service did not answer");
            ApiError::unavailable("revocation_unavailable", "the revocation service cannot be reached; retry")
        }
        ClientError::Service(s) if s.status == 503 => {
            tracing::error!(error = %e, "the revocation service is overloaded");
            ApiError::unavailable("revocation_unavailable", "the revocation service is overloaded; retry")
        }
        _ => ApiError::internal(format!("revocation service: {e}")),
    }
}
