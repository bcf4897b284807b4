//! Every counter the pipeline keeps or gathers, in one snapshot. What
//! `recorder_status`, `/metrics` and the live view's header show all comes
//! from here, so they cannot disagree.
//!
//! Loss has three counters, each with one meaning:
//! * `lost_bytes` (with `lost_events`): dropped in the kernel because the
//!   ring buffer was full;
//! * `truncated_bytes`: not copied because one read or write moved more than
//!   qmon's per-call copy limit (`--max-chunks` × 16 KiB);
//! * `gap_bytes` (with `gaps`): missing from a stream as the parsers saw it,
//!   whatever the cause. Kernel loss and truncation each show up here too,
//!   as do bytes not held while a connection's protocol was undecided, so
//!   it is never added to the other two.

use std::sync::atomic::Ordering;

use crate::capture::CaptureStats;
use crate::connections::ConnStats;

/// The kernel side's counters, as last read by the capture thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureCounters {
    /// Ring buffer events received.
    pub events: u64,
    pub decode_errors: u64,
    /// Events the kernel could not deliver (ring buffer full).
    pub lost_events: u64,
    /// Payload bytes in those events.
    pub lost_bytes: u64,
    /// Bytes past the per-call copy limit, never copied.
    pub truncated_bytes: u64,
    /// Syscall returns the kernel could not report (kprobe mode).
    pub probe_missed: u64,
    /// Data calls skipped in the kernel because their connection is muted.
    pub muted_calls: u64,
    pub ring_size: u64,
    pub ring_used: u64,
    pub libs_attached: u64,
}

impl CaptureCounters {
    pub fn read(s: &CaptureStats) -> Self {
        let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        Self {
            events: g(&s.events),
            decode_errors: g(&s.decode_errors),
            lost_events: g(&s.lost_events),
            lost_bytes: g(&s.lost_bytes),
            truncated_bytes: g(&s.truncated_bytes),
            probe_missed: g(&s.probe_missed),
            muted_calls: g(&s.muted_calls),
            ring_size: g(&s.ring_size),
            ring_used: g(&s.ring_used),
            libs_attached: g(&s.libs_attached),
        }
    }
}

/// A snapshot of the pipeline's counters; all cumulative except the gauges
/// in `capture`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// Kernel-side counters; all zero when replaying without a kernel.
    pub capture: CaptureCounters,
    /// The connection table's counters.
    pub conns: ConnStats,
    /// Calls handed to the sinks.
    pub calls: u64,
    /// Connections switched off at open because the process or destination
    /// is out of scope.
    pub out_of_scope_conns: u64,
    /// Finished calls left out because they are out of scope.
    pub out_of_scope_calls: u64,
    /// Calls whose bytes were malformed or degraded (a subset of `calls`).
    pub parse_errors: u64,
    /// Calls a sink dropped because it could not keep up, summed over sinks.
    pub queue_dropped: u64,
}
