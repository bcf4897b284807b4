//! `qmon trace`: raw capture events as JSON Lines, for debugging capture and
//! for bug reports.

use std::io::{BufWriter, Write};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use base64::Engine;
use qmon::capture::{self, Capture, CaptureEvent, CaptureStats};
use qmon_vocab::Direction;
use serde_json::json;

use crate::cli::TraceArgs;

pub fn run(args: TraceArgs) -> anyhow::Result<ExitCode> {
    let stop = super::stop_flag()?;
    let (tx, rx) = capture::channel(4096);
    let cap = Capture::start(super::capture_options(&args.capture), tx)?;
    let out = std::io::stdout();
    let mut out = BufWriter::new(out.lock());
    if let Ok(libs) = cap.libs.lock() {
        for l in libs.iter().filter(|l| l.skipped.is_none()) {
            writeln!(
                out,
                "{}",
                json!({"type": "attach", "path": l.path, "inode": l.inode, "pid": l.pid})
            )?;
        }
    }
    out.flush()?;
    super::announce_ready();
    let mut libs_seen = cap.libs.lock().map(|l| l.len()).unwrap_or(0);
    let mut last_stats = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(ev) => writeln!(out, "{}", event_json(&ev))?,
            Err(RecvTimeoutError::Timeout) => out.flush()?,
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if let Ok(libs) = cap.libs.lock() {
            for l in libs.iter().skip(libs_seen).filter(|l| l.skipped.is_none()) {
                writeln!(
                    out,
                    "{}",
                    json!({"type": "attach", "path": l.path, "inode": l.inode, "pid": l.pid})
                )?;
            }
            libs_seen = libs.len();
        }
        if last_stats.elapsed() >= Duration::from_secs(1) {
            writeln!(out, "{}", stats_json(&cap.stats))?;
            report_loss(&cap.stats);
            last_stats = Instant::now();
        }
    }
    let stats = cap.stats.clone();
    cap.stop();
    while let Ok(ev) = rx.try_recv() {
        writeln!(out, "{}", event_json(&ev))?;
    }
    writeln!(out, "{}", stats_json(&stats))?;
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

fn stats_json(s: &CaptureStats) -> serde_json::Value {
    let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    json!({
        "type": "stats",
        "events": g(&s.events),
        "lost_events": g(&s.lost_events),
        "lost_bytes": g(&s.lost_bytes),
        "truncated_bytes": g(&s.truncated_bytes),
        "decode_errors": g(&s.decode_errors),
        "libs_attached": g(&s.libs_attached),
    })
}

fn dir_str(d: Direction) -> &'static str {
    match d {
        Direction::Egress => "egress",
        Direction::Ingress => "ingress",
    }
}

pub fn event_json(ev: &CaptureEvent) -> serde_json::Value {
    match ev {
        CaptureEvent::ConnOpen {
            origin,
            role,
            remote,
            comm,
            cgroup_id,
        } => json!({
            "type": "conn", "pid": origin.tgid, "tid": origin.tid, "fd": origin.fd,
            "conn_id": origin.conn_id, "role": role.as_str(),
            "remote": remote.map(|r| r.to_string()), "comm": comm,
            "cgroup_id": cgroup_id, "ts": origin.ts_ns,
        }),
        CaptureEvent::ConnClose { origin } => json!({
            "type": "close", "pid": origin.tgid, "fd": origin.fd,
            "conn_id": origin.conn_id, "ts": origin.ts_ns,
        }),
        CaptureEvent::Data {
            origin,
            source,
            dir,
            pos,
            call_len,
            ssl,
            bytes,
        } => json!({
            "type": "data", "pid": origin.tgid, "tid": origin.tid, "fd": origin.fd,
            "conn_id": origin.conn_id, "source": source.as_str(), "dir": dir_str(*dir),
            "pos": pos, "len": bytes.len(), "call_len": call_len, "ssl": ssl,
            "data_b64": base64::engine::general_purpose::STANDARD.encode(bytes),
            "ts": origin.ts_ns,
        }),
        CaptureEvent::Exec {
            origin, path, comm, ..
        } => {
            json!({"type": "exec", "pid": origin.tgid, "path": path, "comm": comm, "ts": origin.ts_ns})
        }
        CaptureEvent::LibOpen { origin, path } => {
            json!({"type": "lib_open", "pid": origin.tgid, "path": path, "fd": origin.fd, "ts": origin.ts_ns})
        }
        CaptureEvent::ProcExit { origin } => {
            json!({"type": "exit", "pid": origin.tgid, "ts": origin.ts_ns})
        }
    }
}
