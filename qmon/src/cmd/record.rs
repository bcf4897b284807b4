//! `qmon record`: capture, rebuild calls, store them in SQLite.

use std::process::ExitCode;
use std::sync::atomic::Ordering;

use anyhow::Context;
use qmon::capture::{self, Capture, CaptureStats};
use qmon::connections::ConnTable;
use qmon::pipeline;
use qmon::protocols::ParserLimits;
use qmon::sinks::store::{StatusCounters, Store};

use crate::cli::RecordArgs;

pub fn run(args: RecordArgs) -> anyhow::Result<ExitCode> {
    // Refuse (no privileges, no BTF, …) before creating any file.
    capture::preflight()?;
    let stop = super::stop_flag()?;
    let opts = super::store_options(&args.store)?;
    let db = args.store.db.clone();
    let store = Store::open(&db, opts)
        .with_context(|| format!("cannot open the database {}", db.display()))?;
    let handle = store.handle();

    let (tx, rx) = capture::channel(8192);
    let cap = Capture::start(super::capture_options(&args.capture), tx)?;
    let limits = ParserLimits {
        body_bytes: args.store.body_limit,
        ..ParserLimits::default()
    };
    let mut table = ConnTable::new(limits, Some(cap.control.clone()));
    tracing::info!(db = %db.display(), mode = cap.mode.as_str(), "recording");
    super::announce_ready();

    let stats = cap.stats.clone();
    let mut loss = LossReporter::default();
    let status = |table: &ConnTable, stats: &CaptureStats| StatusCounters {
        events: stats.events.load(Ordering::Relaxed),
        lost_events: stats.lost_events.load(Ordering::Relaxed),
        lost_bytes: stats.lost_bytes.load(Ordering::Relaxed) + table.stats.gap_bytes,
        calls: table.stats.calls,
        queue_dropped: 0,
        parse_errors: 0,
    };
    pipeline::run(
        &rx,
        &mut table,
        &stop,
        |calls| {
            for c in calls.drain(..) {
                handle.send(c);
            }
        },
        |table| {
            loss.report(&stats);
            handle.update_status(status(table, &stats));
        },
    );

    cap.stop();
    pipeline::drain(&rx, &mut table, |calls| {
        for c in calls.drain(..) {
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
