//! qmon: outbound HTTP(S) traffic monitor.
//!
//! Data flows through the modules in this order, each owning one stage:
//!
//! `capture` (BPF, ring buffer) → `connections` (per-direction byte streams,
//! gaps) → `protocols` (HTTP/1, HTTP/2) → `calls` (the record) → `sinks`
//! (SQLite store, metrics, live view).

pub mod calls;
pub mod capture;
pub mod config;
pub mod connections;
pub mod pipeline;
pub mod protocols;
pub mod query;
pub mod sinks;
pub mod table;
pub mod units;
