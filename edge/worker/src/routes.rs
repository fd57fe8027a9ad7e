//! Route rules (`TOLLGATE_ROUTES`): the first rule whose path (and methods) match
//! decides whether a token is needed and which roles or scopes it must carry.
//!
//! ```json
//! [{"path": "/public/*", "auth": "none"},
//!  {"path": "/admin/*", "roles_any": ["admin"]},
//!  {"path": "/reports/*", "methods": ["POST"], "scopes_all": ["reports:write"]},
//!  {"path": "/*", "auth": "required"}]
//! ```
//!
//! A path ending in `*` matches every path with that prefix; any other path matches
//! exactly. Paths are compared after the runtime's URL parsing (dot segments resolved),
//! the same URL the origin receives. A request no rule matches needs a valid token
//! (fail closed). Roles come from the `role` (string) and `roles` (string or array)
//! claims, scopes from `scope` (space-separated) and `scp` (array).

use serde::Deserialize;
use serde_json::Value;
use tollgate_core::Claims;

/// Whether a route needs a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    /// No token needed: the request is forwarded (client `X-Tollgate-*` still stripped).
    None,
    /// A valid, unrevoked token is needed (the default).
    #[default]
    Required,
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Exact path, or a prefix ending in `*`.
    pub path: String,
    /// HTTP methods the rule applies to (upper case); absent: all.
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    /// Whether a token is needed.
    #[serde(default)]
    pub auth: Auth,
    /// The token must carry at least one of these roles.
    #[serde(default)]
    pub roles_any: Vec<String>,
    /// The token must carry every one of these roles.
    #[serde(default)]
    pub roles_all: Vec<String>,
    /// The token must carry at least one of these scopes.
    #[serde(default)]
    pub scopes_any: Vec<String>,
    /// The token must carry every one of these scopes.
    #[serde(default)]
    pub scopes_all: Vec<String>,
}

/// The ordered rule list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routes {
    rules: Vec<Rule>,
}

impl Default for Routes {
    /// Every path needs a token.
    fn default() -> Routes {
        Routes { rules: vec![Rule::required("/*")] }
    }
}

/// The rule that applies when none matches.
static FALLBACK: std::sync::LazyLock<Rule> = std::sync::LazyLock::new(|| Rule::required("/*"));

impl Rule {
    fn required(path: &str) -> Rule {
        Rule {
            path: path.to_owned(),
            methods: None,
            auth: Auth::Required,
            roles_any: Vec::new(),
            roles_all: Vec::new(),
            scopes_any: Vec::new(),
            scopes_all: Vec::new(),
        }
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        let path_ok = match self.path.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => path == self.path,
        };
        path_ok && self.methods.as_ref().is_none_or(|m| m.iter().any(|x| x.eq_ignore_ascii_case(method)))
    }

    /// Whether verified claims satisfy the rule's role and scope requirements.
    pub fn allows(&self, claims: &Claims) -> bool {
        let roles = roles(claims);
        let scopes = scopes(claims);
        let any = |need: &[String], have: &[&str]| need.is_empty() || need.iter().any(|n| have.contains(&n.as_str()));
        let all = |need: &[String], have: &[&str]| need.iter().all(|n| have.contains(&n.as_str()));
        any(&self.roles_any, &roles)
            && all(&self.roles_all, &roles)
            && any(&self.scopes_any, &scopes)
            && all(&self.scopes_all, &scopes)
    }

    /// The scopes or roles the rule asks for, for `WWW-Authenticate`'s `scope`.
    pub fn wanted(&self) -> String {
        let mut v: Vec<&str> = Vec::new();
        for list in [&self.scopes_all, &self.scopes_any, &self.roles_all, &self.roles_any] {
            v.extend(list.iter().map(String::as_str));
        }
        v.join(" ")
    }
}

