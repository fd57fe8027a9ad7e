//! The service's life cycle: open (rebuild the denylist, start the writer and the
//! background tasks), serve on a pre-bound listener until a shutdown signal, then
//! drain in-flight requests, stop the writer, checkpoint and close the database.

use std::future::Future;
use std::path::{Path, PathBuf};
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
use crate::context::{Context, Signing};
use crate::error::StoreError;
use crate::limits::RateLimiter;
use crate::projection::{self, Projection};
use crate::server::{self, ConnMetrics, Limits};
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

/// The file the signing key is read from (`None`: it is configured inline).
fn signing_key_path(config: &Config) -> Option<PathBuf> {
    match (&config.signing_key, &config.signing_key_file) {
        (Some(_), _) => None,
        (None, Some(f)) => Some(f.clone()),
        (None, None) => Some(config.data_dir.join("signing-key")),
    }
}

/// Reads and parses a signing key file: its bytes and the key.
fn read_signing_key(path: &Path) -> Result<(Vec<u8>, DenylistSigner), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("signing key file {}: {e}", path.display()))?;
    let text = std::str::from_utf8(&bytes).map_err(|_| format!("signing key file {}: not text", path.display()))?;
    let secret = parse_secret(text).map_err(|e| format!("signing key file {}: {e}", path.display()))?;
    let signer =
        DenylistSigner::from_secret(&secret).map_err(|e| format!("signing key file {}: {e}", path.display()))?;
    Ok((bytes, signer))
}

/// Loads the signing key: inline, or from its file (generated on first start when it
/// is the default file and missing). Returns the file's bytes when there is a file.
fn load_signer(config: &Config) -> Result<(DenylistSigner, Option<Vec<u8>>), ServiceError> {
    let bad = |e: &dyn std::fmt::Display| ServiceError(format!("signing key: {e}"));
    if let Some(k) = &config.signing_key {
        let secret = parse_secret(k).map_err(|e| bad(&e))?;
        return Ok((DenylistSigner::from_secret(&secret).map_err(|e| bad(&e))?, None));
    }
    let path = signing_key_path(config).unwrap_or_else(|| config.data_dir.join("signing-key"));
    if config.signing_key_file.is_none() && !path.exists() {
        generate_signing_key(&path)?;
    }
    let (bytes, signer) = read_signing_key(&path).map_err(|e| ServiceError(format!("{e}; refusing to start")))?;
    Ok((signer, Some(bytes)))
}

/// Makes the data directory and everything under it private to the service's user:
/// directories 0700, files 0600 (fixing, and logging, looser modes left by other
/// tools). Files the service creates later are 0600 by their own mode and, in the
/// binary, by its umask (077).
fn restrict_permissions(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::symlink_metadata(dir)?;
        let want = if meta.is_dir() { 0o700 } else { 0o600 };
        if meta.file_type().is_symlink() {
            return Ok(());
        }
        if meta.permissions().mode() & 0o777 != want {
            tracing::info!(path = %dir.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777), "restricting permissions");
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(want))?;
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(dir)? {
                restrict_permissions(&entry?.path())?;
            }
        }
    }
    Ok(())
}

