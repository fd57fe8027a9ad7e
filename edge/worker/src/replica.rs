//! The per-isolate denylist replica. It works on its own state and on a [`Source`] of
//! signed messages (the revocation service over HTTP: [`source::HttpSource`]).
//!
//! The first request of an isolate takes a signed snapshot; after that, one background
//! long-poll at a time (run under `ctx.wait_until` so requests do not wait for it)
//! pulls signed deltas. Every message's signature is verified by the core before
//! anything in it is applied. A source that no longer holds the events after our
//! sequence ([`source::Delta::Gone`]) or a gap means: take a snapshot again.
//!
//! Staleness is the time since the service last answered with a signed message that
//! continues the replica (a delta, an empty long-poll's empty delta, or a snapshot). An
//! unsigned answer, or a signed one older than the replica (a service restored from a
//! backup, or an old message replayed), refreshes nothing. The long-poll waits at most
//! half the staleness bound, so a healthy service keeps the replica fresh. When the
//! replica is staler than `TOLLGATE_MAX_STALENESS_SECONDS`, the request starts one sync
//! (shared by concurrent requests, at most one attempt a second) and waits for it at
//! most 3 s; a sync still running then (a large snapshot on a slow link) goes on in the
//! background. If the replica is still stale, fail mode `closed` answers 503 and `open`
//! lets the request through on the replica it has.
//!
//! Every message passes the core's acceptance rules ([`Acceptance`]) before it is
//! applied: one created more than the staleness bound before the isolate's clock is
//! refused (a replayed old message cannot pass for fresh), one from another epoch than
//! the replica's (the service's data directory replaced, or another service's message)
//! stops the replica like a log that went back, and nothing below the replica's
//! high-water mark is taken.
//!
//! Across isolates the mark is shared through the colo's Cache API, best effort: every
//! isolate writes its mark when it moves (unless the colo's is already ahead), and a
//! new isolate starts from the colo's mark, so a snapshot replayed to it within the age
//! bound but below what the colo has seen, or from another epoch, is refused (the
//! replica stays without data and the fail mode decides). The cached mark lives
//! [`mark_ttl_seconds`] (six staleness bounds, at least a minute): long enough to cover
//! every message a replay could still pass the age check with, short enough that a
//! service restored from a backup or replaced is taken by new isolates once it has
//! expired. What it leaves open: the Cache API is per colo and may evict at any time,
//! and two isolates writing at once may leave the lower mark (each write first reads the
//! colo's mark and skips when it is ahead, which narrows this but is not atomic); the
//! age bound stays the guarantee across colos and evictions.

pub mod source;
pub mod tier;

use std::cell::RefCell;
use std::rc::Rc;

use futures_util::future::{select, Either};
use tollgate_core::jwk::P256Key;
use tollgate_core::wire::{Acceptance, HighWater};
use tollgate_core::{Claims, Denylist, WireError};

use crate::config::{FailMode, Revocation};
use crate::error::FetchError;
use crate::platform::{log, now_ms, sleep};
use source::{Delta, Source};

/// How long a request waits for a sync it starts or finds running; also the deadline of
/// a delta fetched for a stale replica.
const INLINE_TIMEOUT_MS: u64 = 3_000;
/// Deadline of a snapshot (the first, or after a 410): a 1M-entry list is ~12 MB. Within
/// the 30 s that `waitUntil` work may outlive its request.
const SNAPSHOT_TIMEOUT_MS: u64 = 25_000;
/// After this long, a sync's "running" mark is taken to be left over from a request
/// context that went away.
const RUNNING_FOR_AT_MOST_MS: f64 = SNAPSHOT_TIMEOUT_MS as f64 + 1_000.0;
/// Least time between two inline sync attempts after a failure.
const INLINE_RETRY_MS: f64 = 1_000.0;
/// Least time between two background polls after a failed one.
const POLL_BACKOFF_MS: f64 = 1_000.0;

/// The denylist replica: what it follows, how stale it may be, and its state. One per
/// isolate, shared (`Rc`) with the syncs it runs in the background; no borrow of its
/// state is held across an `.await`.
#[derive(Debug)]
pub struct Replica<S> {
    source: S,
    /// The Cache API key of the colo's high-water mark for this source.
    mark_key: String,
    key: P256Key,
    max_staleness_seconds: u64,
    fail_mode: FailMode,
    state: RefCell<State>,
}

