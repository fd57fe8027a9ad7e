//! The hub's SQLite storage (`ctx.storage.sql`, synchronous). Every method runs its
//! statements with no `await` between them, so each one commits atomically and the
//! output gate holds the reply until it is durable.
//!
//! ```text
//! state(id = 1, tenant, head, snapshot_seq, snapshot_id, tick, latest)
//! snapshot_chunks(n, bytes)         the signed snapshot, in chunks under the 2 MB row limit
//! deltas(to_seq, from_seq, bytes)   the recent signed deltas, as received
//! ```
//!
//! `head` is the sequence the hub can bring a replica to; `tick` counts the signed
//! answers it took (a new one makes edges fetch again); `latest` is the last signed
//! message received when it moved nothing (an empty delta at `head`: the source's
//! proof that nothing happened, which edges take as a heartbeat).

use serde::Serialize;
use worker::{SqlStorage, SqlStorageValue};

/// Largest piece of a snapshot in one row (the SQLite row limit is 2 MB).
const CHUNK: usize = 1 << 20;
/// Deltas kept; older ones are dropped (a replica that far behind takes the snapshot).
pub const MAX_DELTAS: i64 = 4096;
/// Most messages in one `since/N` answer (the rest on the next ask).
pub const MAX_SINCE: usize = 512;

/// What the hub holds, in brief (the `GET head` answer).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Head {
    /// The shard this hub serves.
    pub tenant: String,
    /// The sequence the hub can bring a replica to (0 before its first snapshot).
    pub seq: u64,
    /// The stored snapshot's sequence, if there is one.
    pub snapshot_seq: Option<u64>,
    /// The first 16 hex digits of the stored snapshot's SHA-256 ("" without one).
    pub snapshot_id: String,
    /// Signed answers taken so far.
    pub tick: u64,
}

/// The answer to `since/N`.
#[derive(Debug, PartialEq, Eq)]
pub enum Since {
    /// Signed messages that bring a replica at N up to the head (possibly none).
    Messages(Vec<Vec<u8>>),
    /// The hub no longer holds a chain from N (or N is past its head): take a snapshot.
    Gone,
}

/// Storage errors (the SQL engine's message).
#[derive(Debug)]
pub struct StoreError(pub String);

impl From<worker::Error> for StoreError {
    fn from(e: worker::Error) -> StoreError {
        StoreError(e.to_string())
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "storage: {}", self.0)
    }
}

type R<T> = Result<T, StoreError>;

/// The hub's tables.
#[derive(Debug, Clone)]
pub struct Store {
    sql: SqlStorage,
}

fn int(v: u64) -> R<SqlStorageValue> {
    i64::try_from(v)
        .ok()
        .and_then(|v| SqlStorageValue::try_from_i64(v).ok())
        .ok_or_else(|| StoreError(format!("{v} is past 2^53 (SQLite integers cross into JavaScript as numbers)")))
}

fn as_u64(v: &SqlStorageValue) -> Option<u64> {
    match v {
        SqlStorageValue::Integer(i) => u64::try_from(*i).ok(),
        SqlStorageValue::Float(f) if *f >= 0.0 => Some(*f as u64),
        _ => None,
    }
}

fn as_blob(v: SqlStorageValue) -> Option<Vec<u8>> {
    match v {
        SqlStorageValue::Blob(b) => Some(b),
        _ => None,
    }
}

impl Store {
    /// Opens (creating the tables if needed) the hub's storage.
    pub fn open(sql: SqlStorage) -> R<Store> {
        sql.exec(
            "CREATE TABLE IF NOT EXISTS state (id INTEGER PRIMARY KEY CHECK (id = 1), tenant TEXT NOT NULL, \
             head INTEGER NOT NULL, snapshot_seq INTEGER, snapshot_id TEXT NOT NULL, tick INTEGER NOT NULL, latest BLOB)",
            None,
        )?;
        sql.exec("CREATE TABLE IF NOT EXISTS snapshot_chunks (n INTEGER PRIMARY KEY, bytes BLOB NOT NULL)", None)?;
        sql.exec(
            "CREATE TABLE IF NOT EXISTS deltas (to_seq INTEGER PRIMARY KEY, from_seq INTEGER NOT NULL, bytes BLOB NOT NULL)",
            None,
        )?;
        Ok(Store { sql })
    }

