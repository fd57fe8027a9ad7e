//! Sessions: one refresh family each, with the state that lets concurrent refreshes
//! converge (see `crate::sessions`).

use sqlx::any::AnyRow;

use super::{get_i64, get_opt_i64, get_opt_str, get_str, Store};
use crate::error::StoreError;

/// A session row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The session id (`sid`; the refresh family at the revocation service).
    pub id: String,
    /// The account.
    pub user_id: String,
    /// `password`, or the provider that started it.
    pub method: String,
    /// Seconds since the epoch.
    pub created_at: i64,
    /// When the current refresh token expires (seconds).
    pub expires_at: i64,
    /// The `jti` of the family's current refresh token.
    pub current_jti: String,
    /// The `jti` of the refresh token the last rotation replaced.
    pub previous_jti: Option<String>,
    /// When that rotation happened (milliseconds).
    pub rotated_at_ms: Option<i64>,
    /// The sealed successor pair of that rotation.
    pub successor: Option<String>,
    /// `pending` or `committed`.
    pub successor_state: Option<String>,
    /// When it was revoked (seconds), if it was.
    pub revoked_at: Option<i64>,
    /// Why: `logout`, `logout_all`, `reuse_detected`, `role_change`, …
    pub revoked_reason: Option<String>,
}

/// A rotation to record: the family moves from `presented` to `next`.
#[derive(Debug, Clone)]
pub struct Rotation<'a> {
    /// The session.
    pub sid: &'a str,
    /// The refresh token presented (must be the current one).
    pub presented: &'a str,
    /// The new refresh token's `jti`.
    pub next: &'a str,
    /// The new refresh token's `exp` (seconds).
    pub expires_at: i64,
    /// Now, in milliseconds.
    pub now_ms: i64,
    /// The sealed new pair.
    pub successor: &'a str,
}

const SESSION_COLUMNS: &str = "id, user_id, method, created_at, expires_at, current_jti, previous_jti, rotated_at_ms, \
                               successor, successor_state, revoked_at, revoked_reason";

fn session_from(row: &AnyRow) -> Result<Session, StoreError> {
    Ok(Session {
        id: get_str(row, "id")?,
        user_id: get_str(row, "user_id")?,
        method: get_str(row, "method")?,
        created_at: get_i64(row, "created_at")?,
        expires_at: get_i64(row, "expires_at")?,
        current_jti: get_str(row, "current_jti")?,
        previous_jti: get_opt_str(row, "previous_jti")?,
        rotated_at_ms: get_opt_i64(row, "rotated_at_ms")?,
        successor: get_opt_str(row, "successor")?,
        successor_state: get_opt_str(row, "successor_state")?,
        revoked_at: get_opt_i64(row, "revoked_at")?,
        revoked_reason: get_opt_str(row, "revoked_reason")?,
    })
}

impl Store {
    /// Records a new session whose first refresh token is `jti`.
    pub async fn insert_session(
        &self,
        sid: &str,
        user_id: &str,
        method: &str,
        jti: &str,
        created_at: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, method, created_at, expires_at, current_jti) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(sid)
        .bind(user_id)
        .bind(method)
        .bind(created_at)
        .bind(expires_at)
        .bind(jti)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets a session that never got going (its start at the revocation service failed).
    pub async fn delete_session(&self, sid: &str) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query("DELETE FROM sessions WHERE id = $1").bind(sid).execute(&self.pool).await?;
        Ok(())
    }

    /// The session with this id.
    pub async fn session(&self, sid: &str) -> Result<Option<Session>, StoreError> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1");
        sqlx::query(&sql).bind(sid).fetch_optional(&self.pool).await?.as_ref().map(session_from).transpose()
    }

    /// Live (unrevoked, unexpired) sessions of an account.
    pub async fn live_sessions_of(&self, user_id: &str, now: i64) -> Result<Vec<Session>, StoreError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 ORDER BY id"
        );
        sqlx::query(&sql).bind(user_id).bind(now).fetch_all(&self.pool).await?.iter().map(session_from).collect()
    }

    /// Moves the family from `presented` to `next` if `presented` is still current and
    /// the session is live: one conditional statement, so of concurrent refreshes of one
    /// token exactly one gets `true`. The successor starts `pending`.
    pub async fn rotate(&self, r: &Rotation<'_>) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let res = sqlx::query(
            "UPDATE sessions SET previous_jti = current_jti, current_jti = $1, rotated_at_ms = $2, expires_at = $3, \
             successor = $4, successor_state = 'pending' \
             WHERE id = $5 AND current_jti = $6 AND revoked_at IS NULL AND expires_at > $7",
        )
        .bind(r.next)
        .bind(r.now_ms)
        .bind(r.expires_at)
        .bind(r.successor)
        .bind(r.sid)
        .bind(r.presented)
        .bind(r.now_ms / 1000)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Marks the rotation to `next` as accepted by the revocation service.
    pub async fn commit_rotation(&self, sid: &str, next: &str) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let res = sqlx::query("UPDATE sessions SET successor_state = 'committed' WHERE id = $1 AND current_jti = $2")
            .bind(sid)
            .bind(next)
            .execute(&self.pool)
            .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Undoes a rotation the revocation service never accepted, if it is still
    /// pending; `false` when another request committed it meanwhile.
    pub async fn undo_rotation(&self, before: &Session, next: &str) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let res = sqlx::query(
            "UPDATE sessions SET current_jti = $1, previous_jti = $2, rotated_at_ms = $3, expires_at = $4, \
             successor = $5, successor_state = $6 \
             WHERE id = $7 AND current_jti = $8 AND successor_state = 'pending'",
        )
        .bind(&before.current_jti)
        .bind(before.previous_jti.clone())
        .bind(before.rotated_at_ms)
        .bind(before.expires_at)
        .bind(before.successor.clone())
        .bind(before.successor_state.clone())
        .bind(&before.id)
        .bind(next)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Revokes a session (idempotent: the first reason stays). Returns whether this
    /// call revoked it.
    pub async fn revoke_session(&self, sid: &str, reason: &str, now: i64) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let res = sqlx::query(
            "UPDATE sessions SET revoked_at = $1, revoked_reason = $2, successor = NULL WHERE id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(reason)
        .bind(sid)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Revokes every live session of an account; returns their ids.
    pub async fn revoke_sessions_of(&self, user_id: &str, reason: &str, now: i64) -> Result<Vec<String>, StoreError> {
        let live = self.live_sessions_of(user_id, now).await?;
        let mut ids = Vec::with_capacity(live.len());
        for s in live {
            self.revoke_session(&s.id, reason, now).await?;
            ids.push(s.id);
        }
        Ok(ids)
    }
}
