//! Issuing access and refresh tokens (`docs/tokens.md`), each with its own key set.
//!
//! ```text
//! access:  {"alg","typ":"JWT"|"at+jwt","kid"} . {iss,sub,aud,sid,jti,iat,exp,roles?,role?,scope?,client_id?,…}
//! refresh: {"alg","typ":"refresh+jwt","kid"} . {iss,sub,aud,sid,jti,iat,exp}
//! ```
//!
//! The access key set's public keys are the JWKS the edge trusts ([`Issuer::jwks`]); the
//! refresh key set's are never published: only [`Issuer::refresh_verifier`] uses them.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use serde_json::{Map, Value};
use tollgate_core::{b64, Policy, Verifier};

use crate::clock::{self, Clock};
use crate::error::{IssueError, KeyError};
use crate::key::SigningKey;
use crate::keyset::{JwksDocument, KeySet};
use crate::random;

/// Default access token life: 15 minutes.
pub const DEFAULT_ACCESS_TTL: Duration = Duration::from_secs(15 * 60);
/// Default refresh token life: 7 days.
pub const DEFAULT_REFRESH_TTL: Duration = Duration::from_secs(7 * 86_400);
/// The longest token the edge accepts, in bytes (the core's default `max_token_bytes`).
pub const MAX_TOKEN_BYTES: usize = tollgate_core::policy::DEFAULT_MAX_TOKEN_BYTES;
/// The header `typ` of refresh tokens.
pub const REFRESH_TYP: &str = "refresh+jwt";
/// Longest `sub`, `sid`, `client_id` accepted, in bytes (what the revocation service
/// takes as an identifier).
pub const MAX_ID_BYTES: usize = 1024;

/// Claims an extra claim may not set: the registered ones and the profile's own.
pub const RESERVED_CLAIMS: [&str; 12] =
    ["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "sid", "roles", "role", "scope", "client_id"];

/// The header `typ` of access tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AccessTyp {
    /// `"JWT"` (the default).
    #[default]
    Jwt,
    /// `"at+jwt"` (RFC 9068 access tokens; `client_id` is then required).
    AtJwt,
}

impl AccessTyp {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessTyp::Jwt => "JWT",
            AccessTyp::AtJwt => "at+jwt",
        }
    }
}

/// What an [`Issuer`] puts in every token. Build with [`IssuerConfig::new`] and set
/// fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IssuerConfig {
    /// `iss` of every token.
    pub issuer: String,
    /// `aud` of access tokens (a string when one, an array when more).
    pub access_audiences: Vec<String>,
    /// `aud` of refresh tokens; `None`: the issuer.
    pub refresh_audience: Option<String>,
    /// Access token life (default 15 minutes).
    pub access_ttl: Duration,
    /// Refresh token life (default 7 days).
    pub refresh_ttl: Duration,
    /// Access token header `typ` (default `JWT`).
    pub access_typ: AccessTyp,
}

impl IssuerConfig {
    /// Tokens from `issuer` for `audience`, with the default lives and `typ`.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> IssuerConfig {
        IssuerConfig {
            issuer: issuer.into(),
            access_audiences: vec![audience.into()],
            refresh_audience: None,
            access_ttl: DEFAULT_ACCESS_TTL,
            refresh_ttl: DEFAULT_REFRESH_TTL,
            access_typ: AccessTyp::Jwt,
        }
    }

    /// The refresh tokens' audience.
    pub fn refresh_audience(&self) -> &str {
        self.refresh_audience.as_deref().unwrap_or(&self.issuer)
    }
}

/// The claims of one access token beyond what the [`IssuerConfig`] sets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccessClaims {
    sub: String,
    sid: String,
    roles: Vec<String>,
    role: Option<String>,
    scopes: Vec<String>,
    client_id: Option<String>,
    audiences: Option<Vec<String>>,
    extra: Map<String, Value>,
    ttl: Option<Duration>,
}

impl AccessClaims {
    /// An access token for `sub` in session `sid` (the refresh family at the
    /// revocation service: a logout of `sid` revokes it at the edge).
    pub fn new(sub: impl Into<String>, sid: impl Into<String>) -> AccessClaims {
        AccessClaims { sub: sub.into(), sid: sid.into(), ..AccessClaims::default() }
    }

