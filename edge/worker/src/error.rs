//! The Worker's errors: configuration problems (fail closed: 500 on protected routes)
//! and I/O problems talking to JWKS hosts or the revocation service (logged; the last
//! good state is kept).

use std::fmt;

/// A configuration variable is missing or invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A required variable is not set.
    Missing(&'static str),
    /// A variable is set but cannot be used; the string says why.
    Invalid(&'static str, String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Missing(name) => write!(f, "{name} is not set"),
            ConfigError::Invalid(name, why) => write!(f, "{name} is invalid: {why}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A fetch from a JWKS host or the revocation service failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// The request could not be made or the connection failed.
    Network(String),
    /// No answer within the time allowed.
    Timeout,
    /// An answer with an unexpected status.
    Status(u16),
    /// An answer whose body could not be used (bad JSON, bad signature, ...).
    Body(String),
    /// A redirect that is not followed (to another host, or too many).
    Redirect(String),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Network(e) => write!(f, "network error: {e}"),
            FetchError::Timeout => f.write_str("timed out"),
            FetchError::Status(s) => write!(f, "unexpected status {s}"),
            FetchError::Body(e) => write!(f, "unusable body: {e}"),
            FetchError::Redirect(to) => write!(f, "redirect to {to} not followed (another host, or too many)"),
        }
    }
}

impl std::error::Error for FetchError {}
