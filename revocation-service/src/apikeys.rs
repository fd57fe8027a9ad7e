//! API keys: scopes, the key file, and authentication.
//!
//! Keys live in `api-keys.json` in the data directory, outside sled so that the
//! `keys` commands work while the service runs (sled allows one process per
//! database). Only a SHA-256 hash of each secret is stored; secrets are 256 random
//! bits, so a fast hash is enough. A secret reads `tgk_<id>_<random>`: the id finds
//! the record, and the hash of the whole secret is compared in constant time.
//!
//! A key that may write events (`events:write`, or `admin`, which grants it) is scoped
//! to the issuers whose tokens it may revoke: `--issuer ISS` (one or more) or, asked
//! for by name, `--all-issuers`. An `events:write` key created without either is
//! refused; an older key file's writing keys without a scope stay valid for their
//! other scopes but may write no events (403 `issuer_scope_missing`).
//!
//! The service re-reads the file about once a second, so `keys create` and
//! `keys revoke` take effect without a restart. The file is replaced atomically
//! (write, sync, rename); concurrent `keys` commands are serialised by a lock file.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Post events, start sessions and rotate refresh tokens (for the key's issuers).
    EventsWrite,
    /// Read snapshots and deltas.
    DenylistRead,
    /// Read `/metrics`.
    MetricsRead,
    /// Everything, plus the operator endpoints (log, checkpoint, compaction); events
    /// only for the key's issuers.
    Admin,
}

/// The issuers whose tokens a key may revoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Issuers {
    /// None: the key writes no events (keys that only read, or older key files).
    None,
    /// Every issuer, and events without `iss` (which revoke across issuers): asked for
    /// by name (`--all-issuers`).
    Any,
    /// Only these issuers; an event without `iss` from a key with exactly one issuer is
    /// scoped to it.
    Only(Vec<String>),
}

impl Issuers {
    /// Whether a key with this scope may act for issuer `iss` (`None`: every issuer).
    pub fn covers(&self, iss: Option<&str>) -> bool {
        match (self, iss) {
            (Issuers::Any, _) => true,
            (Issuers::Only(list), Some(i)) => list.iter().any(|x| x == i),
            _ => false,
        }
    }
}

impl Scope {
    /// The scope's name, as used on the command line and in the key file.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::EventsWrite => "events:write",
            Scope::DenylistRead => "denylist:read",
            Scope::MetricsRead => "metrics:read",
            Scope::Admin => "admin",
        }
    }

    /// Parses a scope name.
    pub fn parse(s: &str) -> Option<Scope> {
        [Scope::EventsWrite, Scope::DenylistRead, Scope::MetricsRead, Scope::Admin]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

/// One stored key (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Public identifier, part of the secret; logged with every event it posts.
    pub id: String,
    /// Operator-chosen name (unique among unrevoked keys).
    pub name: String,
    /// Scope names.
    pub scopes: Vec<String>,
    /// Hex SHA-256 of the secret.
    pub hash: String,
    /// Creation time, seconds since the epoch.
    pub created: u64,
    /// Revocation time, if revoked.
    pub revoked: Option<u64>,
    /// The issuers the key may write events for (absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuers: Option<Vec<String>>,
    /// The key may write events for every issuer (asked for by name).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_issuers: bool,
}

