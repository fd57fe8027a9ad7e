//! Tokens through `tollgate-origin`: the access and refresh key sets (stored in the
//! database, shared by every instance, rotated on a schedule), issuing a session's
//! pair, verifying this service's own tokens with `tollgate-core`, and the JWKS.
//!
//! Key sets are `tollgate-origin` `KeySet`s, persisted as their JSON export in the
//! `key_sets` table and updated compare-and-swap. Every instance re-reads them once a
//! minute, so a key one instance adds is used by all. A scheduled rotation adds a new
//! key `key_rotation_days` after the current one started signing; the new key is
//! published at once and signs after the publication delay (JWKS `max-age` + 60 s), and
//! the old one stays published until the last token it signed has expired.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tollgate_core::Algorithm;
use tollgate_origin::client::RevocationClient;
use tollgate_origin::{
    AccessClaims as OriginClaims, InvalidRefresh, Issuer, IssuerConfig, JwksDocument, KeySet, KeyState, RefreshOutcome,
    Refresher, RotationPolicy, SigningKey,
};

use crate::app::AppState;
use crate::clock::Clock;
use crate::config::Config;
use crate::error::ApiError;
use crate::store::{Store, User};

/// The two key-set purposes (rows of `key_sets`).
const PURPOSES: [&str; 2] = ["access", "refresh"];

/// A session's pair as issued (also what a rotation seals for convergence).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IssuedPair {
    /// The account (`sub`).
    pub sub: String,
    /// The access token.
    pub access: String,
    /// Its `exp`.
    pub access_exp: u64,
    /// The refresh token.
    pub refresh: String,
    /// Its `jti` (the family's current token at the revocation service).
    pub refresh_jti: String,
    /// Its `exp`.
    pub refresh_exp: u64,
}

/// Verified claims of an access token of this service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessClaims {
    /// `sub`.
    pub sub: String,
    /// `sid`.
    pub sid: String,
    /// `jti`.
    pub jti: String,
    /// `iat`.
    pub iat: u64,
    /// `exp`.
    pub exp: u64,
    /// `roles`.
    pub roles: Vec<String>,
}

/// Verified claims of a refresh token of this service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshClaims {
    /// `sub`.
    pub sub: String,
    /// `sid`: the family.
    pub sid: String,
    /// `jti`.
    pub jti: String,
    /// `exp`.
    pub exp: u64,
}

/// Why a refresh token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshError {
    /// Past its `exp`: the client signs in again.
    Expired,
    /// Anything else (signature, key, `typ`, issuer, audience, shape), with the core's reason.
    Invalid(&'static str),
}

impl RefreshError {
    /// The 401 for it.
    pub fn into_api(self) -> ApiError {
        match self {
            RefreshError::Expired => {
                ApiError::unauthorized("refresh_expired", "the refresh token has expired; sign in again")
            }
            RefreshError::Invalid(reason) => {
                ApiError::unauthorized("invalid_refresh_token", "the refresh token is not valid")
                    .with("reason", reason.into())
            }
        }
    }
}

/// Our clock as `tollgate-origin`'s (seconds).
#[derive(Debug)]
pub(crate) struct OriginClock(pub(crate) Arc<dyn Clock>);

impl tollgate_origin::Clock for OriginClock {
    fn now(&self) -> u64 {
        self.0.now_secs()
    }
}

/// The issuer and what it needs to persist and rotate its keys.
#[derive(Debug)]
pub struct Tokens {
    issuer: Arc<Issuer>,
    refresher: Refresher,
    clock: Arc<dyn Clock>,
    alg: Algorithm,
    rotation: Duration,
    access_ttl: u64,
    refresh_ttl: u64,
}

