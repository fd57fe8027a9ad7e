//! The cache-tier replica (`TOLLGATE_REVOCATION_SOURCE = "hub"`): the isolate reads
//! the `RevocationHub` of its tenant through the colo's Cache API instead of
//! long-polling the revocation service.
//!
//! - Checked within `TOLLGATE_HUB_CHECK_INTERVAL_MS` (default 1 s): the request
//!   verifies from memory.
//! - Otherwise one request (a synchronous flag, never a promise shared across
//!   requests: each request's I/O is its own) reads the hub's `head` from the Cache API
//!   (entries younger than half the interval), or on a miss from the hub, writing the
//!   answer back under `ctx.wait_until`. When the head is ahead of the replica (a new
//!   sequence or a new signed answer), it takes `since/N` the same way (cached under
//!   N, the head and its tick) and applies each signed delta.
//! - A cold isolate takes the snapshot from the Cache API first, then from the hub.
//!
//! Everything is verified with the service's key before it is applied, whatever the
//! cache or the hub served. Staleness is as in `replica.rs`: the time since a signed
//! message from the hub continued the replica (the hub's head and a cached answer
//! refresh nothing by themselves); past `TOLLGATE_MAX_STALENESS_SECONDS`, fail mode
//! `closed` answers 503.
//!
//! The hub is not trusted, so the acceptance rules that matter on this path hold here
//! too. **Age:** a message refreshes the replica only when it was signed within the
//! staleness bound; older ones are applied (their events only add entries) but leave
//! the replica as stale as it was, so a hub or cache replaying an old heartbeat cannot
//! keep edges fresh. A snapshot is not held to the bound for its content (the hub keeps
//! one and the deltas after it, so it is old by design). **Epoch:** within an isolate,
//! a snapshot or delta of another epoch than the one held is refused; a replaced
//! service is taken by isolates started after it. **Sequence:** deltas that would leave
//! a gap are refused, and a snapshot behind the replica is refused.

use std::cell::RefCell;
use std::rc::Rc;

use futures_util::future::{select, Either};
use serde::{Deserialize, Serialize};
use tollgate_core::jwk::P256Key;
use tollgate_core::wire::{decode_delta, decode_snapshot};
use tollgate_core::{Claims, Denylist, WireError};

use crate::config::{FailMode, HubTier, Revocation};
use crate::platform::{log, now_ms, sleep};
use crate::replica::Freshness;

/// How long a request waits for a check it runs or finds running.
const CHECK_TIMEOUT_MS: u64 = 3_000;
/// Header recording when an answer entered the Cache API (ms since the epoch).
const STORED_AT: &str = "x-tollgate-stored-at";
/// Host of the Cache API keys (never fetched).
const CACHE_HOST: &str = "https://tollgate-hub.invalid";

/// What the tier did, for the bench endpoint and the tests.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Counters {
    /// Checks run (each is at most one head read).
    pub checks: u64,
    /// Heads read from the Cache API.
    pub head_cache: u64,
    /// Heads read from the hub.
    pub head_hub: u64,
    /// `since` answers from the Cache API.
    pub since_cache: u64,
    /// `since` answers from the hub.
    pub since_hub: u64,
    /// Snapshots from the Cache API.
    pub snapshot_cache: u64,
    /// Snapshots from the hub.
    pub snapshot_hub: u64,
    /// Messages refused (signature, format, epoch, sequence).
    pub refused: u64,
    /// Verified messages signed longer ago than the staleness bound: applied, but they
    /// did not refresh the replica.
    pub too_old: u64,
}

#[derive(Debug)]
struct State {
    list: Option<Denylist>,
    /// The hub's tick at the last signed answer applied.
    tick: u64,
    last_ok_ms: f64,
    last_check_ms: f64,
    checking_since: Option<f64>,
    last_prune_ms: f64,
}

/// The hub's `GET head`.
#[derive(Debug, Deserialize)]
struct Head {
    seq: u64,
    tick: u64,
}

