//! qmon: outbound HTTP(S) traffic monitor.
//!
//! Data flows through the modules in this order, each owning one stage and
//! importing nothing from a later one:
//!
//! `capture` (BPF, ring buffer: `CaptureEvent`s) → `connections` (ordered
//! per-direction byte streams and their parsers: `Effect`s) → the parsers of
//! the `qmon-protocols` crate (HTTP/1, HTTP/2, gRPC: `Exchange`s) → `calls`
//! (the `Call` record: process, route, redaction, scope) → `sinks` (SQLite
//! store, metrics, live view). `qmon-vocab` holds what capture and the
//! parsers both speak: `Direction` and `now_ns()`.
//!
//! `pipeline` runs the stages for `qmon record`, `qmon top` and `qmon
//! replay`, and owns scope, redaction and every counter; `cmd` (in the
//! binary) only parses flags and chooses sinks.

pub mod calls;
pub mod capture;
pub mod config;
pub mod connections;
pub mod pipeline;
pub mod query;
pub mod sinks;
pub mod table;
pub mod units;
