//! Where the live view's calls come from.
//!
//! * No recorder running: capture in-process with the library
//!   [`Pipeline`], on a background thread, into a [`LiveSink`]. The
//!   pipeline is set up as `qmon record` would set it up (scope,
//!   redaction); only the sink differs.
//! * `qmon record` running on the database: tail its `calls` view through a
//!   read-only connection (`WHERE id > last_id`, twice a second) and take
//!   loss counters from `recorder_status`. No second capture is started.
//!
//! Either way the view receives [`Feed`] messages on a bounded channel; a
//! batch that does not fit is dropped and counted, never blocks capture.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::calls::Call;
use crate::capture::{Capture, CaptureError, CaptureOptions};
use crate::pipeline::{Pipeline, Policy, Sink, Status};
use crate::sinks::store::{read_recorder_status, RecorderStatus, StoreError};
use qmon_protocols::ParserLimits;

use super::model::CallSample;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot read {path}: {source}")]
    Db {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot start the live view's source thread: {0}")]
    Thread(std::io::Error),
}

/// Counters shown in the header; cumulative.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceStatus {
    /// Events the kernel could not deliver (ring buffer full).
    pub lost_events: u64,
    /// Calls dropped between the source and the view (or the recorder's
    /// queues) because they were full.
    pub dropped: u64,
    /// Recorder mode: whether the recorder still updates its status.
    pub recorder_live: Option<bool>,
}

/// What a source sends the view.
#[derive(Debug)]
pub enum Feed {
    Calls(Vec<CallSample>),
    Status(SourceStatus),
}

/// Which source is running, for the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// In-process capture, with the attach mode used.
    Capture { mode: &'static str },
    /// Tailing the database of the recorder with this pid.
    Recorder { db: PathBuf, pid: u32 },
    /// Fixed data (tests).
    Static,
}

impl SourceKind {
    pub fn label(&self) -> String {
        match self {
            SourceKind::Capture { mode } => format!("capture ({mode})"),
            SourceKind::Recorder { pid, .. } => format!("recorder pid {pid}"),
            SourceKind::Static => "static".into(),
        }
    }
}

/// Batches waiting for the view.
pub const FEED_CAPACITY: usize = 1024;

/// The channel sources send on.
pub fn channel() -> (SyncSender<Feed>, Receiver<Feed>) {
    std::sync::mpsc::sync_channel(FEED_CAPACITY)
}

/// A running source; stopped on drop.
pub struct Source {
    pub kind: SourceKind,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    capture: Option<Capture>,
}

