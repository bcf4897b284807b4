//! The `qmon` binary: argument parsing, logging and exit codes. Everything
//! else lives in the library.

mod cli;
mod cmd;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let matches = cli::Cli::command().get_matches();
    let cli = match cli::Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    init_logging(cli.log_format);
    let sub = matches.subcommand().map(|(_, m)| m.clone());
    let result = match cli.command {
        cli::Command::Record(a) => cmd::record::run(a, sub.as_ref()),
        cli::Command::Query(a) => cmd::query::run(a),
        cli::Command::Trace(a) => cmd::trace::run(a),
        cli::Command::Doctor(a) => cmd::doctor::run(a),
        cli::Command::Top(a) => cmd::top::run(a, sub.as_ref()),
        cli::Command::Replay(a) => cmd::replay::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // One line: what is wrong and how to fix it.
            eprintln!("qmon: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(format: cli::LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("QMON_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        cli::LogFormat::Text => builder.init(),
        cli::LogFormat::Json => builder.json().init(),
    }
}
