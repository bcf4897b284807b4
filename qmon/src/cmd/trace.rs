//! `qmon trace`: raw capture events as JSON Lines, for debugging capture and
//! for bug reports.

use std::io::{BufWriter, Write};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use qmon::capture::trace_format::{AttachRecord, StatsRecord, TraceRecord};
use qmon::capture::{self, Capture, CaptureStats, LibStatus};

use crate::cli::TraceArgs;

pub fn run(args: TraceArgs) -> anyhow::Result<ExitCode> {
    let stop = super::stop_flag()?;
    let (tx, rx) = capture::channel(4096);
    let cap = Capture::start(super::capture_options(&args.capture), tx)?;
    let out = std::io::stdout();
    let mut out = BufWriter::new(out.lock());
    if let Ok(libs) = cap.libs.lock() {
        for l in libs.iter().filter(|l| l.skipped.is_none()) {
            write_record(&mut out, &attach(l))?;
        }
    }
    out.flush()?;
    super::announce_ready();
    let mut libs_seen = cap.libs.lock().map(|l| l.len()).unwrap_or(0);
    let mut last_stats = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(ev) => write_record(&mut out, &TraceRecord::from(&ev))?,
            Err(RecvTimeoutError::Timeout) => out.flush()?,
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if let Ok(libs) = cap.libs.lock() {
            for l in libs.iter().skip(libs_seen).filter(|l| l.skipped.is_none()) {
                write_record(&mut out, &attach(l))?;
            }
            libs_seen = libs.len();
        }
        if last_stats.elapsed() >= Duration::from_secs(1) {
            write_record(&mut out, &stats_record(&cap.stats))?;
            report_loss(&cap.stats);
            last_stats = Instant::now();
        }
    }
    let stats = cap.stats.clone();
    cap.stop();
    while let Ok(ev) = rx.try_recv() {
        write_record(&mut out, &TraceRecord::from(&ev))?;
    }
    write_record(&mut out, &stats_record(&stats))?;
    report_loss(&stats);
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn report_loss(stats: &CaptureStats) {
    let lost = stats.lost_events.load(Ordering::Relaxed);
    if lost > 0 {
        tracing::warn!(
            lost_events = lost,
            lost_bytes = stats.lost_bytes.load(Ordering::Relaxed),
            "ring buffer full: events lost (raise --ring-size)"
        );
    }
}

/// One JSON Lines record (the format: `qmon::capture::trace_format`).
fn write_record(out: &mut impl Write, r: &TraceRecord) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, r)?;
    out.write_all(b"\n")?;
    Ok(())
}

fn attach(l: &LibStatus) -> TraceRecord {
    TraceRecord::Attach(AttachRecord {
        path: l.path.clone(),
        inode: l.inode,
        pid: Some(l.pid),
    })
}

fn stats_record(s: &CaptureStats) -> TraceRecord {
    TraceRecord::Stats(StatsRecord::from(s))
}
