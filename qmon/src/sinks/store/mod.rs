//! The SQLite store: every [`Call`] becomes a row readable through the
//! `calls` view (see `schema/README.md`).
//!
//! One writer thread owns the write connection. [`StoreHandle::send`] never
//! blocks: calls go through a bounded queue and are counted as
//! `queue_dropped` when it is full. The writer commits every
//! [`StoreOptions::batch_rows`] rows or [`StoreOptions::batch_interval`],
//! whichever comes first. Write failures (disk full, locked) drop the batch,
//! are counted and logged (rate-limited), and writing resumes when SQLite
//! accepts writes again. Retention runs on its own connection in small
//! delete batches.

pub mod limits;
pub mod migrate;
mod retention;
mod row;
mod sink;
mod writer;

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use qmon_vocab::now_ns;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::calls::Call;

pub use limits::{parse_age, parse_size, LimitParseError};
pub use sink::{status_counters, StoreSink};

/// Where `qmon record` writes and `qmon query` reads by default.
pub const DEFAULT_DB_PATH: &str = "/var/lib/qmon/qmon.db";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create directory {path}: {source}")]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot create database file {path}: {source}")]
    CreateFile { path: PathBuf, source: io::Error },
    #[error("cannot set permissions on {path}: {source}")]
    Permissions { path: PathBuf, source: io::Error },
    #[error("cannot open database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("database schema version {found} is newer than this qmon supports ({supported}); upgrade qmon")]
    SchemaTooNew { found: u32, supported: u32 },
    #[error("schema migration to version {version} failed: {source}")]
    Migrate {
        version: u32,
        source: rusqlite::Error,
    },
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot start store thread: {0}")]
    Thread(io::Error),
    #[error("the store writer thread has stopped")]
    WriterGone,
}

/// What the retention task enforces; both off by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// Delete calls that started longer ago than this (`--retain`).
    pub max_age: Option<Duration>,
    /// Delete the oldest calls while the database is larger (`--max-db-size`).
    pub max_db_size: Option<u64>,
    /// How often retention runs.
    pub interval: Duration,
    /// Rows per delete transaction, so the writer is never blocked for long.
    pub delete_batch: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            max_age: None,
            max_db_size: None,
            interval: Duration::from_secs(30),
            delete_batch: 2000,
        }
    }
}

impl Retention {
    pub fn is_enabled(&self) -> bool {
        self.max_age.is_some() || self.max_db_size.is_some()
    }
}

#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Body bytes stored per direction; decoded (gunzipped) text bodies are
    /// capped at 4× this.
    pub body_limit: usize,
    /// Calls waiting for the writer; more are dropped (`queue_dropped`).
    pub queue_capacity: usize,
    /// Commit after this many rows…
    pub batch_rows: usize,
    /// …or this long after the first uncommitted row, whichever first.
    pub batch_interval: Duration,
    /// How long a write waits for a lock held by a reader/retention.
    pub busy_timeout: Duration,
    /// How often the `recorder_status` row is rewritten.
    pub status_interval: Duration,
    pub retention: Retention,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            body_limit: 4096,
            queue_capacity: 16_384,
            batch_rows: 1000,
            batch_interval: Duration::from_millis(200),
            busy_timeout: Duration::from_secs(5),
            status_interval: Duration::from_secs(1),
            retention: Retention::default(),
        }
    }
}

/// Recorder-wide counters written to `recorder_status` (cumulative), as
/// the pipeline reports them; see `schema/README.md` for each one's meaning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusCounters {
    /// Ring buffer events processed.
    pub events: u64,
    /// Events the kernel could not deliver (ring buffer full).
    pub lost_events: u64,
    /// Payload bytes in those events: lost in the kernel, and only there.
    pub lost_bytes: u64,
    /// Calls recorded.
    pub calls: u64,
    /// Calls dropped because a queue (the store's included) was full.
    pub queue_dropped: u64,
    pub parse_errors: u64,
    /// Bytes qmon chose not to copy (per-call copy limit).
    pub truncated_bytes: u64,
    /// Gaps in streams as the parsers saw them, and their bytes, whatever
    /// the cause.
    pub gaps: u64,
    pub gap_bytes: u64,
}

/// The store's own counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Calls accepted into the queue.
    pub queued: u64,
    /// Calls dropped because the queue was full.
    pub queue_dropped: u64,
    /// Rows committed.
    pub written: u64,
    /// Rows lost because their batch failed to commit.
    pub write_dropped: u64,
    /// Rows deleted by retention.
    pub retention_deleted: u64,
}

