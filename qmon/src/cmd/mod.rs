//! One module per subcommand.

pub mod doctor;
pub mod query;
pub mod record;
pub mod replay;
pub mod top;
pub mod trace;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use qmon::capture::{AttachMode, BenchToggle, CaptureOptions};

use anyhow::Context;
use clap::parser::ValueSource;
use clap::ArgMatches;
use qmon::calls::redact::Redactor;
use qmon::config::FileConfig;
use qmon::pipeline::Policy;
use qmon::sinks::store::{limits, Retention, StoreOptions};
use qmon_protocols::ParserLimits;

use crate::cli::{AttachModeArg, CaptureArgs, RecordArgs, RedactArgs, StoreArgs, TopArgs};

/// Set on SIGINT or SIGTERM.
pub fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, flag.clone())?;
    }
    Ok(flag)
}

pub fn capture_options(a: &CaptureArgs) -> CaptureOptions {
    CaptureOptions {
        ring_size: a.ring_size,
        max_chunks: a.max_chunks,
        mode: a.attach_mode.map(|m| match m {
            AttachModeArg::Kprobe => AttachMode::Kprobe,
            AttachModeArg::Tracepoint => AttachMode::Tracepoint,
        }),
        bench_noop: a.bench_noop,
        bench_toggle: a
            .bench_toggle_ms
            .zip(a.bench_phase_log.clone())
            .map(|(ms, log)| BenchToggle {
                period: Duration::from_millis(ms.max(1)),
                log,
            }),
        ..CaptureOptions::default()
    }
}

/// Printed on stderr once capture is attached; scripts and tests wait for it.
pub fn announce_ready() {
    eprintln!("qmon: ready");
}

pub fn store_options(a: &StoreArgs) -> anyhow::Result<StoreOptions> {
    let mut retention = Retention::default();
    if let Some(age) = &a.retain {
        retention.max_age = Some(limits::parse_age(age).context("--retain")?);
    }
    if let Some(size) = &a.max_db_size {
        retention.max_db_size = Some(limits::parse_size(size).context("--max-db-size")?);
    }
    Ok(StoreOptions {
        body_limit: if a.no_bodies { 0 } else { a.body_limit },
        retention,
        ..StoreOptions::default()
    })
}

/// What is recorded and how it is redacted: the config file's scope, and
/// the redaction flags (already merged with the file's keys).
pub fn policy(a: &RedactArgs, file: &FileConfig) -> Policy {
    Policy {
        scope: file.scope.clone(),
        redactor: if a.no_redact {
            Redactor::disabled()
        } else {
            Redactor::with_extra_names(a.redact.iter().cloned())
        },
    }
}

/// Parser bounds: bodies are kept up to what the store keeps.
pub fn parser_limits(a: &StoreArgs) -> ParserLimits {
    ParserLimits {
        body_bytes: a.body_limit,
        ..ParserLimits::default()
    }
}

/// Was this argument given on the command line (not defaulted)?
fn given(m: Option<&ArgMatches>, id: &str) -> bool {
    m.and_then(|m| m.try_get_raw(id).ok().flatten().map(|_| m.value_source(id)))
        .flatten()
        == Some(ValueSource::CommandLine)
}

/// Fill in from the config file every setting not given on the command line.
pub fn apply_file(args: &mut RecordArgs, file: &FileConfig, m: Option<&ArgMatches>) {
    apply_capture(&mut args.capture, file, m);
    apply_redaction(&mut args.store.redaction, file, m);
    let st = &mut args.store;
    if let (false, Some(v)) = (given(m, "db"), &file.db) {
        st.db = v.clone();
    }
    if let (false, Some(v)) = (given(m, "body_limit"), file.body_limit) {
        st.body_limit = v;
    }
    if let (false, Some(v)) = (given(m, "no_bodies"), file.no_bodies) {
        st.no_bodies = v;
    }
    // Already validated: kept as text so --retain and the file share a parser.
    if let (false, Some(v)) = (given(m, "retain"), file.retain) {
        st.retain = Some(format!("{}ms", v.as_millis()));
    }
    if let (false, Some(v)) = (given(m, "max_db_size"), file.max_db_size) {
        st.max_db_size = Some(v.to_string());
    }
    if let (false, Some(v)) = (given(m, "metrics_addr"), &file.metrics_addr) {
        args.metrics.metrics_addr = v.clone();
    }
}

/// `qmon top`: the settings it shares with `qmon record`.
pub fn apply_file_top(args: &mut TopArgs, file: &FileConfig, m: Option<&ArgMatches>) {
    apply_capture(&mut args.capture, file, m);
    apply_redaction(&mut args.redaction, file, m);
    if let (false, Some(v)) = (given(m, "db"), &file.db) {
        args.db = v.clone();
    }
}

fn apply_redaction(r: &mut RedactArgs, file: &FileConfig, m: Option<&ArgMatches>) {
    if let (false, Some(v)) = (given(m, "no_redact"), file.no_redact) {
        r.no_redact = v;
    }
    if let (false, Some(v)) = (given(m, "redact"), &file.redact) {
        r.redact = v.clone();
    }
}

fn apply_capture(c: &mut CaptureArgs, file: &FileConfig, m: Option<&ArgMatches>) {
    if let (false, Some(v)) = (given(m, "ring_size"), file.ring_size) {
        c.ring_size = v;
    }
    if let (false, Some(v)) = (given(m, "max_chunks"), file.max_chunks) {
        c.max_chunks = v;
    }
    if let (false, Some(v)) = (given(m, "attach_mode"), &file.attach_mode) {
        c.attach_mode = Some(if v == "kprobe" {
            AttachModeArg::Kprobe
        } else {
            AttachModeArg::Tracepoint
        });
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    /// The file's `retain` goes back through --retain's parser: nothing may
    /// be lost on the way (sub-second times included).
    #[test]
    fn a_file_retain_reaches_the_store_unchanged() {
        for (text, want) in [
            ("retain = \"7d\"", Duration::from_secs(7 * 86_400)),
            ("retain = \"1500ms\"", Duration::from_millis(1500)),
        ] {
            let file = qmon::config::parse(text).unwrap();
            let Command::Record(mut args) =
                Cli::try_parse_from(["qmon", "record"]).unwrap().command
            else {
                unreachable!()
            };
            apply_file(&mut args, &file, None);
            let opts = store_options(&args.store).unwrap();
            assert_eq!(opts.retention.max_age, Some(want), "{text}");
        }
    }
}
