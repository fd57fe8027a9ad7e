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
//! exactly. Request paths are matched in their canonical form ([`crate::path`]), the
//! form the origin receives; rule paths may hold only unreserved characters (`A-Z a-z
//! 0-9 - . _ ~`) and `/`, so no escape the origin might decode can make a request match
//! a rule differently. Matching ignores ASCII case (`/ADMIN/x` is under `/admin/*`: many
//! origins route case-insensitively) and a trailing `/` at the rule's end (`/admin/*`
//! also matches `/admin`, `/reports` also `/reports/`: many origins serve both alike).
//! A request no rule matches needs a valid token (fail closed). Roles come from the
//! `role` (string) and `roles` (string or array) claims, scopes from `scope`
//! (space-separated) and `scp` (array).

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
        path_matches(&self.path, path)
            && self.methods.as_ref().is_none_or(|m| m.iter().any(|x| x.eq_ignore_ascii_case(method)))
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
            check_rule_path(&r.path)?;
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

/// Whether the canonical request `path` matches the rule path `rule` (a prefix when it
/// ends in `*`): ASCII case ignored, and a trailing `/` at the rule's end optional.
fn path_matches(rule: &str, path: &str) -> bool {
    let path = path.as_bytes();
    match rule.as_bytes().split_last() {
        Some((b'*', prefix)) => {
            path.get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix))
                || prefix.strip_suffix(b"/").is_some_and(|bare| path.eq_ignore_ascii_case(bare))
        }
        _ => {
            let bare = |p: &[u8]| p.len() - usize::from(p.ends_with(b"/"));
            let rule = rule.as_bytes();
            rule[..bare(rule)].eq_ignore_ascii_case(&path[..bare(path)])
        }
    }
}

/// A rule path must be able to match canonical paths, and hold nothing an origin could
/// see in another spelling: unreserved characters and `/` only (then `*` at the end),
/// no `//`, no `.` or `..` segment (a prefix's last, partial, segment may be `.`:
/// `/.*` matches `/.well-known/...`).
fn check_rule_path(rule: &str) -> Result<(), String> {
    let (body, prefix) = match rule.strip_suffix('*') {
        Some(body) => (body, true),
        None => (rule, false),
    };
    if let Some(c) = body.chars().find(|&c| !(c == '/' || u8::try_from(c).is_ok_and(crate::path::is_unreserved))) {
        return Err(format!(
            "path {rule:?}: {c:?} is not allowed (rule paths hold letters, digits, - . _ ~ and / only)"
        ));
    }
    let whole = if prefix { body.rsplit_once('/').map_or("", |(whole, _)| whole) } else { body };
    if body.contains("//") || whole.split('/').any(|s| s == "." || s == "..") {
        return Err(format!("path {rule:?}: no request path can match (no // or dot segments)"));
    }
    Ok(())
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
        assert_eq!(r.find("GET", "/publicity").path, "/*");
        assert_eq!(r.find("GET", "/admin/users").roles_any, ["admin"]);
        assert_eq!(r.find("post", "/reports").path, "/reports");
        assert_eq!(r.find("GET", "/reports").path, "/*");
        let none = Routes::from_json("[]").unwrap();
        assert_eq!(none.find("GET", "/x").auth, Auth::Required);
    }

    #[test]
    fn case_and_trailing_slash_do_not_escape_a_rule() {
        let r = Routes::from_json(RULES).unwrap();
        for p in ["/ADMIN/x", "/Admin/", "/admin", "/ADMIN"] {
            assert_eq!(r.find("GET", p).roles_any, ["admin"], "{p}");
        }
        assert_eq!(r.find("GET", "/public").auth, Auth::None);
        assert_eq!(r.find("GET", "/PUBLIC/x").auth, Auth::None);
        assert_eq!(r.find("GET", "/administrator").path, "/*");
        assert_eq!(r.find("POST", "/reports/").path, "/reports");
        assert_eq!(r.find("POST", "/REPORTS").path, "/reports");
        assert_eq!(r.find("POST", "/reports/x").path, "/*");
        let exact = Routes::from_json(r#"[{"path":"/a/","auth":"none"},{"path":"/","auth":"none"}]"#).unwrap();
        assert_eq!(exact.find("GET", "/a").path, "/a/");
        assert_eq!(exact.find("GET", "/a/").path, "/a/");
        assert_eq!(exact.find("GET", "/").path, "/");
        assert_eq!(exact.find("GET", "/b").auth, Auth::Required);
        let any = Routes::from_json(r#"[{"path":"*","auth":"none"}]"#).unwrap();
        assert_eq!(any.find("GET", "/x").auth, Auth::None);
    }

    /// Against the canonicaliser: a path an origin could decode or merge into one under
    /// a rule lands on that rule here, or is refused.
    #[test]
    fn canonical_paths_meet_the_rules() {
        let r = Routes::from_json(RULES).unwrap();
        for p in ["/%61dmin/x", "//admin/x", "/%41%44%4d%49%4e/x", "/admin//x", "/adm%69n"] {
            let c = crate::path::canonical(p).unwrap();
            assert_eq!(r.find("GET", &c).roles_any, ["admin"], "{p} → {c}");
        }
        for p in
            ["/public/..%2fadmin/x", "/public/..;/admin/x", "/admin;/x", "/public/%2e%2e/admin", "/public%5c..%5cadmin"]
        {
            assert!(crate::path::canonical(p).is_err(), "{p}");
        }
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
            r#"[{"path":"/%61dmin/*"}]"#,
            r#"[{"path":"/a;b"}]"#,
            r#"[{"path":"/a:b/*"}]"#,
            r#"[{"path":"/caf\u00e9"}]"#,
            r#"[{"path":"/a b"}]"#,
            r#"[{"path":"//admin/*"}]"#,
            r#"[{"path":"/public/../admin/*"}]"#,
            r#"[{"path":"/a/./b"}]"#,
            r#"[{"path":"/a/.."}]"#,
        ] {
            assert!(Routes::from_json(bad).is_err(), "{bad}");
        }
        let good = r#"[{"path":"/.well-known/*"},{"path":"/.*"},{"path":"/a..b/~x-y_z"},{"path":"/v1.2*"}]"#;
        assert_eq!(Routes::from_json(good).map(|r| r.len()), Ok(4));
        // Paths with a multi-byte character are refused, never cut mid-character.
        assert!(Routes::from_json(r#"[{"path":"/caf\u00e9"}]"#).is_err());
        assert!(Routes::from_json(r#"[{"path":"/caf\u00e9*"}]"#).is_err());
    }
}
