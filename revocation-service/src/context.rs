//! The state every request, background task and the shutdown path share: one
//! [`Context`] per running service, built by `service.rs` at start-up and handed to the
//! router (`api.rs`) behind an [`Arc`].
//!
//! It depends only on the parts it holds (store, denylist state, writer, keys,
//! configuration); nothing here knows the router or the start-up code.

use std::sync::{Arc, RwLock};

use tokio::sync::{watch, Semaphore};
use tollgate_core::wire::{DenylistSigner, Epoch};

use crate::apikeys::KeyRing;
use crate::clock::Clock;
use crate::config::Config;
use crate::limits::RateLimiter;
use crate::server::ConnMetrics;
use crate::state::Shared;
use crate::store::Store;
use crate::writer::WriterHandle;

/// What the handlers, the background tasks and shutdown share.
pub(crate) struct Context {
    pub(crate) config: Config,
    pub(crate) store: Store,
    pub(crate) shared: Arc<Shared>,
    pub(crate) writer: WriterHandle,
    pub(crate) keys: RwLock<Arc<KeyRing>>,
    /// The denylist signing key in use (replaced when its file changes).
    pub(crate) signing: RwLock<Arc<Signing>>,
    /// This data directory's replication epoch (stamped on every snapshot and delta).
    pub(crate) epoch: Epoch,
    pub(crate) clock: Arc<dyn Clock>,
    /// Bounds requests in flight.
    pub(crate) requests: Arc<Semaphore>,
    /// Bounds long-polling replicas.
    pub(crate) replicas: Arc<Semaphore>,
    /// Turns true when shutdown starts: long-polls answer at once.
    pub(crate) draining: watch::Receiver<bool>,
    /// Held by whatever writes a checkpoint or runs retention, for as long as the
    /// blocking work runs (not only while a request waits for it): the admin
    /// endpoints try it and answer 409 when taken, shutdown waits for it.
    pub(crate) maintenance: Arc<tokio::sync::Mutex<()>>,
    /// The connection layer's counters (`server.rs`).
    pub(crate) conn: Arc<ConnMetrics>,
    /// Per-key rate limits.
    pub(crate) limiter: RateLimiter,
    /// Set, with the reason, when the service must stop serving (its signing key file
    /// no longer parses): replication answers 503 at once and the service shuts down.
    pub(crate) fatal: watch::Sender<Option<String>>,
}

/// A denylist signing key and its public JWK.
pub(crate) struct Signing {
    pub(crate) signer: DenylistSigner,
    pub(crate) jwk: serde_json::Value,
}

impl Signing {
    /// The key and its JWK.
    pub(crate) fn new(signer: DenylistSigner) -> Signing {
        Signing { jwk: signer.public_jwk(), signer }
    }
}

/// The router's state: the shared [`Context`].
pub(crate) type AppState = Arc<Context>;

impl Context {
    /// The current key ring.
    pub(crate) fn keys(&self) -> Arc<KeyRing> {
        self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The signing key in use.
    pub(crate) fn signing(&self) -> Arc<Signing> {
        self.signing.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Why the service is stopping, if a fatal error stopped it.
    pub(crate) fn fatal(&self) -> Option<String> {
        self.fatal.borrow().clone()
    }

    /// Replaces the key ring (the key file changed).
    pub(crate) fn set_keys(&self, ring: KeyRing) {
        *self.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(ring);
    }
}