/// What the replica holds and what it is doing.
#[derive(Debug)]
struct State {
    list: Option<Denylist>,
    /// The acceptance rules and the high-water mark of what was applied.
    acceptance: Acceptance,
    /// The mark last written to (or read from) the colo's cache.
    mark_shared: Option<HighWater>,
    /// Whether the acceptance's mark came from the colo's cache, not from this isolate.
    mark_from_cache: bool,
    last_ok_ms: f64,
    poll_since_ms: Option<f64>,
    next_poll_ms: f64,
    inline_since_ms: Option<f64>,
    last_inline_fail_ms: f64,
    last_prune_ms: f64,
    /// Set when the service offered a snapshot older than the replica: its log went back
    /// (restored from a backup, reset) or a message was replayed. Deltas after that would
    /// silently skip the events the replica never saw, so nothing more is taken from the
    /// service; the replica stays stale until the Worker is redeployed (new isolates).
    diverged: Option<String>,
}

impl State {
    fn new(max_staleness_seconds: u64) -> State {
        State {
            list: None,
            acceptance: Acceptance::new(max_staleness_seconds),
            mark_shared: None,
            mark_from_cache: false,
            last_ok_ms: f64::NEG_INFINITY,
            poll_since_ms: None,
            next_poll_ms: f64::NEG_INFINITY,
            inline_since_ms: None,
            last_inline_fail_ms: f64::NEG_INFINITY,
            last_prune_ms: f64::NEG_INFINITY,
            diverged: None,
        }
    }
}

/// Whether the denylist may be trusted for this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Within the staleness bound.
    Fresh,
    /// Too stale, fail mode `open`: check what we have and let through.
    FailOpen,
    /// Too stale, fail mode `closed`: answer 503 with this `Retry-After`.
    Stale {
        /// Seconds.
        retry_after: u64,
    },
}

impl<S: Source> Replica<S> {
    /// A replica of what `source` serves, signed with the key of `settings`, under its
    /// staleness bound and fail mode. It holds nothing until its first sync.
    pub fn new(source: S, settings: &Revocation) -> Replica<S> {
        let mark_key = format!("{MARK_HOST}/v1/{}", key_segment(source.describe()));
        Replica {
            source,
            mark_key,
            key: settings.key.clone(),
            max_staleness_seconds: settings.max_staleness_seconds,
            fail_mode: settings.fail_mode,
            state: RefCell::new(State::new(settings.max_staleness_seconds)),
        }
    }

    /// Whether verified claims are revoked according to the replica held.
    pub fn is_revoked(&self, claims: &Claims) -> bool {
        self.state.borrow().list.as_ref().is_some_and(|l| l.check(claims).is_err())
    }

    /// The replica's sequence number and entry count (0, 0 before the first snapshot).
    pub fn status(&self) -> (u64, usize) {
        self.state.borrow().list.as_ref().map_or((0, 0), |l| (l.seq(), l.len()))
    }

    /// The sequence of the high-water mark this isolate last wrote to, or found ahead
    /// in, the colo's cache (the bench endpoint reports it).
    pub fn shared_mark_seq(&self) -> Option<u64> {
        self.state.borrow().mark_shared.map(|m| m.seq)
    }

    fn fresh(&self, now: f64) -> bool {
        let st = self.state.borrow();
        st.list.is_some() && now - st.last_ok_ms <= self.max_staleness_seconds as f64 * 1000.0
    }

    /// How long a long-poll waits on the source, seconds: half the staleness bound, 1–20.
    fn poll_wait_seconds(&self) -> u64 {
        (self.max_staleness_seconds / 2).clamp(1, 20)
    }

    /// Decides whether the request may rely on the denylist, syncing first if needed,
    /// and keeps one background long-poll running.
    pub async fn ensure_fresh(self: &Rc<Self>, ctx: &worker::Context) -> Freshness {
        self.start_poll(ctx);
        if self.fresh(now_ms()) {
            return Freshness::Fresh;
        }
        self.inline_sync(ctx).await;
        self.start_poll(ctx);
        if self.fresh(now_ms()) {
            return Freshness::Fresh;
        }
        match self.fail_mode {
            FailMode::Open => Freshness::FailOpen,
            FailMode::Closed => Freshness::Stale { retry_after: 2 },
        }
    }

