//! # tollgate-hub
//!
//! `RevocationHub`, a SQLite-backed Durable Object holding one tenant shard's signed
//! denylist (the snapshot and the recent deltas, in `tollgate_core::wire`'s format,
//! unchanged: the hub is not trusted, edges verify the service's signature) and
//! serving it to edge isolates (`head`, `since/N`, `snapshot`).
//!
//! The crate is a library the Worker crate (`edge/worker`) links, so one Worker script
//! exports both the fetch handler and the object's class (`RevocationHub`), and the
//! Worker calls its hubs through the `TOLLGATE_HUB` binding. See README.md.
//!
//! - [`wire`]: the headers the hub reads, and the framing of `since/N`.
//! - [`store`]: the SQLite tables.
//! - [`object`]: the Durable Object and its routes.
//! - [`relay`]: relay mode's upstream long-poll (alarm-driven).
//! - [`log`]: log mode.
//! - [`push`]: WebSocket push.
//! - [`api`]: the Worker's side: calls through the binding, the public API.
//! - [`config`], [`keys`]: variables and API keys.

#![forbid(unsafe_code)]

pub mod api;
pub mod config;
pub mod keys;
pub mod limits;
pub mod log;
pub mod object;
pub mod push;
pub mod relay;
pub mod store;
pub mod wire;

pub use object::RevocationHub;
