//! The connection layer: accepting TCP connections, the caps on open connections, and
//! the timeouts that keep slow or idle clients from holding them.
//!
//! Every accepted connection is counted against a global cap and a cap per client
//! address; a connection over either cap is answered at once with a short
//! `503 {"error":"too_many_connections"}` (written without waiting, so a client that
//! does not read cannot hold the accept loop) and closed, never queued. The caps stay
//! below the process's file limit (see [`raise_nofile_limit`] and
//! [`Limits::effective`]), so `accept` always has a descriptor to take, and one address
//! may hold at most half of the global cap, so one client alone can never take every
//! slot from health checks and replicas.
//!
//! A connection is in one of three phases, and each has its own bound:
//!
//! | phase | until | bound |
//! |---|---|---|
//! | reading a request head (from accept, or from the first byte after an idle spell) | the head is parsed | `header_timeout` (closed) |
//! | a request in flight | its response is ready | the per-request deadline of `api.rs` (503 `timeout`; long-polls their own bound), and the body-read deadline (408) |
//! | idle between requests (keep-alive) | the next request's first byte | `keep_alive_timeout` (closed) |
//!
//! A watchdog per connection sleeps until the current phase's deadline and closes the
//! connection when it passes; the deadlines are measured from when the phase began,
//! so a client trickling one byte at a time gains nothing.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tower::ServiceExt;

/// The connection limits, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Open connections, all clients together.
    pub(crate) max_connections: usize,
    /// Open connections from one client address.
    pub(crate) max_connections_per_ip: usize,
    /// From accept (or the first byte after an idle spell) to a complete request head.
    pub(crate) header_timeout: Duration,
    /// Idle between two requests on a kept-alive connection.
    pub(crate) keep_alive_timeout: Duration,
}

/// Descriptors kept free of connections: sled's files, the listener, the runtime's
/// own, checkpoints and key files being written.
const RESERVED_FDS: u64 = 32;

impl Limits {
    /// The caps actually enforced under a file limit of `nofile` descriptors: the
    /// global cap at most `nofile - 32` (at least 1), and the per-address cap at most
    /// half of the global one (at least 1).
    pub(crate) fn effective(self, nofile: u64) -> Limits {
        let room = usize::try_from(nofile.saturating_sub(RESERVED_FDS).max(2)).unwrap_or(usize::MAX);
        let global = self.max_connections.min(room).max(1);
        let per_ip = self.max_connections_per_ip.min(global / 2).max(1);
        Limits { max_connections: global, max_connections_per_ip: per_ip, ..self }
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard one and returns the soft limit now in
/// force (unchanged, and logged, where raising it fails).
pub(crate) fn raise_nofile_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let cur = getrlimit(Resource::Nofile);
    let soft = cur.current.unwrap_or(u64::MAX);
    match cur.maximum {
        Some(hard) if hard > soft => {
            match setrlimit(Resource::Nofile, Rlimit { current: Some(hard), maximum: Some(hard) }) {
                Ok(()) => {
                    tracing::info!(from = soft, to = hard, "raised the soft file limit to the hard one");
                    hard
                }
                Err(e) => {
                    tracing::warn!(soft, hard, error = %e, "could not raise the soft file limit");
                    soft
                }
            }
        }
        _ => soft,
    }
}

/// Counters of the connection layer, shown by `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct ConnMetrics {
    /// Connections open now.
    pub(crate) open: AtomicU64,
    /// Connections refused by the global cap.
    pub(crate) refused_global: AtomicU64,
    /// Connections refused by the per-address cap.
    pub(crate) refused_per_ip: AtomicU64,
    /// Connections closed because a request head did not arrive in time.
    pub(crate) header_timeouts: AtomicU64,
    /// Kept-alive connections closed after being idle too long.
    pub(crate) idle_timeouts: AtomicU64,
    /// `accept` failures (e.g. out of descriptors).
    pub(crate) accept_errors: AtomicU64,
    /// The enforced global cap.
    pub(crate) max_connections: AtomicU64,
    /// The enforced per-address cap.
    pub(crate) max_connections_per_ip: AtomicU64,
}

/// The open connections, counted globally and per address.
struct Slots {
    limits: Limits,
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    metrics: Arc<ConnMetrics>,
}

/// Why a connection was refused.
enum Refused {
    Global,
    PerIp,
}

/// One connection's place in [`Slots`]; given back on drop.
struct Slot {
    slots: Arc<Slots>,
    ip: IpAddr,
}

