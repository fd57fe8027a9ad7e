//! Sessions: start, refresh (rotation with reuse detection and convergence of
//! concurrent refreshes), logout. Provider-neutral: a password login and a social
//! login both end in [`start`].
//!
//! ## Refresh, and how concurrent tabs converge
//!
//! A session is one refresh family at the revocation service. Its row keeps the
//! current refresh token's `jti`, the one before it, when the last rotation happened,
//! and that rotation's *successor pair* sealed under a key derived from the refresh
//! token it replaced (`crate::seal`; the database never holds that token).
//!
//! 1. The presented refresh token is verified (signature, refresh key set,
//!    `typ: refresh+jwt`, issuer, audience, `exp`).
//! 2. If it is the current token, a new pair is made and sealed, and one conditional
//!    `UPDATE … WHERE current_jti = presented` moves the family: of any number of
//!    concurrent refreshes of one token exactly one wins. The winner then rotates at
//!    the revocation service (`presented → next`) and marks the rotation committed.
//!    If the service cannot be reached the rotation is undone (503, the client
//!    retries with the same token).
//! 3. If it is the *immediate predecessor* and the rotation is at most
//!    `refresh_reuse_window_secs` old (10 s), the sealed pair is opened and returned:
//!    the **same** successor pair the winner got, not a new one and not an error. If
//!    that rotation is still pending, this request completes it at the revocation
//!    service (the service recognises a retry of the same rotation), so a winner that
//!    died half-way does not strand the family.
//! 4. Anything else — an older token, or the predecessor after the window — is reuse:
//!    the session is revoked here and a `reuse_detected` is posted for the family, so
//!    every access token of the session stops at the edge.
//!
//! A refresh never clears cookies: a request that loses a race either gets the
//! winner's pair (and sets the same cookies) or an error with no `Set-Cookie`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::error::ApiError;
use crate::revocation::RotateOutcome;
use crate::seal;
use crate::store::{Rotation, Session, User};
use crate::tokens::{IssuedPair, RefreshError};

/// A new session's tokens.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionTokens {
    /// The session id (`sid`).
    pub sid: String,
    /// The access and refresh tokens.
    pub pair: IssuedPair,
}

/// How a refresh succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refreshed {
    /// This request rotated the family.
    Rotated,
    /// A replay of the immediate predecessor within the window: the same pair the
    /// rotation produced.
    Converged,
}

/// 128 random bits, base64url (session ids, CSRF tokens).
pub fn random_id() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// Starts a session for `user` (`method`: `password`, or a provider name): records it,
/// issues the pair, and starts the refresh family at the revocation service.
pub async fn start(state: &AppState, user: &User, method: &str) -> Result<SessionTokens, ApiError> {
    let sid = random_id();
    wait_for_cutoff(state, user).await;
    let pair = state.tokens.issue_pair(user, &sid)?;
    let now = state.clock.now_secs() as i64;
    state.store.insert_session(&sid, &user.id, method, &pair.refresh_jti, now, pair.refresh_exp as i64).await?;
    if let Err(e) = state.revocation.start_session(&sid, &user.id, &pair.refresh_jti, pair.refresh_exp).await {
        if let Err(d) = state.store.delete_session(&sid).await {
            tracing::warn!(error = %d, sid, "could not delete a session whose start failed");
        }
        return Err(e);
    }
    Ok(SessionTokens { sid, pair })
}

