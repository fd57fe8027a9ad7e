//! The service's life cycle: open (rebuild the denylist, start the writer and the
//! background tasks), serve on a pre-bound listener until a shutdown signal, then
//! drain in-flight requests, stop the writer, checkpoint and close the database.

use std::future::{Future, IntoFuture};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use rand::RngCore;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tollgate_core::wire::DenylistSigner;

use crate::apikeys::KeyRing;
use crate::checkpoint::{self, Rebuilt};
use crate::clock::{Clock, SystemClock};
use crate::config::{parse_secret, Config};
use crate::context::Context;
use crate::error::StoreError;
use crate::state::Shared;
use crate::store::Store;
use crate::writer;

/// Why the service could not start or stopped badly.
#[derive(Debug)]
pub struct ServiceError(String);

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ServiceError {}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        ServiceError(e.to_string())
    }
}

/// An opened service, ready to serve.
pub struct App {
    inner: Arc<Context>,
    rebuilt: Rebuilt,
    open_time: Duration,
    drain_tx: watch::Sender<bool>,
    writer_thread: std::thread::JoinHandle<()>,
    background: Vec<JoinHandle<()>>,
}

fn load_signer(config: &Config) -> Result<DenylistSigner, ServiceError> {
    let bad = |e: &dyn std::fmt::Display| ServiceError(format!("signing key: {e}"));
    let secret = if let Some(k) = &config.signing_key {
        parse_secret(k).map_err(|e| bad(&e))?
    } else {
        let path = config.signing_key_file.clone().unwrap_or_else(|| config.data_dir.join("signing-key"));
        match std::fs::read_to_string(&path) {
            Ok(s) => parse_secret(&s).map_err(|e| bad(&e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && config.signing_key_file.is_none() => {
                generate_signing_key(&path)?
            }
            Err(e) => return Err(ServiceError(format!("signing key {}: {e}", path.display()))),
        }
    };
    DenylistSigner::from_secret(&secret).map_err(|e| bad(&e))
}

fn generate_signing_key(path: &Path) -> Result<[u8; 32], ServiceError> {
    use std::io::Write;
    let mut secret = [0u8; 32];
    loop {
        rand::rngs::OsRng.fill_bytes(&mut secret);
        if DenylistSigner::from_secret(&secret).is_ok() {
            break;
        }
    }
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let io = |e: std::io::Error| ServiceError(format!("signing key {}: {e}", path.display()));
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(hex.as_bytes()).and_then(|_| f.sync_all()).map_err(io)?;
    tracing::info!(path = %path.display(), "generated a new denylist signing key");
    Ok(secret)
}

impl App {
    /// Opens the data directory with the system clock.
    pub async fn open(config: Config) -> Result<App, ServiceError> {
        App::open_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Opens the data directory: validates the configuration, rebuilds the denylist
    /// from the checkpoint and the log, and starts the writer and background tasks.
    pub async fn open_with_clock(config: Config, clock: Arc<dyn Clock>) -> Result<App, ServiceError> {
        config.validate().map_err(|e| ServiceError(format!("config: {e}")))?;
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| ServiceError(format!("data dir {}: {e}", config.data_dir.display())))?;
        let signer = load_signer(&config)?;
        let dir = config.data_dir.clone();
        let now = clock.now_secs();
        let t0 = std::time::Instant::now();
        let (store, live, rebuilt, open_time) = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            let t = std::time::Instant::now();
            let store = Store::open_waiting(&dir)?;
            let open_time = t.elapsed();
            // sled's lock is ours now: no other process writes checkpoints here.
            checkpoint::remove_stale_temps(&dir)?;
            let (live, rebuilt) = checkpoint::rebuild(&store, &dir, now)?;
            Ok((store, live, rebuilt, open_time))
        })
        .await
        .map_err(|e| ServiceError(format!("start-up task: {e}")))??;
        tracing::info!(
            head = rebuilt.head,
            checkpoint = ?rebuilt.checkpoint,
            replayed = rebuilt.replayed,
            entries = live.entries.len(),
            pruned = rebuilt.pruned,
            took_ms = t0.elapsed().as_millis() as u64,
            "denylist rebuilt"
        );
        let shared = Arc::new(Shared::new(live, rebuilt.floor));
        let (writer, writer_thread) = writer::spawn(writer::Writer {
            store: store.clone(),
            shared: shared.clone(),
            clock: clock.clone(),
            grace_ms: config.refresh_grace_secs.saturating_mul(1000),
            next_seq: rebuilt.head + 1,
        })
        .map_err(|e| ServiceError(format!("writer thread: {e}")))?;
        let keys =
            KeyRing::default().reload(&config.data_dir).map_err(|e| ServiceError(e.to_string()))?.unwrap_or_default();
        if keys.len() == 0 {
            tracing::warn!("no API keys: create one with `tollgate-revocation keys create`");
        }
        let (drain_tx, draining) = watch::channel(false);
        let inner = Arc::new(Context {
            jwk: signer.public_jwk(),
            signer,
            store,
            shared,
            writer,
            keys: RwLock::new(Arc::new(keys)),
            clock,
            requests: Arc::new(Semaphore::new(config.max_concurrent_requests)),
            replicas: Arc::new(Semaphore::new(config.max_replication_clients)),
            draining,
            maintenance: Arc::new(tokio::sync::Mutex::new(())),
            config,
        });
        let background = vec![spawn_pruner(inner.clone()), spawn_key_reloader(inner.clone())];
        Ok(App { inner, rebuilt, open_time, drain_tx, writer_thread, background })
    }

    /// The router, for driving the service in-process (tests) or serving it.
    pub fn router(&self) -> Router {
        crate::api::router(self.inner.clone())
    }

    /// The sequence number of the last durable event.
    pub fn head(&self) -> u64 {
        self.inner.shared.head()
    }

    /// Events replayed from the log at start-up (after the checkpoint, if any).
    pub fn replayed_at_start(&self) -> u64 {
        self.rebuilt.replayed
    }

    /// Start-up phases: opening sled, loading the checkpoint, folding the log.
    pub fn startup_times(&self) -> [Duration; 3] {
        [self.open_time, self.rebuilt.checkpoint_time, self.rebuilt.replay_time]
    }

    /// The checkpoint loaded at start-up, if any.
    pub fn checkpoint_at_start(&self) -> Option<u64> {
        self.rebuilt.checkpoint
    }

    /// Serves on `listener` until `signal` completes, then shuts down gracefully:
    /// stops accepting, answers long-polls, waits up to `shutdown_grace_secs` for
    /// in-flight requests (their writes complete), stops the writer after it drained
    /// its queue, writes a checkpoint (if configured) and closes the database.
    pub async fn serve(
        self,
        listener: TcpListener,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServiceError> {
        let addr = listener.local_addr().map_err(|e| ServiceError(e.to_string()))?;
        tracing::info!(%addr, "listening");
        let drain_tx = self.drain_tx.clone();
        let mut drained = self.drain_tx.subscribe();
        let graceful = async move {
            signal.await;
            tracing::info!("shutdown requested; draining");
            let _ = drain_tx.send(true);
        };
        let server = axum::serve(listener, self.router()).with_graceful_shutdown(graceful).into_future();
        let grace = Duration::from_secs(self.inner.config.shutdown_grace_secs);
        tokio::select! {
            r = server => r.map_err(|e| ServiceError(format!("server: {e}")))?,
            _ = async { let _ = drained.wait_for(|d| *d).await; tokio::time::sleep(grace).await } => {
                tracing::warn!("in-flight requests did not finish within the shutdown grace period");
            }
        }
        self.close().await
    }

    /// Stops the writer and background tasks, checkpoints, and closes the database
    /// (also what [`App::serve`] does after draining).
    pub async fn close(self) -> Result<(), ServiceError> {
        let _ = self.drain_tx.send(true);
        self.inner.writer.stop().await;
        let writer = self.writer_thread;
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        for t in &self.background {
            t.abort();
        }
        for t in self.background {
            let _ = t.await;
        }
        let inner = self.inner;
        if inner.config.checkpoint_on_shutdown && inner.shared.writable.load(Ordering::SeqCst) {
            // A checkpoint or compaction an admin request started may still run (its
            // blocking work outlives a timed-out request): wait for it.
            let maintenance = inner.maintenance.clone().lock_owned().await;
            let i = inner.clone();
            let r = tokio::task::spawn_blocking(move || {
                let _maintenance = maintenance;
                let (seq, bytes) = checkpoint::capture(&i.shared.read());
                checkpoint::write(&i.config.data_dir, seq, &bytes)
            })
            .await
            .map_err(|e| ServiceError(e.to_string()))?;
            match r {
                Ok(seq) => tracing::info!(seq, "checkpoint written"),
                Err(e) => tracing::warn!(error = %e, "checkpoint on shutdown failed"),
            }
        }
        inner.store.db.flush_async().await.map_err(|e| ServiceError(format!("final flush: {e}")))?;
        tracing::info!(head = inner.shared.head(), "stopped");
        Ok(())
    }
}

fn spawn_pruner(inner: Arc<Context>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(inner.config.prune_interval_secs));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let i = inner.clone();
            let n = tokio::task::spawn_blocking(move || i.shared.prune(i.clock.now_secs())).await.unwrap_or(0);
            if n > 0 {
                tracing::debug!(pruned = n, "pruned expired denylist entries");
            }
        }
    })
}

fn spawn_key_reloader(inner: Arc<Context>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let i = inner.clone();
            let r = tokio::task::spawn_blocking(move || i.keys().reload(&i.config.data_dir)).await;
            match r {
                Ok(Ok(Some(ring))) => {
                    tracing::info!(keys = ring.len(), "API keys reloaded");
                    inner.set_keys(ring);
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "API key file not reloaded; keeping the previous keys"),
                Err(e) => tracing::warn!(error = %e, "key reload task failed"),
            }
        }
    })
}