impl Tokens {
    /// Loads the key sets from the database, or creates and stores them (the first
    /// instance to start wins; the others read its keys).
    pub async fn load_or_create(
        config: &Config,
        store: &Store,
        clock: Arc<dyn Clock>,
        client: RevocationClient,
    ) -> anyhow::Result<Tokens> {
        let alg = if config.signing_alg == "RS256" { Algorithm::Rs256 } else { Algorithm::Es256 };
        let policy = RotationPolicy::new(Duration::from_secs(config.jwks_max_age_secs));
        let now = clock.now_secs();
        let mut sets = Vec::new();
        for (i, purpose) in PURPOSES.iter().enumerate() {
            let ttl = if i == 0 { config.access_ttl_secs } else { config.refresh_ttl_secs };
            let stored = match store.key_set(purpose).await? {
                Some(s) => s,
                None => {
                    let set = KeySet::with_policy(SigningKey::generate(alg)?, now, policy);
                    let doc = export(&set, ttl)?;
                    if store.insert_key_set(purpose, &doc, now as i64).await? {
                        tracing::info!(purpose, kid = %set.kids()[0], "created the {purpose} key set");
                    }
                    store.key_set(purpose).await?.ok_or_else(|| anyhow::anyhow!("the {purpose} key set vanished"))?
                }
            };
            sets.push(KeySet::import(&serde_json::from_str::<Value>(&stored.document)?)?);
        }
        let refresh = sets.pop().ok_or_else(|| anyhow::anyhow!("no refresh key set"))?;
        let access = sets.pop().ok_or_else(|| anyhow::anyhow!("no access key set"))?;
        let mut ic = IssuerConfig::new(config.issuer.clone(), config.audience.clone());
        ic.access_ttl = Duration::from_secs(config.access_ttl_secs);
        ic.refresh_ttl = Duration::from_secs(config.refresh_ttl_secs);
        let issuer = Arc::new(Issuer::new(ic, access, refresh)?.with_clock(Arc::new(OriginClock(clock.clone()))));
        Ok(Tokens {
            refresher: Refresher::new(issuer.clone(), client),
            issuer,
            clock,
            alg,
            rotation: Duration::from_secs(config.key_rotation_days * 86_400),
            access_ttl: config.access_ttl_secs,
            refresh_ttl: config.refresh_ttl_secs,
        })
    }

    /// Issues an access token (with the account's roles) and a refresh token for `sid`.
    pub fn issue_pair(&self, user: &User, sid: &str) -> Result<IssuedPair, ApiError> {
        let claims = OriginClaims::new(&user.id, sid).roles(user.roles.iter().cloned());
        let pair = self.issuer.issue_pair(&claims).map_err(ApiError::internal)?;
        Ok(IssuedPair {
            sub: user.id.clone(),
            access: pair.access.token,
            access_exp: pair.access.exp,
            refresh: pair.refresh.token,
            refresh_jti: pair.refresh.jti,
            refresh_exp: pair.refresh.exp,
        })
    }

