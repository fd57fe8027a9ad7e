//! The Worker's side of the hub: calls to the object through its binding, and the
//! public API the Worker forwards (`/__tollgate/hub/{tenant}/...`, with
//! `TOLLGATE_HUB_API = "on"`).

use worker::{Env, Request, Response};

use crate::object::VIA_PUBLIC;

/// The Durable Object binding (`[[durable_objects.bindings]]` in wrangler.toml).
pub const BINDING: &str = "TOLLGATE_HUB";
/// Where the Worker serves the public API: `{PUBLIC_PREFIX}{tenant}/{op}`.
pub const PUBLIC_PREFIX: &str = "/__tollgate/hub/";

/// An answer from the hub.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: Vec<u8>,
}

/// `GET {op}` on the hub of `tenant` (op: `head`, `since/N`, `snapshot`).
pub async fn get(env: &Env, tenant: &str, op: &str) -> Result<Answer, String> {
    let stub = env.durable_object(BINDING).and_then(|ns| ns.get_by_name(tenant)).map_err(|e| e.to_string())?;
    let mut resp =
        stub.fetch_with_str(&format!("https://hub.invalid/{tenant}/{op}")).await.map_err(|e| e.to_string())?;
    let status = resp.status_code();
    let body = resp.bytes().await.map_err(|e| e.to_string())?;
    Ok(Answer { status, body })
}

/// Forwards a public request (`path` starts with [`PUBLIC_PREFIX`]) to its tenant's
/// hub, marked so that the hub wants an API key for it.
pub async fn forward_public(req: &web_sys::Request, env: &Env, path: &str) -> Response {
    let rest = &path[PUBLIC_PREFIX.len()..];
    let tenant = rest.split('/').next().unwrap_or("");
    if !crate::config::valid_tenant(tenant) {
        return crate::object::error(404, "not_found", "no such tenant").unwrap_or_else(|_| fallback());
    }
    let out = async {
        let copy = web_sys::Request::new_with_request(req).map_err(|e| worker::Error::JsError(format!("{e:?}")))?;
        copy.headers().set(VIA_PUBLIC, "public").map_err(|e| worker::Error::JsError(format!("{e:?}")))?;
        let stub = env.durable_object(BINDING)?.get_by_name(tenant)?;
        stub.fetch_with_request(Request::from(copy)).await
    };
    match out.await {
        Ok(r) => r,
        Err(e) => {
            worker::console_log!("tollgate-hub: forwarding to the hub of {tenant} failed: {e}");
            crate::object::error(503, "hub_unavailable", "the hub did not answer").unwrap_or_else(|_| fallback())
        }
    }
}

fn fallback() -> Response {
    Response::empty().map(|r| r.with_status(503)).unwrap_or_else(|_| unreachable_response())
}

fn unreachable_response() -> Response {
    Response::from(web_sys::Response::error())
}
