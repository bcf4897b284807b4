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
    /// Live terminal view of outbound calls (htop-style); `--once` for text.
    Top(TopArgs),
    /// Benchmarks: replay `qmon trace` output through the pipeline.
    #[command(hide = true)]
    Replay(ReplayArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// A `qmon trace` capture (JSON Lines).
    #[arg(long, value_name = "FILE")]
    pub events: PathBuf,

    /// Database to write (created; use a tmpfs path for benchmarks).
    #[arg(long, value_name = "FILE")]
    pub db: PathBuf,

    /// Passes over the recording (each on fresh connection ids).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub rounds: u64,
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

    /// Benchmarks only: attach every program but make each return at once
    /// (the bare cost of the probes). Captures nothing.
    #[arg(long, hide = true)]
    pub bench_noop: bool,

    /// Benchmarks only: alternate between recording and the floor every MS
    /// milliseconds, logging each switch to --bench-phase-log.
    #[arg(long, hide = true, value_name = "MS", requires = "bench_phase_log")]
    pub bench_toggle_ms: Option<u64>,

    /// Benchmarks only: where --bench-toggle-ms logs its switches.
    #[arg(long, hide = true, value_name = "FILE", requires = "bench_toggle_ms")]
    pub bench_phase_log: Option<std::path::PathBuf>,
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
    /// Configuration file whose capture scope to show.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
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

    #[command(flatten)]
    pub redaction: RedactArgs,

    /// Body bytes stored per direction per call.
    #[arg(long, default_value_t = 4096, value_name = "BYTES")]
    pub body_limit: usize,

    /// Store no bodies at all (sizes are still recorded).
    #[arg(long)]
    pub no_bodies: bool,
}

/// How secrets are redacted; `record` and `top` share these.
#[derive(Debug, Clone, Args)]
pub struct RedactArgs {
    /// Store header values, query strings and bodies unredacted.
    #[arg(long)]
    pub no_redact: bool,

    /// Also redact these header or query-parameter names (repeatable).
    #[arg(long = "redact", value_name = "NAME")]
    pub redact: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Configuration file; flags given here win over it. Default:
    /// /etc/qmon/qmon.toml when it exists. SIGHUP re-reads it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
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

/// `qmon top --group`: a process is a program (one executable name), or,
/// with `pid`, one pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GroupArg {
    Process,
    Pid,
    Host,
    HostRoute,
    ProcessHostRoute,
    PidHostRoute,
}

/// `qmon top --format`: `qmon query`'s formats, with the text frame as
/// the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TopFormat {
    #[value(alias = "table")]
    Text,
    Csv,
    Json,
    Jsonl,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    /// Configuration file, as for `qmon record`: when top captures by
    /// itself, it applies the file's scope, redaction and capture settings.
    /// Default: /etc/qmon/qmon.toml when it exists.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub capture: CaptureArgs,

    #[command(flatten)]
    pub redaction: RedactArgs,

    /// Database of `qmon record`: while a recorder is live on it, show its
    /// calls instead of capturing.
    #[arg(long, default_value = qmon::sinks::store::DEFAULT_DB_PATH, value_name = "FILE")]
    pub db: PathBuf,

    /// Print one frame as plain text after collecting for --interval (or
    /// --duration), then exit.
    #[arg(long, visible_alias = "batch")]
    pub once: bool,

    /// Output of --once: text (the frame), or its rows as csv, json or
    /// jsonl, as `qmon query` prints them. Any but text implies --once.
    #[arg(long, value_enum, default_value_t = TopFormat::Text, value_name = "FORMAT")]
    pub format: TopFormat,

    /// Refresh interval, e.g. 500ms, 1s (the screen refreshes at least
    /// once a second).
    #[arg(long, default_value = "1s", value_name = "TIME", value_parser = parse_interval)]
    pub interval: std::time::Duration,

    /// With --once: collect this long instead of --interval, e.g. 5s.
    #[arg(long, value_name = "TIME", value_parser = parse_interval)]
    pub duration: Option<std::time::Duration>,

    /// Sort column: process, host, proto, reqs, rps, err, p50, p95, p99,
    /// out, in, pids.
    #[arg(long, default_value = "reqs", value_name = "COLUMN", value_parser = parse_column)]
    pub sort: qmon::sinks::live::model::Column,

    /// Invert the sort order.
    #[arg(long)]
    pub reverse: bool,

    /// Only calls whose process, executable, host:port or route contains
    /// this.
    #[arg(long, value_name = "TEXT")]
    pub filter: Option<String>,

    /// Group rows by: a process is a program (one row per executable
    /// name, with a PIDS count); `pid` gives one row per pid.
    #[arg(long, value_enum, default_value_t = GroupArg::Process)]
    pub group: GroupArg,

    /// Time window: 10s, 1m, 5m, 15m (or the same times spelled another
    /// way, e.g. 60s), all.
    #[arg(long, default_value = "1m", value_name = "WINDOW", value_parser = parse_window)]
    pub window: qmon::sinks::live::model::Window,

    /// Only calls made by this process.
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,

    /// While the screen is in use, write logs here instead of discarding them.
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
}

