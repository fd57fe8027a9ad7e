//! Integration tests of the login service over real sockets: the service in process
//! on 127.0.0.1:0 (so its clock can be injected), the real `tollgate-revocation`
//! binary beside it, and a real database — SQLite in a temp directory, and PostgreSQL
//! when `TOLLGATE_AUTH_TEST_PG_URL` names one (`auth/test.sh` starts it; with
//! `TOLLGATE_AUTH_REQUIRE_PG=1` a missing PostgreSQL fails the run instead of skipping).
//! Every case runs on both engines.

#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod integration {
    pub mod harness;

    mod accounts;
    mod admin;
    mod edge;
    mod ops;
    mod ratelimit;
    mod sessions;
}
