//! Hibernatable WebSocket push (not built yet: `GET ws` answers 501).

use worker::{Request, Response, Result, WebSocket, WebSocketIncomingMessage};

use crate::config::Mode;
use crate::object::{error, RevocationHub};
use crate::store::Store;

/// `GET ws`.
pub fn accept(_hub: &RevocationHub, _req: &Request, _tenant: &str, _store: &Store, _mode: &Mode) -> Result<Response> {
    error(501, "not_implemented", "WebSocket push is not available in this build")
}

/// Sends what landed to the subscribers.
pub fn broadcast(_hub: &RevocationHub, _store: &Store) {}

/// A subscriber's message (its acknowledgement).
pub fn on_message(_hub: &RevocationHub, _ws: WebSocket, _message: WebSocketIncomingMessage) {}
