//! The request path: the one place that composes the isolate's stores. A token goes
//! from [`handle`] through the path and the rules, the verified-token cache
//! (`token_cache.rs`), the key store (`keys.rs`) and a cold verification (`verify.rs`),
//! to the denylist replica (`replica.rs`) and the origin (`proxy.rs`).
//!
//! ```text
//! canonical path (none: 400) ─▶ route rule (HEAD as GET) ─(auth none)────────────────┐
//!                          │ one token, Bearer or cookie (two: 400; none: 401)       │
//!                          ▼                                                         │
//!         verified-token cache ─(miss)─▶ keys ▶ signature ▶ claims (invalid: 401)    │
//!                          ▼                                                         │
//!         denylist replica fresh? (stale + closed: 503) ─▶ revoked? (401)            │
//!                          ▼                                                         ▼
//!         rule's roles/scopes (403) ─▶ X-Tollgate-Assertion ─▶ origin (identity headers)
//! ```
//!
//! The path is put in its canonical form first ([`crate::path`]): the rules are matched
//! against it and the origin is sent it (with the query as it came), so both see one
//! path. A path already canonical is used as it is, without a copy.
//!
//! Every path returns a response: JavaScript exceptions become 500/502 responses and
//! a log line, never an unhandled rejection. The origin's answer is not awaited here:
//! [`Answer::Forwarded`] hands the runtime the promise of `fetch` itself (see `lib.rs`).

use std::borrow::Cow;
use std::rc::Rc;

use js_sys::Promise;
use tollgate_core::cache::Fingerprint;
use tollgate_core::{Error, Reason};
use wasm_bindgen::JsValue;
use web_sys::Response;

#[cfg(feature = "bench")]
use crate::bench;
use crate::identity::Identity;
use crate::isolate::{self, Isolate};
use crate::path::canonical;
use crate::platform::{describe, log, now_ms};
use crate::proxy::{credential, forward};
use crate::replica::Freshness;
use crate::respond::Reply;
use crate::verify::{kid_is_unknown, verify_cold, Verified};

/// Path of the measurement endpoint (only in a build with the `bench` feature, and
/// with `TOLLGATE_BENCH_ENDPOINT = "on"`).
pub const BENCH_PATH: &str = "/__tollgate/bench";

/// What a request gets: a response of the Worker's own, or the origin's (pending).
#[derive(Debug)]
pub enum Answer {
    /// The Worker answers itself (401, 403, 5xx, the bench endpoint).
    Own(Response),
    /// The promise of the origin's response (a 502 of the Worker's if it rejects).
    Forwarded(Promise),
}

impl Answer {
    /// The value the runtime awaits: a `Response` or a promise of one.
    pub fn into_js(self) -> JsValue {
        match self {
            Answer::Own(resp) => resp.into(),
            Answer::Forwarded(promise) => promise.into(),
        }
    }
}

impl From<Response> for Answer {
    fn from(resp: Response) -> Answer {
        Answer::Own(resp)
    }
}

/// Handles one request.
pub async fn handle(req: &web_sys::Request, env: &worker::Env, ctx: &worker::Context) -> Answer {
    let iso = match isolate::get(env) {
        Ok(iso) => iso,
        Err(_) => return Reply::Misconfigured.response().into(),
    };
    match route(&iso, req, env, ctx).await {
        Ok(answer) => answer,
        Err(e) => {
            log(&format!("tollgate: internal error: {}", describe(&e)));
            Reply::Internal.response().into()
        }
    }
}

