//! `tollgate-auth`: the login service on Tollgate.
//!
//! Accounts with Argon2id passwords, ES256 access tokens and rotating refresh tokens
//! issued through `tollgate-origin`, sessions that are refresh families at the
//! revocation service (so logout and reuse detection reach the edge within a second),
//! cookies with CSRF defence, GCRA rate limits, SQLite or PostgreSQL through one code
//! path. `auth/README.md` is the reference; [`app::router`] is the HTTP surface.

pub mod app;
pub mod client_ip;
pub mod clock;
pub mod config;
pub mod cookies;
pub mod csrf;
pub mod error;
pub mod identity;
pub mod metrics;
pub mod page;
pub mod password;
pub mod ratelimit;
pub mod revocation;
pub mod routes;
pub mod seal;
pub mod sessions;
pub mod social;
pub mod store;
pub mod tokens;
