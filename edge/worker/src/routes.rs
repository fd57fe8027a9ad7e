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
//! A path ending in `*` matches every path with that prefix, byte for byte as written:
//! `/admin*` matches `/admin`, `/adminx` and `/admin.json`. A prefix ending in `/*` is
//! a segment boundary: `/admin/*` matches `/admin`, `/admin/` and everything under
//! `/admin/`, never `/admin.json` or `/adminx` (those get only the rules written for
//! them). Any other path matches exactly. `HEAD` is matched as `GET` (a rule for `GET`
//! covers `HEAD`, which an origin answers as a `GET`). Request paths are matched in their canonical form ([`crate::path`]), the
//! form the origin receives; rule paths may hold only unreserved characters (`A-Z a-z
//! 0-9 - . _ ~`) and `/`, so no escape the origin might decode can make a request match
//! a rule differently.
//!
//! Origins differ on case and on a trailing `/` (Express and IIS route `/ADMIN/x` as
//! `/admin/x` and `/admin` as `/admin/`; nginx and Django do not), and the Worker cannot
//! know which kind it guards. So a request gets the rules of both readings of its path —
//! the first rule matching it as written (case and trailing `/` exact), and the first
//! matching it with ASCII case ignored and a trailing `/` at the rule's end optional —
//! and must meet both: `/ADMIN/x` needs what `/admin/*` asks, and `/PUBLIC/x` or
//! `/public` is open only if a rule opens it as written. When both readings find the
//! same rule (the usual case) that is one rule. A request no rule matches needs a valid
//! token (fail closed). Roles come from the
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

    fn matches(&self, method: &str, path: &str, exact: bool) -> bool {
        let head = method.eq_ignore_ascii_case("HEAD");
        path_matches(&self.path, path, exact)
            && self.methods.as_ref().is_none_or(|m| {
                m.iter().any(|x| x.eq_ignore_ascii_case(method) || (head && x.eq_ignore_ascii_case("GET")))
            })
    }

    /// Whether verified claims satisfy the rule's role and scope requirements.
    pub fn allows(&self, claims: &Claims) -> bool {
        if !self.demands() {
            return true; // nothing to collect
        }
        let roles = roles(claims);
        let scopes = scopes(claims);
        let any = |need: &[String], have: &[String]| need.is_empty() || need.iter().any(|n| have.contains(n));
        let all = |need: &[String], have: &[String]| need.iter().all(|n| have.contains(n));
        any(&self.roles_any, &roles)
            && all(&self.roles_all, &roles)
            && any(&self.scopes_any, &scopes)
            && all(&self.scopes_all, &scopes)
    }

    /// Whether the rule asks for any role or scope.
    fn demands(&self) -> bool {
        !(self.roles_any.is_empty()
            && self.roles_all.is_empty()
            && self.scopes_any.is_empty()
            && self.scopes_all.is_empty())
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
            if r.auth == Auth::None && r.demands() {
                return Err(format!("path {:?}: auth none cannot require roles or scopes", r.path));
            }
        }
        Ok(Routes { rules })
    }

    /// The rules that apply to the request: those of both readings of its path.
    /// One pass: an exact match is also a loose one, so the first exact match is the
    /// first loose match or comes after it. A token-required rule stands for "none".
    pub fn find(&self, method: &str, path: &str) -> Applicable<'_> {
        let Some(i) = self.rules.iter().position(|r| r.matches(method, path, false)) else {
            return Applicable { exact: &FALLBACK, loose: &FALLBACK };
        };
        let loose = &self.rules[i];
        let exact = if loose.matches(method, path, true) {
            loose
        } else {
            self.rules[i + 1..].iter().find(|r| r.matches(method, path, true)).unwrap_or(&FALLBACK)
        };
        Applicable { exact, loose }
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

/// The rules of both readings of a request's path; it must meet both.
#[derive(Debug, Clone, Copy)]
pub struct Applicable<'a> {
    exact: &'a Rule,
    loose: &'a Rule,
}