fn generate_signing_key(path: &Path) -> Result<(), ServiceError> {
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
    Ok(())
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
        restrict_permissions(&config.data_dir)
            .map_err(|e| ServiceError(format!("data dir {}: permissions: {e}", config.data_dir.display())))?;
        let (signer, key_bytes) = load_signer(&config)?;
        let dir = config.data_dir.clone();
        // Entries stay until `exp` plus the edges' largest leeway: an edge that accepts
        // a token up to that long after its `exp` must still find it revoked.
        let prune_before = clock.now_secs().saturating_sub(config.edge_leeway_secs);
        let t0 = std::time::Instant::now();
        let (store, live, rebuilt, open_time, epoch) = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            let t = std::time::Instant::now();
            let store = Store::open_waiting(&dir)?;
            let open_time = t.elapsed();
            // sled's lock is ours now: no other process writes checkpoints here.
            checkpoint::remove_stale_temps(&dir)?;
            let (live, rebuilt) = checkpoint::rebuild(&store, &dir, prune_before)?;
            let epoch = store.epoch()?;
            Ok((store, live, rebuilt, open_time, epoch))
        })
        .await
        .map_err(|e| ServiceError(format!("start-up task: {e}")))??;
        tracing::info!(
            head = rebuilt.head,
            checkpoint = ?rebuilt.checkpoint,
            replayed = rebuilt.replayed,
            entries = live.ids.entries.len(),
            pruned = rebuilt.pruned,
            took_ms = t0.elapsed().as_millis() as u64,
            "denylist rebuilt"
        );
        let id = projection::dir_id(&store.hash_key()?);
        // Go on appending to the projection when start-up could use it through the head;
        // else begin it anew at the head, and checkpoint there in the background so the
        // next start needs neither the log up to here nor this file's past.
        let mut checkpoint_now = false;
        let proj = match rebuilt.projection {
            Some((end, reach)) if reach == rebuilt.head => Projection::resume(&config.data_dir, end, reach),
            _ => {
                checkpoint_now = rebuilt.head > rebuilt.checkpoint.unwrap_or(0);
                Projection::begin(&config.data_dir, &id, rebuilt.head)
            }
        };
        let projection =
            proj.map_err(|e| tracing::warn!(error = %e, "no denylist projection: the next start replays the log")).ok();
        let shared = Arc::new(Shared::new(live, rebuilt.floor));
        let (writer, writer_thread) = writer::spawn(writer::Writer {
            store: store.clone(),
            shared: shared.clone(),
            clock: clock.clone(),
            grace_ms: config.refresh_grace_secs.saturating_mul(1000),
            retry_ms: config.rotation_retry_secs.saturating_mul(1000),
            next_seq: rebuilt.head + 1,
            projection,
        })
        .map_err(|e| ServiceError(format!("writer thread: {e}")))?;
        let keys =
            KeyRing::default().reload(&config.data_dir).map_err(|e| ServiceError(e.to_string()))?.unwrap_or_default();
        if keys.len() == 0 {
            tracing::warn!("no API keys: create one with `tollgate-revocation keys create`");
        }
        let (drain_tx, draining) = watch::channel(false);
        let inner = Arc::new(Context {
            signing: RwLock::new(Arc::new(Signing::new(signer))),
            epoch,
            store,
            shared,
            writer,
            keys: RwLock::new(Arc::new(keys)),
            clock,
            requests: Arc::new(Semaphore::new(config.max_concurrent_requests)),
            replicas: Arc::new(Semaphore::new(config.max_replication_clients)),
            draining,
            maintenance: Arc::new(tokio::sync::Mutex::new(())),
            conn: Arc::new(ConnMetrics::default()),
            limiter: RateLimiter::new(config.key_events_per_sec, config.key_burst_events),
            fatal: watch::channel(None).0,
            config,
        });
        let mut background = vec![spawn_pruner(inner.clone()), spawn_key_reloader(inner.clone())];
        if let (Some(path), Some(bytes)) = (signing_key_path(&inner.config), key_bytes) {
            background.push(spawn_signing_key_watcher(inner.clone(), path, bytes));
        }
        if checkpoint_now {
            let i = inner.clone();
            // Detached on purpose: shutdown waits for it through the maintenance lock.
            drop(tokio::spawn(async move {
                let lock = i.maintenance.clone().lock_owned().await;
                if *i.draining.borrow() {
                    return; // shutting down: its own checkpoint (if any) does this
                }
                let j = i.clone();
                let r = tokio::task::spawn_blocking(move || {
                    let _lock = lock;
                    let (seq, bytes) = checkpoint::capture(&j.shared.read());
                    checkpoint::write(&j.config.data_dir, seq, &bytes)
                })
                .await;
                match r {
                    Ok(Ok(seq)) => tracing::info!(seq, "start-up checkpoint written"),
                    Ok(Err(e)) => tracing::warn!(error = %e, "start-up checkpoint failed"),
                    Err(e) => tracing::warn!(error = %e, "start-up checkpoint task failed"),
                }
            }));
        }
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

    /// Events folded from the denylist projection at start-up (instead of the log).
    pub fn projected_at_start(&self) -> u64 {
        self.rebuilt.projected
    }

    /// Start-up phases: opening sled, loading the checkpoint, folding the projection and
    /// the log.
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
    ///
    /// Connections are bounded as `server.rs` describes: the soft file limit is raised
    /// to the hard one first, and the connection caps are kept below it.
    pub async fn serve(
        self,
        listener: TcpListener,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServiceError> {
        let addr = listener.local_addr().map_err(|e| ServiceError(e.to_string()))?;
        let nofile = server::raise_nofile_limit();
        let c = &self.inner.config;
        let limits = Limits {
            max_connections: c.max_connections,
            max_connections_per_ip: c.max_connections_per_ip,
            header_timeout: Duration::from_millis(c.header_timeout_ms),
            keep_alive_timeout: Duration::from_secs(c.keep_alive_timeout_secs),
        }
        .effective(nofile);
        if limits.max_connections < c.max_connections || limits.max_connections_per_ip < c.max_connections_per_ip {
            tracing::warn!(
                nofile,
                max_connections = limits.max_connections,
                max_connections_per_ip = limits.max_connections_per_ip,
                "connection caps lowered to stay below the file limit (one address at most half)"
            );
        }
        tracing::info!(
            %addr,
            max_connections = limits.max_connections,
            max_connections_per_ip = limits.max_connections_per_ip,
            nofile,
            "listening"
        );
        let drain_tx = self.drain_tx.clone();
        let mut drained = self.drain_tx.subscribe();
        let mut fatal = self.inner.fatal.subscribe();
        let signal_task = tokio::spawn(async move {
            tokio::select! {
                _ = signal => tracing::info!("shutdown requested; draining"),
                _ = fatal.wait_for(Option::is_some) => tracing::error!("stopping: the service cannot serve safely"),
            }
            let _ = drain_tx.send(true);
        });
        let server = server::run(listener, self.router(), limits, self.inner.conn.clone(), self.drain_tx.subscribe());
        let grace = Duration::from_secs(self.inner.config.shutdown_grace_secs);
        tokio::select! {
            _ = server => {}
            _ = async { let _ = drained.wait_for(|d| *d).await; tokio::time::sleep(grace).await } => {
                tracing::warn!("in-flight requests did not finish within the shutdown grace period");
            }
        }
        signal_task.abort();
        let fatal = self.inner.fatal();
        self.close().await?;
        match fatal {
            Some(why) => Err(ServiceError(why)),
            None => Ok(()),
        }
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
        // A checkpoint or compaction an admin request (or start-up) began may still run
        // (its blocking work outlives a timed-out request): wait for it.
        let maintenance = inner.maintenance.clone().lock_owned().await;
        if inner.config.checkpoint_on_shutdown && inner.shared.writable.load(Ordering::SeqCst) {
            let i = inner.clone();
            let r = tokio::task::spawn_blocking(move || {
                let _maintenance = maintenance;
                let (seq, bytes) = checkpoint::capture(&i.shared.read());
                checkpoint::write(&i.config.data_dir, seq, &bytes)
            })
            .await
            .map_err(|e| ServiceError(e.to_string()))?;
            match r {
                Ok(seq) => {
                    tracing::info!(seq, "checkpoint written");
                    // The writer has stopped: the checkpoint is at the head, and the
                    // projection can begin anew there.
                    if seq == inner.shared.head() {
                        let id = inner.store.hash_key().map(|k| projection::dir_id(&k));
                        if let Err(e) = id.map_err(|e| e.to_string()).and_then(|id| {
                            Projection::begin(&inner.config.data_dir, &id, seq).map_err(|e| e.to_string())
                        }) {
                            tracing::warn!(error = %e, "denylist projection not begun anew");
                        }
                    }
                }
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
            let cutoff = i.clock.now_secs().saturating_sub(i.config.edge_leeway_secs);
            let n = tokio::task::spawn_blocking(move || i.shared.prune(cutoff)).await.unwrap_or(0);
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

/// Re-reads the signing key file every second. A changed file with a valid key is
/// adopted (snapshots are signed with it from then on; edges that pin the old key must
/// be given the new one). A file that no longer parses, or is gone, stops the service
/// (fail closed): it never goes on signing with a key its operator has replaced.
fn spawn_signing_key_watcher(inner: Arc<Context>, path: PathBuf, mut last: Vec<u8>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let p = path.clone();
            let read = tokio::task::spawn_blocking(move || (std::fs::read(&p).ok(), read_signing_key(&p))).await;
            let Ok((bytes, mut parsed)) = read else { continue };
            if bytes.as_deref() == Some(&last[..]) {
                continue;
            }
            if parsed.is_err() {
                // Perhaps caught half-written (replace it atomically: write, then
                // rename): look once more before giving up.
                tokio::time::sleep(Duration::from_millis(500)).await;
                let p = path.clone();
                match tokio::task::spawn_blocking(move || read_signing_key(&p)).await {
                    Ok(again) => parsed = again,
                    Err(_) => continue,
                }
            }
            match parsed {
                Ok((bytes, signer)) => {
                    last = bytes;
                    if signer.secret() != inner.signing().signer.secret() {
                        let s = Signing::new(signer);
                        tracing::warn!(kid = %s.jwk["kid"], "denylist signing key changed: snapshots and deltas are signed with the new key; edges pinning the old one must be given the new one");
                        *inner.signing.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(s);
                        inner.shared.prune_gen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
                Err(e) => {
                    let why = format!("{e}: the denylist signing key can no longer be read; stopping (fail closed) rather than signing with the previous key");
                    tracing::error!("{why}");
                    inner.fatal.send_replace(Some(why));
                    return;
                }
            }
        }
    })
}
