//! The sled database: trees, key encoding and meta data, in one place.
//!
//! | tree | key | value |
//! |---|---|---|
//! | `log` | seq, u64 big-endian | [`Record`](crate::event::Record) |
//! | `idempotency` | `len u16 BE \| key_id \| idempotency_key` | seq, u64 big-endian |
//! | `families` | `sid` | [`Family`](crate::family::Family) |
//! | `family_tokens` | `len u16 BE \| sid \| jti` | seq that superseded the token, u64 BE |
//! | default | `format_version`, `hash_key`, `log_floor`, `epoch` | meta data |
//!
//! `log_floor` is the highest sequence number retention has dropped (0: none); the log
//! holds every event after it, gap-free. `epoch` is 16 random bytes drawn once per data
//! directory (on first open by a build that knows it); every signed snapshot and delta
//! carries it, so replicas can tell this directory's log from any other's.

use std::path::Path;

use rand::RngCore;
use sled::{Db, Tree};

use crate::error::StoreError;

/// The on-disk format version this build reads and writes.
pub(crate) const FORMAT_VERSION: u32 = 1;

const META_FORMAT: &[u8] = b"format_version";
const META_HASH_KEY: &[u8] = b"hash_key";
const META_FLOOR: &[u8] = b"log_floor";
const META_EPOCH: &[u8] = b"epoch";

/// The open database and its trees.
#[derive(Clone)]
pub(crate) struct Store {
    pub(crate) db: Db,
    pub(crate) log: Tree,
    pub(crate) idempotency: Tree,
    pub(crate) families: Tree,
    pub(crate) family_tokens: Tree,
}

impl Store {
    /// Opens (creating on first use) the database under `dir/db`, checks its format
    /// version and draws the denylist hash key on first use.
    pub(crate) fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Io(format!("create {}: {e}", dir.display())))?;
        let db = sled::Config::new().path(dir.join("db")).open()?;
        let store = Store {
            log: db.open_tree("log")?,
            idempotency: db.open_tree("idempotency")?,
            families: db.open_tree("families")?,
            family_tokens: db.open_tree("family_tokens")?,
            db,
        };
        match store.db.get(META_FORMAT)? {
            Some(v) => {
                let found =
                    u32::from_be_bytes(v.as_ref().try_into().map_err(|_| StoreError::corrupt("format version"))?);
                if found != FORMAT_VERSION {
                    return Err(StoreError::Format { found, expected: FORMAT_VERSION });
                }
            }
            None => {
                let mut key = [0u8; 16];
                rand::rngs::OsRng.fill_bytes(&mut key);
                store.db.insert(META_HASH_KEY, &key[..])?;
                store.db.insert(META_FLOOR, &0u64.to_be_bytes()[..])?;
                store.db.insert(META_FORMAT, &FORMAT_VERSION.to_be_bytes()[..])?;
                store.db.flush()?;
            }
        }
        if store.db.get(META_EPOCH)?.is_none() {
            let mut epoch = [0u8; 16];
            rand::rngs::OsRng.fill_bytes(&mut epoch);
            store.db.insert(META_EPOCH, &epoch[..])?;
            store.db.flush()?;
        }
        Ok(store)
    }

    /// [`Store::open`], retrying for up to 5 s while another handle in this process
    /// (a service that just stopped) lets go of sled's directory lock.
    pub(crate) fn open_waiting(dir: &Path) -> Result<Store, StoreError> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match Store::open(dir) {
                Err(StoreError::Sled(sled::Error::Io(e)))
                    if e.to_string().contains("could not acquire lock") && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    /// The denylist fingerprint key, drawn once per data directory.
    pub(crate) fn hash_key(&self) -> Result<[u8; 16], StoreError> {
        let v = self.db.get(META_HASH_KEY)?.ok_or_else(|| StoreError::corrupt("hash key missing"))?;
        v.as_ref().try_into().map_err(|_| StoreError::corrupt("hash key length"))
    }

    /// The replication epoch, drawn once per data directory.
    pub(crate) fn epoch(&self) -> Result<[u8; 16], StoreError> {
        let v = self.db.get(META_EPOCH)?.ok_or_else(|| StoreError::corrupt("epoch missing"))?;
        v.as_ref().try_into().map_err(|_| StoreError::corrupt("epoch length"))
    }

    /// The highest sequence number dropped by retention.
    pub(crate) fn floor(&self) -> Result<u64, StoreError> {
        match self.db.get(META_FLOOR)? {
            Some(v) => Ok(decode_seq(&v).ok_or_else(|| StoreError::corrupt("log floor"))?),
            None => Ok(0),
        }
    }

    /// Records the highest sequence number dropped by retention.
    pub(crate) fn set_floor(&self, floor: u64) -> Result<(), StoreError> {
        self.db.insert(META_FLOOR, &floor.to_be_bytes()[..])?;
        Ok(())
    }
}

/// A log key.
pub(crate) fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// Reads a big-endian u64 key or value.
pub(crate) fn decode_seq(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.try_into().ok()?))
}

/// `len u16 BE | a | b`: a composite key whose first part cannot bleed into the second.
pub(crate) fn pair_key(a: &str, b: &str) -> Vec<u8> {
    let a = &a.as_bytes()[..a.len().min(usize::from(u16::MAX))];
    let mut k = Vec::with_capacity(2 + a.len() + b.len());
    k.extend_from_slice(&(a.len() as u16).to_be_bytes());
    k.extend_from_slice(a);
    k.extend_from_slice(b.as_bytes());
    k
}

/// The prefix of every [`pair_key`] whose first part is `a`.
pub(crate) fn pair_prefix(a: &str) -> Vec<u8> {
    pair_key(a, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_and_do_not_collide() {
        assert!(seq_key(255) < seq_key(256));
        assert_eq!(decode_seq(&seq_key(42)), Some(42));
        assert_ne!(pair_key("ab", "c"), pair_key("a", "bc"));
        assert!(pair_key("s", "j").starts_with(&pair_prefix("s")));
        assert!(!pair_key("s2", "j").starts_with(&pair_prefix("s")));
    }

    #[test]
    fn open_twice_keeps_key_and_refuses_other_versions() {
        let dir = tempfile::tempdir().unwrap();
        let k = {
            let s = Store::open(dir.path()).unwrap();
            s.hash_key().unwrap()
        };
        let s = Store::open_waiting(dir.path()).unwrap();
        assert_eq!(s.hash_key().unwrap(), k);
        let epoch = s.epoch().unwrap();
        assert_ne!(epoch, [0; 16]);
        drop(s);
        let s = Store::open_waiting(dir.path()).unwrap();
        assert_eq!(s.epoch().unwrap(), epoch);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(Store::open(other.path()).unwrap().epoch().unwrap(), epoch);
        s.db.insert(META_FORMAT, &9u32.to_be_bytes()[..]).unwrap();
        s.db.flush().unwrap();
        drop(s);
        assert!(matches!(Store::open_waiting(dir.path()), Err(StoreError::Format { found: 9, .. })));
    }
}