impl Applicable<'_> {
    /// Whether no token is needed: only if both readings' rules say so.
    pub fn open(&self) -> bool {
        self.exact.auth == Auth::None && self.loose.auth == Auth::None
    }

    /// Whether verified claims meet both rules.
    pub fn allows(&self, claims: &Claims) -> bool {
        self.exact.allows(claims) && (std::ptr::eq(self.exact, self.loose) || self.loose.allows(claims))
    }

    /// What the rules ask for, for `WWW-Authenticate`'s `scope`.
    pub fn wanted(&self) -> String {
        if std::ptr::eq(self.exact, self.loose) {
            return self.exact.wanted();
        }
        let (exact, loose) = (self.exact.wanted(), self.loose.wanted());
        let mut v: Vec<&str> = Vec::new();
        for w in exact.split(' ').chain(loose.split(' ')).filter(|w| !w.is_empty()) {
            if !v.contains(&w) {
                v.push(w);
            }
        }
        v.join(" ")
    }
}

/// Whether the canonical request `path` matches the rule path `rule` (a prefix when it
/// ends in `*`; `P/*` also matches `P` itself): read `exact`ly, or with ASCII case
/// ignored and a trailing `/` at the rule's end optional.
fn path_matches(rule: &str, path: &str, exact: bool) -> bool {
    let (rule, path) = (rule.as_bytes(), path.as_bytes());
    let same = |a: &[u8], b: &[u8]| if exact { a == b } else { a.eq_ignore_ascii_case(b) };
    match rule.split_last() {
        Some((b'*', prefix)) => {
            path.get(..prefix.len()).is_some_and(|head| same(head, prefix))
                || prefix.strip_suffix(b"/").is_some_and(|bare| !bare.is_empty() && same(path, bare))
        }
        _ if exact => rule == path,
        _ => {
            let bare = |p: &[u8]| p.len() - usize::from(p.ends_with(b"/"));
            same(&rule[..bare(rule)], &path[..bare(path)])
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

fn strings(a: Vec<Value>) -> impl Iterator<Item = String> {
    a.into_iter().filter_map(|v| match v {
        Value::String(s) => Some(s),
        _ => None,
    })
}

fn roles(claims: &Claims) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(Value::String(r)) = claims.get("role") {
        out.push(r);
    }
    match claims.get("roles") {
        Some(Value::String(r)) => out.push(r),
        Some(Value::Array(a)) => out.extend(strings(a)),
        _ => {}
    }
    out
}

fn scopes(claims: &Claims) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(Value::String(s)) = claims.get("scope") {
        out.extend(s.split(' ').filter(|x| !x.is_empty()).map(String::from));
    }
    if let Some(Value::Array(a)) = claims.get("scp") {
        out.extend(strings(a));
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

    /// The rule path of both readings.
    fn both<'a>(r: &'a Routes, method: &str, path: &str) -> (&'a str, &'a str) {
        let found = r.find(method, path);
        (found.exact.path.as_str(), found.loose.path.as_str())
    }

    #[test]
    fn first_match_wins() {
        let r = Routes::from_json(RULES).unwrap();
        assert!(r.find("GET", "/public/x").open());
        assert_eq!(both(&r, "GET", "/publicity"), ("/*", "/*"));
        assert_eq!(both(&r, "GET", "/admin/users"), ("/admin/*", "/admin/*"));
        assert_eq!(both(&r, "post", "/reports"), ("/reports", "/reports"));
        assert_eq!(both(&r, "GET", "/reports"), ("/*", "/*"));
        let none = Routes::from_json("[]").unwrap();
        assert!(!none.find("GET", "/x").open());
    }

    #[test]
    fn case_and_trailing_slash_do_not_escape_a_rule() {
        let r = Routes::from_json(RULES).unwrap();
        let admin = claims(r#"{"role":"admin"}"#);
        let user = claims(r#"{"role":"user"}"#);
        // A case-insensitive origin serves these as /admin/…: the admin rule applies.
        for p in ["/ADMIN/x", "/Admin/", "/admin", "/ADMIN"] {
            assert_eq!(both(&r, "GET", p).1, "/admin/*", "{p}");
            let rules = r.find("GET", p);
            assert!(!rules.open() && rules.allows(&admin) && !rules.allows(&user), "{p}");
            assert_eq!(rules.wanted(), "admin");
        }
        // A case-sensitive origin serves something else there: open only as written.
        for p in ["/PUBLIC/x", "/Public/"] {
            assert_eq!(both(&r, "GET", p), ("/*", "/public/*"), "{p}");
            assert!(!r.find("GET", p).open(), "{p}");
            assert!(r.find("GET", p).allows(&user), "{p}");
        }
        assert!(r.find("GET", "/public/").open());
        assert!(r.find("GET", "/public").open(), "/public/* covers /public");
        assert_eq!(both(&r, "GET", "/administrator"), ("/*", "/*"));
        assert_eq!(both(&r, "POST", "/reports/"), ("/*", "/reports"));
        assert_eq!(both(&r, "POST", "/REPORTS"), ("/*", "/reports"));
        assert!(!r.find("POST", "/REPORTS").allows(&user));
        assert_eq!(both(&r, "POST", "/reports/x"), ("/*", "/*"));
        let exact = Routes::from_json(r#"[{"path":"/a/","auth":"none"},{"path":"/","auth":"none"}]"#).unwrap();
        assert!(!exact.find("GET", "/a").open());
        assert!(exact.find("GET", "/a/").open());
        assert!(exact.find("GET", "/").open());
        assert!(!exact.find("GET", "/b").open());
        let any = Routes::from_json(r#"[{"path":"*","auth":"none"}]"#).unwrap();
        assert!(any.find("GET", "/x").open());
    }

    /// Against the canonicaliser: a path an origin could decode or merge into one under
    /// a rule lands on that rule here, or is refused.
    #[test]
    fn canonical_paths_meet_the_rules() {
        let r = Routes::from_json(RULES).unwrap();
        for p in ["/%61dmin/x", "//admin/x", "/%41%44%4d%49%4e/x", "/admin//x", "/adm%69n"] {
            let c = crate::path::canonical(p, false).unwrap();
            assert_eq!(both(&r, "GET", &c).1, "/admin/*", "{p} → {c}");
            assert!(!r.find("GET", &c).allows(&claims(r#"{"role":"user"}"#)), "{p} → {c}");
        }
        for p in
            ["/public/..%2fadmin/x", "/public/..;/admin/x", "/admin;/x", "/public/%2e%2e/admin", "/public%5c..%5cadmin"]
        {
            assert!(crate::path::canonical(p, false).is_err(), "{p}");
        }
    }

    #[test]
    fn prefixes_end_on_segment_boundaries() {
        let r = Routes::from_json(RULES).unwrap();
        let user = claims(r#"{"role":"user"}"#);
        for p in ["/admin", "/admin/", "/admin/x/y"] {
            assert_eq!(both(&r, "GET", p), ("/admin/*", "/admin/*"), "{p}");
            assert!(!r.find("GET", p).allows(&user), "{p}");
        }
        for p in ["/admin.json", "/adminx", "/admin-panel"] {
            assert_eq!(both(&r, "GET", p), ("/*", "/*"), "{p}: only what is written for it");
        }
        let bare = Routes::from_json(r#"[{"path":"/admin*","roles_any":["admin"]}]"#).unwrap();
        for p in ["/admin", "/adminx", "/admin.json", "/admin/x"] {
            assert!(!bare.find("GET", p).allows(&user), "{p}: /admin* is a plain prefix");
        }
        // `/*` covers everything, and an empty bare prefix is not the empty path.
        let all = Routes::from_json(r#"[{"path":"/*","auth":"none"}]"#).unwrap();
        assert!(all.find("GET", "/").open() && all.find("GET", "/x").open());
    }

    #[test]
    fn head_is_matched_as_get() {
        let r = Routes::from_json(
            r#"[{"path":"/files/*","methods":["GET"],"auth":"none"},{"path":"/w","methods":["POST"],"roles_any":["w"]}]"#,
        )
        .unwrap();
        assert!(r.find("HEAD", "/files/a").open());
        assert!(r.find("GET", "/files/a").open());
        assert!(!r.find("POST", "/files/a").open());
        assert!(!r.find("HEAD", "/w").allows(&claims(r#"{"role":"x"}"#)) || r.find("HEAD", "/w").wanted().is_empty());
        assert_eq!(both(&r, "HEAD", "/w"), ("/*", "/*"), "a POST rule does not cover HEAD");
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
