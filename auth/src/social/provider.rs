//! Providers: the presets (data, not code paths), their configuration, and the
//! provider at run time (discovery, the HTTP client, the JWKS cache).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::jwks::JwksCache;
use super::SocialError;

/// Which preset a provider starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Google: `https://accounts.google.com` (and its scheme-less spelling), discovery,
    /// `client_secret_basic` or `client_secret_post`, `email_verified`, `hd`.
    Google,
    /// Kakao: `https://kauth.kakao.com`, `client_secret_post` only, comma-separated
    /// scopes, numeric `sub` kept as text, `email` trusted when the ID token carries it
    /// or userinfo says `email_verified`.
    Kakao,
    /// Any OpenID provider, from its discovery document (`issuer` required).
    Oidc,
}

/// When a provider's email address is trusted as verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailTrust {
    /// The ID token's `email_verified` is `true`.
    VerifiedClaim,
    /// Kakao: the ID token carries `email` (Kakao includes only verified addresses
    /// there), else userinfo answers `email_verified: true` for it.
    IdTokenOrUserinfo,
}

/// What a preset fixes about a provider.
#[derive(Debug)]
pub struct PresetData {
    /// The issuer, unless configured (the generic preset has none).
    pub issuer: Option<&'static str>,
    /// Other spellings of the default issuer that the provider's ID tokens may carry.
    pub alternate_issuers: &'static [&'static str],
    /// Scopes requested by default (`openid` is always added).
    pub scopes: &'static [&'static str],
    /// How scopes are joined in the authorization request.
    pub scope_separator: &'static str,
    /// Client authentication methods at the token endpoint, in order of preference.
    pub token_auth: &'static [&'static str],
    /// The email rule.
    pub email: EmailTrust,
}

const GOOGLE: PresetData = PresetData {
    issuer: Some("https://accounts.google.com"),
    alternate_issuers: &["accounts.google.com"],
    scopes: &["openid", "email", "profile"],
    scope_separator: " ",
    token_auth: &["client_secret_basic", "client_secret_post"],
    email: EmailTrust::VerifiedClaim,
};

const KAKAO: PresetData = PresetData {
    issuer: Some("https://kauth.kakao.com"),
    alternate_issuers: &[],
    scopes: &["openid", "account_email"],
    scope_separator: ",",
    token_auth: &["client_secret_post"],
    email: EmailTrust::IdTokenOrUserinfo,
};

const OIDC: PresetData = PresetData {
    issuer: None,
    alternate_issuers: &[],
    scopes: &["openid", "email", "profile"],
    scope_separator: " ",
    token_auth: &["client_secret_basic", "client_secret_post"],
    email: EmailTrust::VerifiedClaim,
};

impl Preset {
    /// The preset's data.
    pub fn data(self) -> &'static PresetData {
        match self {
            Preset::Google => &GOOGLE,
            Preset::Kakao => &KAKAO,
            Preset::Oidc => &OIDC,
        }
    }
}

/// One provider's settings (`[providers.NAME]`; NAME is the route's `{provider}`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// `google`, `kakao` or `oidc`.
    pub preset: Preset,
    /// The OAuth client id (the ID token's `aud`).
    pub client_id: String,
    /// The client secret (secret).
    #[serde(default)]
    pub client_secret: String,
    /// Overrides the preset's issuer (required for `oidc`): discovery is read from
    /// `{issuer}/.well-known/openid-configuration` and the ID token's `iss` must be
    /// exactly this.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Scopes to request instead of the preset's (`openid` is always included).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// `client_secret_basic` or `client_secret_post` (must be one the preset allows).
    #[serde(default)]
    pub token_auth: Option<String>,
    /// Google Workspace domain: sent as `hd` and required in the ID token's `hd`.
    #[serde(default)]
    pub hosted_domain: Option<String>,
    /// The redirect URI registered at the provider; default
    /// `{public_url}/auth/{NAME}/callback`.
    #[serde(default)]
    pub redirect_uri: Option<String>,
    /// The button's label on the page (default "Sign in with <Name>").
    #[serde(default)]
    pub label: Option<String>,
}

impl ProviderConfig {
    /// The issuer in force.
    pub fn issuer(&self) -> Option<String> {
        self.issuer.clone().or_else(|| self.preset.data().issuer.map(str::to_owned))
    }

    /// Checks the settings of provider `name`; `public_url` is the service's.
    pub fn validate(&self, name: &str, public_url: Option<&str>) -> Result<(), String> {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err(format!("providers: {name:?}: names are lower-case letters, digits and '-'"));
        }
        if self.client_id.is_empty() {
            return Err(format!("providers.{name}.client_id is required"));
        }
        if self.client_secret.is_empty() {
            return Err(format!("providers.{name}.client_secret is required"));
        }
        let Some(issuer) = self.issuer() else {
            return Err(format!("providers.{name}.issuer is required for the oidc preset"));
        };
        check_url(&issuer).map_err(|e| format!("providers.{name}.issuer: {e}"))?;
        if let Some(m) = &self.token_auth {
            if !self.preset.data().token_auth.contains(&m.as_str()) {
                return Err(format!(
                    "providers.{name}.token_auth: {m:?} is not one of {:?}",
                    self.preset.data().token_auth
                ));
            }
        }
        match (&self.redirect_uri, public_url) {
            (Some(r), _) => check_url(r).map_err(|e| format!("providers.{name}.redirect_uri: {e}"))?,
            (None, Some(_)) => {}
            (None, None) => return Err(format!("providers.{name}: set public_url or providers.{name}.redirect_uri")),
        }
        Ok(())
    }
}