/// `250ms`, `1s`, `2m`: any time `qmon::units::parse_duration` reads.
fn parse_interval(s: &str) -> Result<std::time::Duration, String> {
    qmon::units::parse_duration(s)
        .map_err(|_| format!("{s:?}: expected a time like 500ms, 1s or 2m"))
}

fn parse_column(s: &str) -> Result<qmon::sinks::live::model::Column, String> {
    qmon::sinks::live::model::Column::parse(s).ok_or_else(|| {
        format!("{s:?}: one of process, host, proto, reqs, rps, err, p50, p95, p99, out, in, pids")
    })
}

fn parse_window(s: &str) -> Result<qmon::sinks::live::model::Window, String> {
    qmon::sinks::live::model::Window::parse(s)
        .ok_or_else(|| format!("{s:?}: one of 10s, 1m, 5m, 15m, all"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn top(args: &[&str]) -> Result<TopArgs, clap::Error> {
        let argv = ["qmon", "top"].iter().chain(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Top(t) => Ok(t),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn top_times_read_the_one_duration_grammar() {
        let t = top(&[
            "--interval",
            "250ms",
            "--duration",
            "2 min",
            "--window",
            "60s",
        ])
        .unwrap();
        assert_eq!(t.interval, Duration::from_millis(250));
        assert_eq!(t.duration, Some(Duration::from_secs(120)));
        assert_eq!(t.window, qmon::sinks::live::model::Window::M1);
        let t = top(&["--interval", "1h"]).unwrap();
        assert_eq!(t.interval, Duration::from_secs(3600));
        assert_eq!(top(&[]).unwrap().interval, Duration::from_secs(1));
        for (flag, bad, want) in [
            (
                "--interval",
                "0s",
                "\"0s\": expected a time like 500ms, 1s or 2m",
            ),
            (
                "--duration",
                "1.5s",
                "\"1.5s\": expected a time like 500ms, 1s or 2m",
            ),
            ("--window", "2m", "\"2m\": one of 10s, 1m, 5m, 15m, all"),
        ] {
            let e = top(&[flag, bad]).unwrap_err().to_string();
            assert!(e.contains(want), "{flag} {bad}: {e}");
        }
    }

    #[test]
    fn top_groups_by_program_by_default_and_prints_query_formats() {
        let t = top(&[]).unwrap();
        assert_eq!(t.group, GroupArg::Process);
        assert_eq!(t.format, TopFormat::Text);
        assert_eq!(top(&["--group", "pid"]).unwrap().group, GroupArg::Pid);
        let t = top(&["--group", "pid-host-route", "--format", "jsonl"]).unwrap();
        assert_eq!(
            (t.group, t.format),
            (GroupArg::PidHostRoute, TopFormat::Jsonl)
        );
        assert_eq!(top(&["--format", "table"]).unwrap().format, TopFormat::Text);
        assert_eq!(
            top(&["--sort", "pids"]).unwrap().sort,
            qmon::sinks::live::model::Column::Pids
        );
        let e = top(&["--format", "xml"]).unwrap_err().to_string();
        assert!(e.contains("text, csv, json, jsonl"), "{e}");
    }
}
