//! The refresh flow in one place: the guides' `/auth/refresh` route, done right.
//!
//! ```text
//! presented refresh token ──core: refresh key set, typ refresh+jwt, refresh aud, exp──▶
//!   issue the next refresh token ──POST /v1/refresh/rotate (sid, presented jti → next jti)──▶
//!     rotated  → issue the access token → Rotated(pair)
//!     reuse    → ReuseDetected (the service has revoked the whole session at the edge)
//!     refused  → Invalid(session_revoked | unknown_session | unknown_token | issuer_mismatch)
//! ```
//!
//! A token that fails verification never reaches the service: `Expired`, or
//! `Invalid(Token(reason))` with the core's reason. Only a failure that is not the
//! token's fault (the service unreachable, a key failing) is an error.

use std::future::Future;
use std::sync::Arc;

use tollgate_core::Reason;

use crate::client::{RevocationClient, RotateOutcome, Rotation, SessionStart};
use crate::error::{RefreshError, ServiceErrorKind};
use crate::issuer::{AccessClaims, Issuer, RefreshClaims, TokenPair};

/// A refresh token whose signature, `typ`, audience and lifetime have been checked.
#[derive(Debug, Clone, PartialEq)]
pub struct PresentedRefresh {
    /// Its subject.
    pub sub: String,
    /// Its session (refresh family).
    pub sid: String,
    /// Its `jti`.
    pub jti: String,
    /// Its `exp`.
    pub exp: u64,
    /// All its claims.
    pub claims: tollgate_core::Claims,
}

/// A successful rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    /// The new access token and the refresh token that replaces the presented one.
    pub pair: TokenPair,
    /// The `rotation` event's sequence number.
    pub seq: u64,
    /// `true` when the presented token was the immediate predecessor, accepted within
    /// the service's grace window (a second tab, a lost answer).
    pub grace: bool,
}

/// Why a presented refresh token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidRefresh {
    /// It failed verification (not a refresh token of this issuer, bad signature, …).
    Token(Reason),
    /// Its session was logged out or revoked for reuse.
    SessionRevoked,
    /// The service knows no session with its `sid`.
    UnknownSession,
    /// Its `jti` was never a token of its session.
    UnknownToken,
    /// The session belongs to another issuer.
    IssuerMismatch,
}

impl InvalidRefresh {
    /// A stable machine-readable reason: the core's reason string, or the service's
    /// error kind.
    pub fn reason(&self) -> &'static str {
        match self {
            InvalidRefresh::Token(r) => r.as_str(),
            InvalidRefresh::SessionRevoked => "session_revoked",
            InvalidRefresh::UnknownSession => "unknown_session",
            InvalidRefresh::UnknownToken => "unknown_token",
            InvalidRefresh::IssuerMismatch => "issuer_mismatch",
        }
    }
}

/// The four outcomes of a refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefreshOutcome {
    /// Rotated: hand the client the new pair.
    Rotated(Box<Rotated>),
    /// An earlier refresh token of the session was presented (theft, or a client that
    /// kept an old one): the whole session is revoked at the edge. Send the user to
    /// sign in again.
    ReuseDetected {
        /// The session.
        sid: String,
        /// The `reuse_detected` event's sequence number (`None` when the session had
        /// already been revoked for reuse).
        seq: Option<u64>,
    },
    /// The refresh token expired: sign in again.
    Expired,
    /// The refresh token was refused.
    Invalid(InvalidRefresh),
}

/// Verifies, rotates and reissues refresh tokens with an [`Issuer`] and a
/// [`RevocationClient`].
#[derive(Debug, Clone)]
pub struct Refresher {
    issuer: Arc<Issuer>,
    client: RevocationClient,
}

impl Refresher {
    /// A refresher for tokens of `issuer`, rotating at the service `client` talks to.
    pub fn new(issuer: Arc<Issuer>, client: RevocationClient) -> Refresher {
        Refresher { issuer, client }
    }

    /// The issuer.
    pub fn issuer(&self) -> &Arc<Issuer> {
        &self.issuer
    }

    /// The client.
    pub fn client(&self) -> &RevocationClient {
        &self.client
    }

    /// At login: issues an access and a refresh token for `access`'s `sub` and `sid`
    /// and starts the session (refresh family) at the service.
    pub async fn start(&self, access: &AccessClaims) -> Result<TokenPair, RefreshError> {
        let pair = self.issuer.issue_pair(access)?;
        let start = SessionStart::new(&pair.refresh.sid, &pair.refresh.sub, &pair.refresh.jti, pair.refresh.exp)
            .iss(&self.issuer.config().issuer);
        self.client.start_session(&start).await?;
        Ok(pair)
    }

