//! Integration tests of the login service over real sockets (filled in below).