    /// `roles`, an array of strings.
    #[must_use]
    pub fn roles<I: IntoIterator<Item = S>, S: Into<String>>(mut self, roles: I) -> AccessClaims {
        self.roles = roles.into_iter().map(Into::into).collect();
        self
    }

    /// `role`, one string.
    #[must_use]
    pub fn role(mut self, role: impl Into<String>) -> AccessClaims {
        self.role = Some(role.into());
        self
    }

    /// `scope`: the scope tokens, sent space-separated.
    #[must_use]
    pub fn scope<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> AccessClaims {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// `client_id` (required with `at+jwt`).
    #[must_use]
    pub fn client_id(mut self, client_id: impl Into<String>) -> AccessClaims {
        self.client_id = Some(client_id.into());
        self
    }

    /// `aud` for this token instead of the configured access audiences.
    #[must_use]
    pub fn audience<I: IntoIterator<Item = S>, S: Into<String>>(mut self, audiences: I) -> AccessClaims {
        self.audiences = Some(audiences.into_iter().map(Into::into).collect());
        self
    }

    /// An extra claim; it may not be one of [`RESERVED_CLAIMS`].
    #[must_use]
    pub fn claim(mut self, name: impl Into<String>, value: Value) -> AccessClaims {
        self.extra.insert(name.into(), value);
        self
    }

    /// This token's life instead of the configured one.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> AccessClaims {
        self.ttl = Some(ttl);
        self
    }

    /// The same claims for another subject and session.
    pub(crate) fn for_session(mut self, sub: &str, sid: &str) -> AccessClaims {
        self.sub = sub.to_string();
        self.sid = sid.to_string();
        self
    }

    /// The subject.
    pub fn sub(&self) -> &str {
        &self.sub
    }

    /// The session id.
    pub fn sid(&self) -> &str {
        &self.sid
    }
}

/// The claims of one refresh token beyond what the [`IssuerConfig`] sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshClaims {
    sub: String,
    sid: String,
    ttl: Option<Duration>,
}

impl RefreshClaims {
    /// A refresh token for `sub` in the refresh family `sid`.
    pub fn new(sub: impl Into<String>, sid: impl Into<String>) -> RefreshClaims {
        RefreshClaims { sub: sub.into(), sid: sid.into(), ttl: None }
    }

    /// This token's life instead of the configured one.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> RefreshClaims {
        self.ttl = Some(ttl);
        self
    }
}

/// An issued token and what a caller needs to record about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The compact JWS.
    pub token: String,
    /// Its `jti` (128 random bits, base64url).
    pub jti: String,
    /// Its `sub`.
    pub sub: String,
    /// Its `sid`.
    pub sid: String,
    /// Its `iat`.
    pub iat: u64,
    /// Its `exp`.
    pub exp: u64,
    /// The `kid` of the key that signed it.
    pub kid: String,
}

/// An access token and a refresh token of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPair {
    /// The access token.
    pub access: Issued,
    /// The refresh token.
    pub refresh: Issued,
}

/// Signs access and refresh tokens with two key sets, on an injected clock.
#[derive(Debug)]
pub struct Issuer {
    config: IssuerConfig,
    access: RwLock<KeySet>,
    refresh: RwLock<KeySet>,
    clock: Arc<dyn Clock>,
}

impl Issuer {
    /// An issuer with these key sets, on the system clock. The two sets may not share a
    /// key ([`KeyError::SharedKey`]).
    pub fn new(config: IssuerConfig, access: KeySet, refresh: KeySet) -> Result<Issuer, KeyError> {
        if let Some(k) = access.kids().into_iter().find(|k| refresh.kids().contains(k)) {
            return Err(KeyError::SharedKey(k.to_string()));
        }
        Ok(Issuer { config, access: RwLock::new(access), refresh: RwLock::new(refresh), clock: clock::system() })
    }

    /// An issuer with freshly generated keys of `alg` (one for access tokens, another
    /// for refresh tokens), signing from `clock.now()`.
    pub fn generate(
        config: IssuerConfig,
        alg: tollgate_core::Algorithm,
        clock: Arc<dyn Clock>,
    ) -> Result<Issuer, KeyError> {
        let now = clock.now();
        let access = KeySet::new(SigningKey::generate(alg)?, now);
        let refresh = KeySet::new(SigningKey::generate(alg)?, now);
        Ok(Issuer::new(config, access, refresh)?.with_clock(clock))
    }