impl Routes {
    /// Parses and validates the JSON rule list.
    pub fn from_json(doc: &str) -> Result<Routes, String> {
        let rules: Vec<Rule> = serde_json::from_str(doc).map_err(|e| format!("not a list of rules: {e}"))?;
        for r in &rules {
            if !r.path.starts_with('/') && r.path != "*" {
                return Err(format!("path {:?} does not start with /", r.path));
            }
            if r.path.strip_suffix('*').unwrap_or(&r.path).contains('*') {
                return Err(format!("path {:?}: * is allowed only at the end", r.path));
            }
            let demands = !(r.roles_any.is_empty()
                && r.roles_all.is_empty()
                && r.scopes_any.is_empty()
                && r.scopes_all.is_empty());
            if r.auth == Auth::None && demands {
                return Err(format!("path {:?}: auth none cannot require roles or scopes", r.path));
            }
        }
        Ok(Routes { rules })
    }

    /// The first rule matching the request; a token-required rule when none does.
    pub fn find(&self, method: &str, path: &str) -> &Rule {
        self.rules.iter().find(|r| r.matches(method, path)).unwrap_or(&FALLBACK)
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

fn roles(claims: &Claims) -> Vec<&str> {
    let mut out = Vec::new();
    if let Some(Value::String(r)) = claims.get("role") {
        out.push(r.as_str());
    }
    match claims.get("roles") {
        Some(Value::String(r)) => out.push(r.as_str()),
        Some(Value::Array(a)) => out.extend(a.iter().filter_map(Value::as_str)),
        _ => {}
    }
    out
}

fn scopes(claims: &Claims) -> Vec<&str> {
    let mut out = Vec::new();
    if let Some(Value::String(s)) = claims.get("scope") {
        out.extend(s.split(' ').filter(|x| !x.is_empty()));
    }
    if let Some(Value::Array(a)) = claims.get("scp") {
        out.extend(a.iter().filter_map(Value::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const RULES: &str = r#"[{"path":"/public/*","auth":"none"},
        {"path":"/admin/*","roles_any":["admin"]},
        {"path":"/reports","methods":["POST"],"scopes_all":["reports:write","reports:read"]},
        {"path":"/*","auth":"required"}]"#;

    fn claims(json: &str) -> Claims {
        crate::testkeys::claims_of(json)
    }

    #[test]
    fn first_match_wins() {
        let r = Routes::from_json(RULES).unwrap();
        assert_eq!(r.find("GET", "/public/x").auth, Auth::None);
        assert_eq!(r.find("GET", "/public").path, "/*");
        assert_eq!(r.find("GET", "/admin/users").roles_any, ["admin"]);
        assert_eq!(r.find("post", "/reports").path, "/reports");
        assert_eq!(r.find("GET", "/reports").path, "/*");
        let none = Routes::from_json("[]").unwrap();
        assert_eq!(none.find("GET", "/x").auth, Auth::Required);
    }

    #[test]
    fn roles_and_scopes() {
        let r = Routes::from_json(RULES).unwrap();
        let admin = r.find("GET", "/admin/x");
        assert!(admin.allows(&claims(r#"{"role":"admin"}"#)));
        assert!(admin.allows(&claims(r#"{"roles":["user","admin"]}"#)));
        assert!(!admin.allows(&claims(r#"{"roles":["user"],"scope":"admin"}"#)));
        let reports = r.find("POST", "/reports");
        assert!(reports.allows(&claims(r#"{"scope":"reports:read reports:write"}"#)));
        assert!(!reports.allows(&claims(r#"{"scope":"reports:read"}"#)));
        assert!(reports.allows(&claims(r#"{"scp":["reports:read","reports:write"]}"#)));
        assert!(r.find("GET", "/x").allows(&claims("{}")));
    }

    #[test]
    fn invalid_rules() {
        for bad in [
            r#"{"path":"/x"}"#,
            r#"[{"path":"x"}]"#,
            r#"[{"path":"/a/*/b"}]"#,
            r#"[{"path":"/x","auth":"maybe"}]"#,
            r#"[{"path":"/x","auth":"none","roles_any":["a"]}]"#,
            r#"[{"path":"/x","role":"a"}]"#,
        ] {
            assert!(Routes::from_json(bad).is_err(), "{bad}");
        }
        // Paths ending in a multi-byte character are judged, not cut mid-character.
        assert!(Routes::from_json(r#"[{"path":"/caf\u00e9"}]"#).is_ok());
        assert!(Routes::from_json(r#"[{"path":"/*caf\u00e9"}]"#).is_err());
        assert!(Routes::from_json(r#"[{"path":"/caf\u00e9*"}]"#).is_ok());
    }
}
