//! Refresh-token families: rotation and reuse detection.
//!
//! A family is one login session (`sid`). It has exactly one *current* refresh token;
//! rotating presents it and names its successor. Every token the family has had is
//! remembered (in the `family_tokens` tree), so presenting an *earlier* token is
//! recognised as reuse — the signature of a stolen refresh token — and revokes the
//! whole family at once. [`decide`] is the pure decision; the writer applies it inside
//! the transaction that appends the resulting event, so concurrent rotations of the
//! same token are serialised and exactly one wins.

/// The stored state of a refresh family (the `families` tree, keyed by `sid`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Family {
    pub(crate) sub: String,
    pub(crate) iss: Option<String>,
    /// The first refresh token (to recognise a retried `POST /v1/sessions`).
    pub(crate) first_jti: String,
    pub(crate) current: String,
    /// The token `current` replaced, if any.
    pub(crate) previous: Option<String>,
    /// Sequence number of the `session_start` event.
    pub(crate) start_seq: u64,
    /// Sequence number of the last rotation (or of the start).
    pub(crate) last_seq: u64,
    /// When `previous` stopped being current: the receive time of the last rotation
    /// that was not a grace use (or of the start), milliseconds. The grace window runs
    /// from here; grace rotations leave it alone, so they cannot extend the window.
    pub(crate) superseded_ms: u64,
    /// The latest `exp` the family was given: no token of it outlives this.
    pub(crate) exp: u64,
    /// Sequence number of the event that revoked the family (logout or reuse).
    pub(crate) revoked_seq: Option<u64>,
}

/// What a rotation request leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Record the rotation; `grace` when the immediate predecessor was presented
    /// within the grace window.
    Rotate { grace: bool },
    /// The same rotation was already recorded (a request retried within the retry
    /// window): reply with its seq.
    AlreadyRotated { seq: u64 },
    /// An earlier token was presented: append `reuse_detected`, revoking the family.
    Reuse,
    /// An earlier token of an already revoked family: reuse again, nothing appended.
    ReuseAgain,
    /// The family was revoked (logout or reuse) and the current token was presented.
    Revoked,
    /// `next_jti` is already a token of this family.
    NextInUse,
    /// The token was never part of this family.
    UnknownToken,
}