    /// The engine, for the log mode's own tables.
    pub fn sql(&self) -> &SqlStorage {
        &self.sql
    }

    /// The tenant this storage belongs to, recording `tenant` on first use. A different
    /// name than the recorded one is refused (a binding misrouted).
    pub fn claim(&self, tenant: &str) -> R<()> {
        self.sql.exec(
            "INSERT OR IGNORE INTO state (id, tenant, head, snapshot_seq, snapshot_id, tick, latest) \
             VALUES (1, ?, 0, NULL, '', 0, NULL)",
            vec![tenant.into()],
        )?;
        let head = self.head()?;
        if head.tenant != tenant {
            return Err(StoreError(format!("this hub serves tenant {:?}, not {tenant:?}", head.tenant)));
        }
        Ok(())
    }

    /// The recorded tenant, if any.
    pub fn tenant(&self) -> R<Option<String>> {
        let rows: Vec<Vec<SqlStorageValue>> =
            self.sql.exec("SELECT tenant FROM state WHERE id = 1", None)?.raw().collect::<Result<_, _>>()?;
        Ok(rows.into_iter().next().and_then(|r| match r.into_iter().next() {
            Some(SqlStorageValue::String(s)) => Some(s),
            _ => None,
        }))
    }

    /// What the hub holds.
    pub fn head(&self) -> R<Head> {
        let rows: Vec<Vec<SqlStorageValue>> = self
            .sql
            .exec("SELECT tenant, head, snapshot_seq, snapshot_id, tick FROM state WHERE id = 1", None)?
            .raw()
            .collect::<Result<_, _>>()?;
        let Some(row) = rows.into_iter().next() else { return Ok(Head::default()) };
        let mut it = row.into_iter();
        let tenant = match it.next() {
            Some(SqlStorageValue::String(s)) => s,
            _ => String::new(),
        };
        let seq = it.next().as_ref().and_then(as_u64).unwrap_or(0);
        let snapshot_seq = it.next().as_ref().and_then(as_u64);
        let snapshot_id = match it.next() {
            Some(SqlStorageValue::String(s)) => s,
            _ => String::new(),
        };
        let tick = it.next().as_ref().and_then(as_u64).unwrap_or(0);
        Ok(Head { tenant, seq, snapshot_seq, snapshot_id, tick })
    }

    /// Replaces the snapshot with `bytes` (at `seq`, id `id`). The head moves to `seq`
    /// when that is ahead of it; deltas the snapshot covers stay (replicas a little
    /// behind still catch up by delta) until pruned.
    pub fn put_snapshot(&self, bytes: &[u8], seq: u64, id: &str) -> R<()> {
        self.sql.exec("DELETE FROM snapshot_chunks", None)?;
        for (n, chunk) in bytes.chunks(CHUNK).enumerate() {
            self.sql.exec(
                "INSERT INTO snapshot_chunks (n, bytes) VALUES (?, ?)",
                vec![(n as i64).into(), chunk.to_vec().into()],
            )?;
        }
        // A snapshot ahead of the head makes every stored delta useless for reaching it
        // (there is no chain to the new head): drop them, and the heartbeat.
        let head = self.head()?;
        if seq > head.seq {
            self.sql.exec("DELETE FROM deltas", None)?;
            self.sql.exec("UPDATE state SET head = ?, latest = NULL WHERE id = 1", vec![int(seq)?])?;
        }
        self.sql.exec(
            "UPDATE state SET snapshot_seq = ?, snapshot_id = ?, tick = tick + 1 WHERE id = 1",
            vec![int(seq)?, id.into()],
        )?;
        Ok(())
    }

    /// The stored snapshot, if there is one.
    pub fn snapshot(&self) -> R<Option<Vec<u8>>> {
        let rows: Vec<Vec<SqlStorageValue>> =
            self.sql.exec("SELECT bytes FROM snapshot_chunks ORDER BY n", None)?.raw().collect::<Result<_, _>>()?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut out = Vec::new();
        for row in rows {
            let chunk = row.into_iter().next().and_then(as_blob).ok_or_else(|| StoreError("bad chunk".into()))?;
            out.extend_from_slice(&chunk);
        }
        Ok(Some(out))
    }

