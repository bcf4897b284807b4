//! The call record: what one outbound request/response became.
//!
//! Protocol parsers produce [`Exchange`]s (protocol facts only; the type and
//! its parts live in `qmon-protocols` and are re-exported here). The
//! [`build::CallBuilder`] wraps each in a [`Call`] with the process and
//! connection it belongs to; sinks (store, metrics, live view) consume
//! `Call`s only.

use std::net::SocketAddr;

pub use qmon_protocols::{header, Body, CallError, Exchange, GrpcInfo, Headers, Protocol, Timing};

pub mod body;
pub mod build;
pub mod process;
pub mod redact;
pub mod route;
pub mod scope;

/// The process that made the call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    pub comm: String,
    pub exe: Option<String>,
    /// Command-line arguments, unredacted (the store redacts them).
    pub args: Vec<String>,
    pub container_id: Option<String>,
}

/// The connection the call travelled on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    /// qmon's connection id: unique per (pid, fd, connect time).
    pub conn_id: u64,
    pub remote: Option<SocketAddr>,
    pub tls: bool,
    /// e.g. "openssl" and the library's file name.
    pub tls_lib: Option<String>,
}

/// The record every sink consumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// Shared with the process table and the process's other calls.
    pub process: std::sync::Arc<ProcessInfo>,
    pub conn: ConnInfo,
    pub exchange: Exchange,
    /// Host the client asked for: authority without port, else remote ip.
    pub host: String,
    /// Port from the authority, else the remote port.
    pub port: Option<u16>,
    /// Path without query, ids replaced by placeholders.
    pub route: Option<String>,
}
