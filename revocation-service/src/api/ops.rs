//! Health, readiness, metrics, and the operator (admin) endpoints.

use std::sync::atomic::Ordering;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::request::{authorize, parse_query};
use crate::apikeys::Scope;
use crate::checkpoint;
use crate::context::AppState;
use crate::error::ApiError;
use crate::event::Record;
use crate::metrics::Gauges;
use crate::store::{decode_seq, seq_key};

pub(super) async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub(super) async fn readyz(State(st): State<AppState>) -> Response {
    let head = st.shared.head();
    if !st.shared.writable.load(Ordering::SeqCst) {
        return ApiError::unavailable("not_writable", "an earlier write failed to reach disk").into_response();
    }
    if *st.draining.borrow() {
        return ApiError::unavailable("shutting_down", "the service is shutting down").into_response();
    }
    Json(json!({"status": "ready", "seq": head})).into_response()
}

/// `GET /metrics`: Prometheus text; needs a `metrics:read` key unless
/// `metrics_require_key` is off.
pub(super) async fn metrics(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if st.config.metrics_require_key {
        authorize(&st, &headers, Scope::MetricsRead)?;
    }
    let text = {
        let live = st.shared.read();
        let g = Gauges {
            counts: live.counts(),
            head: st.shared.head(),
            floor: st.shared.floor.load(Ordering::SeqCst),
            conn: &st.conn,
            key_limits: (st.limiter.rate(), st.limiter.burst(), st.config.key_max_live_entries),
            live_per_key: live.ids.live_per_key(),
        };
        st.shared.metrics.render(&g)
    };
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

/// `GET /v1/admin/log?from=N&limit=M`: stored records from seq N (at most 1000).
pub(super) async fn log(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    authorize(&st, &headers, Scope::Admin)?;
    let p = parse_query(q.as_deref(), &["from", "limit"])?;
    let from = p[0].unwrap_or(1);
    let limit = p[1].unwrap_or(100).min(1000) as usize;
    let head = st.shared.head();
    let inner = st.clone();
    let records = tokio::task::spawn_blocking(move || -> Result<Vec<Value>, ApiError> {
        let mut out = Vec::new();
        for item in inner.store.log.range(seq_key(from)..=seq_key(head)).take(limit) {
            let (k, v) = item.map_err(ApiError::internal)?;
            let seq = decode_seq(&k).ok_or_else(|| ApiError::internal("bad log key"))?;
            out.push(
                Record::decode(seq, &v).map_err(|_| ApiError::internal(format!("corrupt record {seq}")))?.to_json(),
            );
        }
        Ok(out)
    })
    .await
    .map_err(ApiError::internal)??;
    let floor = st.shared.floor.load(Ordering::SeqCst);
    Ok(Json(json!({"head": head, "floor": floor, "records": records})).into_response())
}

fn write_checkpoint(st: &AppState) -> Result<u64, ApiError> {
    let (seq, bytes) = checkpoint::capture(&st.shared.read());
    checkpoint::write(&st.config.data_dir, seq, &bytes).map_err(ApiError::internal)
}

/// Takes the maintenance lock for a checkpoint or compaction, or 409 while one runs.
fn maintenance(st: &AppState) -> Result<tokio::sync::OwnedMutexGuard<()>, ApiError> {
    st.maintenance.clone().try_lock_owned().map_err(|_| {
        ApiError::new(
            StatusCode::CONFLICT,
            "maintenance_running",
            "a checkpoint or compaction is already running; retry once it has finished",
        )
    })
}

/// `POST /v1/admin/checkpoint`.
pub(super) async fn checkpoint(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize(&st, &headers, Scope::Admin)?;
    let lock = maintenance(&st)?;
    let inner = st.clone();
    // The lock moves into the blocking task: it is held until the work is done, even
    // if this request times out meanwhile.
    let seq = tokio::task::spawn_blocking(move || {
        let _lock = lock;
        write_checkpoint(&inner)
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(Json(json!({"checkpoint": seq})).into_response())
}

/// `POST /v1/admin/compact`: checkpoint, then retention (see `checkpoint::compact`).
pub(super) async fn compact(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize(&st, &headers, Scope::Admin)?;
    let lock = maintenance(&st)?;
    let inner = st.clone();
    let c = tokio::task::spawn_blocking(move || {
        let _lock = lock;
        let seq = write_checkpoint(&inner)?;
        let now = inner.clock.now_secs();
        let on_floor = |f: u64| {
            inner.shared.floor.fetch_max(f, Ordering::SeqCst);
        };
        let c = &inner.config;
        checkpoint::compact(&inner.store, seq, now, c.max_token_lifetime_secs, c.edge_leeway_secs, &on_floor)
            .map_err(ApiError::internal)
    })
    .await
    .map_err(ApiError::internal)??;
    Ok((
        StatusCode::OK,
        Json(json!({
            "checkpoint": c.checkpoint,
            "floor": c.floor,
            "dropped_events": c.dropped_events,
            "dropped_families": c.dropped_families,
        })),
    )
        .into_response())
}
