//! Log mode: the hub is the event log (not built yet: its API answers 501). Relay mode
//! serves what it stored.

use worker::{Request, Response, Result};

use crate::config::Mode;
use crate::object::{error, RevocationHub};
use crate::store::{Since, Store};

/// The snapshot to serve.
pub fn snapshot(_hub: &RevocationHub, store: &Store, _mode: &Mode) -> std::result::Result<Option<Vec<u8>>, String> {
    store.snapshot().map_err(|e| e.to_string())
}

/// The deltas after `n`.
pub fn since(_hub: &RevocationHub, store: &Store, _mode: &Mode, n: u64) -> std::result::Result<Since, String> {
    store.since(n).map_err(|e| e.to_string())
}

/// `/v1/...` in log mode.
pub async fn serve(_hub: &RevocationHub, _req: Request, _tenant: &str, _store: &Store, _op: &str) -> Result<Response> {
    error(501, "not_implemented", "log mode is not available in this build")
}