    /// Verifies one of this service's access tokens (401 `invalid_token` with the
    /// core's reason otherwise). `allow_expired` accepts one up to the refresh-token
    /// life past its `exp` (logout only).
    pub fn verify_access(&self, token: &str, allow_expired: bool) -> Result<AccessClaims, ApiError> {
        let now = self.clock.now_secs();
        let verifier = if allow_expired {
            let mut policy = self.issuer.access_policy();
            policy.leeway_seconds = self.refresh_ttl;
            tollgate_core::Verifier::new(self.issuer.with_access_keys(|k| k.verifying_jwks(now)), policy)
        } else {
            self.issuer.access_verifier()
        };
        let v = verifier
            .verify(token, now as i64, None)
            .map_err(|e| ApiError::invalid_token(e.reason().as_str(), format!("the access token was refused: {e}")))?;
        let c = &v.claims;
        let roles = c
            .get("roles")
            .and_then(|v| v.as_array().map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect()))
            .unwrap_or_default();
        Ok(AccessClaims {
            sub: c.sub().unwrap_or_default().to_owned(),
            sid: c.sid().unwrap_or_default().to_owned(),
            jti: c.jti().unwrap_or_default().to_owned(),
            iat: c.iat().unwrap_or(0.0).max(0.0) as u64,
            exp: c.exp().unwrap_or(0.0).max(0.0) as u64,
            roles,
        })
    }

    /// Verifies one of this service's refresh tokens (its own key set, `typ`
    /// `refresh+jwt`, the refresh audience).
    pub fn verify_refresh(&self, token: &str) -> Result<RefreshClaims, RefreshError> {
        match self.refresher.verify(token) {
            Ok(p) => Ok(RefreshClaims { sub: p.sub, sid: p.sid, jti: p.jti, exp: p.exp }),
            Err(RefreshOutcome::Expired) => Err(RefreshError::Expired),
            Err(RefreshOutcome::Invalid(InvalidRefresh::Token(r))) => Err(RefreshError::Invalid(r.as_str())),
            Err(_) => Err(RefreshError::Invalid("invalid_claim")),
        }
    }

    /// The access JWKS to publish now.
    pub fn jwks(&self) -> JwksDocument {
        self.issuer.jwks()
    }

    /// One maintenance pass: read newer key sets from the database, rotate a set whose
    /// current key is due, and drop retired keys. Returns the `kid`s added.
    pub async fn maintain(&self, store: &Store) -> anyhow::Result<Vec<String>> {
        let now = self.clock.now_secs();
        let mut added = Vec::new();
        for (i, purpose) in PURPOSES.iter().enumerate() {
            let ttl = if i == 0 { self.access_ttl } else { self.refresh_ttl };
            // Up to three compare-and-swap attempts against other instances.
            for _ in 0..3 {
                let Some(stored) = store.key_set(purpose).await? else { break };
                let mut set = KeySet::import(&serde_json::from_str::<Value>(&stored.document)?)?;
                let due = self.rotation_due(&set, now);
                let pruned = !set.prune(now).is_empty();
                let mut new_kid = None;
                if due {
                    let key = SigningKey::generate(self.alg)?;
                    new_kid = Some(key.kid().to_owned());
                    set.add(key, now)?;
                }
                if due || pruned {
                    if !store.update_key_set(purpose, stored.version, &export(&set, ttl)?, now as i64).await? {
                        continue;
                    }
                    if let Some(k) = new_kid {
                        tracing::info!(purpose, kid = %k, "scheduled key rotation: new key published");
                        added.push(k);
                    }
                }
                if i == 0 {
                    self.issuer.with_access_keys(|k| *k = set);
                } else {
                    self.issuer.with_refresh_keys(|k| *k = set);
                }
                break;
            }
        }
        Ok(added)
    }

    fn rotation_due(&self, set: &KeySet, now: u64) -> bool {
        if self.rotation.is_zero() {
            return false;
        }
        let status = set.status(now);
        if status.iter().any(|s| s.state == KeyState::Pending) {
            return false;
        }
        status.iter().filter(|s| s.state == KeyState::Current).all(|s| s.signs_from + self.rotation.as_secs() <= now)
    }

    /// The `kid`s of the access key set (published or pending).
    pub fn access_kids(&self) -> Vec<String> {
        self.issuer.with_access_keys(|k| k.kids().into_iter().map(str::to_owned).collect())
    }
}

/// The key set's export with every key's longest signed life set to the configured
/// token life: this service signs only tokens of that life, and another instance may
/// have signed with a key before this export, so the stored timeline must not depend on
/// what this process happened to sign.
fn export(set: &KeySet, ttl: u64) -> anyhow::Result<String> {
    let mut doc = set.export()?;
    if let Some(keys) = doc.get_mut("keys").and_then(Value::as_array_mut) {
        for k in keys {
            let cur = k.get("longest_life").and_then(Value::as_u64).unwrap_or(0);
            k["longest_life"] = Value::from(cur.max(ttl));
        }
    }
    Ok(doc.to_string())
}

/// Starts the key maintenance loop (once a minute).
pub fn spawn_maintenance(state: Arc<AppState>) -> tokio::task::AbortHandle {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = state.tokens.maintain(&state.store).await {
                tracing::warn!(error = %e, "key maintenance failed; retrying in a minute");
            }
        }
    })
    .abort_handle()
}
