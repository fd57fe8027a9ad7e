//! `tollgate-auth`: the login service binary (its commands are wired in `app`).

fn main() {}