/// An `https://` URL, or `http://` on a loopback host (local development and tests).
pub fn check_url(u: &str) -> Result<(), String> {
    let parsed = url::Url::parse(u).map_err(|e| format!("{u:?} is not a URL ({e})"))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&parsed) => Ok(()),
        _ => Err(format!("{u:?} must be https (http only on a loopback host)")),
    }
}

fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        None => false,
    }
}

/// The parts of a discovery document used here.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    /// Must equal the configured issuer exactly.
    pub issuer: String,
    /// Where the browser is sent.
    pub authorization_endpoint: String,
    /// Where the code is exchanged.
    pub token_endpoint: String,
    /// The signing keys.
    pub jwks_uri: String,
    /// Userinfo (Kakao's email rule).
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    /// Client authentication methods the token endpoint takes.
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// RFC 9207: whether authorization responses carry `iss`.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
    /// PKCE methods.
    #[serde(default)]
    pub code_challenge_methods_supported: Option<Vec<String>>,
}

/// How long a discovery document is kept.
const DISCOVERY_TTL_SECS: u64 = 3600;

/// A configured provider at run time.
#[derive(Debug)]
pub struct Provider {
    /// The route's `{provider}`.
    pub name: String,
    /// Its settings.
    pub config: ProviderConfig,
    /// Its preset.
    pub preset: &'static PresetData,
    /// The issuer in force.
    pub issuer: String,
    /// Every `iss` an ID token may carry: the issuer, and for Google's default issuer
    /// its scheme-less spelling — those and only those.
    pub accepted_issuers: Vec<String>,
    /// The redirect URI.
    pub redirect_uri: String,
    /// The scopes, joined as the provider wants them.
    pub scope: String,
    pub(crate) http: reqwest::Client,
    discovery: tokio::sync::Mutex<Option<(Arc<Discovery>, u64)>>,
    /// The provider's keys.
    pub jwks: JwksCache,
}

