//! The writer thread: batches rows into transactions, survives failures.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use qmon_vocab::now_ns;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};
use tracing::{error, info};

use super::row::{make_row, ProcessKey, Row, INSERT_SQL};
use super::{to_i64, Msg, Shared, StoreOptions};

/// At most one error log line per this interval; the rest are counted.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Bound on the process-id cache.
const MAX_CACHED_PROCESSES: usize = 65_536;

pub(super) struct Writer {
    conn: Connection,
    opts: StoreOptions,
    shared: Arc<Shared>,
    started_at_ns: u64,
    processes: HashMap<ProcessKey, i64>,
    batch: Vec<Row>,
    /// Set while writes fail: when the failure started, rows dropped since.
    failing: Option<(Instant, u64)>,
    last_error_log: Option<Instant>,
    suppressed_errors: u64,
}

impl Writer {
    pub fn new(
        conn: Connection,
        opts: StoreOptions,
        shared: Arc<Shared>,
        started_at_ns: u64,
    ) -> Self {
        let batch = Vec::with_capacity(opts.batch_rows.max(1));
        Self {
            conn,
            opts,
            shared,
            started_at_ns,
            processes: HashMap::new(),
            batch,
            failing: None,
            last_error_log: None,
            suppressed_errors: 0,
        }
    }

