//! `qmon query`: read-only SQL over recorded calls.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::{QueryArgs, QueryFormat};
use qmon::query::{self, Format};

pub fn run(args: QueryArgs) -> anyhow::Result<ExitCode> {
    let format = match args.format {
        QueryFormat::Table => Format::Table,
        QueryFormat::Csv => Format::Csv,
        QueryFormat::Json => Format::Json,
        QueryFormat::Jsonl => Format::Jsonl,
    };
    let out = std::io::stdout();
    let mut out = out.lock();
    query::run(&args.db, format, &args.sql, &mut out)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