    /// Syncs for a stale replica: starts one sync, or waits for the one another request
    /// started, for at most [`INLINE_TIMEOUT_MS`]. A sync this request started and that
    /// is still running then goes on under `ctx.wait_until`, so a snapshot too large to
    /// arrive in one request's wait still arrives.
    async fn inline_sync(self: &Rc<Self>, ctx: &worker::Context) {
        let deadline = now_ms() + INLINE_TIMEOUT_MS as f64 + 500.0;
        loop {
            let now = now_ms();
            let (running, failed_recently) = {
                let st = self.state.borrow();
                (
                    st.inline_since_ms.is_some_and(|t| now - t < RUNNING_FOR_AT_MOST_MS),
                    now - st.last_inline_fail_ms < INLINE_RETRY_MS,
                )
            };
            if !running {
                if failed_recently {
                    return;
                }
                break;
            }
            if now > deadline || self.fresh(now) {
                return;
            }
            // Another request is syncing: wait on our own timer (never on its I/O, which
            // belongs to its request) and look again.
            sleep(5).await;
        }
        self.state.borrow_mut().inline_since_ms = Some(now_ms());
        let replica = Rc::clone(self);
        let sync = Box::pin(async move {
            let result = replica.sync_once(0, INLINE_TIMEOUT_MS).await;
            replica.share_mark().await;
            let mut st = replica.state.borrow_mut();
            st.inline_since_ms = None;
            if let Err(e) = result {
                st.last_inline_fail_ms = now_ms();
                drop(st);
                log(&format!("tollgate: denylist sync from {} failed: {e}", replica.source.describe()));
            }
        });
        let wait = Box::pin(sleep((deadline - now_ms()).max(0.0) as u64));
        if let Either::Right(((), sync)) = select(sync, wait).await {
            ctx.wait_until(sync);
        }
    }

    /// Starts the background long-poll unless one is running (or the last failed < 1 s
    /// ago).
    fn start_poll(self: &Rc<Self>, ctx: &worker::Context) {
        let wait = self.poll_wait_seconds();
        let timeout_ms = (wait + 5) * 1000;
        let now = now_ms();
        {
            let mut st = self.state.borrow_mut();
            if st.list.is_none() || now < st.next_poll_ms {
                return;
            }
            // A poll whose request context went away never clears its flag: time it out.
            if st.poll_since_ms.is_some_and(|t| now - t < timeout_ms as f64 + 1_000.0) {
                return;
            }
            st.poll_since_ms = Some(now);
        }
        let replica = Rc::clone(self);
        ctx.wait_until(async move {
            let result = replica.sync_once(wait, timeout_ms).await;
            replica.share_mark().await;
            let mut st = replica.state.borrow_mut();
            st.poll_since_ms = None;
            if let Err(e) = result {
                st.next_poll_ms = now_ms() + POLL_BACKOFF_MS;
                drop(st);
                log(&format!("tollgate: denylist long-poll to {} failed: {e}", replica.source.describe()));
            }
        });
    }

    /// One exchange with the source: a delta after our sequence (long-polling `wait`
    /// seconds), or a snapshot when we have none or the source no longer has the delta.
    async fn sync_once(&self, wait: u64, timeout_ms: u64) -> Result<(), FetchError> {
        if let Some(why) = self.state.borrow().diverged.as_ref() {
            return Err(FetchError::Body(why.clone()));
        }
        let seq = self.state.borrow().list.as_ref().map(Denylist::seq);
        if let Some(seq) = seq {
            if let Delta::Message(body) = self.source.delta(seq, wait, timeout_ms).await? {
                let mut guard = self.state.borrow_mut();
                let st = &mut *guard;
                let Some(list) = st.list.as_mut() else { return Err(FetchError::Body("replica vanished".into())) };
                match list.apply_delta_accepted(&body, &self.key, &mut st.acceptance, now_secs()) {
                    Ok(_) => {
                        st.mark_ok();
                        return Ok(());
                    }
                    // Older than what the replica holds: another sync overtook this one
                    // (and counted as hearing from the service), or an old message was
                    // replayed. Either way it refreshes nothing.
                    Err(WireError::Backwards { .. }) => return Ok(()),
                    Err(WireError::Gap { .. }) => {}
                    Err(WireError::Epoch) => return Err(st.diverge(epoch_changed())),
                    Err(e) => return Err(FetchError::Body(e.to_string())),
                }
            }
        }
        let body = self.source.snapshot(timeout_ms.max(SNAPSHOT_TIMEOUT_MS)).await?;
        if seq.is_none() {
            // A replica without data starts from the colo's mark as it is now.
            let shared = crate::replica::tier::cache_get(&self.mark_key, f64::INFINITY)
                .await
                .and_then(|b| HighWater::from_bytes(&b));
            let mut st = self.state.borrow_mut();
            if st.list.is_none() {
                st.acceptance = match shared {
                    Some(m) => Acceptance::resume(self.max_staleness_seconds, m),
                    None => Acceptance::new(self.max_staleness_seconds),
                };
                st.mark_shared = shared;
                st.mark_from_cache = shared.is_some();
            }
        }
        let mut guard = self.state.borrow_mut();
        let st = &mut *guard;
        let mut list = st.list.take().unwrap_or_else(|| Denylist::new([0; 16]));
        let result = list.apply_snapshot_accepted(&body, &self.key, &mut st.acceptance, now_secs());
        st.list = Some(list);
        if result.is_err() && seq.is_none() {
            // A failed first snapshot leaves no replica, never an empty one that passes all.
            st.list = None;
        }
        match result {
            Ok(()) => {
                st.mark_from_cache = false;
                st.mark_ok();
                Ok(())
            }
            // Refused by the colo's mark, not by anything this isolate followed: not final
            // (the next attempt reads the colo's mark again, which expires).
            Err(e @ (WireError::Backwards { .. } | WireError::Epoch)) if seq.is_none() && st.mark_from_cache => {
                Err(FetchError::Body(format!(
                    "{e}: the service's snapshot is behind, or of another epoch than, the high-water mark other \
                     isolates in this colo reached (an old snapshot replayed, or the service restored or replaced: \
                     then new isolates take it once the colo's mark expires, within {} s)",
                    mark_ttl_seconds(self.max_staleness_seconds)
                )))
            }
            // The service's log is behind the replica: restored from a backup or reset, or
            // an old snapshot replayed. Taking it would forget revocations; the replica
            // keeps what it has and stays stale (the fail mode decides), and the log says
            // why.
            Err(WireError::Backwards { current, offered }) => {
                let why = format!(
                    "the service offered a snapshot at seq {offered}, behind this replica's seq {current}: its log \
                     went back (restored from a backup? reset?) or an old snapshot was replayed; this isolate takes \
                     nothing more from it and its replica stays stale until the Worker is redeployed"
                );
                Err(st.diverge(why))
            }
            Err(WireError::Epoch) => Err(st.diverge(epoch_changed())),
            Err(e) => Err(FetchError::Body(e.to_string())),
        }
    }