impl Source {
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(cap) = self.capture.take() {
            cap.stop();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The live recorder writing `db`, if there is one.
pub fn live_recorder(db: &Path, now_ns: u64) -> Option<RecorderStatus> {
    if !db.exists() {
        return None;
    }
    match read_recorder_status(db) {
        Ok(Some(s)) if s.is_live(now_ns) => Some(s),
        Ok(_) => None,
        Err(e) => {
            tracing::debug!(db = %db.display(), error = %e, "no recorder status");
            None
        }
    }
}

/// Sends a feed message without blocking; counts the calls of a message
/// that does not fit.
struct Sender {
    tx: SyncSender<Feed>,
    dropped: Arc<AtomicU64>,
}

impl Sender {
    /// False once the view hung up.
    fn send(&self, feed: Feed) -> bool {
        match self.tx.try_send(feed) {
            Ok(()) => true,
            Err(TrySendError::Full(Feed::Calls(c))) => {
                self.dropped.fetch_add(c.len() as u64, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Full(Feed::Status(_))) => true,
            Err(TrySendError::Disconnected(_)) => false,
        }
    }
}

/// The live view as a pipeline sink: calls become [`CallSample`]s on the
/// view's channel, never blocking the pipeline.
pub struct LiveSink {
    sender: Sender,
    /// Set when the view hung up: the pipeline has nobody to work for.
    stop: Arc<AtomicBool>,
}

impl LiveSink {
    pub fn new(tx: SyncSender<Feed>, stop: Arc<AtomicBool>) -> Self {
        Self {
            sender: Sender {
                tx,
                dropped: Arc::new(AtomicU64::new(0)),
            },
            stop,
        }
    }

    fn send(&self, feed: Feed) {
        if !self.sender.send(feed) {
            self.stop.store(true, Ordering::SeqCst);
        }
    }
}

impl Sink for LiveSink {
    fn name(&self) -> &'static str {
        "live"
    }

    fn calls(&mut self, calls: &[Arc<Call>]) {
        self.send(Feed::Calls(
            calls.iter().map(|c| CallSample::from_call(c)).collect(),
        ));
    }

    fn tick(&mut self, status: &Status) {
        self.send(Feed::Status(SourceStatus {
            lost_events: status.capture.lost_events,
            dropped: self.dropped(),
            recorder_live: None,
        }));
    }

    fn dropped(&self) -> u64 {
        self.sender.dropped.load(Ordering::Relaxed)
    }
}

/// Start capturing in-process: BPF attached when this returns. The
/// pipeline's calls go to the view through `tx`.
pub fn start_capture(
    opts: CaptureOptions,
    limits: ParserLimits,
    policy: Policy,
    tx: SyncSender<Feed>,
) -> Result<Source, SourceError> {
    let (ev_tx, ev_rx) = crate::capture::channel(8192);
    let cap = Capture::start(opts, ev_tx)?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut pipeline =
        Pipeline::new(limits, policy).with_capture(cap.control.clone(), cap.stats.clone());
    pipeline.add_sink(Box::new(LiveSink::new(tx, stop.clone())));
    let pool = cap.pool.clone();
    let mode = cap.mode.as_str();
    let thread = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("qmon-top-pipeline".into())
            .spawn(move || pipeline.run(&ev_rx, &pool, &stop, |_| {}))
            .map_err(SourceError::Thread)?
    };
    Ok(Source {
        kind: SourceKind::Capture { mode },
        stop,
        thread: Some(thread),
        capture: Some(cap),
    })
}

/// Columns read from the `calls` view, in [`sample_from_row`] order.
const TAIL_COLUMNS: &str = "id, started_at, pid, comm, host, port, protocol, tls, method, path,
    route, status, error, duration_ns, req_bytes, resp_bytes, exe";

/// Rows fetched per query; more are fetched at once if there are more.
const TAIL_BATCH: i64 = 5000;

fn sample_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, CallSample)> {
    let u = |i: usize| -> rusqlite::Result<u64> { Ok(r.get::<_, i64>(i)?.max(0) as u64) };
    let protocol: String = r.get(6)?;
    Ok((
        r.get(0)?,
        CallSample {
            started_ns: u(1)?,
            pid: u(2)? as u32,
            comm: r.get(3)?,
            exe: r.get(16)?,
            host: r.get(4)?,
            port: r
                .get::<_, Option<i64>>(5)?
                .and_then(|p| u16::try_from(p).ok()),
            http2: protocol == "HTTP/2",
            tls: r.get::<_, i64>(7)? != 0,
            method: r.get(8)?,
            path: r.get(9)?,
            route: r.get(10)?,
            status: r
                .get::<_, Option<i64>>(11)?
                .and_then(|s| u16::try_from(s).ok()),
            error: r.get(12)?,
            duration_ns: r.get::<_, Option<i64>>(13)?.map(|d| d.max(0) as u64),
            bytes_out: u(14)?,
            bytes_in: u(15)?,
        },
    ))
}

/// Reads the `calls` view of a recorder's database.
pub struct DbTail {
    conn: Connection,
    path: PathBuf,
    last_id: i64,
}