#[derive(Default)]
struct Counters {
    queued: AtomicU64,
    queue_dropped: AtomicU64,
    written: AtomicU64,
    write_dropped: AtomicU64,
    retention_deleted: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> StoreStats {
        StoreStats {
            queued: self.queued.load(Ordering::Relaxed),
            queue_dropped: self.queue_dropped.load(Ordering::Relaxed),
            written: self.written.load(Ordering::Relaxed),
            write_dropped: self.write_dropped.load(Ordering::Relaxed),
            retention_deleted: self.retention_deleted.load(Ordering::Relaxed),
        }
    }
}

struct Shared {
    counters: Counters,
    status: Mutex<StatusCounters>,
}

enum Msg {
    Call(Arc<Call>),
    Flush(SyncSender<()>),
    /// A new body limit (SIGHUP), for calls from now on.
    Reconfigure(usize),
    Shutdown,
}

/// Cheap, cloneable sender side of the store.
#[derive(Clone)]
pub struct StoreHandle {
    tx: SyncSender<Msg>,
    shared: Arc<Shared>,
}

impl StoreHandle {
    /// Queue a call for writing. Never blocks: returns `false` (and counts
    /// `queue_dropped`) when the queue is full or the store is closed.
    /// Calls are stored as given: redaction happened in the pipeline.
    pub fn send(&self, call: impl Into<Arc<Call>>) -> bool {
        match self.tx.try_send(Msg::Call(call.into())) {
            Ok(()) => {
                self.shared.counters.queued.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.shared
                    .counters
                    .queue_dropped
                    .fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Record the recorder's counters; the writer puts them (plus its own)
    /// into `recorder_status` within [`StoreOptions::status_interval`].
    pub fn update_status(&self, counters: StatusCounters) {
        if let Ok(mut s) = self.shared.status.lock() {
            *s = counters;
        }
    }

    /// Apply a new body limit to calls stored from now on.
    pub fn reconfigure(&self, body_limit: usize) -> Result<(), StoreError> {
        self.tx
            .send(Msg::Reconfigure(body_limit))
            .map_err(|_| StoreError::WriterGone)
    }

    pub fn stats(&self) -> StoreStats {
        self.shared.counters.snapshot()
    }

    /// Calls accepted but not yet committed or dropped: the write queue
    /// plus the writer's open batch.
    pub fn queue_depth(&self) -> u64 {
        let s = self.stats();
        s.queued
            .saturating_sub(s.written)
            .saturating_sub(s.write_dropped)
    }

    /// Block until every call queued before this one is committed (or
    /// counted as dropped).
    pub fn flush(&self) -> Result<(), StoreError> {
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        self.tx
            .send(Msg::Flush(ack_tx))
            .map_err(|_| StoreError::WriterGone)?;
        ack_rx.recv().map_err(|_| StoreError::WriterGone)
    }
}

/// An open store: the writer thread and, if configured, the retention task.
pub struct Store {
    path: PathBuf,
    handle: StoreHandle,
    writer: Option<JoinHandle<()>>,
    retention: Option<(SyncSender<()>, JoinHandle<()>)>,
}

impl Store {
    /// Open (creating if needed) the database at `path`, apply migrations,
    /// and start the writer (and retention) threads.
    pub fn open(path: &Path, opts: StoreOptions) -> Result<Store, StoreError> {
        let mut conn = open_rw(path, opts.busy_timeout)?;
        migrate::migrate(&mut conn)?;
        secure_files(path)?;

        let shared = Arc::new(Shared {
            counters: Counters::default(),
            status: Mutex::new(StatusCounters::default()),
        });
        let (tx, rx) = mpsc::sync_channel(opts.queue_capacity.max(1));
        let handle = StoreHandle {
            tx,
            shared: shared.clone(),
        };

        let retention = if opts.retention.is_enabled() {
            let rconn = open_rw(path, opts.busy_timeout)?;
            let (stop_tx, stop_rx) = mpsc::sync_channel(1);
            let shared = shared.clone();
            let retention = opts.retention.clone();
            let join = std::thread::Builder::new()
                .name("qmon-retention".into())
                .spawn(move || retention::run(rconn, retention, stop_rx, shared))
                .map_err(StoreError::Thread)?;
            Some((stop_tx, join))
        } else {
            None
        };

        let writer = writer::Writer::new(conn, opts, shared, now_ns());
        let writer = std::thread::Builder::new()
            .name("qmon-store".into())
            .spawn(move || writer.run(rx))
            .map_err(StoreError::Thread)?;

        Ok(Store {
            path: path.to_path_buf(),
            handle,
            writer: Some(writer),
            retention,
        })
    }

    pub fn handle(&self) -> StoreHandle {
        self.handle.clone()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Commit everything queued, stop the threads, and return the final
    /// counters.
    pub fn flush_and_close(mut self) -> Result<StoreStats, StoreError> {
        self.close()
    }

    fn close(&mut self) -> Result<StoreStats, StoreError> {
        if let Some((stop, join)) = self.retention.take() {
            // Disconnecting is the stop signal; it cannot be missed or consumed.
            drop(stop);
            let _ = join.join();
        }
        if let Some(join) = self.writer.take() {
            // Blocking send: waits for room, never drops the shutdown.
            let sent = self.handle.tx.send(Msg::Shutdown);
            let joined = join.join();
            if sent.is_err() || joined.is_err() {
                return Err(StoreError::WriterGone);
            }
        }
        Ok(self.handle.stats())
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// The `recorder_status` row as other commands see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecorderStatus {
    pub pid: u32,
    pub started_at_ns: u64,
    pub updated_at_ns: u64,
    pub events: u64,
    pub lost_events: u64,
    pub lost_bytes: u64,
    pub calls: u64,
    pub queue_dropped: u64,
    pub parse_errors: u64,
    pub write_dropped: u64,
    pub truncated_bytes: u64,
    pub gaps: u64,
    pub gap_bytes: u64,
}

impl RecorderStatus {
    /// A recorder is live when it updated the row recently and its process
    /// still exists.
    pub fn is_live(&self, now_ns: u64) -> bool {
        let fresh = now_ns.saturating_sub(self.updated_at_ns) < 5_000_000_000;
        fresh && Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

/// Read `recorder_status` without writing anything. `None`: no recorder has
/// ever written to this database.
pub fn read_recorder_status(db: &Path) -> Result<Option<RecorderStatus>, StoreError> {
    let conn =
        Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|source| {
            StoreError::Open {
                path: db.to_path_buf(),
                source,
            }
        })?;
    let status = conn
        .query_row(
            "SELECT pid, started_at, updated_at, events, lost_events, lost_bytes, calls,
                    queue_dropped, parse_errors, write_dropped, truncated_bytes, gaps, gap_bytes
             FROM recorder_status WHERE id = 1",
            [],
            |r| {
                let u = |i: usize| r.get::<_, i64>(i).map(|v| v.max(0) as u64);
                Ok(RecorderStatus {
                    pid: u(0)? as u32,
                    started_at_ns: u(1)?,
                    updated_at_ns: u(2)?,
                    events: u(3)?,
                    lost_events: u(4)?,
                    lost_bytes: u(5)?,
                    calls: u(6)?,
                    queue_dropped: u(7)?,
                    parse_errors: u(8)?,
                    write_dropped: u(9)?,
                    truncated_bytes: u(10)?,
                    gaps: u(11)?,
                    gap_bytes: u(12)?,
                })
            },
        )
        .optional()?;
    Ok(status)
}

pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Open a read-write connection, creating the file 0600 (and its directory
/// 0700) before SQLite touches it.
fn open_rw(path: &Path, busy_timeout: Duration) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| StoreError::CreateDir {
                    path: dir.to_path_buf(),
                    source,
                })?;
        }
    }
    let fresh = !path.exists();
    if fresh {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|source| StoreError::CreateFile {
                path: path.to_path_buf(),
                source,
            })?;
    }
    let open_err = |source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open(path).map_err(open_err)?;
    conn.busy_timeout(busy_timeout).map_err(open_err)?;
    // Both must precede the first table; no-ops on an existing database.
    // 16 KiB pages pack several ~2 KiB call rows per page (4 KiB pages fit
    // one, wasting ~40% of the file).
    conn.pragma_update(None, "page_size", 16384)
        .map_err(open_err)?;
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
        .map_err(open_err)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(open_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(path = %path.display(), mode, "database is not in WAL mode");
    }
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(open_err)?;
    conn.pragma_update(None, "foreign_keys", "OFF")
        .map_err(open_err)?;
    Ok(conn)
}

/// The database, its WAL and shared-memory files are readable by root only:
/// they hold request data.
fn secure_files(path: &Path) -> Result<(), StoreError> {
    let mut files = vec![path.to_path_buf()];
    for suffix in ["-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        files.push(PathBuf::from(p));
    }
    for f in files {
        match std::fs::set_permissions(&f, Permissions::from_mode(0o600)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(StoreError::Permissions { path: f, source }),
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
