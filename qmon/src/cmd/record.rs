//! `qmon record`: capture, rebuild calls, store them in SQLite.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::Ordering;

use anyhow::Context;
use qmon::capture::{self, Capture, CaptureStats};
use qmon::connections::ConnTable;
use qmon::pipeline;
use qmon::protocols::ParserLimits;
use qmon::sinks::metrics::{Exporter, MetricsOptions};
use qmon::sinks::store::{StatusCounters, Store};

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

pub fn run(args: RecordArgs) -> anyhow::Result<ExitCode> {
    let stop = super::stop_flag()?;
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
    tracing::info!(db = %db.display(), mode = cap.mode.as_str(), "recording");
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
    let status = |table: &ConnTable, stats: &CaptureStats| StatusCounters {
        events: stats.events.load(Ordering::Relaxed),
        lost_events: stats.lost_events.load(Ordering::Relaxed),
        lost_bytes: stats.lost_bytes.load(Ordering::Relaxed) + table.stats.gap_bytes,
        calls: table.stats.calls,
        queue_dropped: 0,
        parse_errors: parse_errors
            .as_ref()
            .map_or(0, |p| p.load(Ordering::Relaxed)),
    };
    pipeline::run(
        &rx,
        &mut table,
        &stop,
        |calls| {
            for c in calls.drain(..) {
                if let Some(m) = call_metrics.as_mut() {
                    m.observe(&c);
                }
                handle.send(c);
            }
        },
        |table| {
            if let Some(h) = &health {
                h.beat();
                h.set_conn_stats(&table.stats);
            }
            loss.report(&stats);
            handle.update_status(status(table, &stats));
        },
    );

    if let Some(h) = &health {
        h.set_ready(false);
    }
    cap.stop();
    pipeline::drain(&rx, &mut table, |calls| {
        for c in calls.drain(..) {
            if let Some(m) = call_metrics.as_mut() {
                m.observe(&c);
            }
            handle.send(c);
        }
    });
    loss.report(&stats);
    handle.update_status(status(&table, &stats));
    drop(handle);
    let s = store.flush_and_close()?;
    tracing::info!(
        written = s.written,
        queue_dropped = s.queue_dropped,
        write_dropped = s.write_dropped,
        lost_events = stats.lost_events.load(Ordering::Relaxed),
        "stopped"
    );
    Ok(ExitCode::SUCCESS)
}

/// Logs kernel-side loss once per increase, never silently.
#[derive(Default)]
pub struct LossReporter {
    events: u64,
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
    }
}