/// The cache-tier replica of one isolate.
#[derive(Debug)]
pub struct HubReplica {
    tier: HubTier,
    key: P256Key,
    max_staleness_seconds: u64,
    fail_mode: FailMode,
    state: RefCell<State>,
    counters: RefCell<Counters>,
}

enum Got {
    Cache(Vec<u8>),
    Hub(u16, Vec<u8>),
}

impl HubReplica {
    /// A replica of `tier`'s hub, verified with the key of `settings`.
    pub fn new(tier: HubTier, settings: &Revocation) -> HubReplica {
        HubReplica {
            tier,
            key: settings.key.clone(),
            max_staleness_seconds: settings.max_staleness_seconds,
            fail_mode: settings.fail_mode,
            state: RefCell::new(State {
                list: None,
                tick: 0,
                last_ok_ms: f64::NEG_INFINITY,
                last_check_ms: f64::NEG_INFINITY,
                checking_since: None,
                last_prune_ms: f64::NEG_INFINITY,
            }),
            counters: RefCell::new(Counters::default()),
        }
    }

    /// Whether verified claims are revoked according to the replica held.
    pub fn is_revoked(&self, claims: &Claims) -> bool {
        self.state.borrow().list.as_ref().is_some_and(|l| l.check(claims).is_err())
    }

    /// The replica's sequence number and entry count.
    pub fn status(&self) -> (u64, usize) {
        self.state.borrow().list.as_ref().map_or((0, 0), |l| (l.seq(), l.len()))
    }

    /// What the tier did so far.
    pub fn counters(&self) -> Counters {
        self.counters.borrow().clone()
    }

    fn fresh(&self, now: f64) -> bool {
        let st = self.state.borrow();
        st.list.is_some() && now - st.last_ok_ms <= self.max_staleness_seconds as f64 * 1000.0
    }

    fn verdict(&self) -> Freshness {
        if self.fresh(now_ms()) {
            return Freshness::Fresh;
        }
        match self.fail_mode {
            FailMode::Open => Freshness::FailOpen,
            FailMode::Closed => Freshness::Stale { retry_after: 2 },
        }
    }

    /// Decides whether the request may rely on the denylist, checking the hub first
    /// when the interval has passed.
    pub async fn ensure_fresh(self: &Rc<Self>, env: &worker::Env, ctx: &worker::Context) -> Freshness {
        let now = now_ms();
        let (due, running) = {
            let st = self.state.borrow();
            (
                now - st.last_check_ms >= self.tier.check_interval_ms as f64,
                st.checking_since.is_some_and(|t| now - t < (CHECK_TIMEOUT_MS + 1_000) as f64),
            )
        };
        if !due || (running && self.fresh(now)) {
            return self.verdict();
        }
        if running {
            // Another request is checking and the replica is stale: wait on our own
            // timer (never on its I/O) for it to finish.
            let deadline = now + CHECK_TIMEOUT_MS as f64;
            while self.state.borrow().checking_since.is_some() && now_ms() < deadline {
                sleep(5).await;
            }
            return self.verdict();
        }
        {
            let mut st = self.state.borrow_mut();
            st.checking_since = Some(now);
            st.last_check_ms = now;
        }
        self.counters.borrow_mut().checks += 1;
        let check = Box::pin(self.check(env, ctx));
        let timer = Box::pin(sleep(CHECK_TIMEOUT_MS));
        match select(check, timer).await {
            Either::Left((Err(e), _)) => log(&format!("tollgate: hub check ({}) failed: {e}", self.tier.tenant)),
            Either::Left((Ok(()), _)) => {}
            Either::Right(_) => log(&format!("tollgate: hub check ({}) timed out", self.tier.tenant)),
        }
        self.state.borrow_mut().checking_since = None;
        self.verdict()
    }

    fn cache_key(&self, what: &str) -> String {
        format!("{CACHE_HOST}/{}/{what}", self.tier.tenant)
    }

