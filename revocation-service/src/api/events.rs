//! `POST /v1/events`, `POST /v1/sessions`, `POST /v1/refresh/rotate`.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::policy::{admit, check_time, scope_issuer};
use super::request::{authorize, read_json};
use crate::apikeys::{Principal, Scope};
use crate::context::AppState;
use crate::error::ApiError;
use crate::event::{id_str, only_fields, required_str, required_u64, EventKind, NewEvent, MAX_ID_BYTES};
use crate::writer::{Reply, Request, Rotate};

/// Kinds `POST /v1/events` takes; `session_start` and `rotation` go through the
/// endpoints that keep the refresh families consistent.
const EVENT_KINDS: [EventKind; 4] =
    [EventKind::RevokeToken, EventKind::Logout, EventKind::RevokeSubject, EventKind::ReuseDetected];

/// Applies the key's issuer scope and the time bounds to each event (named by its
/// path in errors).
fn vet(st: &AppState, who: &Principal, events: &mut [NewEvent], batch: bool) -> Result<(), ApiError> {
    let now = st.clock.now_secs();
    let ahead = st.config.max_expiry_ahead_secs;
    for (i, e) in events.iter_mut().enumerate() {
        let path = if batch { format!("events[{i}]") } else { String::new() };
        let at = |f: &str| if path.is_empty() { f.to_string() } else { format!("{path}.{f}") };
        check_time(&at("exp"), e.exp, now, ahead)?;
        if e.kind == EventKind::RevokeSubject {
            check_time(&at("before"), e.before, now, ahead)?;
        }
        scope_issuer(who, &mut e.iss, &path)?;
    }
    Ok(())
}

fn parse_events(v: &Value, max: usize) -> Result<Vec<NewEvent>, ApiError> {
    match v {
        Value::Object(o) if o.contains_key("events") && !o.contains_key("kind") => {
            only_fields(o, "", &["events"]).map_err(ApiError::invalid)?;
            let Some(arr) = o.get("events").and_then(Value::as_array) else {
                return Err(ApiError::invalid("events: expected an array"));
            };
            if arr.is_empty() {
                return Err(ApiError::invalid("events: must not be empty"));
            }
            if arr.len() > max {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_many_events",
                    format!("events: {} events, at most {max} per request", arr.len()),
                ));
            }
            arr.iter()
                .enumerate()
                .map(|(i, e)| NewEvent::from_json(e, &format!("events[{i}]"), &EVENT_KINDS).map_err(ApiError::invalid))
                .collect()
        }
        _ => Ok(vec![NewEvent::from_json(v, "", &EVENT_KINDS).map_err(ApiError::invalid)?]),
    }
}

fn body_deadline(st: &AppState) -> std::time::Duration {
    std::time::Duration::from_millis(st.config.body_timeout_ms)
}

fn unexpected(r: Reply) -> ApiError {
    match r {
        Reply::Rejected(e) => e,
        other => ApiError::internal(format!("unexpected writer reply {other:?}")),
    }
}

pub(super) async fn post_events(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let who = authorize(&st, &headers, Scope::EventsWrite)?;
    let v = read_json(body, st.config.max_body_bytes, body_deadline(&st)).await?;
    let batch = v.as_object().is_some_and(|o| o.contains_key("events") && !o.contains_key("kind"));
    let mut events = parse_events(&v, st.config.max_events_per_request)?;
    vet(&st, &who, &mut events, batch)?;
    let n = events.len() as u64;
    admit(&st, &who, n, n)?;
    match st.writer.submit(Request::Append { key_id: who.id, events }).await? {
        Reply::Accepted(acc) => {
            let accepted: Vec<Value> =
                acc.iter().map(|a| json!({"seq": a.seq, "kind": a.kind.as_str(), "duplicate": a.duplicate})).collect();
            Ok(Json(json!({ "accepted": accepted })).into_response())
        }
        other => Err(unexpected(other)),
    }
}

pub(super) async fn post_session(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let who = authorize(&st, &headers, Scope::EventsWrite)?;
    let v = read_json(body, st.config.max_body_bytes, body_deadline(&st)).await?;
    let obj = v.as_object().ok_or_else(|| ApiError::invalid("$: expected an object"))?;
    only_fields(obj, "", &["sid", "sub", "refresh_jti", "exp", "iss"]).map_err(ApiError::invalid)?;
    let mut event = NewEvent::fields(obj, "", EventKind::SessionStart).map_err(ApiError::invalid)?;
    vet(&st, &who, std::slice::from_mut(&mut event), false)?;
    admit(&st, &who, 1, 0)?;
    match st.writer.submit(Request::StartSession { key_id: who.id, event }).await? {
        Reply::Session { seq, duplicate } => {
            let status = if duplicate { StatusCode::OK } else { StatusCode::CREATED };
            Ok((status, Json(json!({"status": "started", "seq": seq, "duplicate": duplicate}))).into_response())
        }
        other => Err(unexpected(other)),
    }
}

pub(super) async fn rotate(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let who = authorize(&st, &headers, Scope::EventsWrite)?;
    let v = read_json(body, st.config.max_body_bytes, body_deadline(&st)).await?;
    let obj = v.as_object().ok_or_else(|| ApiError::invalid("$: expected an object"))?;
    only_fields(obj, "", &["sid", "presented_jti", "next_jti", "exp", "iss"]).map_err(ApiError::invalid)?;
    let mut rotate = Rotate {
        sid: required_str(obj, "", "sid").map_err(ApiError::invalid)?,
        presented_jti: required_str(obj, "", "presented_jti").map_err(ApiError::invalid)?,
        next_jti: required_str(obj, "", "next_jti").map_err(ApiError::invalid)?,
        exp: required_u64(obj, "", "exp").map_err(ApiError::invalid)?,
        iss: id_str(obj, "", "iss", MAX_ID_BYTES).map_err(ApiError::invalid)?,
    };
    check_time("exp", rotate.exp, st.clock.now_secs(), st.config.max_expiry_ahead_secs)?;
    scope_issuer(&who, &mut rotate.iss, "")?;
    admit(&st, &who, 1, 0)?;
    let issuers = who.issuers.clone();
    match st.writer.submit(Request::Rotate { key_id: who.id, rotate, issuers }).await? {
        Reply::Rotated { seq, duplicate, grace } => {
            Ok(Json(json!({"status": "rotated", "seq": seq, "duplicate": duplicate, "grace": grace})).into_response())
        }
        Reply::Reuse { seq } => Err(ApiError::new(
            StatusCode::CONFLICT,
            "reuse_detected",
            "an earlier refresh token of this session was presented; the whole session is revoked",
        )
        .with("seq", json!(seq))),
        other => Err(unexpected(other)),
    }
}