impl KeyRecord {
    /// The key's issuer scope.
    pub fn issuer_scope(&self) -> Issuers {
        match (&self.issuers, self.all_issuers) {
            (_, true) => Issuers::Any,
            (Some(list), false) if !list.is_empty() => Issuers::Only(list.clone()),
            _ => Issuers::None,
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct KeyFile {
    keys: Vec<KeyRecord>,
}

/// Errors of the key file.
#[derive(Debug)]
pub enum KeyError {
    /// The file could not be read or written.
    Io(String),
    /// The file is not valid.
    Invalid(String),
    /// The request cannot be carried out (unknown key, duplicate name, bad scope...).
    Refused(String),
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyError::Io(e) => write!(f, "key file: {e}"),
            KeyError::Invalid(e) => write!(f, "key file is invalid: {e}"),
            KeyError::Refused(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for KeyError {}

/// The key file of a data directory.
pub fn key_file(data_dir: &Path) -> PathBuf {
    data_dir.join("api-keys.json")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn read_file(path: &Path) -> Result<KeyFile, KeyError> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| KeyError::Invalid(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KeyFile::default()),
        Err(e) => Err(KeyError::Io(format!("{}: {e}", path.display()))),
    }
}

/// Holds the lock file for the duration of a read-modify-write.
struct Lock(PathBuf);

impl Lock {
    fn take(data_dir: &Path) -> Result<Lock, KeyError> {
        std::fs::create_dir_all(data_dir).map_err(|e| KeyError::Io(e.to_string()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| KeyError::Io(format!("{}: {e}", data_dir.display())))?;
        }
        let p = data_dir.join("api-keys.lock");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            match opts.open(&p) {
                Ok(_) => return Ok(Lock(p)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => {
                    return Err(KeyError::Io(format!(
                        "cannot take {} ({e}); if no other `keys` command runs, remove it",
                        p.display()
                    )))
                }
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn write_file(data_dir: &Path, file: &KeyFile) -> Result<(), KeyError> {
    use std::io::Write;
    let path = key_file(data_dir);
    let tmp = data_dir.join("api-keys.json.tmp");
    let bytes = serde_json::to_vec_pretty(file).map_err(|e| KeyError::Invalid(e.to_string()))?;
    let io = |e: std::io::Error| KeyError::Io(format!("{}: {e}", tmp.display()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp).map_err(io)?;
    f.write_all(&bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(io)?;
    std::fs::File::open(data_dir).and_then(|d| d.sync_all()).map_err(io)
}

/// Creates a key; returns its record and the secret (shown once, never stored).
///
/// A key with `events:write` needs an issuer scope (`issuers` not [`Issuers::None`]);
/// an `admin` key without one may do everything but write events; a key that writes
/// no events takes none.
pub fn create(
    data_dir: &Path,
    name: &str,
    scopes: &[Scope],
    issuers: &Issuers,
) -> Result<(KeyRecord, String), KeyError> {
    if name.is_empty() || name.len() > 128 {
        return Err(KeyError::Refused("the name must be 1 to 128 bytes".into()));
    }
    if scopes.is_empty() {
        return Err(KeyError::Refused("a key needs at least one scope".into()));
    }
    let writes = scopes.iter().any(|s| matches!(s, Scope::EventsWrite | Scope::Admin));
    match issuers {
        Issuers::None if scopes.contains(&Scope::EventsWrite) => {
            return Err(KeyError::Refused(
                "an events:write key needs an issuer scope: --issuer ISS (repeatable) or --all-issuers".into(),
            ))
        }
        Issuers::Any | Issuers::Only(_) if !writes => {
            return Err(KeyError::Refused("--issuer and --all-issuers apply only to keys that write events".into()))
        }
        Issuers::Only(list) if list.is_empty() => return Err(KeyError::Refused("--issuer needs a value".into())),
        Issuers::Only(list) => {
            if let Some(bad) = list.iter().find(|i| i.is_empty() || i.len() > tollgate_core::wire::MAX_ID_BYTES) {
                return Err(KeyError::Refused(format!("issuer {bad:?}: must be 1 to 1024 bytes")));
            }
        }
        _ => {}
    }
    let _lock = Lock::take(data_dir)?;
    let mut file = read_file(&key_file(data_dir))?;
    if file.keys.iter().any(|k| k.name == name && k.revoked.is_none()) {
        return Err(KeyError::Refused(format!("a key named {name:?} exists; revoke it first")));
    }
    let mut rnd = [0u8; 36];
    rand::rngs::OsRng.fill_bytes(&mut rnd);
    let id = hex(&rnd[..4]);
    let secret = format!("tgk_{id}_{}", tollgate_core::b64::encode(&rnd[4..]));
    let mut scope_names: Vec<String> = scopes.iter().map(|s| s.as_str().to_string()).collect();
    scope_names.sort();
    scope_names.dedup();
    let rec = KeyRecord {
        id,
        name: name.to_string(),
        scopes: scope_names,
        hash: hex(&Sha256::digest(secret.as_bytes())),
        created: now_secs(),
        revoked: None,
        issuers: match issuers {
            Issuers::Only(list) => {
                let mut l = list.clone();
                l.sort();
                l.dedup();
                Some(l)
            }
            _ => None,
        },
        all_issuers: *issuers == Issuers::Any,
    };
    file.keys.push(rec.clone());
    write_file(data_dir, &file)?;
    Ok((rec, secret))
}

/// Revokes every unrevoked key whose id or name is `id_or_name`; returns how many.
pub fn revoke(data_dir: &Path, id_or_name: &str) -> Result<usize, KeyError> {
    let _lock = Lock::take(data_dir)?;
    let mut file = read_file(&key_file(data_dir))?;
    let now = now_secs();
    let mut n = 0;
    for k in file.keys.iter_mut().filter(|k| k.revoked.is_none() && (k.id == id_or_name || k.name == id_or_name)) {
        k.revoked = Some(now);
        n += 1;
    }
    if n == 0 {
        return Err(KeyError::Refused(format!("no unrevoked key with id or name {id_or_name:?}")));
    }
    write_file(data_dir, &file)?;
    Ok(n)
}

/// Every key record.
pub fn list(data_dir: &Path) -> Result<Vec<KeyRecord>, KeyError> {
    Ok(read_file(&key_file(data_dir))?.keys)
}

/// Who a request is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Principal {
    pub(crate) id: String,
    pub(crate) scopes: Vec<Scope>,
    pub(crate) issuers: Issuers,
}

impl Principal {
    /// Whether the key grants `scope` (`admin` grants every scope).
    pub(crate) fn allows(&self, scope: Scope) -> bool {
        self.scopes.iter().any(|s| *s == scope || *s == Scope::Admin)
    }
}

struct LoadedKey {
    hash: [u8; 32],
    principal: Principal,
}

/// The unrevoked keys, as loaded from the key file.
#[derive(Default)]
pub(crate) struct KeyRing {
    keys: Vec<LoadedKey>,
    /// The file's bytes this ring was loaded from (`None`: never loaded).
    source: Option<Vec<u8>>,
}

impl KeyRing {
    /// Loads the key file of `data_dir`, if its bytes changed since `self` was loaded.
    pub(crate) fn reload(&self, data_dir: &Path) -> Result<Option<KeyRing>, KeyError> {
        let bytes = match std::fs::read(key_file(data_dir)) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(KeyError::Io(e.to_string())),
        };
        if self.source.as_deref() == Some(&bytes[..]) {
            return Ok(None);
        }
        let file: KeyFile = if bytes.is_empty() {
            KeyFile::default()
        } else {
            serde_json::from_slice(&bytes).map_err(|e| KeyError::Invalid(e.to_string()))?
        };
        let mut keys = Vec::new();
        for k in file.keys.into_iter().filter(|k| k.revoked.is_none()) {
            let mut hash = [0u8; 32];
            let raw: Vec<u8> = (0..k.hash.len() / 2)
                .filter_map(|i| u8::from_str_radix(k.hash.get(2 * i..2 * i + 2)?, 16).ok())
                .collect();
            if raw.len() != 32 {
                return Err(KeyError::Invalid(format!("key {}: bad hash", k.id)));
            }
            hash.copy_from_slice(&raw);
            let scopes = k
                .scopes
                .iter()
                .map(|s| Scope::parse(s).ok_or_else(|| KeyError::Invalid(format!("key {}: unknown scope {s:?}", k.id))))
                .collect::<Result<Vec<_>, _>>()?;
            let issuers = k.issuer_scope();
            if issuers == Issuers::None && scopes.contains(&Scope::EventsWrite) {
                tracing::warn!(key = %k.id, name = %k.name, "events:write key without an issuer scope: it may write no events until re-created with --issuer or --all-issuers");
            }
            keys.push(LoadedKey { hash, principal: Principal { id: k.id, scopes, issuers } });
        }
        Ok(Some(KeyRing { keys, source: Some(bytes) }))
    }

    /// The key a bearer secret belongs to, if it is a valid unrevoked key.
    pub(crate) fn authenticate(&self, secret: &str) -> Option<Principal> {
        let id = secret.strip_prefix("tgk_")?.split('_').next()?;
        let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let mut found = None;
        for k in self.keys.iter().filter(|k| k.principal.id == id) {
            if bool::from(k.hash.ct_eq(&digest)) {
                found = Some(k.principal.clone());
            }
        }
        found
    }

    /// Number of unrevoked keys.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_authenticate_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let iss = Issuers::Only(vec!["https://i".into()]);
        // A writing key needs an issuer scope; a reading key takes none.
        assert!(create(dir.path(), "w", &[Scope::EventsWrite], &Issuers::None).is_err());
        assert!(create(dir.path(), "r", &[Scope::DenylistRead], &iss).is_err());
        assert!(create(dir.path(), "e", &[Scope::EventsWrite], &Issuers::Only(vec![])).is_err());
        let (rec, secret) = create(dir.path(), "origin", &[Scope::EventsWrite], &iss).unwrap();
        assert_eq!(rec.issuer_scope(), iss);
        assert!(!std::fs::read_to_string(key_file(dir.path())).unwrap().contains(&secret));
        assert!(create(dir.path(), "origin", &[Scope::Admin], &Issuers::None).is_err());
        let ring = KeyRing::default().reload(dir.path()).unwrap().unwrap();
        let p = ring.authenticate(&secret).unwrap();
        assert_eq!(p.id, rec.id);
        assert!(p.allows(Scope::EventsWrite) && !p.allows(Scope::DenylistRead));
        let mut wrong = secret.clone();
        let last = wrong.pop().unwrap();
        wrong.push(if last == 'B' { 'C' } else { 'B' });
        assert_eq!(ring.authenticate(&wrong), None);
        assert_eq!(ring.authenticate("nonsense"), None);
        assert!(ring.reload(dir.path()).unwrap().is_none(), "unchanged file is not reloaded");
        assert_eq!(revoke(dir.path(), "origin").unwrap(), 1);
        let ring = ring.reload(dir.path()).unwrap().unwrap();
        assert_eq!(ring.authenticate(&secret), None);
        assert!(revoke(dir.path(), "origin").is_err());
        let admin = Principal { id: "x".into(), scopes: vec![Scope::Admin], issuers: Issuers::None };
        assert!(admin.allows(Scope::DenylistRead));
    }
}