    /// `op` from the Cache API (an entry younger than `max_age_ms`), else from the hub;
    /// a 200 from the hub is written back under `ctx.wait_until` for `ttl_s` seconds.
    async fn read(
        &self,
        env: &worker::Env,
        ctx: &worker::Context,
        key: &str,
        op: &str,
        max_age_ms: f64,
        ttl_s: u64,
    ) -> Result<Got, String> {
        if let Some(body) = cache_get(key, max_age_ms).await {
            return Ok(Got::Cache(body));
        }
        let got = tollgate_hub::api::get(env, &self.tier.tenant, op).await?;
        if got.status == 200 && ttl_s > 0 {
            let (key, body) = (key.to_owned(), got.body.clone());
            ctx.wait_until(async move { cache_put(&key, body, ttl_s).await });
        }
        Ok(Got::Hub(got.status, got.body))
    }

    async fn check(&self, env: &worker::Env, ctx: &worker::Context) -> Result<(), String> {
        let cold = self.state.borrow().list.is_none();
        if cold {
            self.take_snapshot(env, ctx, true).await?;
        }
        let interval = self.tier.check_interval_ms as f64;
        let head_ttl = (self.tier.check_interval_ms / 2).div_ceil(1000).max(1);
        let head = match self.read(env, ctx, &self.cache_key("head"), "head", interval / 2.0, head_ttl).await? {
            Got::Cache(b) => {
                self.counters.borrow_mut().head_cache += 1;
                b
            }
            Got::Hub(200, b) => {
                self.counters.borrow_mut().head_hub += 1;
                b
            }
            Got::Hub(s, b) => return Err(format!("head: {s} {}", String::from_utf8_lossy(&b))),
        };
        let head: Head = serde_json::from_slice(&head).map_err(|e| format!("head: {e}"))?;
        let (seq, tick) = {
            let st = self.state.borrow();
            (st.list.as_ref().map_or(0, Denylist::seq), st.tick)
        };
        if head.seq < seq {
            return Err(format!("the hub's head {} is behind this replica's {seq}", head.seq));
        }
        if head.seq == seq && head.tick == tick {
            return Ok(()); // nothing new since the last signed answer
        }
        for _ in 0..2 {
            let seq = self.status().0;
            let key = self.cache_key(&format!("since/{seq}/{}/{}", head.seq, head.tick));
            let body = match self.read(env, ctx, &key, &format!("since/{seq}"), f64::INFINITY, 60).await? {
                Got::Cache(b) => {
                    self.counters.borrow_mut().since_cache += 1;
                    b
                }
                Got::Hub(200, b) => {
                    self.counters.borrow_mut().since_hub += 1;
                    b
                }
                Got::Hub(410, _) => {
                    self.take_snapshot(env, ctx, false).await?;
                    continue;
                }
                Got::Hub(s, b) => return Err(format!("since: {s} {}", String::from_utf8_lossy(&b))),
            };
            return self.apply(&body, head.tick);
        }
        Err("the hub had no chain of deltas from its own snapshot".into())
    }

    /// Applies a framed `since` answer; the replica counts as fresh when every message
    /// in it verified and at least one did.
    fn apply(&self, body: &[u8], tick: u64) -> Result<(), String> {
        let msgs = tollgate_hub::wire::unframe(body).ok_or("since: broken framing")?;
        let mut st = self.state.borrow_mut();
        let Some(list) = st.list.as_mut() else { return Err("no replica".into()) };
        // The newest signed creation time among the messages that continued the replica.
        let mut newest = None;
        for m in &msgs {
            let applied =
                decode_delta(m, &self.key).and_then(|d| list.apply_decoded_delta(&d).map(|_| d.stamp.created));
            match applied {
                Ok(created) => newest = newest.max(Some(created)),
                Err(WireError::Backwards { .. }) => {}
                Err(e) => {
                    drop(st);
                    self.counters.borrow_mut().refused += 1;
                    return Err(format!("refused a delta the hub served: {e}"));
                }
            }
        }
        let Some(created) = newest else { return Ok(()) };
        st.tick = tick;
        if !self.signed_recently(created) {
            drop(st);
            self.counters.borrow_mut().too_old += 1;
            return Err(format!(
                "the hub's newest message was signed at {created}, more than {} s ago: applied, the replica stays as \
                 stale as it was",
                self.max_staleness_seconds
            ));
        }
        mark_ok(&mut st);
        Ok(())
    }

