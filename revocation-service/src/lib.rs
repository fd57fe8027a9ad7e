//! # tollgate-revocation
//!
//! The event-sourced revocation service. Origin services post revocation events;
//! the service appends them to a durable sled log, folds them into the denylist, runs
//! refresh-token rotation with reuse detection, and serves the denylist to edge
//! replicas as signed snapshots and long-polled deltas (the `tollgate-core` wire
//! format).
//!
//! ```text
//! HTTP (api/) ──Request──▶ writer: one sled transaction + one flush per group
//!                            │ (log, idempotency, families, family_tokens)
//!                            ▼ after the flush
//!                          state: Denylist + identifiers ──▶ snapshots, deltas
//! ```
//!
//! Where to look: the event model and log record format in `event.rs`, group commit
//! in `writer.rs`, rotation and reuse in `family.rs`, the sled layout in `store.rs`,
//! start-up rebuild, checkpoints and retention in `checkpoint.rs`, the state shared by
//! the handlers and the start-up code in `context.rs`, the HTTP API in `api.rs` and
//! `api/`, connections and their timeouts and caps in `server.rs`, the service's life
//! cycle in `service.rs`, API keys in `apikeys.rs`,
//! configuration in `config.rs`.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod api;
pub mod apikeys;
mod checkpoint;
pub mod clock;
pub mod config;
mod context;
mod error;
mod event;
mod family;
mod limits;
mod metrics;
mod projection;
mod server;
mod service;
mod state;
mod store;
mod writer;

pub use apikeys::{Issuers, Scope};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::Config;
pub use service::{App, ServiceError};
