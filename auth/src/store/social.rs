//! Social login's storage: accounts made by a provider, used attempt states, unlinking.

use super::{get_i64, Store};
use crate::error::StoreError;
use crate::store::{NewUser, User};

/// What an unlink came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unlinked {
    /// The identity is no longer linked.
    Done,
    /// No such identity on this account.
    NotFound,
    /// It is the account's only way to sign in (no password, no other identity).
    LastSignInMethod,
}

impl Store {
    /// Creates an account for an external identity. `email_primary`: the account owns
    /// the address ([`StoreError::Conflict`] if another owning account has it); else
    /// the address is a label only.
    pub async fn create_social_user(&self, u: &NewUser, email_primary: bool) -> Result<User, StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "INSERT INTO users (id, email, email_verified, password_hash, roles, created_at, tokens_valid_after, email_primary) \
             VALUES ($1, $2, $3, $4, $5, $6, 0, $7)",
        )
        .bind(&u.id)
        .bind(&u.email)
        .bind(i64::from(u.email_verified && email_primary))
        .bind(u.password_hash.clone())
        .bind(u.roles.join(" "))
        .bind(u.created_at)
        .bind(i64::from(email_primary))
        .execute(&self.pool)
        .await?;
        Ok(User {
            id: u.id.clone(),
            email: u.email.clone(),
            email_verified: u.email_verified && email_primary,
            password_hash: u.password_hash.clone(),
            roles: u.roles.clone(),
            created_at: u.created_at,
            tokens_valid_after: 0,
        })
    }

    /// Deletes an account (and, by cascade, its identities and sessions).
    pub async fn delete_user(&self, id: &str) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query("DELETE FROM identities WHERE user_id = $1").bind(id).execute(&self.pool).await?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(id).execute(&self.pool).await?;
        sqlx::query("DELETE FROM users WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(())
    }

    /// Marks an account's email address verified (an operator's decision).
    pub async fn set_email_verified(&self, id: &str) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let r = sqlx::query("UPDATE users SET email_verified = 1 WHERE id = $1 AND email_primary = 1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Records a finished attempt's `state`; `false` if it was recorded before (a
    /// replay). Also prunes records older than a day.
    pub async fn use_oauth_state(&self, state: &str, provider: &str, now: i64) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query("DELETE FROM oauth_states WHERE used_at < $1").bind(now - 86_400).execute(&self.pool).await?;
        match sqlx::query("INSERT INTO oauth_states (state, provider, used_at) VALUES ($1, $2, $3)")
            .bind(state)
            .bind(provider)
            .bind(now)
            .execute(&self.pool)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => match StoreError::from(e) {
                StoreError::Conflict => Ok(false),
                other => Err(other),
            },
        }
    }

    /// Unlinks an identity from `user_id`, unless it is the account's last way to sign
    /// in — one conditional statement, so two concurrent unlinks cannot both pass.
    pub async fn unlink_identity(&self, user_id: &str, provider: &str, subject: &str) -> Result<Unlinked, StoreError> {
        let _turn = self.write_turn().await;
        let r = sqlx::query(
            "DELETE FROM identities WHERE provider = $1 AND subject = $2 AND user_id = $3 AND ( \
               EXISTS (SELECT 1 FROM users WHERE id = $3 AND password_hash IS NOT NULL) \
               OR (SELECT COUNT(*) FROM identities WHERE user_id = $3) > 1)",
        )
        .bind(provider)
        .bind(subject)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        if r.rows_affected() == 1 {
            return Ok(Unlinked::Done);
        }
        let row =
            sqlx::query("SELECT COUNT(*) AS n FROM identities WHERE provider = $1 AND subject = $2 AND user_id = $3")
                .bind(provider)
                .bind(subject)
                .bind(user_id)
                .fetch_one(&self.pool)
                .await?;
        Ok(if get_i64(&row, "n")? == 0 { Unlinked::NotFound } else { Unlinked::LastSignInMethod })
    }
}