async fn route(
    iso: &Rc<Isolate>,
    req: &web_sys::Request,
    env: &worker::Env,
    ctx: &worker::Context,
) -> Result<Answer, JsValue> {
    let head = request_head(req);
    let Some(RequestHead { method, url, authorization, cookie }) = RequestHead::parse(&head) else {
        return Err(JsValue::from_str("request_head: unexpected form"));
    };
    let raw = path_and_query(url);
    let (raw_path, query) = raw.split_at(raw.find('?').unwrap_or(raw.len()));
    let path = match canonical(raw_path, iso.config.allow_double_encoding) {
        Ok(path) => path,
        Err(e) => return Ok(Reply::BadPath(e).response().into()),
    };
    let path_and_query = match &path {
        Cow::Borrowed(_) => Cow::Borrowed(raw),
        Cow::Owned(path) => Cow::Owned(format!("{path}{query}")),
    };
    let (path, path_and_query) = (path.as_ref(), path_and_query.as_ref());
    #[cfg(feature = "bench")]
    if iso.config.bench_endpoint && path == BENCH_PATH {
        return Ok(bench::handle(iso, req, ctx).await.into());
    }
    if iso.config.hub_api && path.starts_with(tollgate_hub::api::PUBLIC_PREFIX) {
        return Ok(Answer::Own(tollgate_hub::api::forward_public(req, env, path).await.into()));
    }
    let rules = iso.config.routes.find(method, path);
    let now = (now_ms() / 1000.0) as i64;
    if rules.open() {
        return Ok(proxied(iso, req, method, path_and_query, &iso.no_identity, now, true).await);
    }
    let token = match credential(authorization, cookie, &iso.config.cookie_name) {
        Ok(Some(token)) => token,
        Ok(None) => return Ok(Reply::MissingToken.response().into()),
        Err(_) => return Ok(Reply::AmbiguousCredentials.response().into()),
    };
    let (verified, fp) = match authenticate(iso, ctx, token, now).await {
        Ok(v) => v,
        Err(reply) => return Ok(reply.response().into()),
    };
    if let Some(replica) = &iso.replica {
        match replica.ensure_fresh(env, ctx).await {
            Freshness::Stale { retry_after } => return Ok(Reply::Stale { retry_after }.response().into()),
            Freshness::Fresh | Freshness::FailOpen => {}
        }
        if replica.is_revoked(&verified.claims) {
            if let Some(fp) = fp {
                iso.tokens.borrow_mut().remove(&fp);
            }
            return Ok(Reply::Invalid(Reason::Revoked).response().into());
        }
    }
    if !rules.allows(&verified.claims) {
        return Ok(Reply::Forbidden(rules.wanted()).response().into());
    }
    Ok(proxied(iso, req, method, path_and_query, &verified.identity, now, false).await)
}

/// The token half: from the verified-token cache when it was verified before
/// (re-checking `exp`/`nbf`), else cold with the current key set (after one JWKS
/// refetch when it names a `kid` no source has). Returns the verification and the
/// token's cache fingerprint (to drop it from the cache should it turn out revoked;
/// `None` while the cache is off). The denylist is checked by the caller after this,
/// on hits and on cold tokens alike, so that an invalid token is a 401 even while the
/// replica is too stale to trust.
async fn authenticate(
    iso: &Isolate,
    ctx: &worker::Context,
    token: &str,
    now: i64,
) -> Result<(Rc<Verified>, Option<Fingerprint>), Reply> {
    follow_keys(iso);
    let fp = iso.tokens.borrow().fingerprint(token);
    let hit = fp.and_then(|fp| iso.tokens.borrow().get(&fp));
    if let (Some(hit), Some(fp)) = (hit, fp) {
        iso.keys.refresh_expired(ctx);
        return match hit.claims.check_time(&iso.config.policy, now) {
            Ok(()) => Ok((hit, Some(fp))),
            Err(e) => {
                iso.tokens.borrow_mut().remove(&fp);
                Err(Reply::Invalid(Error::Claims(e).reason()))
            }
        };
    }
    let (crypto, refuse_refresh) = (iso.config.crypto, iso.config.refuse_refresh_typ);
    let set = iso.keys.current(ctx).await.ok_or(Reply::JwksUnavailable)?;
    let verified = match verify_cold(&set, crypto, refuse_refresh, token, now).await {
        Err(e) if e.reason() == Reason::UnknownKey && kid_is_unknown(&set, token) => {
            if iso.keys.refetch_for_unknown_kid().await {
                let set = iso.keys.current(ctx).await.ok_or(Reply::JwksUnavailable)?;
                verify_cold(&set, crypto, refuse_refresh, token, now).await
            } else {
                Err(e)
            }
        }
        other => other,
    }
    .map_err(|e| Reply::Invalid(e.reason()))?;
    let verified = Rc::new(verified);
    // A verification finished after its key was rotated out is not kept.
    if let Some(fp) = fp.filter(|_| iso.keys.is_current_key(&verified.key)) {
        follow_keys(iso);
        let exp = verified.claims.exp();
        iso.tokens.borrow_mut().insert(fp, Rc::clone(&verified), exp, now);
    }
    Ok((verified, fp))
}

/// Brings the verified-token cache in step with the key store's current set (drops the
/// tokens of keys that went away) when the set changed since the cache last looked.
fn follow_keys(iso: &Isolate) {
    if iso.tokens.borrow().key_generation() == iso.keys.generation() {
        return;
    }
    if let Some(set) = iso.keys.loaded() {
        iso.tokens.borrow_mut().follow(&set);
    }
}

