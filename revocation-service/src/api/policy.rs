//! What a key may post: its issuer scope, bounded times, its rate and its quota of
//! live entries.
//!
//! - **Issuers.** An event for an issuer outside the key's scope is 403
//!   `forbidden_issuer`. An event without `iss` would revoke the identifier for every
//!   issuer, so only a key scoped to every issuer (`--all-issuers`, asked for by name)
//!   may post one as it is; from a key with exactly one issuer it is scoped to that
//!   issuer; from a key with several it is refused (422, `iss` required). A key
//!   without an issuer scope (an older key file's) writes nothing (403
//!   `issuer_scope_missing`).
//! - **Times.** `exp` and `before` must lie between 2000-01-01 and
//!   `max_expiry_ahead_secs` ahead of now, in seconds (400 `bad_expiry`; a value in
//!   milliseconds is named as such), so no entry outlives compaction for ever.
//! - **Rate and quota.** 429 `rate_limited` beyond the key's token bucket, 429
//!   `quota_exceeded` when the key's live entries plus the new ones would pass
//!   `key_max_live_entries`; both with `Retry-After`.

use axum::http::StatusCode;

use crate::apikeys::{Issuers, Principal};
use crate::context::Context;
use crate::error::ApiError;

/// 2000-01-01T00:00:00Z: no `exp` or `before` before it is meaningful.
const EPOCH_2000: u64 = 946_684_800;
/// A time in seconds above this (year 5138) is taken for milliseconds.
const SURELY_MS: u64 = 100_000_000_000;

/// Checks a time field (`exp`, `before`) against the bounds (see the module docs).
pub(crate) fn check_time(field: &str, v: u64, now: u64, max_ahead: u64) -> Result<(), ApiError> {
    let bad = |d: String| Err(ApiError::bad_request("bad_expiry", d));
    if v < EPOCH_2000 {
        return bad(format!("{field}: {v} is before 2000-01-01 (seconds since the epoch expected)"));
    }
    if v > now.saturating_add(max_ahead) {
        if v > SURELY_MS {
            return bad(format!("{field}: {v} looks like milliseconds; send seconds since the epoch"));
        }
        return bad(format!("{field}: {v} is more than {max_ahead} s ahead of now ({now})"));
    }
    Ok(())
}

/// Applies the key's issuer scope to an event's `iss` (filling it for a key with one
/// issuer); `path` names the event in errors.
pub(crate) fn scope_issuer(who: &Principal, iss: &mut Option<String>, path: &str) -> Result<(), ApiError> {
    let field = if path.is_empty() { "iss".to_string() } else { format!("{path}.iss") };
    match (&who.issuers, iss.as_deref()) {
        (Issuers::Any, _) => Ok(()),
        (Issuers::None, _) => Err(ApiError::forbidden(
            "issuer_scope_missing",
            "this key has no issuer scope and may write no events; create one with --issuer or --all-issuers",
        )),
        (Issuers::Only(list), Some(i)) if list.iter().any(|x| x == i) => Ok(()),
        (Issuers::Only(_), Some(i)) => {
            Err(ApiError::forbidden("forbidden_issuer", format!("{field}: this key may not write events for {i:?}")))
        }
        (Issuers::Only(list), None) if list.len() == 1 => {
            *iss = list.first().cloned();
            Ok(())
        }
        (Issuers::Only(_), None) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_event",
            format!("{field}: required: this key may write for several issuers"),
        )),
    }
}

/// Charges `events` to the key's rate limit, after checking that `new_entries` more
/// live entries stay within its quota.
pub(crate) fn admit(st: &Context, who: &Principal, events: u64, new_entries: u64) -> Result<(), ApiError> {
    let max = st.config.key_max_live_entries;
    let live = st.shared.read().ids.live_of(&who.id);
    if live.saturating_add(new_entries) > max {
        st.shared.metrics.quota_exceeded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return Err(ApiError::too_many(
            "quota_exceeded",
            format!("this key has {live} live denylist entries; at most {max} (entries leave when they expire)"),
            st.config.prune_interval_secs,
        ));
    }
    st.limiter.take(&who.id, events, st.clock.now_ms()).map_err(|secs| {
        st.shared.metrics.rate_limited.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if secs == u64::MAX {
            ApiError::too_many(
                "rate_limited",
                format!("{events} events exceed this key's burst of {}", st.limiter.burst()),
                60,
            )
        } else {
            ApiError::too_many(
                "rate_limited",
                format!("this key may post {} events a second (burst {})", st.limiter.rate(), st.limiter.burst()),
                secs,
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_bounded() {
        let now = 1_767_225_600;
        let ahead = 30 * 86_400;
        assert!(check_time("exp", now + ahead, now, ahead).is_ok());
        assert!(check_time("exp", EPOCH_2000, now, ahead).is_ok());
        for (v, says) in [
            (now + ahead + 1, "ahead"),
            (EPOCH_2000 - 1, "2000-01-01"),
            (0, "2000-01-01"),
            (now * 1000, "milliseconds"),
        ] {
            let e = check_time("exp", v, now, ahead).unwrap_err();
            assert_eq!((e.status, e.kind), (StatusCode::BAD_REQUEST, "bad_expiry"));
            assert!(e.detail.contains(says), "{v}: {}", e.detail);
        }
    }

    #[test]
    fn issuer_scopes() {
        let p = |issuers| Principal { id: "k".into(), scopes: vec![], issuers };
        let one = p(Issuers::Only(vec!["a".into()]));
        let two = p(Issuers::Only(vec!["a".into(), "b".into()]));
        let mut iss = None;
        scope_issuer(&one, &mut iss, "").unwrap();
        assert_eq!(iss.as_deref(), Some("a"), "one issuer: an event without iss is scoped to it");
        let mut iss = None;
        assert_eq!(scope_issuer(&two, &mut iss, "events[1]").unwrap_err().status, StatusCode::UNPROCESSABLE_ENTITY);
        let mut iss = Some("c".to_string());
        let e = scope_issuer(&two, &mut iss, "").unwrap_err();
        assert_eq!((e.status, e.kind), (StatusCode::FORBIDDEN, "forbidden_issuer"));
        let mut iss = None;
        scope_issuer(&p(Issuers::Any), &mut iss, "").unwrap();
        assert_eq!(iss, None, "only an all-issuers key posts an unscoped entry");
        let e = scope_issuer(&p(Issuers::None), &mut Some("a".to_string()), "").unwrap_err();
        assert_eq!(e.kind, "issuer_scope_missing");
        assert!(two.issuers.covers(Some("b")) && !two.issuers.covers(None) && !two.issuers.covers(Some("c")));
        assert!(Issuers::Any.covers(None) && !Issuers::None.covers(Some("a")));
    }
}
