//! Retention: delete old rows in small batches on a separate connection, and
//! give the space back with incremental vacuum.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use qmon_vocab::now_ns;
use rusqlite::{params, Connection};
use tracing::{debug, warn};

use super::{to_i64, Retention, Shared};

/// Pause between delete batches, so the writer gets the lock in between.
const BATCH_PAUSE: Duration = Duration::from_millis(5);
/// Pages freed per incremental_vacuum step.
const VACUUM_STEP_PAGES: u32 = 512;

pub(super) fn run(conn: Connection, retention: Retention, stop: Receiver<()>, shared: Arc<Shared>) {
    loop {
        match enforce(&conn, &retention, &stop) {
            Ok(0) => {}
            Ok(n) => {
                shared
                    .counters
                    .retention_deleted
                    .fetch_add(n, Ordering::Relaxed);
                debug!(deleted = n, "retention pass");
            }
            Err(e) => warn!(error = %e, "retention pass failed; retrying later"),
        }
        match stop.recv_timeout(retention.interval) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}

fn stopping(stop: &Receiver<()>) -> bool {
    !matches!(stop.try_recv(), Err(std::sync::mpsc::TryRecvError::Empty))
}

/// One pass; returns rows deleted.
pub(super) fn enforce(
    conn: &Connection,
    retention: &Retention,
    stop: &Receiver<()>,
) -> Result<u64, rusqlite::Error> {
    let batch = retention.delete_batch.max(1) as i64;
    let mut deleted = 0u64;
    if let Some(age) = retention.max_age {
        let cutoff = to_i64(now_ns().saturating_sub(age.as_nanos() as u64));
        loop {
            let n = conn.execute(
                "DELETE FROM call_records WHERE id IN (
                     SELECT id FROM call_records WHERE started_at < ?1
                     ORDER BY started_at LIMIT ?2)",
                params![cutoff, batch],
            )? as u64;
            deleted += n;
            if (n as i64) < batch || stopping(stop) {
                break;
            }
            std::thread::sleep(BATCH_PAUSE);
        }
    }
    if let Some(max) = retention.max_db_size {
        while used_bytes(conn)? > max && !stopping(stop) {
            let n = conn.execute(
                "DELETE FROM call_records WHERE id IN (
                     SELECT id FROM call_records ORDER BY started_at LIMIT ?1)",
                params![batch],
            )? as u64;
            if n == 0 {
                break;
            }
            deleted += n;
            std::thread::sleep(BATCH_PAUSE);
        }
    }
    if deleted > 0 {
        shrink(conn, stop)?;
    }
    Ok(deleted)
}

/// Bytes of the database file in use (excluding free pages).
pub(super) fn used_bytes(conn: &Connection) -> Result<u64, rusqlite::Error> {
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok(((pages - free).max(0) * size) as u64)
}

/// Return free pages to the filesystem in small steps, then truncate the WAL.
fn shrink(conn: &Connection, stop: &Receiver<()>) -> Result<(), rusqlite::Error> {
    loop {
        let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
        if free == 0 || stopping(stop) {
            break;
        }
        // Each step of this pragma frees one page: step it to the end.
        let mut st =
            conn.prepare_cached(&format!("PRAGMA incremental_vacuum({VACUUM_STEP_PAGES})"))?;
        let mut rows = st.query([])?;
        while rows.next()?.is_some() {}
        std::thread::sleep(BATCH_PAUSE);
    }
    // Best effort: a busy writer just means the WAL shrinks later.
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    Ok(())
}
