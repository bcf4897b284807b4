//! Where calls go: the one interface every consumer implements.

use std::sync::Arc;

use crate::calls::Call;

use super::Status;

/// A consumer of finished calls: the SQLite store, the Prometheus metrics,
/// the live view, an exporter.
///
/// Every call a sink sees is in scope and already redacted. Sinks run on
/// the pipeline's thread, so they must not block: one that cannot keep up
/// drops, and reports what it dropped through [`Sink::dropped`], which the
/// pipeline adds to its `queue_dropped` counter.
///
/// Adding a sink is this trait plus a flag that adds it
/// ([`super::Pipeline::add_sink`]); see docs/architecture.md for an example.
pub trait Sink: Send {
    /// A short name for logs.
    fn name(&self) -> &'static str;

    /// A batch of finished calls, oldest first.
    fn calls(&mut self, calls: &[Arc<Call>]);

    /// About once a second, with every counter the pipeline keeps.
    fn tick(&mut self, _status: &Status) {}

    /// Calls this sink dropped so far because it could not keep up.
    fn dropped(&self) -> u64 {
        0
    }

    /// No more calls will come: hand on or flush what is buffered. `status`
    /// holds the final counters.
    fn finish(&mut self, _status: &Status) {}
}