    /// Whether a message signed at `created` (seconds, the signer's clock) is within the
    /// staleness bound of now. One from the future counts as now.
    fn signed_recently(&self, created: u64) -> bool {
        let now = (now_ms() / 1000.0) as u64;
        now.saturating_sub(created) <= self.max_staleness_seconds
    }

    async fn take_snapshot(&self, env: &worker::Env, ctx: &worker::Context, cache_first: bool) -> Result<(), String> {
        let key = self.cache_key("snapshot");
        if cache_first {
            if let Some(body) = cache_get(&key, f64::INFINITY).await {
                self.counters.borrow_mut().snapshot_cache += 1;
                // A cached snapshot may be old: it seeds the replica, the head then
                // brings it up to date (and only a signed answer makes it fresh).
                if self.install(&body, false).is_ok() {
                    return Ok(());
                }
            }
        }
        let got = tollgate_hub::api::get(env, &self.tier.tenant, "snapshot").await?;
        if got.status != 200 {
            return Err(format!("snapshot: {} {}", got.status, String::from_utf8_lossy(&got.body)));
        }
        self.counters.borrow_mut().snapshot_hub += 1;
        self.install(&got.body, true)?;
        let ttl = self.tier.snapshot_ttl_seconds;
        if ttl > 0 {
            ctx.wait_until(async move { cache_put(&key, got.body, ttl).await });
        }
        Ok(())
    }

    fn install(&self, body: &[u8], from_hub: bool) -> Result<(), String> {
        let mut st = self.state.borrow_mut();
        let r = decode_snapshot(body, &self.key).and_then(|next| match st.list.as_ref() {
            Some(held) if held.stamp().map(|s| s.epoch) != next.stamp().map(|s| s.epoch) => Err(WireError::Epoch),
            Some(held) if next.seq() < held.seq() => {
                Err(WireError::Backwards { current: held.seq(), offered: next.seq() })
            }
            _ => Ok(next),
        });
        match r {
            Ok(next) => {
                let created = next.stamp().map_or(0, |s| s.created);
                st.list = Some(next);
                st.tick = 0;
                if from_hub && self.signed_recently(created) {
                    mark_ok(&mut st);
                }
                Ok(())
            }
            Err(e) => {
                drop(st);
                self.counters.borrow_mut().refused += 1;
                Err(format!("refused a snapshot: {e}"))
            }
        }
    }
}

fn mark_ok(st: &mut State) {
    let now = now_ms();
    st.last_ok_ms = now;
    if now - st.last_prune_ms > 60_000.0 {
        st.last_prune_ms = now;
        if let Some(list) = st.list.as_mut() {
            list.prune(((now / 1000.0) as u64).saturating_sub(86_400));
        }
    }
}

pub(crate) async fn cache_get(key: &str, max_age_ms: f64) -> Option<Vec<u8>> {
    let mut resp = worker::Cache::default().get(key, true).await.ok().flatten()?;
    let stored: f64 = resp.headers().get(STORED_AT).ok().flatten()?.parse().ok()?;
    if now_ms() - stored > max_age_ms {
        return None;
    }
    resp.bytes().await.ok()
}

pub(crate) async fn cache_put(key: &str, body: Vec<u8>, ttl_s: u64) {
    let Ok(resp) = worker::Response::from_bytes(body) else { return };
    let headers = worker::Headers::new();
    let _ = headers.set("cache-control", &format!("max-age={ttl_s}"));
    let _ = headers.set(STORED_AT, &format!("{}", now_ms() as u64));
    if let Err(e) = worker::Cache::default().put(key, resp.with_headers(headers)).await {
        log(&format!("tollgate: Cache API put for {key} failed: {e}"));
    }
}
