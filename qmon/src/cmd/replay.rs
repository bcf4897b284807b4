//! `qmon replay` (hidden): push a `qmon trace` recording through
//! reassembly, parsing and the SQLite store, with no kernel involved, and
//! print the throughput. For `bench/pipeline.sh`.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use qmon::calls::Call;
use qmon::capture::{replay, CaptureEvent};
use qmon::connections::ConnTable;
use qmon::sinks::store::{Store, StoreOptions};
use qmon_protocols::ParserLimits;

use crate::cli::ReplayArgs;

fn span_ns(events: &[CaptureEvent]) -> u64 {
    let ts = |e: &CaptureEvent| match e {
        CaptureEvent::ConnOpen { origin, .. }
        | CaptureEvent::ConnClose { origin }
        | CaptureEvent::Data { origin, .. }
        | CaptureEvent::Exec { origin, .. }
        | CaptureEvent::LibOpen { origin, .. }
        | CaptureEvent::ProcExit { origin } => origin.ts_ns,
    };
    let lo = events.iter().map(ts).min().unwrap_or(0);
    let hi = events.iter().map(ts).max().unwrap_or(0);
    hi - lo + 1_000_000_000
}

/// Every round through a fresh table: reassembly and parsing only.
fn parse_only(events: &[CaptureEvent], rounds: u64, span: u64) -> (u64, f64) {
    let mut table = ConnTable::new(ParserLimits::default(), None);
    let mut calls: Vec<Call> = Vec::new();
    let mut n = 0u64;
    let t = Instant::now();
    for r in 0..rounds {
        for ev in events {
            table.on_event(&replay::shifted(ev, r, span), &mut calls);
            n += calls.len() as u64;
            calls.clear();
        }
    }
    table.flush_all(u64::MAX / 2, &mut calls);
    n += calls.len() as u64;
    (n, t.elapsed().as_secs_f64())
}

pub fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.events)
        .with_context(|| format!("cannot read {}", args.events.display()))?;
    let events = replay::decode_all(&text)?;
    let span = span_ns(&events);
    let rounds = args.rounds.max(1);

    let (parsed, parse_s) = parse_only(&events, rounds, span);

    let _ = std::fs::remove_file(&args.db);
    let store = Store::open(&args.db, StoreOptions::default())
        .with_context(|| format!("cannot open the database {}", args.db.display()))?;
    let handle = store.handle();
    let mut table = ConnTable::new(ParserLimits::default(), None);
    let mut calls: Vec<Call> = Vec::new();
    let mut dropped = 0u64;
    let near_full = StoreOptions::default().queue_capacity as u64 - 1;
    let mut send = |calls: &mut Vec<Call>| {
        for c in calls.drain(..) {
            // Measure throughput, not drops: wait while the queue is full
            // (one producer, so the room cannot vanish before `send`).
            while handle.queue_depth() >= near_full {
                std::thread::yield_now();
            }
            if !handle.send(c) {
                dropped += 1;
            }
        }
    };
    let t = Instant::now();
    for r in 0..rounds {
        for ev in &events {
            table.on_event(&replay::shifted(ev, r, span), &mut calls);
            if calls.len() >= 256 {
                send(&mut calls);
            }
        }
    }
    table.flush_all(u64::MAX / 2, &mut calls);
    send(&mut calls);
    let fed_s = t.elapsed().as_secs_f64();
    let stats = store.flush_and_close()?;
    let total_s = t.elapsed().as_secs_f64();

    println!(
        "events/round {}  rounds {}  events {}",
        events.len(),
        rounds,
        events.len() as u64 * rounds
    );
    println!(
        "reassembly+parsing only: {} calls in {:.3} s = {:.0} calls/s",
        parsed,
        parse_s,
        parsed as f64 / parse_s
    );
    println!(
        "end to end (with SQLite): {} calls written in {:.3} s = {:.0} calls/s (fed in {:.3} s; dropped {}, failed {})",
        stats.written,
        total_s,
        stats.written as f64 / total_s,
        fed_s,
        dropped,
        stats.write_dropped
    );
    Ok(ExitCode::SUCCESS)
}