    /// Writes this isolate's mark to the colo's cache when it has moved past what was
    /// shared, unless the colo's mark (read again first) is already ahead in the same
    /// epoch. Best effort: a failed read or write is logged by the cache helpers and
    /// changes nothing here.
    async fn share_mark(&self) {
        let mark = {
            let st = self.state.borrow();
            match st.acceptance.high_water() {
                Some(m) if st.list.is_some() && st.mark_shared != Some(m) => m,
                _ => return,
            }
        };
        let colo = crate::replica::tier::cache_get(&self.mark_key, f64::INFINITY)
            .await
            .and_then(|b| HighWater::from_bytes(&b));
        if colo.is_some_and(|c| c.epoch == mark.epoch && c.seq >= mark.seq) {
            self.state.borrow_mut().mark_shared = colo;
            return;
        }
        crate::replica::tier::cache_put(
            &self.mark_key,
            mark.to_bytes().to_vec(),
            mark_ttl_seconds(self.max_staleness_seconds),
        )
        .await;
        self.state.borrow_mut().mark_shared = Some(mark);
    }
}

/// Host of the Cache API keys of the shared high-water marks (never fetched).
const MARK_HOST: &str = "https://tollgate-high-water.invalid";

/// How long the colo's mark is kept: six staleness bounds, at least 60 s. A replay must
/// pass the age check, so only messages made within one bound (plus the service's clock
/// running ahead) can be replayed; a mark older than that refuses nothing the age check
/// would not.
pub fn mark_ttl_seconds(max_staleness_seconds: u64) -> u64 {
    max_staleness_seconds.saturating_mul(6).max(60)
}

/// `text` as one URL path segment (everything but ASCII letters and digits escaped).
fn key_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn now_secs() -> u64 {
    (now_ms() / 1000.0).max(0.0) as u64
}

fn epoch_changed() -> String {
    "the service sent a message from another epoch than this replica's (its data directory was replaced, or \
     the message is another service's): this isolate takes nothing more from it and its replica stays stale \
     until the Worker is redeployed"
        .into()
}

impl State {
    /// Stops taking messages from the source, for `why` (logged by the caller).
    fn diverge(&mut self, why: String) -> FetchError {
        self.diverged = Some(why.clone());
        FetchError::Body(why)
    }

    fn mark_ok(&mut self) {
        let now = now_ms();
        self.last_ok_ms = now;
        if now - self.last_prune_ms > 60_000.0 {
            self.last_prune_ms = now;
            if let Some(list) = self.list.as_mut() {
                // Entries outlive every token they cover; keep a day of margin for leeway.
                list.prune(((now / 1000.0) as u64).saturating_sub(86_400));
            }
        }
    }
}
