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

use crate::capture::CaptureCounters;
use crate::connections::ConnStats;

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