    /// Verifies a presented refresh token with the core (the refresh key set, `typ`
    /// `refresh+jwt`, the refresh audience, the issuer, `exp`; `sub`, `sid`, `jti`
    /// required). `Err` is [`RefreshOutcome::Expired`] or [`RefreshOutcome::Invalid`].
    pub fn verify(&self, presented: &str) -> Result<PresentedRefresh, RefreshOutcome> {
        let now = i64::try_from(self.issuer.now()).unwrap_or(i64::MAX);
        let v = match self.issuer.refresh_verifier().verify(presented, now, None) {
            Ok(v) => v,
            Err(e) if e.reason() == Reason::Expired => return Err(RefreshOutcome::Expired),
            Err(e) => return Err(RefreshOutcome::Invalid(InvalidRefresh::Token(e.reason()))),
        };
        let c = v.claims;
        let (Some(sub), Some(sid), Some(jti), Some(exp)) = (c.sub(), c.sid(), c.jti(), c.exp()) else {
            return Err(RefreshOutcome::Invalid(InvalidRefresh::Token(Reason::MissingClaim)));
        };
        Ok(PresentedRefresh {
            sub: sub.to_string(),
            sid: sid.to_string(),
            jti: jti.to_string(),
            exp: exp.max(0.0) as u64,
            claims: c.clone(),
        })
    }

    /// Rotates a verified refresh token at the service and, if it rotated, issues the
    /// new pair. `access` gives the new access token's claims; its `sub` and `sid` are
    /// replaced by the refresh token's.
    pub async fn rotate(
        &self,
        presented: &PresentedRefresh,
        access: AccessClaims,
    ) -> Result<RefreshOutcome, RefreshError> {
        let next = self.issuer.issue_refresh(&RefreshClaims::new(&presented.sub, &presented.sid))?;
        let rotation =
            Rotation::new(&presented.sid, &presented.jti, &next.jti, next.exp).iss(&self.issuer.config().issuer);
        match self.client.rotate(&rotation).await {
            Ok(RotateOutcome::Rotated { seq, grace, .. }) => {
                let access = access.for_session(&presented.sub, &presented.sid);
                let access = self.issuer.issue_access(&access)?;
                Ok(RefreshOutcome::Rotated(Box::new(Rotated { pair: TokenPair { access, refresh: next }, seq, grace })))
            }
            Ok(RotateOutcome::ReuseDetected { seq }) => {
                Ok(RefreshOutcome::ReuseDetected { sid: presented.sid.clone(), seq })
            }
            Err(e) => match e.kind() {
                Some(ServiceErrorKind::SessionRevoked) => Ok(RefreshOutcome::Invalid(InvalidRefresh::SessionRevoked)),
                Some(ServiceErrorKind::UnknownSession) => Ok(RefreshOutcome::Invalid(InvalidRefresh::UnknownSession)),
                Some(ServiceErrorKind::UnknownToken) => Ok(RefreshOutcome::Invalid(InvalidRefresh::UnknownToken)),
                Some(ServiceErrorKind::IssuerMismatch) => Ok(RefreshOutcome::Invalid(InvalidRefresh::IssuerMismatch)),
                _ => Err(RefreshError::Client(e)),
            },
        }
    }

    /// The whole flow in one call: [`Refresher::verify`], then `access` (e.g. the
    /// user's current roles, looked up by `sub`), then [`Refresher::rotate`].
    pub async fn refresh<F, Fut>(&self, presented: &str, access: F) -> Result<RefreshOutcome, RefreshError>
    where
        F: FnOnce(&PresentedRefresh) -> Fut,
        Fut: Future<Output = AccessClaims>,
    {
        let p = match self.verify(presented) {
            Ok(p) => p,
            Err(outcome) => return Ok(outcome),
        };
        let claims = access(&p).await;
        self.rotate(&p, claims).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::issuer::IssuerConfig;

    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>(_: &T) {}

    #[test]
    fn shared_types_are_send_and_sync_and_the_flows_are_send_futures() {
        send_sync::<Issuer>();
        send_sync::<RevocationClient>();
        send_sync::<Refresher>();
        send_sync::<crate::AssertionVerifier>();
        send_sync::<crate::KeySet>();
        let issuer = Issuer::generate(
            IssuerConfig::new("i", "a"),
            tollgate_core::Algorithm::Es256,
            Arc::new(ManualClock::new(1)),
        )
        .unwrap();
        let r = Refresher::new(Arc::new(issuer), RevocationClient::new("http://127.0.0.1:1", "k").unwrap());
        // Usable from axum handlers, whose futures must be Send.
        let f = r.refresh("x", |_| async { AccessClaims::default() });
        send(&f);
        let claims = AccessClaims::new("u", "s");
        let s = r.start(&claims);
        send(&s);
        let l = r.client().logout("s");
        send(&std::future::IntoFuture::into_future(l));
    }
}