impl Slots {
    fn take(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refused> {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.total.load(Ordering::SeqCst) >= self.limits.max_connections {
            return Err(Refused::Global);
        }
        let n = per_ip.entry(ip).or_insert(0);
        if *n >= self.limits.max_connections_per_ip {
            return Err(Refused::PerIp);
        }
        *n += 1;
        self.total.fetch_add(1, Ordering::SeqCst);
        self.metrics.open.fetch_add(1, Ordering::Relaxed);
        Ok(Slot { slots: self.clone(), ip })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut per_ip = self.slots.per_ip.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
        self.slots.total.fetch_sub(1, Ordering::SeqCst);
        self.slots.metrics.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The reply to a connection over a cap.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n\
retry-after: 1\r\ncontent-length: 81\r\n\r\n\
{\"error\":\"too_many_connections\",\"detail\":\"too many open connections; retry later\"}";

/// Serves `router` on `listener` until `shutdown` turns true, then stops accepting,
/// asks every connection to finish its current request and close, and returns once
/// they have (the caller bounds that wait).
pub(crate) async fn run(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    metrics: Arc<ConnMetrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    metrics.max_connections.store(limits.max_connections as u64, Ordering::Relaxed);
    metrics.max_connections_per_ip.store(limits.max_connections_per_ip as u64, Ordering::Relaxed);
    let slots = Arc::new(Slots { limits, total: AtomicUsize::new(0), per_ip: Mutex::new(HashMap::new()), metrics });
    // Every connection task holds a sender; when all are gone, every connection is.
    let (alive, mut all_closed) = mpsc::channel::<()>(1);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors, or a connection reset before accept: log, pause
                // briefly rather than spin, and go on.
                slots.metrics.accept_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let slot = match slots.take(peer.ip()) {
            Ok(s) => s,
            Err(why) => {
                let c = match why {
                    Refused::Global => &slots.metrics.refused_global,
                    Refused::PerIp => &slots.metrics.refused_per_ip,
                };
                c.fetch_add(1, Ordering::Relaxed);
                refuse(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (router, alive, shutdown, limits) = (router.clone(), alive.clone(), shutdown.clone(), slots.limits);
        let metrics = slots.metrics.clone();
        tokio::spawn(async move {
            serve_connection(stream, peer, router, limits, &metrics, shutdown).await;
            drop(slot);
            drop(alive);
        });
    }
    drop(listener);
    drop(alive);
    let _ = all_closed.recv().await;
}

/// Answers a connection over a cap without waiting on it, then closes it. Whatever the
/// client already sent is read first (without waiting), so the close is a FIN after
/// the answer rather than a reset that could discard it.
fn refuse(stream: TcpStream) {
    let mut scratch = [0u8; 4096];
    let _ = stream.try_read(&mut scratch);
    let _ = stream.try_write(REFUSAL);
    drop(stream);
}

/// What a connection is doing, for its watchdog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for, or reading, a request head since the instant held.
    Head(Instant),
    /// This many requests in flight.
    Busy(usize),
    /// Idle between requests since the instant held.
    Idle(Instant),
}

/// A connection's phase, shared by its reader, its service and its watchdog.
#[derive(Debug)]
struct Tracker(Mutex<Phase>);

impl Tracker {
    fn with<T>(&self, f: impl FnOnce(&mut Phase) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Bytes arrived: an idle connection starts reading a request head.
    fn on_read(&self) {
        self.with(|p| {
            if let Phase::Idle(_) = p {
                *p = Phase::Head(Instant::now());
            }
        });
    }

    fn begin(&self) {
        self.with(|p| {
            *p = match *p {
                Phase::Busy(n) => Phase::Busy(n + 1),
                _ => Phase::Busy(1),
            }
        });
    }

    fn end(&self) {
        self.with(|p| {
            *p = match *p {
                Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
                _ => Phase::Idle(Instant::now()),
            }
        });
    }
}

/// Ends a request's busy phase when dropped (also when the request is cancelled).
struct InFlight(Arc<Tracker>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// The socket, telling the tracker when bytes arrive.
struct Watched {
    stream: TcpStream,
    tracker: Arc<Tracker>,
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.tracker.on_read();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// The router as a hyper service that tells the tracker when requests start and end.
#[derive(Clone)]
struct Tracked {
    router: Router,
    tracker: Arc<Tracker>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for Tracked {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        self.tracker.begin();
        let in_flight = InFlight(self.tracker.clone());
        let req = req.map(Body::new);
        let router = self.router.clone();
        Box::pin(async move {
            let r = router.oneshot(req).await;
            drop(in_flight);
            r
        })
    }
}

/// Why the watchdog closed a connection.
enum Expired {
    Header,
    Idle,
}

/// Sleeps until the connection's current phase outlives its bound.
async fn watchdog(tracker: &Tracker, limits: Limits) -> Expired {
    loop {
        let (deadline, kind) = match tracker.with(|p| *p) {
            Phase::Head(since) => (since + limits.header_timeout, Expired::Header),
            Phase::Idle(since) => (since + limits.keep_alive_timeout, Expired::Idle),
            // In flight: the request's own deadline bounds it; look again later.
            Phase::Busy(_) => (Instant::now() + limits.header_timeout.min(limits.keep_alive_timeout), Expired::Idle),
        };
        tokio::time::sleep_until(deadline).await;
        let still = tracker.with(|p| match (*p, &kind) {
            (Phase::Head(since), Expired::Header) => since + limits.header_timeout <= Instant::now(),
            (Phase::Idle(since), Expired::Idle) => since + limits.keep_alive_timeout <= Instant::now(),
            _ => false,
        });
        if still {
            return kind;
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: Limits,
    metrics: &ConnMetrics,
    mut shutdown: watch::Receiver<bool>,
) {
    let tracker = Arc::new(Tracker(Mutex::new(Phase::Head(Instant::now()))));
    let io = TokioIo::new(Watched { stream, tracker: tracker.clone() });
    let service = Tracked { router, tracker: tracker.clone() };
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .header_read_timeout(None)
        .max_buf_size(64 * 1024)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let mut draining = *shutdown.borrow();
    if draining {
        conn.as_mut().graceful_shutdown();
    }
    let expired = loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            kind = watchdog(&tracker, limits) => break kind,
            _ = shutdown.wait_for(|s| *s), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    };
    let c = match expired {
        Expired::Header => &metrics.header_timeouts,
        Expired::Idle => &metrics.idle_timeouts,
    };
    c.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(%peer, "connection closed by its timeout");
    // Dropping the connection closes the socket.
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_stay_below_the_file_limit_and_one_address_never_takes_all() {
        let l = Limits {
            max_connections: 8192,
            max_connections_per_ip: 256,
            header_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(30),
        };
        assert_eq!(l.effective(1 << 20), l);
        let low = l.effective(128);
        assert_eq!((low.max_connections, low.max_connections_per_ip), (96, 48));
        let tiny = l.effective(10);
        assert_eq!((tiny.max_connections, tiny.max_connections_per_ip), (2, 1));
    }
}