    /// Takes a signed delta of `(from, to]`. Idempotent by sequence number: a delta that
    /// moves nothing (`to` not past the head) is stored as the heartbeat when it is an
    /// empty one at the head, and otherwise ignored. Returns whether the head moved, or
    /// an error for a delta that would leave a gap (`from` past the head).
    pub fn put_delta(&self, bytes: &[u8], from: u64, to: u64) -> R<bool> {
        let head = self.head()?;
        if from > head.seq {
            return Err(StoreError(format!("delta ({from}, {to}] leaves a gap after the head {}", head.seq)));
        }
        if to <= head.seq {
            if from == head.seq && to == head.seq {
                self.sql
                    .exec("UPDATE state SET latest = ?, tick = tick + 1 WHERE id = 1", vec![bytes.to_vec().into()])?;
            }
            return Ok(false);
        }
        self.sql.exec(
            "INSERT OR REPLACE INTO deltas (to_seq, from_seq, bytes) VALUES (?, ?, ?)",
            vec![int(to)?, int(from)?, bytes.to_vec().into()],
        )?;
        self.sql.exec("UPDATE state SET head = ?, latest = NULL, tick = tick + 1 WHERE id = 1", vec![int(to)?])?;
        self.sql.exec(
            "DELETE FROM deltas WHERE to_seq NOT IN (SELECT to_seq FROM deltas ORDER BY to_seq DESC LIMIT ?)",
            vec![MAX_DELTAS.into()],
        )?;
        Ok(true)
    }

    /// The signed messages that bring a replica at `n` to the head: the stored deltas
    /// after `n` (when they chain from `n` to the head), then the heartbeat (when there
    /// is one). At most [`MAX_SINCE`] messages.
    pub fn since(&self, n: u64) -> R<Since> {
        let head = self.head()?;
        if n > head.seq || head.snapshot_seq.is_none() {
            return Ok(Since::Gone);
        }
        let rows: Vec<Vec<SqlStorageValue>> = self
            .sql
            .exec(
                "SELECT from_seq, to_seq, bytes FROM deltas WHERE to_seq > ? ORDER BY to_seq LIMIT ?",
                vec![int(n)?, (MAX_SINCE as i64).into()],
            )?
            .raw()
            .collect::<Result<_, _>>()?;
        let mut at = n;
        let mut out = Vec::with_capacity(rows.len() + 1);
        for row in rows {
            let mut it = row.into_iter();
            let (Some(from), Some(to), Some(bytes)) =
                (it.next().as_ref().and_then(as_u64), it.next().as_ref().and_then(as_u64), it.next().and_then(as_blob))
            else {
                return Err(StoreError("bad delta row".into()));
            };
            if from > at {
                return Ok(Since::Gone);
            }
            at = to;
            out.push(bytes);
        }
        if at < head.seq && out.len() < MAX_SINCE {
            return Ok(Since::Gone);
        }
        if at == head.seq {
            if let Some(latest) = self.latest()? {
                out.push(latest);
            }
        }
        Ok(Since::Messages(out))
    }

    fn latest(&self) -> R<Option<Vec<u8>>> {
        let rows: Vec<Vec<SqlStorageValue>> =
            self.sql.exec("SELECT latest FROM state WHERE id = 1", None)?.raw().collect::<Result<_, _>>()?;
        Ok(rows.into_iter().next().and_then(|r| r.into_iter().next()).and_then(as_blob))
    }

    /// Number of stored deltas.
    pub fn delta_count(&self) -> R<u64> {
        let rows: Vec<Vec<SqlStorageValue>> =
            self.sql.exec("SELECT COUNT(*) FROM deltas", None)?.raw().collect::<Result<_, _>>()?;
        Ok(rows.into_iter().next().and_then(|r| r.into_iter().next()).as_ref().and_then(as_u64).unwrap_or(0))
    }
}

/// The first 16 hex digits of SHA-256 of `bytes`: a snapshot's id.
pub fn snapshot_id(bytes: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(bytes);
    d[..8].iter().map(|b| format!("{b:02x}")).collect()
}