    pub fn run(mut self, rx: Receiver<Msg>) {
        let far = Duration::from_secs(3600);
        let mut batch_deadline: Option<Instant> = None;
        let mut next_status = Instant::now();
        loop {
            let now = Instant::now();
            let wake = batch_deadline.unwrap_or(now + far).min(next_status);
            match rx.recv_timeout(wake.saturating_duration_since(now)) {
                Ok(Msg::Call(call)) => {
                    if self.batch.is_empty() {
                        batch_deadline = Some(Instant::now() + self.opts.batch_interval);
                    }
                    self.batch.push(make_row(&call, &self.opts));
                    if self.batch.len() >= self.opts.batch_rows.max(1) {
                        self.commit();
                        batch_deadline = None;
                    }
                }
                Ok(Msg::Reconfigure(body_limit)) => {
                    self.opts.body_limit = body_limit;
                }
                Ok(Msg::Flush(ack)) => {
                    self.commit();
                    batch_deadline = None;
                    self.write_status();
                    let _ = ack.send(());
                }
                Ok(Msg::Shutdown) | Err(RecvTimeoutError::Disconnected) => {
                    // Take whatever raced in behind the shutdown, too.
                    while let Ok(msg) = rx.try_recv() {
                        match msg {
                            Msg::Call(call) => self.batch.push(make_row(&call, &self.opts)),
                            Msg::Flush(ack) => {
                                let _ = ack.send(());
                            }
                            Msg::Shutdown | Msg::Reconfigure(..) => {}
                        }
                    }
                    self.commit();
                    self.write_status();
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            let now = Instant::now();
            if batch_deadline.is_some_and(|d| now >= d) {
                self.commit();
                batch_deadline = None;
            }
            if now >= next_status {
                self.write_status();
                next_status = now + self.opts.status_interval;
            }
        }
    }

    fn commit(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        let n = batch.len() as u64;
        match self.try_insert(&batch) {
            Ok(()) => {
                self.shared.counters.written.fetch_add(n, Ordering::Relaxed);
                if let Some((since, dropped)) = self.failing.take() {
                    info!(
                        dropped_rows = dropped,
                        failing_for_s = since.elapsed().as_secs(),
                        "store writes resumed"
                    );
                }
            }
            Err(e) => {
                // A rolled-back transaction may have taken new process rows
                // with it: forget ids learned since the last good commit.
                self.processes.clear();
                self.shared
                    .counters
                    .write_dropped
                    .fetch_add(n, Ordering::Relaxed);
                let failing = self.failing.get_or_insert((Instant::now(), 0));
                failing.1 += n;
                self.log_error(&e, n);
            }
        }
        self.batch = batch;
        self.batch.clear();
    }

    fn log_error(&mut self, e: &rusqlite::Error, rows: u64) {
        let due = self
            .last_error_log
            .is_none_or(|t| t.elapsed() >= ERROR_LOG_INTERVAL);
        if due {
            error!(
                error = %e,
                dropped_rows = rows,
                suppressed_errors = self.suppressed_errors,
                total_write_dropped = self.shared.counters.write_dropped.load(Ordering::Relaxed),
                "store write failed; dropping this batch and continuing (is the disk full?)"
            );
            self.last_error_log = Some(Instant::now());
            self.suppressed_errors = 0;
        } else {
            self.suppressed_errors += 1;
        }
    }

    fn try_insert(&mut self, batch: &[Row]) -> Result<(), rusqlite::Error> {
        if self.processes.len() > MAX_CACHED_PROCESSES {
            self.processes.clear();
        }
        // IMMEDIATE: a deferred transaction that reads first gets SQLITE_BUSY
        // without the busy handler when it upgrades to a write.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut insert = tx.prepare_cached(INSERT_SQL)?;
            for row in batch {
                let pid = match self.processes.get(&row.process) {
                    Some(id) => *id,
                    None => {
                        let id = process_id(&tx, &row.process)?;
                        self.processes.insert(row.process.clone(), id);
                        id
                    }
                };
                // Borrow the values: cloning them copied every body again.
                let pid = rusqlite::types::Value::Integer(pid);
                insert.execute(params_from_iter(
                    std::iter::once(&pid).chain(row.values.iter()),
                ))?;
            }
        }
        tx.commit()
    }

    fn write_status(&mut self) {
        let c = self.shared.status.lock().map(|s| *s).unwrap_or_default();
        let store = self.shared.counters.snapshot();
        let result = self.conn.execute(
            "INSERT INTO recorder_status (id, pid, started_at, updated_at, events, lost_events,
                 lost_bytes, calls, queue_dropped, parse_errors, write_dropped,
                 truncated_bytes, gaps, gap_bytes)
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
             ON CONFLICT(id) DO UPDATE SET pid = excluded.pid, started_at = excluded.started_at,
                 updated_at = excluded.updated_at, events = excluded.events,
                 lost_events = excluded.lost_events, lost_bytes = excluded.lost_bytes,
                 calls = excluded.calls, queue_dropped = excluded.queue_dropped,
                 parse_errors = excluded.parse_errors, write_dropped = excluded.write_dropped,
                 truncated_bytes = excluded.truncated_bytes, gaps = excluded.gaps,
                 gap_bytes = excluded.gap_bytes",
            params![
                std::process::id(),
                to_i64(self.started_at_ns),
                to_i64(now_ns()),
                to_i64(c.events),
                to_i64(c.lost_events),
                to_i64(c.lost_bytes),
                to_i64(c.calls),
                to_i64(c.queue_dropped),
                to_i64(c.parse_errors),
                to_i64(store.write_dropped),
                to_i64(c.truncated_bytes),
                to_i64(c.gaps),
                to_i64(c.gap_bytes),
            ],
        );
        if let Err(e) = result {
            self.log_error(&e, 0);
        }
    }
}

fn process_id(conn: &Connection, key: &ProcessKey) -> Result<i64, rusqlite::Error> {
    let (pid, comm, exe, cmdline, container) = key;
    let found = conn
        .prepare_cached(
            "SELECT id FROM processes WHERE pid = ?1 AND comm = ?2 AND exe IS ?3
             AND cmdline IS ?4 AND container_id IS ?5 ORDER BY id DESC LIMIT 1",
        )?
        .query_row(params![pid, comm, exe, cmdline, container], |r| r.get(0))
        .optional()?;
    if let Some(id) = found {
        return Ok(id);
    }
    conn.prepare_cached(
        "INSERT INTO processes (pid, comm, exe, cmdline, container_id, first_seen_ns)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        pid,
        comm,
        exe,
        cmdline,
        container,
        to_i64(now_ns())
    ])?;
    Ok(conn.last_insert_rowid())
}