/// Makes the request's assertion and forwards it (`open`: a route that verified
/// nothing, whose credentials are removed).
async fn proxied(
    iso: &Isolate,
    req: &web_sys::Request,
    method: &str,
    path_and_query: &str,
    id: &Identity,
    now: i64,
    open: bool,
) -> Answer {
    let origin = &iso.config.origin;
    let target = format!("{}{path_and_query}", origin.path);
    let assertion = match iso.asserter.assert(method, &target, id, now).await {
        Ok(a) => a,
        Err(e) => {
            log(&format!("tollgate: cannot make X-Tollgate-Assertion: {e}"));
            return Reply::Misconfigured.response().into();
        }
    };
    match forward(req, &origin.base, &iso.config.cookie_name, path_and_query, id, &assertion, open) {
        Ok(promise) => Answer::Forwarded(promise),
        Err(e) => {
            log(&format!("tollgate: origin {} unreachable: {}", origin.base, describe(&e)));
            Reply::BadGateway.response().into()
        }
    }
}

/// What the request path reads of the incoming request, taken from JavaScript in one
/// call (one string) rather than five (`url`, `method`, `headers`, two `get`s).
#[derive(Debug, PartialEq)]
pub struct RequestHead<'a> {
    /// The method.
    pub method: &'a str,
    /// The absolute URL.
    pub url: &'a str,
    /// The `Authorization` header, if present.
    pub authorization: Option<&'a str>,
    /// The `Cookie` header, if present.
    pub cookie: Option<&'a str>,
}

impl<'a> RequestHead<'a> {
    /// Splits `request_head`'s string: two flags, `1` or `0` each (whether
    /// `Authorization`, then `Cookie`, is present), the method, a space, the URL, a
    /// newline, the `Authorization` value, a newline, the `Cookie` value. Neither a
    /// method nor a parsed URL holds a space or a newline, and no header value holds a
    /// newline (the runtime refuses them), so each part is its own. `None` for any
    /// other form.
    pub fn parse(head: &'a str) -> Option<RequestHead<'a>> {
        let flag = |b: Option<&u8>| match b {
            Some(b'1') => Some(true),
            Some(b'0') => Some(false),
            _ => None,
        };
        let has_auth = flag(head.as_bytes().first())?;
        let has_cookie = flag(head.as_bytes().get(1))?;
        let (line, rest) = head[2..].split_once('\n')?;
        let (auth, cookie) = rest.split_once('\n')?;
        if cookie.contains('\n') {
            return None;
        }
        let (method, url) = line.split_once(' ')?;
        Some(RequestHead { method, url, authorization: has_auth.then_some(auth), cookie: has_cookie.then_some(cookie) })
    }
}

#[wasm_bindgen::prelude::wasm_bindgen(inline_js = r#"
export function request_head(req) {
  const h = req.headers;
  const auth = h.get('authorization');
  const cookie = h.get('cookie');
  return `${auth === null ? '0' : '1'}${cookie === null ? '0' : '1'}${req.method} ${req.url}\n${auth ?? ''}\n${cookie ?? ''}`;
}
"#)]
extern "C" {
    /// The method, URL, `Authorization` and `Cookie` headers, as [`RequestHead::parse`]
    /// reads them.
    fn request_head(req: &web_sys::Request) -> String;
}

/// `/path?query` of an absolute URL (`/` when it has no path).
pub fn path_and_query(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => {
            let rest = &url[after_scheme + i..];
            rest.split('#').next().unwrap_or(rest)
        }
        None => "/",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_head_forms() {
        let head = RequestHead::parse("10GET http://h.test/a?b=1\nBearer x y\n");
        assert_eq!(
            head,
            Some(RequestHead {
                method: "GET",
                url: "http://h.test/a?b=1",
                authorization: Some("Bearer x y"),
                cookie: None
            })
        );
        let head = RequestHead::parse("01POST http://h.test/\n\na=1; b=2");
        assert_eq!(
            head,
            Some(RequestHead { method: "POST", url: "http://h.test/", authorization: None, cookie: Some("a=1; b=2") })
        );
        // An empty header is present and empty; a value keeps any space.
        assert_eq!(RequestHead::parse("11GET u\n\n").map(|h| (h.authorization, h.cookie)), Some((Some(""), Some(""))));
        assert_eq!(RequestHead::parse("10GET u\na b c\n").and_then(|h| h.authorization), Some("a b c"));
        for bad in ["", "1", "20GET u\n\n", "10GET u\n", "10GETu\n\n", "10GET u\na\nb\nc", "\u{e9}0GET u\n\n"] {
            assert_eq!(RequestHead::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn path_of_url() {
        assert_eq!(path_and_query("http://127.0.0.1:8787/a/b?x=1#f"), "/a/b?x=1");
        assert_eq!(path_and_query("https://h.test"), "/");
        assert_eq!(path_and_query("https://h.test/"), "/");
    }
}
