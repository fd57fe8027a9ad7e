//! Every error the binding raises, and the one function that turns it into a JS
//! `TollgateError`.
//!
//! A `TollgateError` is a JS `Error` whose `name` is `"TollgateError"`, with a stable
//! `code` and, for token rejections only, the conformance `reason`. The package's JS
//! `TollgateError` class recognises these objects with `instanceof` (it checks the
//! brand rather than the prototype, so errors also cross the ESM/CJS copies).

use core::fmt;

use tollgate_core::{Error, JwksError, PolicyError, Reason, WireError};
use wasm_bindgen::JsValue;

/// Why a call into the binding failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindingError {
    /// The token was rejected; carries the conformance reason.
    Token(Error),
    /// The JWKS document is unusable.
    Jwks(JwksError),
    /// A verifier option is unknown, mistyped or out of range.
    Options(String),
    /// A denylist snapshot or delta was refused.
    Wire(WireError),
    /// An argument has the wrong type or range (`now`, `exp`, ...).
    Argument(&'static str),
}

impl BindingError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            BindingError::Token(e) => match e.reason() {
                Reason::Expired => "TOKEN_EXPIRED",
                Reason::Revoked => "TOKEN_REVOKED",
                _ => "TOKEN_INVALID",
            },
            BindingError::Jwks(_) => "INVALID_JWKS",
            BindingError::Options(_) => "INVALID_OPTIONS",
            BindingError::Wire(w) => match w {
                WireError::Signature => "DENYLIST_SIGNATURE",
                WireError::Backwards { .. } => "DENYLIST_BACKWARDS",
                WireError::Gap { .. } => "DENYLIST_GAP",
                WireError::NoSnapshot => "DENYLIST_NO_SNAPSHOT",
                WireError::Epoch => "DENYLIST_EPOCH",
                WireError::TooOld { .. } => "DENYLIST_TOO_OLD",
                _ => "DENYLIST_MALFORMED",
            },
            BindingError::Argument(_) => "INVALID_ARGUMENT",
        }
    }

    /// The conformance reason, for token rejections only.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            BindingError::Token(e) => Some(e.reason().as_str()),
            _ => None,
        }
    }
}

impl fmt::Display for BindingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindingError::Token(e) => write!(f, "{e}"),
            BindingError::Jwks(e) => write!(f, "{e}"),
            BindingError::Options(m) => write!(f, "invalid verifier options: {m}"),
            BindingError::Wire(e) => write!(f, "{e}"),
            BindingError::Argument(m) => f.write_str(m),
        }
    }
}

impl From<Error> for BindingError {
    fn from(e: Error) -> Self {
        BindingError::Token(e)
    }
}

impl From<JwksError> for BindingError {
    fn from(e: JwksError) -> Self {
        BindingError::Jwks(e)
    }
}

impl From<WireError> for BindingError {
    fn from(e: WireError) -> Self {
        BindingError::Wire(e)
    }
}

impl From<PolicyError> for BindingError {
    fn from(e: PolicyError) -> Self {
        BindingError::Options(e.to_string())
    }
}

/// The one mapping from binding (and so `core`) errors to JS: a `TollgateError`.
impl From<BindingError> for JsValue {
    fn from(e: BindingError) -> JsValue {
        let err = js_sys::Error::new(&e.to_string());
        err.set_name("TollgateError");
        // Setting a data property on a fresh Error object cannot fail.
        let _ = js_sys::Reflect::set(&err, &JsValue::from_str("code"), &JsValue::from_str(e.code()));
        if let Some(reason) = e.reason() {
            let _ = js_sys::Reflect::set(&err, &JsValue::from_str("reason"), &JsValue::from_str(reason));
        }
        err.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_core::error::{ClaimsError, DenylistError, SignatureError};

    #[test]
    fn codes_and_reasons() {
        let expired = BindingError::Token(Error::Claims(ClaimsError::Expired));
        assert_eq!((expired.code(), expired.reason()), ("TOKEN_EXPIRED", Some("expired")));
        let revoked = BindingError::Token(Error::Denylist(DenylistError::Revoked));
        assert_eq!((revoked.code(), revoked.reason()), ("TOKEN_REVOKED", Some("revoked")));
        let sig = BindingError::Token(Error::Signature(SignatureError::Invalid));
        assert_eq!((sig.code(), sig.reason()), ("TOKEN_INVALID", Some("invalid_signature")));
        assert_eq!(sig.to_string(), "signature does not verify");
        let gap = BindingError::Wire(WireError::Gap { current: 1, from: 3 });
        assert_eq!((gap.code(), gap.reason()), ("DENYLIST_GAP", None));
        assert_eq!(BindingError::Wire(WireError::Epoch).code(), "DENYLIST_EPOCH");
        assert_eq!(BindingError::Wire(WireError::TooOld { created: 1, now: 20 }).code(), "DENYLIST_TOO_OLD");
        assert_eq!(BindingError::Jwks(JwksError::NoKeys).code(), "INVALID_JWKS");
        assert_eq!(BindingError::from(PolicyError::Limit("x")).code(), "INVALID_OPTIONS");
    }
}
