//! Accounts and their linked external identities.

use sqlx::any::AnyRow;

use super::{get_i64, get_opt_str, get_str, Store};
use crate::error::StoreError;

/// An account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Random opaque id (the tokens' `sub`).
    pub id: String,
    /// Normalised email address.
    pub email: String,
    /// Whether the email address has been verified (by a provider, or an operator).
    pub email_verified: bool,
    /// Argon2id PHC string; `None` for an account that signs in only through a provider.
    pub password_hash: Option<String>,
    /// Role names.
    pub roles: Vec<String>,
    /// Seconds since the epoch.
    pub created_at: i64,
    /// Access tokens with `iat` before this are no longer accepted.
    pub tokens_valid_after: i64,
}

/// A new account.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Random opaque id.
    pub id: String,
    /// Normalised email address.
    pub email: String,
    /// Whether it is verified.
    pub email_verified: bool,
    /// Argon2id PHC string, or `None` for a social-only account.
    pub password_hash: Option<String>,
    /// Role names.
    pub roles: Vec<String>,
    /// Seconds since the epoch.
    pub created_at: i64,
}

/// An external identity linked to an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Provider name (`google`, `kakao`, …).
    pub provider: String,
    /// The provider's subject identifier (kept as text).
    pub subject: String,
    /// The account it signs in to.
    pub user_id: String,
    /// The email the provider reported, if any.
    pub email: Option<String>,
    /// Whether the provider said that email is verified.
    pub email_verified: bool,
    /// Seconds since the epoch.
    pub created_at: i64,
}

const USER_COLUMNS: &str = "id, email, email_verified, password_hash, roles, created_at, tokens_valid_after";

fn user_from(row: &AnyRow) -> Result<User, StoreError> {
    Ok(User {
        id: get_str(row, "id")?,
        email: get_str(row, "email")?,
        email_verified: get_i64(row, "email_verified")? != 0,
        password_hash: get_opt_str(row, "password_hash")?,
        roles: get_str(row, "roles")?.split_whitespace().map(str::to_owned).collect(),
        created_at: get_i64(row, "created_at")?,
        tokens_valid_after: get_i64(row, "tokens_valid_after")?,
    })
}

fn identity_from(row: &AnyRow) -> Result<Identity, StoreError> {
    Ok(Identity {
        provider: get_str(row, "provider")?,
        subject: get_str(row, "subject")?,
        user_id: get_str(row, "user_id")?,
        email: get_opt_str(row, "email")?,
        email_verified: get_i64(row, "email_verified")? != 0,
        created_at: get_i64(row, "created_at")?,
    })
}

impl Store {
    /// Creates an account; [`StoreError::Conflict`] when the email is taken.
    pub async fn create_user(&self, u: &NewUser) -> Result<User, StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "INSERT INTO users (id, email, email_verified, password_hash, roles, created_at, tokens_valid_after) \
             VALUES ($1, $2, $3, $4, $5, $6, 0)",
        )
        .bind(&u.id)
        .bind(&u.email)
        .bind(i64::from(u.email_verified))
        .bind(u.password_hash.clone())
        .bind(u.roles.join(" "))
        .bind(u.created_at)
        .execute(&self.pool)
        .await?;
        Ok(User {
            id: u.id.clone(),
            email: u.email.clone(),
            email_verified: u.email_verified,
            password_hash: u.password_hash.clone(),
            roles: u.roles.clone(),
            created_at: u.created_at,
            tokens_valid_after: 0,
        })
    }

    /// The account that owns this normalised email (accounts holding an address only
    /// as a label are not found by it).
    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1 AND email_primary = 1");
        sqlx::query(&sql).bind(email).fetch_optional(&self.pool).await?.as_ref().map(user_from).transpose()
    }

    /// The account with this id.
    pub async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await?.as_ref().map(user_from).transpose()
    }

    /// Accounts in id order after `after`, at most `limit`.
    pub async fn list_users(&self, after: &str, limit: i64) -> Result<Vec<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id > $1 ORDER BY id LIMIT $2");
        sqlx::query(&sql).bind(after).bind(limit).fetch_all(&self.pool).await?.iter().map(user_from).collect()
    }

    /// Replaces a password hash (a rehash with new parameters, or a new password).
    pub async fn set_password_hash(&self, user_id: &str, phc: &str) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(phc)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Sets an account's roles and moves its token cutoff to `valid_after` (never
    /// backwards). Returns whether the account exists.
    pub async fn set_roles(&self, user_id: &str, roles: &[String], valid_after: i64) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let r = sqlx::query(
            "UPDATE users SET roles = $1, \
             tokens_valid_after = CASE WHEN tokens_valid_after > $2 THEN tokens_valid_after ELSE $2 END WHERE id = $3",
        )
        .bind(roles.join(" "))
        .bind(valid_after)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Moves an account's token cutoff to `valid_after` (never backwards).
    pub async fn set_tokens_valid_after(&self, user_id: &str, valid_after: i64) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "UPDATE users SET tokens_valid_after = CASE WHEN tokens_valid_after > $1 THEN tokens_valid_after ELSE $1 END \
             WHERE id = $2",
        )
        .bind(valid_after)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Links an external identity to an account; [`StoreError::Conflict`] when that
    /// (provider, subject) is already linked.
    pub async fn link_identity(&self, id: &Identity) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "INSERT INTO identities (provider, subject, user_id, email, email_verified, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id.provider)
        .bind(&id.subject)
        .bind(&id.user_id)
        .bind(id.email.clone())
        .bind(i64::from(id.email_verified))
        .bind(id.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The identity with this provider and subject.
    pub async fn identity(&self, provider: &str, subject: &str) -> Result<Option<Identity>, StoreError> {
        sqlx::query(
            "SELECT provider, subject, user_id, email, email_verified, created_at FROM identities \
             WHERE provider = $1 AND subject = $2",
        )
        .bind(provider)
        .bind(subject)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(identity_from)
        .transpose()
    }

    /// Every identity linked to an account.
    pub async fn identities_of(&self, user_id: &str) -> Result<Vec<Identity>, StoreError> {
        sqlx::query(
            "SELECT provider, subject, user_id, email, email_verified, created_at FROM identities \
             WHERE user_id = $1 ORDER BY provider, subject",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(identity_from)
        .collect()
    }
}
