//! qmon: outbound HTTP(S) traffic monitor.
//!
//! Data flows through the modules in this order, each owning one stage:
//!
//! `capture` (BPF, ring buffer) → `connections` (per-direction byte streams,
//! gaps) → the parsers of the `qmon-protocols` crate (HTTP/1, HTTP/2, gRPC;
//! they produce `Exchange`s) → `calls` (the record) → `sinks` (SQLite store,
//! metrics, live view). `qmon-vocab` holds what capture and the parsers both
//! speak: `Direction` and `now_ns()`.

pub mod calls;
pub mod capture;
pub mod config;
pub mod connections;
pub mod pipeline;
pub mod query;
pub mod sinks;
