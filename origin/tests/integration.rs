//! `tollgate-origin` against real components: the `tollgate-revocation` binary on a
//! loopback port (started per test on a fresh data directory), a loopback TCP proxy
//! that drops answers, and `tollgate-core` verifying what the crate issues.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub, missing_docs)]

mod integration {
    #[cfg(feature = "axum")]
    pub mod assertion;
    pub mod client;
    pub mod harness;
    pub mod refresh;
}