    /// Uses `clock` for `iat`, `exp` and the rotation timeline.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Issuer {
        self.clock = clock;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &IssuerConfig {
        &self.config
    }

    /// The clock's time, seconds since the epoch.
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Issues an access token.
    pub fn issue_access(&self, claims: &AccessClaims) -> Result<Issued, IssueError> {
        check_id("sub", &claims.sub)?;
        check_id("sid", &claims.sid)?;
        let typ = self.config.access_typ;
        if typ == AccessTyp::AtJwt && claims.client_id.is_none() {
            return Err(IssueError::MissingClaim("client_id"));
        }
        if let Some(c) = &claims.client_id {
            check_id("client_id", c)?;
        }
        if claims.roles.iter().any(String::is_empty) || claims.role.as_deref() == Some("") {
            return Err(IssueError::InvalidClaim("roles"));
        }
        if claims.scopes.iter().any(|s| !is_scope_token(s)) {
            return Err(IssueError::InvalidClaim("scope"));
        }
        if let Some(name) = claims.extra.keys().find(|k| RESERVED_CLAIMS.contains(&k.as_str())) {
            return Err(IssueError::ReservedClaim(name.clone()));
        }
        let audiences = claims.audiences.as_ref().unwrap_or(&self.config.access_audiences);
        if audiences.is_empty() || audiences.iter().any(String::is_empty) {
            return Err(IssueError::InvalidClaim("aud"));
        }
        let ttl = life(claims.ttl.unwrap_or(self.config.access_ttl))?;
        let jti = random::id128()?;
        let now = self.clock.now();
        let exp = now.saturating_add(ttl);

        let mut p = Payload::new(&self.config.issuer, &claims.sub);
        if let [one] = audiences.as_slice() {
            p.string("aud", one);
        } else {
            p.value("aud", &Value::from(audiences.clone()));
        }
        p.string("sid", &claims.sid);
        p.string("jti", &jti);
        p.number("iat", now);
        p.number("exp", exp);
        if !claims.roles.is_empty() {
            p.value("roles", &Value::from(claims.roles.clone()));
        }
        if let Some(r) = &claims.role {
            p.string("role", r);
        }
        if !claims.scopes.is_empty() {
            p.string("scope", &claims.scopes.join(" "));
        }
        if let Some(c) = &claims.client_id {
            p.string("client_id", c);
        }
        for (k, v) in &claims.extra {
            p.value(k, v);
        }
        let (token, kid) = sign(&read(&self.access), now, ttl, typ.as_str(), p.finish())?;
        Ok(Issued { token, jti, sub: claims.sub.clone(), sid: claims.sid.clone(), iat: now, exp, kid })
    }

    /// Issues a refresh token (`typ` `refresh+jwt`, signed with the refresh key set).
    pub fn issue_refresh(&self, claims: &RefreshClaims) -> Result<Issued, IssueError> {
        check_id("sub", &claims.sub)?;
        check_id("sid", &claims.sid)?;
        let ttl = life(claims.ttl.unwrap_or(self.config.refresh_ttl))?;
        let jti = random::id128()?;
        let now = self.clock.now();
        let exp = now.saturating_add(ttl);
        let mut p = Payload::new(&self.config.issuer, &claims.sub);
        p.string("aud", self.config.refresh_audience());
        p.string("sid", &claims.sid);
        p.string("jti", &jti);
        p.number("iat", now);
        p.number("exp", exp);
        let (token, kid) = sign(&read(&self.refresh), now, ttl, REFRESH_TYP, p.finish())?;
        Ok(Issued { token, jti, sub: claims.sub.clone(), sid: claims.sid.clone(), iat: now, exp, kid })
    }

    /// Issues an access token and a refresh token for the same `sub` and `sid`.
    pub fn issue_pair(&self, access: &AccessClaims) -> Result<TokenPair, IssueError> {
        Ok(TokenPair {
            access: self.issue_access(access)?,
            refresh: self.issue_refresh(&RefreshClaims::new(&access.sub, &access.sid))?,
        })
    }