impl Provider {
    /// Builds provider `name` (already validated).
    pub fn new(name: &str, config: &ProviderConfig, public_url: Option<&str>) -> Result<Provider, String> {
        let preset = config.preset.data();
        let issuer = config.issuer().ok_or("no issuer")?;
        let mut accepted_issuers = vec![issuer.clone()];
        if config.issuer.is_none() {
            accepted_issuers.extend(preset.alternate_issuers.iter().map(|s| (*s).to_owned()));
        }
        let redirect_uri = match &config.redirect_uri {
            Some(r) => r.clone(),
            None => format!("{}/auth/{name}/callback", public_url.unwrap_or_default().trim_end_matches('/')),
        };
        let mut scopes: Vec<String> = match &config.scopes {
            Some(s) => s.clone(),
            None => preset.scopes.iter().map(|s| (*s).to_owned()).collect(),
        };
        if !scopes.iter().any(|s| s == "openid") {
            scopes.insert(0, "openid".to_owned());
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(5))
            .user_agent("tollgate-auth")
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Provider {
            name: name.to_owned(),
            config: config.clone(),
            preset,
            issuer,
            accepted_issuers,
            redirect_uri,
            scope: scopes.join(preset.scope_separator),
            http,
            discovery: tokio::sync::Mutex::new(None),
            jwks: JwksCache::default(),
        })
    }

    /// The discovery document (cached an hour; fetched again after a failure).
    pub async fn discovery(&self, now: u64) -> Result<Arc<Discovery>, SocialError> {
        let mut slot = self.discovery.lock().await;
        if let Some((d, until)) = slot.as_ref() {
            if now < *until {
                return Ok(d.clone());
            }
        }
        let url = format!("{}/.well-known/openid-configuration", self.issuer.trim_end_matches('/'));
        let (bytes, _) = super::http_get(&self.http, &url, None).await?;
        let d: Discovery = serde_json::from_slice(&bytes)
            .map_err(|e| SocialError::Misconfigured(format!("{url}: not a discovery document ({e})")))?;
        if d.issuer != self.issuer {
            return Err(SocialError::Misconfigured(format!(
                "discovery names the issuer {:?}, not the configured {:?}",
                d.issuer, self.issuer
            )));
        }
        for u in [&d.authorization_endpoint, &d.token_endpoint, &d.jwks_uri] {
            check_url(u).map_err(SocialError::Misconfigured)?;
        }
        if let Some(u) = &d.userinfo_endpoint {
            check_url(u).map_err(SocialError::Misconfigured)?;
        }
        if d.code_challenge_methods_supported.as_ref().is_some_and(|m| !m.iter().any(|m| m == "S256")) {
            return Err(SocialError::Misconfigured("the provider does not support PKCE S256".into()));
        }
        let d = Arc::new(d);
        *slot = Some((d.clone(), now + DISCOVERY_TTL_SECS));
        Ok(d)
    }

    /// The client authentication method at the token endpoint: the configured one, else
    /// the preset's first that discovery lists (or its first if discovery lists none).
    pub fn token_auth(&self, d: &Discovery) -> &'static str {
        let allowed = self.preset.token_auth;
        if let Some(m) = &self.config.token_auth {
            return allowed.iter().find(|a| **a == m.as_str()).copied().unwrap_or(allowed[0]);
        }
        match &d.token_endpoint_auth_methods_supported {
            Some(list) => allowed.iter().find(|a| list.iter().any(|m| m == *a)).copied().unwrap_or(allowed[0]),
            // RFC 8414: absent means client_secret_basic.
            None if allowed.contains(&"client_secret_basic") => "client_secret_basic",
            None => allowed[0],
        }
    }

    /// The button's label.
    pub fn label(&self) -> String {
        self.config.label.clone().unwrap_or_else(|| {
            let n = match self.config.preset {
                Preset::Google => "Google".to_owned(),
                Preset::Kakao => "Kakao".to_owned(),
                Preset::Oidc => {
                    let mut c = self.name.chars();
                    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
                }
            };
            format!("Sign in with {n}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(preset: Preset, issuer: Option<&str>) -> ProviderConfig {
        ProviderConfig {
            preset,
            client_id: "client".into(),
            client_secret: "secret".into(),
            issuer: issuer.map(str::to_owned),
            scopes: None,
            token_auth: None,
            hosted_domain: None,
            redirect_uri: None,
            label: None,
        }
    }

    #[test]
    fn google_accepts_both_spellings_and_only_those() {
        let p = Provider::new("google", &cfg(Preset::Google, None), Some("https://app.test")).unwrap();
        assert_eq!(p.accepted_issuers, vec!["https://accounts.google.com", "accounts.google.com"]);
        assert_eq!(p.redirect_uri, "https://app.test/auth/google/callback");
        assert_eq!(p.scope, "openid email profile");
        // An override (a local stand-in) is taken exactly, without other spellings.
        let p =
            Provider::new("google", &cfg(Preset::Google, Some("http://127.0.0.1:9")), Some("https://a.test")).unwrap();
        assert_eq!(p.accepted_issuers, vec!["http://127.0.0.1:9"]);
    }

    #[test]
    fn kakao_joins_scopes_with_commas_and_always_asks_for_openid() {
        let mut c = cfg(Preset::Kakao, None);
        c.scopes = Some(vec!["account_email".into(), "profile_nickname".into()]);
        let p = Provider::new("kakao", &c, Some("https://app.test")).unwrap();
        assert_eq!(p.scope, "openid,account_email,profile_nickname");
        assert_eq!(p.accepted_issuers, vec!["https://kauth.kakao.com"]);
        let d = Discovery {
            issuer: p.issuer.clone(),
            authorization_endpoint: "https://k.test/a".into(),
            token_endpoint: "https://k.test/t".into(),
            jwks_uri: "https://k.test/j".into(),
            userinfo_endpoint: None,
            token_endpoint_auth_methods_supported: Some(vec![
                "client_secret_basic".into(),
                "client_secret_post".into(),
            ]),
            authorization_response_iss_parameter_supported: false,
            code_challenge_methods_supported: None,
        };
        assert_eq!(p.token_auth(&d), "client_secret_post", "Kakao takes client_secret_post only");
        let g = Provider::new("google", &cfg(Preset::Google, None), Some("https://app.test")).unwrap();
        assert_eq!(g.token_auth(&d), "client_secret_basic");
    }

    #[test]
    fn settings_are_checked() {
        let ok = cfg(Preset::Kakao, None);
        assert!(ok.validate("kakao", Some("https://app.test")).is_ok());
        assert!(ok.validate("Kakao", Some("https://app.test")).unwrap_err().contains("lower-case"));
        assert!(ok.validate("kakao", None).unwrap_err().contains("public_url"));
        assert!(cfg(Preset::Oidc, None).validate("corp", Some("https://a.test")).unwrap_err().contains("issuer"));
        assert!(cfg(Preset::Oidc, Some("http://idp.example")).validate("corp", Some("https://a.test")).is_err());
        assert!(cfg(Preset::Oidc, Some("http://127.0.0.1:8")).validate("corp", Some("https://a.test")).is_ok());
        let mut basic = cfg(Preset::Kakao, None);
        basic.token_auth = Some("client_secret_basic".into());
        assert!(basic.validate("kakao", Some("https://a.test")).unwrap_err().contains("token_auth"));
        let mut no_secret = cfg(Preset::Google, None);
        no_secret.client_secret.clear();
        assert!(no_secret.validate("google", Some("https://a.test")).is_err());
    }
}
