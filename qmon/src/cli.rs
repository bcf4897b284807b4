//! Command-line interface definitions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "qmon",
    version,
    about = "See every outbound HTTP(S) call every process on this host makes",
    propagate_version = true
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Capture outbound HTTP(S) calls and store them in SQLite.
    Record(RecordArgs),
    /// Run SQL over recorded calls (read-only).
    Query(QueryArgs),
    /// Print raw captured connection events and bytes as JSON Lines.
    Trace(TraceArgs),
    /// Check kernel features, privileges and TLS libraries.
    Doctor(DoctorArgs),
}

#[derive(Debug, Clone, Args)]
pub struct CaptureArgs {
    /// Ring buffer size in bytes (power of two).
    #[arg(long, default_value_t = 16 * 1024 * 1024, value_name = "BYTES")]
    pub ring_size: u32,

    /// Most 16 KiB chunks copied from one read/write call.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub max_chunks: u32,

    /// Attach socket hooks this way instead of probing the kernel.
    #[arg(long, value_enum, value_name = "MODE")]
    pub attach_mode: Option<AttachModeArg>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AttachModeArg {
    Kprobe,
    Tracepoint,
}

#[derive(Debug, Args)]
pub struct TraceArgs {
    #[command(flatten)]
    pub capture: CaptureArgs,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Database to check.
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// SQLite database file (created with mode 0600).
    #[arg(long, default_value = qmon::sinks::store::DEFAULT_DB_PATH, value_name = "FILE")]
    pub db: PathBuf,

    /// Delete calls older than this, e.g. 7d, 12h, 30m.
    #[arg(long, value_name = "AGE")]
    pub retain: Option<String>,

    /// Delete the oldest calls while the database is larger, e.g. 500MB, 2GiB.
    #[arg(long, value_name = "SIZE")]
    pub max_db_size: Option<String>,

    /// Store header values, query strings and bodies unredacted.
    #[arg(long)]
    pub no_redact: bool,

    /// Also redact these header or query-parameter names (repeatable).
    #[arg(long = "redact", value_name = "NAME")]
    pub redact: Vec<String>,

    /// Body bytes stored per direction per call.
    #[arg(long, default_value_t = 4096, value_name = "BYTES")]
    pub body_limit: usize,

    /// Store no bodies at all (sizes are still recorded).
    #[arg(long)]
    pub no_bodies: bool,
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    #[command(flatten)]
    pub capture: CaptureArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

#[derive(Debug, Clone, Args)]
pub struct MetricsArgs {
    /// Serve Prometheus /metrics, /healthz and /readyz on IP:PORT, or `none`.
    #[arg(long, default_value = "127.0.0.1:9464", value_name = "ADDR")]
    pub metrics_addr: String,

    /// Label call metrics with the route (`url_template`); capped per host.
    #[arg(long)]
    pub metrics_route_label: bool,

    /// Distinct routes per host before `url_template="_OTHER"`.
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub metrics_routes_per_host: usize,

    /// Distinct host:port pairs before `server_address="_OTHER"`.
    #[arg(long, default_value_t = 500, value_name = "N")]
    pub metrics_max_hosts: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QueryFormat {
    Table,
    Csv,
    Json,
    Jsonl,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// SQLite database file written by `qmon record`.
    #[arg(long, default_value = qmon::sinks::store::DEFAULT_DB_PATH, value_name = "FILE")]
    pub db: PathBuf,

    #[arg(long, value_enum, default_value_t = QueryFormat::Table)]
    pub format: QueryFormat,

    /// SQL to run, e.g. "SELECT host, count(*) FROM calls GROUP BY host".
    pub sql: String,
}