    /// The access JWKS to publish now (e.g. at `/.well-known/jwks.json`), with its
    /// `Cache-Control`.
    pub fn jwks(&self) -> JwksDocument {
        read(&self.access).jwks(self.clock.now())
    }

    /// Rotates the access key set: `key` is published now and signs after the
    /// publication delay; returns when it starts signing.
    pub fn rotate_access(&self, key: SigningKey) -> Result<u64, KeyError> {
        if read(&self.refresh).kids().contains(&key.kid()) {
            return Err(KeyError::SharedKey(key.kid().into()));
        }
        write(&self.access).add(key, self.clock.now())
    }

    /// Rotates the refresh key set (never published, so the new key could sign at
    /// once; it follows the same delay so both sets behave alike).
    pub fn rotate_refresh(&self, key: SigningKey) -> Result<u64, KeyError> {
        if read(&self.access).kids().contains(&key.kid()) {
            return Err(KeyError::SharedKey(key.kid().into()));
        }
        write(&self.refresh).add(key, self.clock.now())
    }

    /// Drops retired keys from both sets; returns their `kid`s.
    pub fn prune(&self) -> Vec<String> {
        let now = self.clock.now();
        let mut gone = write(&self.access).prune(now);
        gone.extend(write(&self.refresh).prune(now));
        gone
    }

    /// Runs `f` on the access key set (status, export, emergency rotation).
    pub fn with_access_keys<R>(&self, f: impl FnOnce(&mut KeySet) -> R) -> R {
        f(&mut write(&self.access))
    }

    /// Runs `f` on the refresh key set.
    pub fn with_refresh_keys<R>(&self, f: impl FnOnce(&mut KeySet) -> R) -> R {
        f(&mut write(&self.refresh))
    }

    /// The `tollgate-core` policy access tokens of this issuer meet: its issuer, the
    /// configured audiences, its `typ`, and `exp`, `iat`, `sub`, `sid`, `jti` required.
    pub fn access_policy(&self) -> Policy {
        let mut p = Policy::default();
        p.issuers = Some(vec![self.config.issuer.clone()]);
        p.audiences = Some(self.config.access_audiences.clone());
        p.typ = Some(self.config.access_typ.as_str().into());
        p.required_claims = ["exp", "iat", "sub", "sid", "jti"].map(String::from).to_vec();
        p
    }

    /// The policy refresh tokens meet: `typ` `refresh+jwt`, the refresh audience.
    pub fn refresh_policy(&self) -> Policy {
        let mut p = self.access_policy();
        p.audiences = Some(vec![self.config.refresh_audience().to_string()]);
        p.typ = Some(REFRESH_TYP.into());
        p
    }

    /// A core verifier of this issuer's access tokens (published keys, access policy).
    pub fn access_verifier(&self) -> Verifier {
        Verifier::new(read(&self.access).verifying_jwks(self.clock.now()), self.access_policy())
    }

    /// A core verifier of this issuer's refresh tokens (the refresh key set, which is
    /// never published).
    pub fn refresh_verifier(&self) -> Verifier {
        Verifier::new(read(&self.refresh).verifying_jwks(self.clock.now()), self.refresh_policy())
    }
}

/// 128 random bits, base64url (22 characters): for session ids and the like.
pub fn random_id() -> Result<String, KeyError> {
    random::id128()
}

fn read(l: &RwLock<KeySet>) -> RwLockReadGuard<'_, KeySet> {
    // A panic while holding the lock cannot leave a key set half-changed (every change
    // is one push or remove), so a poisoned lock is still usable.
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write(l: &RwLock<KeySet>) -> RwLockWriteGuard<'_, KeySet> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

fn sign(set: &KeySet, now: u64, ttl: u64, typ: &str, payload: String) -> Result<(String, String), IssueError> {
    let entry = set.signing_entry(now).ok_or(IssueError::NoSigningKey)?;
    let header = entry.encoded_header(typ);
    let body_len = payload.len().div_ceil(3) * 4;
    let sig_len = entry.key.rsa_bits().map_or(64, |b| b.div_ceil(8)).div_ceil(3) * 4;
    let len = header.len() + 1 + body_len + 1 + sig_len;
    if len > MAX_TOKEN_BYTES {
        return Err(IssueError::TooLarge { len });
    }
    let mut token = String::with_capacity(len);
    token.push_str(&header);
    token.push('.');
    token.push_str(&b64::encode(payload.as_bytes()));
    let sig = entry.key.sign(token.as_bytes())?;
    token.push('.');
    token.push_str(&b64::encode(&sig));
    entry.signed_for(ttl);
    Ok((token, entry.key.kid().to_string()))
}

