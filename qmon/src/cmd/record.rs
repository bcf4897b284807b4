//! `qmon record`: capture, rebuild calls, store them in SQLite.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::ArgMatches;
use qmon::calls::scope::Scope;
use qmon::capture::{self, Capture, CaptureStats};
use qmon::config::{self, FileConfig};
use qmon::connections::ConnTable;
use qmon::pipeline;
use qmon::sinks::metrics::{Exporter, MetricsOptions};
use qmon::sinks::store::{StatusCounters, Store, StoreHandle};
use qmon_protocols::ParserLimits;

use crate::cli::{MetricsArgs, RecordArgs};

/// `--metrics-addr`: an `IP:PORT`, or `none`.
fn metrics_addr(a: &MetricsArgs) -> anyhow::Result<Option<SocketAddr>> {
    if a.metrics_addr.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    a.metrics_addr.parse().map(Some).map_err(|_| {
        anyhow::anyhow!(
            "--metrics-addr {:?}: not an IP:PORT address (e.g. 127.0.0.1:9464) or `none`",
            a.metrics_addr
        )
    })
}

pub fn run(mut args: RecordArgs, matches: Option<&ArgMatches>) -> anyhow::Result<ExitCode> {
    // Refuse (no privileges, no BTF, bad config, …) before creating any file.
    capture::preflight()?;
    let config_path = config::locate(args.config.as_deref());
    let file = match &config_path {
        Some(p) => config::load(p)?,
        None => FileConfig::default(),
    };
    // Reloads start again from the command line, so a key removed from
    // the file falls back to its default rather than its old value.
    let cli_args = RecordArgs {
        config: args.config.clone(),
        capture: args.capture.clone(),
        store: args.store.clone(),
        metrics: args.metrics.clone(),
    };
    super::apply_file(&mut args, &file, matches);
    let stop = super::stop_flag()?;
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())?;
    let metrics_at = metrics_addr(&args.metrics)?;
    let opts = super::store_options(&args.store)?;
    let queue_capacity = opts.queue_capacity;
    let db = args.store.db.clone();
    let store = Store::open(&db, opts)
        .with_context(|| format!("cannot open the database {}", db.display()))?;
    let handle = store.handle();
    let exporter = match metrics_at {
        Some(addr) => Some(
            Exporter::start(
                addr,
                MetricsOptions {
                    route_label: args.metrics.metrics_route_label,
                    routes_per_host: args.metrics.metrics_routes_per_host,
                    max_servers: args.metrics.metrics_max_hosts,
                    ..MetricsOptions::default()
                },
            )
            .with_context(|| format!("--metrics-addr {addr}"))?,
        ),
        None => None,
    };
    let metrics_bound = exporter.as_ref().map(|e| e.server.addr);
    let health = exporter.as_ref().map(|e| e.health.clone());
    let parse_errors = exporter.as_ref().map(|e| e.calls.parse_error_count());
    let mut call_metrics = exporter.map(|e| e.calls);
    if let Some(h) = &health {
        h.set_store(handle.clone(), queue_capacity);
    }

    let (tx, rx) = capture::channel(8192);
    let cap = Capture::start(super::capture_options(&args.capture), tx)?;
    let limits = ParserLimits {
        body_bytes: args.store.body_limit,
        ..ParserLimits::default()
    };
    let mut table = ConnTable::new(limits, Some(cap.control.clone()));
    let mut scope = file.scope.clone();
    table.set_scope(scope.clone());
    tracing::info!(
        db = %db.display(),
        mode = cap.mode.as_str(),
        config = config_path.as_ref().map(|p| p.display().to_string()),
        scope = scope.describe().join("; "),
        "recording"
    );
    if let Some(addr) = metrics_bound {
        tracing::info!(%addr, "metrics: serving /metrics, /healthz, /readyz");
    }
    if let Some(h) = &health {
        h.set_capture(cap.stats.clone());
        h.beat();
        h.set_ready(true);
    }
    super::announce_ready();

    let stats = cap.stats.clone();
    let mut loss = LossReporter::default();
    let mut out_of_scope = 0u64;
    let mut in_force = file;
    let scope_cell = std::cell::RefCell::new(&mut scope);
    pipeline::run(
        &rx,
        &cap.pool,
        &mut table,
        &stop,
        |calls| {
            let scope = scope_cell.borrow();
            for c in calls.drain(..) {
                if scope.allows(&c) {
                    if let Some(m) = call_metrics.as_mut() {
                        m.observe(&c);
                    }
                    handle.send(c);
                } else {
                    out_of_scope += 1;
                }
            }
        },
        |table| {
            if let Some(h) = &health {
                h.beat();
                h.set_conn_stats(&table.stats);
            }
            if hup.swap(false, Ordering::SeqCst) {
                if let Some(p) = &config_path {
                    if let Some(new) = reload(p, &in_force, &cli_args, matches, table, &handle) {
                        **scope_cell.borrow_mut() = new.scope.clone();
                        in_force = new;
                    }
                } else {
                    tracing::warn!("SIGHUP: no configuration file in use (start with --config FILE or create {}); nothing to reload", config::DEFAULT_PATH);
                }
            }
            loss.report(&stats);
            handle.update_status(status(table, &stats, &parse_errors));
        },
    );

    if let Some(h) = &health {
        h.set_ready(false);
    }
    cap.stop();
    let scope = scope_cell.into_inner();
    pipeline::drain(&rx, &mut table, |calls| {
        for c in calls.drain(..) {
            if scope.allows(&c) {
                if let Some(m) = call_metrics.as_mut() {
                    m.observe(&c);
                }
                handle.send(c);
            }
        }
    });
    loss.report(&stats);
    handle.update_status(status(&table, &stats, &parse_errors));
    drop(handle);
    let s = store.flush_and_close()?;
    tracing::info!(
        written = s.written,
        queue_dropped = s.queue_dropped,
        write_dropped = s.write_dropped,
        lost_events = stats.lost_events.load(Ordering::Relaxed),
        probe_missed = stats.probe_missed.load(Ordering::Relaxed),
        out_of_scope,
        "stopped"
    );
    Ok(ExitCode::SUCCESS)
}