/// Refreshes with `token` (see the module documentation).
pub async fn refresh(state: &AppState, token: &str) -> Result<(SessionTokens, Refreshed), ApiError> {
    let claims = state.tokens.verify_refresh(token).map_err(|e| {
        state.metrics.refreshes.inc(match e {
            RefreshError::Expired => "expired",
            RefreshError::Invalid(_) => "invalid",
        });
        e.into_api()
    })?;
    let sid = claims.sid.as_str();
    let Some(mut session) = state.store.session(sid).await? else {
        state.metrics.refreshes.inc("invalid");
        return Err(ApiError::unauthorized("invalid_refresh_token", "this refresh token belongs to no session"));
    };
    if session.user_id != claims.sub {
        state.metrics.refreshes.inc("invalid");
        return Err(ApiError::unauthorized("invalid_refresh_token", "this refresh token belongs to another account"));
    }
    for _ in 0..2 {
        if let Some(reason) = &session.revoked_reason {
            return Err(revoked_error(state, reason));
        }
        if claims.jti == session.current_jti {
            match rotate(state, &session, token).await? {
                Some(pair) => {
                    state.metrics.refreshes.inc("rotated");
                    return Ok((SessionTokens { sid: sid.to_owned(), pair }, Refreshed::Rotated));
                }
                // Lost the race: the row moved on; look again.
                None => {
                    session = state.store.session(sid).await?.ok_or_else(|| ApiError::internal("session vanished"))?;
                    continue;
                }
            }
        }
        if let Some(pair) = converge(state, &session, &claims.jti, token).await? {
            state.metrics.refreshes.inc("converged");
            return Ok((SessionTokens { sid: sid.to_owned(), pair }, Refreshed::Converged));
        }
        break;
    }
    if let Some(reason) = &session.revoked_reason {
        return Err(revoked_error(state, reason));
    }
    Err(reuse(state, &session, &claims.jti).await)
}

/// The winner's path: seal the new pair, move the row, rotate at the service.
/// `None` when another request moved the row first.
async fn rotate(state: &AppState, session: &Session, token: &str) -> Result<Option<IssuedPair>, ApiError> {
    let user = state
        .store
        .user_by_id(&session.user_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("revoked", "the account no longer exists"))?;
    wait_for_cutoff(state, &user).await;
    let pair = state.tokens.issue_pair(&user, &session.id)?;
    let plain = serde_json::to_vec(&pair).map_err(ApiError::internal)?;
    let sealed = seal::seal(token, &session.id, &pair.refresh_jti, &plain);
    let moved = state
        .store
        .rotate(&Rotation {
            sid: &session.id,
            presented: &session.current_jti,
            next: &pair.refresh_jti,
            expires_at: pair.refresh_exp as i64,
            now_ms: state.clock.now_ms() as i64,
            successor: &sealed,
        })
        .await?;
    if !moved {
        return Ok(None);
    }
    match state.revocation.rotate(&session.id, &session.current_jti, &pair.refresh_jti, pair.refresh_exp).await {
        Ok(RotateOutcome::Rotated) => {
            state.store.commit_rotation(&session.id, &pair.refresh_jti).await?;
            Ok(Some(pair))
        }
        Ok(RotateOutcome::ReuseDetected) | Ok(RotateOutcome::Revoked) => {
            // The service already considers the family dead (revoked elsewhere, or a
            // token of it was replayed there): follow it.
            state.store.revoke_session(&session.id, "reuse_detected", state.clock.now_secs() as i64).await?;
            state.metrics.refreshes.inc("reuse_detected");
            state.metrics.reuse_detections.inc("refresh");
            Err(reuse_error())
        }
        Err(e) => {
            if state.store.undo_rotation(session, &pair.refresh_jti).await? {
                state.metrics.refreshes.inc("unavailable");
                Err(e)
            } else {
                // A concurrent replay completed this rotation at the service meanwhile.
                Ok(Some(pair))
            }
        }
    }
}

/// The immediate predecessor within the window: the sealed successor pair.
async fn converge(
    state: &AppState,
    session: &Session,
    presented_jti: &str,
    token: &str,
) -> Result<Option<IssuedPair>, ApiError> {
    let window_ms = state.config.refresh_reuse_window_secs as i64 * 1000;
    let now_ms = state.clock.now_ms() as i64;
    let within = session.rotated_at_ms.is_some_and(|at| now_ms - at <= window_ms && now_ms >= at);
    if session.previous_jti.as_deref() != Some(presented_jti) || !within {
        return Ok(None);
    }
    let Some(sealed) = &session.successor else { return Ok(None) };
    let plain = seal::open(token, &session.id, &session.current_jti, sealed)
        .ok_or_else(|| ApiError::internal("a sealed successor pair did not open with its predecessor"))?;
    let pair: IssuedPair = serde_json::from_slice(&plain).map_err(ApiError::internal)?;
    if session.successor_state.as_deref() == Some("pending") {
        match state.revocation.rotate(&session.id, presented_jti, &session.current_jti, pair.refresh_exp).await? {
            RotateOutcome::Rotated => {
                state.store.commit_rotation(&session.id, &session.current_jti).await?;
            }
            RotateOutcome::ReuseDetected | RotateOutcome::Revoked => {
                state.store.revoke_session(&session.id, "reuse_detected", now_ms / 1000).await?;
                return Err(reuse_error());
            }
        }
    }
    Ok(Some(pair))
}