fn check_id(name: &'static str, v: &str) -> Result<(), IssueError> {
    if v.is_empty() {
        return Err(IssueError::MissingClaim(name));
    }
    if v.len() > MAX_ID_BYTES {
        return Err(IssueError::InvalidClaim(name));
    }
    Ok(())
}

fn life(ttl: Duration) -> Result<u64, IssueError> {
    match ttl.as_secs() {
        0 => Err(IssueError::InvalidClaim("exp")),
        s => Ok(s),
    }
}

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
fn is_scope_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// A JSON object written member by member (names are distinct by construction).
struct Payload(String);

impl Payload {
    fn new(iss: &str, sub: &str) -> Payload {
        let mut p = Payload(String::with_capacity(320));
        p.0.push('{');
        p.string("iss", iss);
        p.string("sub", sub);
        p
    }

    fn name(&mut self, name: &str) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        push_json_string(&mut self.0, name);
        self.0.push(':');
    }

    fn string(&mut self, name: &str, v: &str) {
        self.name(name);
        push_json_string(&mut self.0, v);
    }

    fn number(&mut self, name: &str, v: u64) {
        self.name(name);
        self.0.push_str(&v.to_string());
    }

    fn value(&mut self, name: &str, v: &Value) {
        self.name(name);
        self.0.push_str(&v.to_string());
    }

    fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

