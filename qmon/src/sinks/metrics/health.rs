//! qmon's own health: liveness/readiness state, and the `qmon_*` counters:
//! the pipeline's [`Status`] as of its last tick (the same snapshot
//! `recorder_status` is written from, so the two agree), and the store's
//! queue read at scrape time.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::pipeline::Status;
use crate::sinks::store::StoreHandle;

/// How recent the pipeline's last heartbeat must be for `/healthz`.
pub const HEARTBEAT_MAX_AGE: Duration = Duration::from_secs(10);

/// Shared between the pipeline (writer) and the metrics server (reader).
pub struct Health {
    base: Instant,
    last_beat_ms: AtomicU64,
    ready: AtomicBool,
    /// The pipeline's counters; `None` until it first reports. Capture
    /// counters are exported only when it captures (not in replays).
    status: Mutex<Option<Status>>,
    store: OnceLock<(StoreHandle, u64)>,
}

impl fmt::Debug for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Health")
            .field("ready", &self.is_ready())
            .field("alive", &self.is_alive())
            .finish_non_exhaustive()
    }
}

impl Default for Health {
    fn default() -> Self {
        Self {
            base: Instant::now(),
            last_beat_ms: AtomicU64::new(0),
            ready: AtomicBool::new(false),
            status: Mutex::new(None),
            store: OnceLock::new(),
        }
    }
}

impl Health {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The pipeline is alive; call at least every few seconds.
    pub fn beat(&self) {
        self.last_beat_ms
            .store(self.base.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Time since the last heartbeat (or since creation).
    pub fn heartbeat_age(&self) -> Duration {
        let last = Duration::from_millis(self.last_beat_ms.load(Ordering::Relaxed));
        self.base.elapsed().saturating_sub(last)
    }

    pub fn is_alive(&self) -> bool {
        self.heartbeat_age() <= HEARTBEAT_MAX_AGE
    }

    /// Capture attached and store open (or not ready any more: stopping).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Export this store's counters; `capacity` is its queue capacity.
    pub fn set_store(&self, handle: StoreHandle, capacity: usize) {
        let _ = self.store.set((handle, capacity as u64));
    }

    /// The pipeline's latest counters (it lives on its own thread, so it
    /// pushes a copy on each tick).
    pub fn set_status(&self, status: &Status) {
        if let Ok(mut s) = self.status.lock() {
            *s = Some(status.clone());
        }
    }
}

/// Registered in the registry; reads [`Health`] at scrape time.
#[derive(Debug)]
pub struct HealthCollector(pub Arc<Health>);

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> fmt::Result {
    let m = ConstCounter::new(v);
    let me = enc.encode_descriptor(name, help, None, m.metric_type())?;
    m.encode(me)
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> fmt::Result {
    let m = ConstGauge::new(v);
    let me = enc.encode_descriptor(name, help, None, m.metric_type())?;
    m.encode(me)
}

fn gauge_f(enc: &mut DescriptorEncoder, name: &str, help: &str, v: f64) -> fmt::Result {
    let m = ConstGauge::new(v);
    let me = enc.encode_descriptor(name, help, None, m.metric_type())?;
    m.encode(me)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Collector for HealthCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let h = &self.0;
        let e = &mut enc;
        gauge(
            e,
            "qmon_ready",
            "1 once capture is attached and the store is open",
            h.is_ready() as i64,
        )?;
        gauge_f(
            e,
            "qmon_heartbeat_age_seconds",
            "Seconds since the pipeline last reported it is alive",
            h.heartbeat_age().as_secs_f64(),
        )?;
        let status = h.status.lock().ok().and_then(|s| s.clone());
        if let Some(st) = &status {
            let c = &st.capture;
            counter(e, "qmon_events", "Ring buffer events received", c.events)?;
            counter(
                e,
                "qmon_decode_errors",
                "Ring buffer records that could not be decoded",
                c.decode_errors,
            )?;
            counter(
                e,
                "qmon_lost_events",
                "Events the kernel could not deliver (ring buffer full)",
                c.lost_events,
            )?;
            counter(
                e,
                "qmon_lost_bytes",
                "Payload bytes lost in the kernel (ring buffer full); only there",
                c.lost_bytes,
            )?;
            counter(
                e,
                "qmon_probe_missed",
                "Syscall returns the kernel could not report (no free kretprobe instance); their data is lost",
                c.probe_missed,
            )?;
            counter(
                e,
                "qmon_truncated_bytes",
                "Payload bytes not copied because a call exceeded --max-chunks",
                c.truncated_bytes,
            )?;
            counter(
                e,
                "qmon_muted_calls",
                "Data calls skipped in the kernel because their connection is muted (not HTTP, server side, out of scope)",
                c.muted_calls,
            )?;
            gauge(
                e,
                "qmon_ring_buffer_size_bytes",
                "Size of the BPF ring buffer",
                to_i64(c.ring_size),
            )?;
            gauge(
                e,
                "qmon_ring_buffer_used_bytes",
                "Bytes waiting in the BPF ring buffer at the last check",
                to_i64(c.ring_used),
            )?;
            gauge(
                e,
                "qmon_tls_libraries_attached",
                "TLS library files with probes attached",
                to_i64(c.libs_attached),
            )?;
        }
        let conns = status.as_ref().map(|s| s.conns.clone()).unwrap_or_default();
        counter(
            e,
            "qmon_connections_opened",
            "Connections tracked",
            conns.conns_opened,
        )?;
        counter(
            e,
            "qmon_connections_not_http",
            "Connections muted because they are not HTTP",
            conns.not_http,
        )?;
        counter(
            e,
            "qmon_connections_evicted",
            "Connections dropped to keep the table bounded",
            conns.evicted,
        )?;
        counter(
            e,
            "qmon_gaps",
            "Gaps (lost bytes) seen in streams",
            conns.gaps,
        )?;
        counter(
            e,
            "qmon_gap_bytes",
            "Bytes missing in streams as the parsers saw them, whatever the cause (overlaps lost and truncated bytes)",
            conns.gap_bytes,
        )?;
        if let Some(st) = &status {
            counter(
                e,
                "qmon_calls_out_of_scope",
                "Finished calls left out by the capture scope",
                st.out_of_scope_calls,
            )?;
            counter(
                e,
                "qmon_connections_out_of_scope",
                "Connections switched off at open by the capture scope",
                st.out_of_scope_conns,
            )?;
            counter(
                e,
                "qmon_queue_dropped",
                "Calls dropped because a sink's queue was full (the store's included)",
                st.queue_dropped,
            )?;
        }
        if let Some((store, capacity)) = h.store.get() {
            let s = store.stats();
            gauge(
                e,
                "qmon_store_queue_depth",
                "Calls waiting to be written to the database",
                to_i64(store.queue_depth()),
            )?;
            gauge(
                e,
                "qmon_store_queue_capacity",
                "Calls the write queue holds before dropping",
                to_i64(*capacity),
            )?;
            counter(
                e,
                "qmon_store_queue_dropped",
                "Calls dropped because the write queue was full",
                s.queue_dropped,
            )?;
            counter(
                e,
                "qmon_store_write_dropped",
                "Rows lost because their batch failed to commit",
                s.write_dropped,
            )?;
            counter(
                e,
                "qmon_store_rows_written",
                "Rows committed to the database",
                s.written,
            )?;
            counter(
                e,
                "qmon_store_retention_deleted",
                "Rows deleted by retention",
                s.retention_deleted,
            )?;
        }
        Ok(())
    }
}