/// Decides a rotation. `is_earlier(jti)` says whether `jti` was ever a superseded
/// token of the family; `grace_ms` is the reuse interval (0 = off); `retry_ms` is how
/// long after the predecessor was replaced a repeat of that rotation (same presented
/// and next token) is a retry. Later, the predecessor presented again is reuse, as any
/// earlier token is: a captured request replayed after the window revokes the family.
#[allow(clippy::too_many_arguments)]
pub(crate) fn decide(
    f: &Family,
    presented: &str,
    next: &str,
    is_earlier: &dyn Fn(&str) -> bool,
    now_ms: u64,
    grace_ms: u64,
    retry_ms: u64,
) -> Decision {
    let presented_earlier = presented != f.current && is_earlier(presented);
    if f.revoked_seq.is_some() {
        return if presented_earlier { Decision::ReuseAgain } else { Decision::Revoked };
    }
    let retry = f.previous.as_deref() == Some(presented) && next == f.current;
    if retry && now_ms.saturating_sub(f.superseded_ms) <= retry_ms {
        return Decision::AlreadyRotated { seq: f.last_seq };
    }
    let next_in_use = next == f.current || next == presented || is_earlier(next);
    if presented == f.current {
        return if next_in_use { Decision::NextInUse } else { Decision::Rotate { grace: false } };
    }
    if !presented_earlier {
        return Decision::UnknownToken;
    }
    // Only the immediate predecessor, and only within `grace_ms` of its replacement;
    // inside that window it may be presented more than once (see the README).
    let in_grace =
        grace_ms > 0 && f.previous.as_deref() == Some(presented) && now_ms.saturating_sub(f.superseded_ms) <= grace_ms;
    match (in_grace, next_in_use) {
        (true, false) => Decision::Rotate { grace: true },
        (true, true) => Decision::NextInUse,
        (false, _) => Decision::Reuse,
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let b = &s.as_bytes()[..s.len().min(usize::from(u16::MAX))];
    out.extend_from_slice(&(b.len() as u16).to_le_bytes());
    out.extend_from_slice(b);
}

/// A stored family that cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CorruptFamily;

impl Family {
    /// Stored form: `version u8 | flags u8 (1 iss, 2 previous, 4 revoked) | start_seq u64
    /// | last_seq u64 | superseded_ms u64 | exp u64 | [revoked_seq u64] | sub | first_jti
    /// | current | [previous] | [iss]`, strings as `len u16 | bytes`, little-endian.
    ///
    /// `superseded_ms` sits where builds before it kept `rotated_ms` (the time of the
    /// last rotation of any kind): same bytes, so records of either build decode. An
    /// old record written by a grace rotation holds that rotation's time, which can
    /// give its predecessor at most one more window after an upgrade.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.sub.len() + 3 * self.current.len());
        out.push(1);
        out.push(
            u8::from(self.iss.is_some())
                | (u8::from(self.previous.is_some()) << 1)
                | (u8::from(self.revoked_seq.is_some()) << 2),
        );
        for v in [self.start_seq, self.last_seq, self.superseded_ms, self.exp] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        if let Some(r) = self.revoked_seq {
            out.extend_from_slice(&r.to_le_bytes());
        }
        for s in [&self.sub, &self.first_jti, &self.current].into_iter().chain(&self.previous).chain(&self.iss) {
            put_str(&mut out, s);
        }
        out
    }

    /// Decodes [`Family::encode`]'s form.
    pub(crate) fn decode(b: &[u8]) -> Result<Family, CorruptFamily> {
        let mut pos = 0usize;
        let mut take = |n: usize| -> Result<&[u8], CorruptFamily> {
            let s = b.get(pos..pos + n).ok_or(CorruptFamily)?;
            pos += n;
            Ok(s)
        };
        if take(1)? != [1] {
            return Err(CorruptFamily);
        }
        let flags = take(1)?[0];
        let mut u64s = [0u64; 4];
        for v in &mut u64s {
            *v = u64::from_le_bytes(take(8)?.try_into().map_err(|_| CorruptFamily)?);
        }
        let revoked_seq = if flags & 4 != 0 {
            Some(u64::from_le_bytes(take(8)?.try_into().map_err(|_| CorruptFamily)?))
        } else {
            None
        };
        let mut s = || -> Result<String, CorruptFamily> {
            let l = take(2)?;
            let n = usize::from(u16::from_le_bytes([l[0], l[1]]));
            String::from_utf8(take(n)?.to_vec()).map_err(|_| CorruptFamily)
        };
        let sub = s()?;
        let first_jti = s()?;
        let current = s()?;
        let previous = if flags & 2 != 0 { Some(s()?) } else { None };
        let iss = if flags & 1 != 0 { Some(s()?) } else { None };
        if pos != b.len() {
            return Err(CorruptFamily);
        }
        let [start_seq, last_seq, superseded_ms, exp] = u64s;
        Ok(Family { sub, iss, first_jti, current, previous, start_seq, last_seq, superseded_ms, exp, revoked_seq })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fam() -> Family {
        Family {
            sub: "u".into(),
            iss: Some("i".into()),
            first_jti: "r0".into(),
            current: "r2".into(),
            previous: Some("r1".into()),
            start_seq: 1,
            last_seq: 3,
            superseded_ms: 10_000,
            exp: 99,
            revoked_seq: None,
        }
    }

    fn earlier(j: &str) -> bool {
        j == "r0" || j == "r1"
    }

    #[test]
    fn codec_round_trips() {
        let mut f = fam();
        assert_eq!(Family::decode(&f.encode()).unwrap(), f);
        f.iss = None;
        f.previous = None;
        f.revoked_seq = Some(7);
        let b = f.encode();
        assert_eq!(Family::decode(&b).unwrap(), f);
        assert!(Family::decode(&b[..b.len() - 1]).is_err());
    }

    #[test]
    fn stored_form_is_the_one_earlier_builds_wrote() {
        // Built by hand from the layout in `Family::encode`'s docs (format 1, as
        // written before `rotated_ms` became `superseded_ms` in the same slot).
        let mut b = vec![1u8, 0b011];
        for v in [1u64, 3, 10_000, 99] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for s in ["u", "r0", "r2", "r1", "i"] {
            b.extend_from_slice(&(s.len() as u16).to_le_bytes());
            b.extend_from_slice(s.as_bytes());
        }
        assert_eq!(Family::decode(&b).unwrap(), fam());
        assert_eq!(fam().encode(), b);
    }

    #[test]
    fn decisions() {
        let f = fam();
        let d = |p: &str, n: &str, now: u64, grace: u64| decide(&f, p, n, &earlier, now, grace, 30_000);
        assert_eq!(d("r2", "r3", 0, 0), Decision::Rotate { grace: false });
        assert_eq!(d("r2", "r1", 0, 0), Decision::NextInUse);
        assert_eq!(d("r2", "r2", 0, 0), Decision::NextInUse);
        assert_eq!(d("r1", "r2", 10_000, 0), Decision::AlreadyRotated { seq: 3 });
        assert_eq!(d("r1", "r2", 40_000, 0), Decision::AlreadyRotated { seq: 3 });
        // A retry after the retry window (30 s from the replacement at 10 s) is reuse.
        assert_eq!(d("r1", "r2", 40_001, 0), Decision::Reuse);
        assert_eq!(d("r1", "r3", 10_500, 0), Decision::Reuse);
        assert_eq!(d("r0", "r3", 10_500, 1000), Decision::Reuse);
        assert_eq!(d("r1", "r3", 10_500, 1000), Decision::Rotate { grace: true });
        assert_eq!(d("r1", "r3", 11_001, 1000), Decision::Reuse);
        assert_eq!(d("zz", "r3", 0, 0), Decision::UnknownToken);
        let mut revoked = fam();
        revoked.revoked_seq = Some(4);
        assert_eq!(decide(&revoked, "r2", "r3", &earlier, 0, 0, 30_000), Decision::Revoked);
        assert_eq!(decide(&revoked, "r1", "r3", &earlier, 0, 0, 30_000), Decision::ReuseAgain);
    }
}