fn status(
    table: &ConnTable,
    stats: &CaptureStats,
    parse_errors: &Option<Arc<std::sync::atomic::AtomicU64>>,
) -> StatusCounters {
    StatusCounters {
        events: stats.events.load(Ordering::Relaxed),
        lost_events: stats.lost_events.load(Ordering::Relaxed),
        lost_bytes: stats.lost_bytes.load(Ordering::Relaxed) + table.stats.gap_bytes,
        calls: table.stats.calls,
        queue_dropped: 0,
        parse_errors: parse_errors
            .as_ref()
            .map_or(0, |p| p.load(Ordering::Relaxed)),
    }
}

/// Re-read the config file on SIGHUP. Capture keeps running throughout; a
/// bad file is rejected with the reason and the old configuration stays.
/// Scope, redaction and body limits apply at once; keys that need new BPF
/// maps or a new database are reported as needing a restart.
fn reload(
    path: &Path,
    old: &FileConfig,
    args: &RecordArgs,
    matches: Option<&ArgMatches>,
    table: &mut ConnTable,
    store: &StoreHandle,
) -> Option<FileConfig> {
    let new = match config::load(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("configuration reload rejected, keeping the previous one: {e}");
            return None;
        }
    };
    // The new file under the same command-line flags as at start.
    let mut merged = RecordArgs {
        config: args.config.clone(),
        capture: args.capture.clone(),
        store: args.store.clone(),
        metrics: args.metrics.clone(),
    };
    super::apply_file(&mut merged, &new, matches);
    let opts = match super::store_options(&merged.store) {
        Ok(o) => o,
        Err(e) => {
            tracing::error!("configuration reload rejected, keeping the previous one: {e:#}");
            return None;
        }
    };
    if store.reconfigure(opts.redactor, opts.body_limit).is_err() {
        tracing::error!("configuration reload failed: the store writer has stopped");
        return None;
    }
    table.set_scope(new.scope.clone());
    let restart: Vec<&str> = [
        ("db", old.db != new.db),
        ("ring_size", old.ring_size != new.ring_size),
        ("max_chunks", old.max_chunks != new.max_chunks),
        ("attach_mode", old.attach_mode != new.attach_mode),
        ("metrics_addr", old.metrics_addr != new.metrics_addr),
        ("retain", old.retain != new.retain),
        ("max_db_size", old.max_db_size != new.max_db_size),
    ]
    .into_iter()
    .filter(|(_, changed)| *changed)
    .map(|(k, _)| k)
    .collect();
    if !restart.is_empty() {
        tracing::warn!(
            keys = restart.join(", "),
            "configuration reloaded, but these keys only take effect after a restart"
        );
    }
    tracing::info!(
        config = %path.display(),
        scope = Scope::describe(&new.scope).join("; "),
        "configuration reloaded"
    );
    Some(new)
}

/// Logs kernel-side loss once per increase, never silently.
#[derive(Default)]
pub struct LossReporter {
    events: u64,
    missed: u64,
}

impl LossReporter {
    pub fn report(&mut self, stats: &CaptureStats) {
        let lost = stats.lost_events.load(Ordering::Relaxed);
        if lost > self.events {
            tracing::warn!(
                lost_events = lost,
                new = lost - self.events,
                lost_bytes = stats.lost_bytes.load(Ordering::Relaxed),
                "ring buffer full: events lost (raise --ring-size, or lower --max-chunks)"
            );
            self.events = lost;
        }
        let missed = stats.probe_missed.load(Ordering::Relaxed);
        if missed > self.missed {
            tracing::warn!(
                probe_missed = missed,
                new = missed - self.missed,
                "kernel dropped syscall-return probes: those calls' data is lost \
                 (too many threads blocked in hooked syscalls at once)"
            );
            self.missed = missed;
        }
    }
}
