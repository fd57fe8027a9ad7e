//! Integration tests of the revocation service over real sockets on 127.0.0.1 and a
//! real sled database on disk: every endpoint and error path, refresh rotation and
//! reuse detection, replication, restart recovery, a kill -9 crash test of the real
//! binary, and property tests that no request body gets a 5xx.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, unreachable_pub)]

mod integration {
    pub mod harness;

    mod api;
    mod bodies;
    mod crash;
    mod refresh;
    mod replication;
    mod security;
    mod slow;
    mod upgrade;
}
