//! The access and refresh key sets, stored whole (`tollgate-origin`'s export) and
//! updated compare-and-swap on a version number, so every instance shares them and
//! concurrent rotations cannot lose a key.

use super::{get_i64, get_str, Store};
use crate::error::StoreError;

/// A stored key set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKeySet {
    /// `access` or `refresh`.
    pub purpose: String,
    /// Bumped by every update.
    pub version: i64,
    /// The key set's JSON export (private keys).
    pub document: String,
}

impl Store {
    /// The key set of `purpose`, if one was stored.
    pub async fn key_set(&self, purpose: &str) -> Result<Option<StoredKeySet>, StoreError> {
        let row = sqlx::query("SELECT purpose, version, document FROM key_sets WHERE purpose = $1")
            .bind(purpose)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(StoredKeySet {
                purpose: get_str(&r, "purpose")?,
                version: get_i64(&r, "version")?,
                document: get_str(&r, "document")?,
            })
        })
        .transpose()
    }

    /// Stores the first key set of `purpose`; `false` if another instance stored one first.
    pub async fn insert_key_set(&self, purpose: &str, document: &str, now: i64) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        match sqlx::query("INSERT INTO key_sets (purpose, version, document, updated_at) VALUES ($1, 1, $2, $3)")
            .bind(purpose)
            .bind(document)
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

    /// Replaces the key set if it is still at `version`; `false` if another instance
    /// changed it first (re-read and retry).
    pub async fn update_key_set(
        &self,
        purpose: &str,
        version: i64,
        document: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let r = sqlx::query(
            "UPDATE key_sets SET version = version + 1, document = $1, updated_at = $2 WHERE purpose = $3 AND version = $4",
        )
        .bind(document)
        .bind(now)
        .bind(purpose)
        .bind(version)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }
}
