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
