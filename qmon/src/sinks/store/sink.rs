//! The store as a pipeline sink.

use std::sync::Arc;

use super::{StatusCounters, Store, StoreHandle};
use crate::calls::Call;
use crate::pipeline::{Sink, Status};

/// Writes every call to SQLite and keeps `recorder_status` current. Owns
/// the store and closes it when the pipeline finishes.
pub struct StoreSink {
    store: Option<Store>,
    handle: StoreHandle,
    capacity: u64,
    wait_for_room: bool,
}

impl StoreSink {
    /// `capacity`: the store's queue capacity ([`super::StoreOptions`]).
    pub fn new(store: Store, capacity: usize) -> Self {
        Self {
            handle: store.handle(),
            store: Some(store),
            capacity: capacity as u64,
            wait_for_room: false,
        }
    }

    /// Benchmarks: wait while the write queue is full instead of dropping,
    /// to measure throughput rather than drops.
    pub fn waiting_for_room(mut self) -> Self {
        self.wait_for_room = true;
        self
    }
}

/// The `recorder_status` counters, from the pipeline's.
pub fn status_counters(s: &Status) -> StatusCounters {
    StatusCounters {
        events: s.capture.events,
        lost_events: s.capture.lost_events,
        lost_bytes: s.capture.lost_bytes,
        calls: s.calls,
        queue_dropped: s.queue_dropped,
        parse_errors: s.parse_errors,
        truncated_bytes: s.capture.truncated_bytes,
        gaps: s.conns.gaps,
        gap_bytes: s.conns.gap_bytes,
    }
}

impl Sink for StoreSink {
    fn name(&self) -> &'static str {
        "store"
    }

    fn calls(&mut self, calls: &[Arc<Call>]) {
        for c in calls {
            if self.wait_for_room {
                // One producer: the room cannot vanish before the send.
                while self.handle.queue_depth() + 1 >= self.capacity {
                    std::thread::yield_now();
                }
            }
            self.handle.send(c.clone());
        }
    }

    fn tick(&mut self, status: &Status) {
        self.handle.update_status(status_counters(status));
    }

    fn dropped(&self) -> u64 {
        self.handle.stats().queue_dropped
    }

    fn finish(&mut self, status: &Status) {
        self.handle.update_status(status_counters(status));
        let Some(store) = self.store.take() else {
            return;
        };
        match store.flush_and_close() {
            Ok(s) => tracing::info!(
                written = s.written,
                queue_dropped = s.queue_dropped,
                write_dropped = s.write_dropped,
                "store closed"
            ),
            Err(e) => tracing::error!("closing the store failed: {e}"),
        }
    }
}