/// Reuse: revoke here, tell the revocation service, answer 401 `reuse_detected`.
async fn reuse(state: &AppState, session: &Session, presented_jti: &str) -> ApiError {
    let now = state.clock.now_secs() as i64;
    state.metrics.refreshes.inc("reuse_detected");
    state.metrics.reuse_detections.inc("refresh");
    if let Err(e) = state.store.revoke_session(&session.id, "reuse_detected", now).await {
        return e.into();
    }
    let exp = family_exp(state, session);
    if let Err(e) = state.revocation.reuse_detected(&session.id, presented_jti, exp).await {
        tracing::error!(sid = %session.id, error = %e.detail, "could not post reuse_detected; the session is revoked here only");
    }
    tracing::warn!(sid = %session.id, user = %session.user_id, "refresh token reuse detected; session revoked");
    reuse_error()
}

fn reuse_error() -> ApiError {
    ApiError::unauthorized(
        "reuse_detected",
        "this refresh token was already used; the session has been revoked (sign in again)",
    )
}

fn revoked_error(state: &AppState, reason: &str) -> ApiError {
    if reason == "reuse_detected" {
        state.metrics.refreshes.inc("reuse_detected");
        return reuse_error();
    }
    state.metrics.refreshes.inc("revoked");
    ApiError::unauthorized("revoked", format!("the session has ended ({reason}); sign in again"))
}

/// The `exp` of a denylist entry for the session: after it no access token of the
/// session can still be valid (the family itself ends at the revocation service with
/// the `logout` / `reuse_detected`, whatever its `exp`).
pub fn family_exp(state: &AppState, _session: &Session) -> u64 {
    state.clock.now_secs() + state.config.access_ttl_secs + 60
}

/// Ends one session: the `logout` is acknowledged by the revocation service (durable,
/// replicated to the edge) before the session is marked revoked here.
pub async fn logout(state: &AppState, session: &Session) -> Result<u64, ApiError> {
    let seq = state.revocation.logout(&session.id, family_exp(state, session)).await?;
    state.store.revoke_session(&session.id, "logout", state.clock.now_secs() as i64).await?;
    state.metrics.logouts.inc("session");
    Ok(seq)
}

/// Revokes every token of `user` issued before now, and (with `end_sessions`) ends
/// all of its sessions: one atomic batch at the revocation service (`revoke_subject`
/// plus a `logout` per session), then the database. Returns (sessions ended, seq).
pub async fn revoke_user(
    state: &AppState,
    user: &User,
    end_sessions: bool,
    kind: &str,
) -> Result<(usize, u64), ApiError> {
    let now = state.clock.now_secs();
    // Tokens with iat < before are revoked; new ones are issued from `before` on (see
    // `wait_for_cutoff`), so none issued in this second keeps the old state.
    let before = now + 1;
    let sessions = if end_sessions { state.store.live_sessions_of(&user.id, now as i64).await? } else { Vec::new() };
    let sids: Vec<(String, u64)> = sessions.iter().map(|s| (s.id.clone(), family_exp(state, s))).collect();
    let seq = state.revocation.revoke_subject(&user.id, before, now + state.config.access_ttl_secs + 2, &sids).await?;
    state.store.set_tokens_valid_after(&user.id, before as i64).await?;
    for s in &sessions {
        state.store.revoke_session(&s.id, kind, now as i64).await?;
    }
    state.metrics.logouts.inc(kind);
    Ok((sessions.len(), seq))
}

/// After a subject cutoff at `T`, tokens are issued only once the clock reads `T`
/// (at most one second's wait), so every new token has `iat ≥ T`.
async fn wait_for_cutoff(state: &AppState, user: &User) {
    let cutoff_ms = user.tokens_valid_after.max(0) as u64 * 1000;
    let now_ms = state.clock.now_ms();
    if now_ms < cutoff_ms {
        let wait = (cutoff_ms - now_ms).min(1000);
        tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
    }
}