impl DbTail {
    pub fn open(db: &Path) -> Result<DbTail, SourceError> {
        let err = |source| SourceError::Db {
            path: db.to_path_buf(),
            source,
        };
        let conn = Connection::open_with_flags(
            db,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        conn.busy_timeout(Duration::from_secs(1)).map_err(err)?;
        Ok(DbTail {
            conn,
            path: db.to_path_buf(),
            last_id: 0,
        })
    }

    fn err(&self, source: rusqlite::Error) -> SourceError {
        SourceError::Db {
            path: self.path.clone(),
            source,
        }
    }

    /// The latest `max` calls that started at or after `since_ns`, oldest
    /// first; later [`DbTail::poll`]s return what was inserted after them.
    pub fn backfill(&mut self, since_ns: u64, max: usize) -> Result<Vec<CallSample>, SourceError> {
        let top: Option<i64> = self
            .conn
            .query_row("SELECT max(id) FROM calls", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        let top = top.unwrap_or(0);
        let sql = format!(
            "SELECT {TAIL_COLUMNS} FROM calls WHERE id <= ?1 AND started_at >= ?2
             ORDER BY id DESC LIMIT ?3"
        );
        let mut out = {
            let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
            let since = i64::try_from(since_ns).unwrap_or(i64::MAX);
            let max = i64::try_from(max).unwrap_or(i64::MAX);
            let rows = stmt
                .query_map(rusqlite::params![top, since, max], sample_from_row)
                .map_err(|e| self.err(e))?;
            rows.filter_map(Result::ok)
                .map(|(_, s)| s)
                .collect::<Vec<_>>()
        };
        out.reverse();
        self.last_id = top;
        Ok(out)
    }

    /// Calls inserted since the last poll, oldest first.
    pub fn poll(&mut self) -> Result<Vec<CallSample>, SourceError> {
        let sql = format!("SELECT {TAIL_COLUMNS} FROM calls WHERE id > ?1 ORDER BY id LIMIT ?2");
        let mut out = Vec::new();
        loop {
            let batch: Vec<(i64, CallSample)> = {
                let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
                let rows = stmt
                    .query_map(rusqlite::params![self.last_id, TAIL_BATCH], sample_from_row)
                    .map_err(|e| self.err(e))?;
                rows.collect::<rusqlite::Result<_>>()
                    .map_err(|e| self.err(e))?
            };
            let n = batch.len();
            for (id, s) in batch {
                self.last_id = self.last_id.max(id);
                out.push(s);
            }
            if (n as i64) < TAIL_BATCH {
                return Ok(out);
            }
        }
    }
}

/// Tail `db` every `interval` on a background thread. `backfill` calls are
/// sent first.
pub fn start_db_tail(
    db: &Path,
    recorder_pid: u32,
    mut tail: DbTail,
    backfill: Vec<CallSample>,
    interval: Duration,
    tx: SyncSender<Feed>,
) -> Result<Source, SourceError> {
    let stop = Arc::new(AtomicBool::new(false));
    let db_path = db.to_path_buf();
    let thread = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("qmon-top-tail".into())
            .spawn(move || {
                let sender = Sender {
                    tx,
                    dropped: Arc::new(AtomicU64::new(0)),
                };
                if !backfill.is_empty() && !sender.send(Feed::Calls(backfill)) {
                    return;
                }
                while !stop.load(Ordering::SeqCst) {
                    match tail.poll() {
                        Ok(calls) if !calls.is_empty() => {
                            if !sender.send(Feed::Calls(calls)) {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "reading new calls failed"),
                    }
                    let status = match read_recorder_status(&db_path) {
                        Ok(Some(s)) => SourceStatus {
                            lost_events: s.lost_events,
                            dropped: s.queue_dropped
                                + s.write_dropped
                                + sender.dropped.load(Ordering::Relaxed),
                            recorder_live: Some(s.is_live(qmon_vocab::now_ns())),
                        },
                        Ok(None) => SourceStatus {
                            recorder_live: Some(false),
                            ..SourceStatus::default()
                        },
                        Err(e) => {
                            tracing::warn!(error = %e, "reading recorder_status failed");
                            SourceStatus {
                                recorder_live: Some(false),
                                ..SourceStatus::default()
                            }
                        }
                    };
                    if !sender.send(Feed::Status(status)) {
                        return;
                    }
                    sleep_unless(&stop, interval);
                }
            })
            .map_err(SourceError::Thread)?
    };
    Ok(Source {
        kind: SourceKind::Recorder {
            db: db.to_path_buf(),
            pid: recorder_pid,
        },
        stop,
        thread: Some(thread),
        capture: None,
    })
}

/// Sleep `d`, waking early when `stop` is set.
fn sleep_unless(stop: &AtomicBool, d: Duration) {
    let step = Duration::from_millis(50);
    let mut left = d;
    while !left.is_zero() && !stop.load(Ordering::SeqCst) {
        let s = left.min(step);
        std::thread::sleep(s);
        left -= s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::{Body, ConnInfo, Exchange, ProcessInfo, Protocol, Timing};
    use crate::sinks::store::{Store, StoreOptions};

    fn call(path: &str, status: u16) -> crate::calls::Call {
        let mut ex = Exchange::new(Protocol::Http11);
        ex.method = Some("GET".into());
        ex.path = Some(path.into());
        ex.status = Some(status);
        let t = qmon_vocab::now_ns();
        ex.timing = Timing {
            req_first_ns: t,
            req_last_ns: t,
            resp_first_ns: Some(t + 1_000_000),
            resp_last_ns: Some(t + 2_000_000),
        };
        ex.resp_body = Body {
            captured: Vec::new(),
            total: 10,
            truncated: false,
        };
        crate::calls::Call {
            process: ProcessInfo {
                pid: 42,
                comm: "curl".into(),
                exe: Some("/usr/bin/curl".into()),
                ..ProcessInfo::default()
            }
            .into(),
            conn: ConnInfo {
                conn_id: 1,
                remote: None,
                tls: true,
                tls_lib: None,
            },
            exchange: ex,
            host: "api.example.com".into(),
            port: Some(443),
            route: Some(crate::calls::route::route(path)),
        }
    }

    #[test]
    fn db_tail_reads_backfill_then_only_new_rows() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("q.db");
        let store = Store::open(&db, StoreOptions::default()).unwrap();
        let h = store.handle();
        // As the pipeline hands calls on: redacted.
        let mut first = call("/a?token=secret", 200);
        crate::calls::redact::CallRedactor::default().redact(&mut first);
        h.send(first);
        h.flush().unwrap();

        let mut tail = DbTail::open(&db).unwrap();
        let back = tail.backfill(0, 100).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].comm, "curl");
        assert_eq!(back[0].exe.as_deref(), Some("/usr/bin/curl"));
        assert_eq!(back[0].host_label(), "api.example.com:443");
        assert_eq!(back[0].proto_label(), "h1s");
        assert!(back[0].path.as_deref().unwrap().contains("REDACTED"));
        assert!(tail.poll().unwrap().is_empty());

        h.send(call("/b", 503));
        h.send(call("/c", 200));
        h.flush().unwrap();
        let new = tail.poll().unwrap();
        let paths: Vec<_> = new.iter().map(|c| c.path.clone().unwrap()).collect();
        assert_eq!(paths, ["/b", "/c"]);
        assert!(new[0].is_error());
        assert_eq!(new[0].duration_ns, Some(2_000_000));
        assert_eq!(new[0].bytes_in, 10);
        assert!(tail.poll().unwrap().is_empty());
        drop(h);
        store.flush_and_close().unwrap();
    }

    #[test]
    fn no_database_means_no_recorder() {
        assert!(live_recorder(Path::new("/nonexistent/q.db"), qmon_vocab::now_ns()).is_none());
    }
}