fn push_json_string(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&Value::from(s).to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use serde_json::json;
    use tollgate_core::{Algorithm, Reason};

    const T0: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z

    fn issuer(alg: Algorithm, clock: &ManualClock) -> Issuer {
        let mut cfg = IssuerConfig::new("https://auth.example", "https://api.example");
        cfg.refresh_audience = Some("https://auth.example/refresh".into());
        let key = |a| match a {
            Algorithm::Rs256 => SigningKey::from_pkcs8_pem(crate::key::tests::RSA_PEM).unwrap(),
            _ => SigningKey::generate(a).unwrap(),
        };
        let refresh = SigningKey::generate(Algorithm::Es256).unwrap();
        Issuer::new(cfg, KeySet::new(key(alg), clock.now()), KeySet::new(refresh, clock.now()))
            .unwrap()
            .with_clock(Arc::new(clock.clone()))
    }

    fn decode(token: &str) -> (Value, Value) {
        let mut parts = token.split('.');
        let h = b64::decode(parts.next().unwrap().as_bytes()).unwrap();
        let p = b64::decode(parts.next().unwrap().as_bytes()).unwrap();
        // Strict JSON, as the conformance suite parses it.
        (tollgate_core::parse_strict_json(&h).unwrap(), tollgate_core::parse_strict_json(&p).unwrap())
    }

    #[test]
    fn access_tokens_verify_with_the_core_for_both_algorithms_with_every_claim() {
        for alg in [Algorithm::Es256, Algorithm::Rs256] {
            let clock = ManualClock::new(T0);
            let iss = issuer(alg, &clock);
            let claims = AccessClaims::new("alice", "sess-1")
                .roles(["admin", "ops"])
                .role("admin")
                .scope(["read:profile", "write"])
                .client_id("web")
                .claim("tenant", json!("acme"))
                .claim("n", json!([1, {"a": "\"q\""}]));
            let t = iss.issue_access(&claims).unwrap();
            let (h, p) = decode(&t.token);
            assert_eq!(h, json!({"alg": alg.name(), "typ": "JWT", "kid": t.kid}));
            assert_eq!(
                p,
                json!({"iss": "https://auth.example", "sub": "alice", "aud": "https://api.example", "sid": "sess-1",
                       "jti": t.jti, "iat": T0, "exp": T0 + 900, "roles": ["admin", "ops"], "role": "admin",
                       "scope": "read:profile write", "client_id": "web", "tenant": "acme", "n": [1, {"a": "\"q\""}]})
            );
            assert_eq!(t.jti.len(), 22);
            assert_eq!(b64::decode(t.jti.as_bytes()).unwrap().len(), 16);
            let v = iss.access_verifier().verify(&t.token, T0 as i64, None).unwrap();
            assert_eq!(v.claims.sub(), Some("alice"));
            // Expired at exp exactly; the refresh verifier refuses it.
            let e = iss.access_verifier().verify(&t.token, (T0 + 900) as i64, None).unwrap_err();
            assert_eq!(e.reason(), Reason::Expired);
            assert_eq!(
                iss.refresh_verifier().verify(&t.token, T0 as i64, None).unwrap_err().reason(),
                Reason::InvalidType
            );
        }
    }

    #[test]
    fn refresh_tokens_have_their_own_key_typ_and_audience() {
        let clock = ManualClock::new(T0);
        let iss = issuer(Algorithm::Es256, &clock);
        let r = iss.issue_refresh(&RefreshClaims::new("alice", "fam-1")).unwrap();
        let (h, p) = decode(&r.token);
        assert_eq!(h["typ"], "refresh+jwt");
        assert_eq!(
            p,
            json!({"iss": "https://auth.example", "sub": "alice", "aud": "https://auth.example/refresh",
                             "sid": "fam-1", "jti": r.jti, "iat": T0, "exp": T0 + 7 * 86_400})
        );
        iss.refresh_verifier().verify(&r.token, T0 as i64, None).unwrap();
        // Not an access token: its key is not in the published JWKS.
        assert_eq!(iss.access_verifier().verify(&r.token, T0 as i64, None).unwrap_err().reason(), Reason::InvalidType);
        let jwks: Value = serde_json::from_str(&iss.jwks().body).unwrap();
        assert!(jwks["keys"].as_array().unwrap().iter().all(|k| k["kid"] != r.kid));
        let pair = iss.issue_pair(&AccessClaims::new("bob", "fam-2")).unwrap();
        assert_eq!((pair.access.sid.as_str(), pair.refresh.sid.as_str()), ("fam-2", "fam-2"));
        assert_ne!(pair.access.kid, pair.refresh.kid);
        assert_ne!(pair.access.jti, pair.refresh.jti);
    }

    #[test]
    fn at_jwt_audience_arrays_and_ttl_overrides() {
        let clock = ManualClock::new(T0);
        let mut iss = issuer(Algorithm::Es256, &clock);
        iss.config.access_typ = AccessTyp::AtJwt;
        iss.config.access_audiences = vec!["a".into(), "b".into()];
        assert_eq!(iss.issue_access(&AccessClaims::new("u", "s")).unwrap_err(), IssueError::MissingClaim("client_id"));
        let t = iss.issue_access(&AccessClaims::new("u", "s").client_id("cli").ttl(Duration::from_secs(60))).unwrap();
        let (h, p) = decode(&t.token);
        assert_eq!(h["typ"], "at+jwt");
        assert_eq!(p["aud"], json!(["a", "b"]));
        assert_eq!(t.exp, T0 + 60);
        iss.access_verifier().verify(&t.token, T0 as i64, None).unwrap();
        let one = iss.issue_access(&AccessClaims::new("u", "s").client_id("c").audience(["only"])).unwrap();
        assert_eq!(decode(&one.token).1["aud"], "only");
    }

    #[test]
    fn bad_claims_are_typed_errors() {
        let clock = ManualClock::new(T0);
        let iss = issuer(Algorithm::Es256, &clock);
        let cases = [
            (AccessClaims::new("", "s"), IssueError::MissingClaim("sub")),
            (AccessClaims::new("u", ""), IssueError::MissingClaim("sid")),
            (AccessClaims::new("u".repeat(1025), "s"), IssueError::InvalidClaim("sub")),
            (AccessClaims::new("u", "s").roles(["a", ""]), IssueError::InvalidClaim("roles")),
            (AccessClaims::new("u", "s").role(""), IssueError::InvalidClaim("roles")),
            (AccessClaims::new("u", "s").scope(["a b"]), IssueError::InvalidClaim("scope")),
            (AccessClaims::new("u", "s").scope(["a\"b"]), IssueError::InvalidClaim("scope")),
            (AccessClaims::new("u", "s").claim("exp", json!(1)), IssueError::ReservedClaim("exp".into())),
            (AccessClaims::new("u", "s").claim("sid", json!("x")), IssueError::ReservedClaim("sid".into())),
            (AccessClaims::new("u", "s").audience(Vec::<String>::new()), IssueError::InvalidClaim("aud")),
            (AccessClaims::new("u", "s").ttl(Duration::from_millis(500)), IssueError::InvalidClaim("exp")),
            (AccessClaims::new("u", "s").claim("big", json!("x".repeat(7000))), IssueError::TooLarge { len: 9732 }),
        ];
        for (c, want) in cases {
            assert_eq!(iss.issue_access(&c).unwrap_err(), want);
        }
        // Strings needing escapes are escaped, and still verify.
        let t = iss.issue_access(&AccessClaims::new("a\"\\\u{1}b", "s\u{e9}")).unwrap();
        assert_eq!(decode(&t.token).1["sub"], "a\"\\\u{1}b");
        iss.access_verifier().verify(&t.token, T0 as i64, None).unwrap();
    }

    #[test]
    fn rotation_with_an_injected_clock() {
        let clock = ManualClock::new(T0);
        let iss = issuer(Algorithm::Es256, &clock);
        let old = iss.issue_access(&AccessClaims::new("u", "s")).unwrap();
        clock.advance(3600);
        let new_key = SigningKey::generate(Algorithm::Es256).unwrap();
        let starts = iss.rotate_access(new_key.clone()).unwrap();
        assert_eq!(starts, T0 + 3600 + 360);
        // Published at once, not signing yet.
        assert!(iss.jwks().body.contains(new_key.kid()));
        let before = iss.issue_access(&AccessClaims::new("u", "s")).unwrap();
        assert_eq!(before.kid, old.kid);
        clock.set(starts);
        let after = iss.issue_access(&AccessClaims::new("u", "s")).unwrap();
        assert_eq!(after.kid, new_key.kid());
        // The old key stays published until its last token (signed just before the
        // switch, 15 minutes) expired, and both tokens verify meanwhile.
        let v = iss.access_verifier();
        v.verify(&before.token, starts as i64, None).unwrap();
        v.verify(&after.token, starts as i64, None).unwrap();
        clock.set(starts + 899);
        assert!(iss.jwks().body.contains(&old.kid));
        clock.set(starts + 900);
        assert!(!iss.jwks().body.contains(&old.kid));
        assert_eq!(iss.prune(), vec![old.kid.clone()]);
        // A key of the other set is refused.
        let refresh_kid = iss.issue_refresh(&RefreshClaims::new("u", "s")).unwrap().kid;
        let shared = iss.with_refresh_keys(|k| k.signing_key(clock.now()).cloned()).unwrap();
        assert_eq!(shared.kid(), refresh_kid);
        assert_eq!(iss.rotate_access(shared).unwrap_err(), KeyError::SharedKey(refresh_kid));
    }

    #[test]
    fn issuers_refuse_shared_keys_and_generate_distinct_ones() {
        let k = SigningKey::generate(Algorithm::Es256).unwrap();
        let cfg = IssuerConfig::new("i", "a");
        let e = Issuer::new(cfg.clone(), KeySet::new(k.clone(), 0), KeySet::new(k.clone(), 0)).unwrap_err();
        assert_eq!(e, KeyError::SharedKey(k.kid().into()));
        let clock = ManualClock::new(T0);
        let g = Issuer::generate(cfg, Algorithm::Es256, Arc::new(clock)).unwrap();
        let p = g.issue_pair(&AccessClaims::new("u", "s")).unwrap();
        assert_ne!(p.access.kid, p.refresh.kid);
        assert_eq!(p.access.iat, T0);
    }

    #[test]
    fn no_signing_key_is_an_error() {
        let clock = ManualClock::new(T0);
        let iss = issuer(Algorithm::Es256, &clock);
        let kid = iss.issue_access(&AccessClaims::new("u", "s")).unwrap().kid;
        iss.with_access_keys(|k| k.remove(&kid)).unwrap();
        assert_eq!(iss.issue_access(&AccessClaims::new("u", "s")).unwrap_err(), IssueError::NoSigningKey);
    }
}
