//! The ID token, verified with `tollgate-core` against the provider's JWKS: RS256
//! only, `iss` one of the provider's accepted spellings exactly, `aud` the client id,
//! `azp` (when present, and required with several audiences) the client id, `nonce`
//! the attempt's, `exp` not passed and `iat` neither in the future nor older than ten
//! minutes (30 s leeway on both). An unknown `kid` leads to one refetch of the keys (at
//! most one a minute, see `jwks`), then refusal.

use serde_json::Value;
use subtle::ConstantTimeEq;
use tollgate_core::{Algorithm, AlgorithmSet, Claims, Error, Policy, Reason, Verifier};

use super::provider::{Discovery, Provider};
use super::SocialError;

/// Clock skew tolerated on `exp`, `nbf` and `iat`, seconds.
pub const LEEWAY_SECS: u64 = 30;
/// How old an ID token may be when it arrives, seconds.
pub const MAX_AGE_SECS: u64 = 600;

/// What the login needs from a verified ID token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdClaims {
    /// The provider's subject (text, as issued; Kakao's is numeric).
    pub sub: String,
    /// `email`, if the token carries one.
    pub email: Option<String>,
    /// `email_verified` (`true`, or the string `"true"` some providers send).
    pub email_verified: bool,
    /// Google's hosted domain.
    pub hd: Option<String>,
}

fn text(c: &Claims, name: &str) -> Option<String> {
    c.get(name).and_then(|v| v.as_str().map(str::to_owned))
}

fn invalid(reason: &'static str, detail: impl Into<String>) -> SocialError {
    SocialError::IdToken { reason, detail: detail.into() }
}

/// Verifies `token` for `provider` with the attempt's `nonce` at `now`.
pub async fn verify(
    provider: &Provider,
    discovery: &Discovery,
    token: &str,
    nonce: &str,
    now: u64,
) -> Result<IdClaims, SocialError> {
    let mut policy = Policy::default();
    policy.issuers = Some(provider.accepted_issuers.clone());
    policy.audiences = Some(vec![provider.config.client_id.clone()]);
    policy.algorithms = AlgorithmSet::EMPTY.with(Algorithm::Rs256);
    policy.leeway_seconds = LEEWAY_SECS;
    policy.required_claims = ["exp", "iat", "sub", "nonce"].iter().map(|s| (*s).to_owned()).collect();
    let http = &provider.http;
    let uri = discovery.jwks_uri.as_str();
    let mut keys = provider.jwks.current(http, uri, now).await?;
    let verified = loop {
        let verifier = Verifier::new((*keys.jwks).clone(), policy.clone());
        match verifier.verify(token, now as i64, None) {
            Ok(v) => break v,
            Err(Error::Key(_)) => match provider.jwks.after_unknown_kid(http, uri, keys.generation, now).await? {
                Some(newer) => keys = newer,
                None => {
                    return Err(invalid(
                        Reason::UnknownKey.as_str(),
                        format!("the ID token's key ({}) is not in the provider's JWKS", kid_of(token)),
                    ))
                }
            },
            Err(e) => return Err(invalid(e.reason().as_str(), e.to_string())),
        }
    };
    let c = &verified.claims;
    let iat = c.iat().unwrap_or(0.0);
    if iat > (now + LEEWAY_SECS) as f64 {
        return Err(invalid("iat", "the ID token was issued in the future"));
    }
    if iat + ((MAX_AGE_SECS + LEEWAY_SECS) as f64) < now as f64 {
        return Err(invalid("iat", "the ID token is too old"));
    }
    let client_id = provider.config.client_id.as_str();
    let audiences = c.audiences().count();
    match text(c, "azp") {
        Some(azp) if azp != client_id => return Err(invalid("azp", "the ID token was issued to another party (azp)")),
        None if audiences > 1 => return Err(invalid("azp", "an ID token with several audiences needs azp")),
        _ => {}
    }
    let got = text(c, "nonce").unwrap_or_default();
    if !bool::from(got.as_bytes().ct_eq(nonce.as_bytes())) {
        return Err(invalid("nonce", "the ID token's nonce is not this login's"));
    }
    let sub = c.sub().unwrap_or_default().to_owned();
    if sub.is_empty() || sub.len() > 255 {
        return Err(invalid("invalid_claim", "sub must be 1 to 255 characters"));
    }
    // Written to work whether `Claims::get` lends or owns the value.
    let email_verified =
        c.get("email_verified").map(|v| v.as_bool() == Some(true) || v.as_str() == Some("true")).unwrap_or(false);
    Ok(IdClaims { sub, email: text(c, "email"), email_verified, hd: text(c, "hd") })
}

/// `true`, or the string `"true"` (some providers send booleans as strings).
pub fn verified_flag(v: &Value) -> bool {
    v.as_bool() == Some(true) || v.as_str() == Some("true")
}

/// The `kid` of a token's header, for messages (never trusted).
fn kid_of(token: &str) -> String {
    use base64::Engine as _;
    let header = token.split('.').next().unwrap_or("");
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|h| h.get("kid").and_then(Value::as_str).map(|k| format!("kid {k:?}")))
        .unwrap_or_else(|| "no kid".to_owned())
}
