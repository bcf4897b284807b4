//! `qmon replay` (hidden): push a `qmon trace` recording through the same
//! [`Pipeline`] `qmon record` runs (reassembly, parsing, calls, the SQLite
//! store), with no kernel involved, and print the throughput. For
//! `bench/pipeline.sh`.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use qmon::capture::{replay, CaptureEvent};
use qmon::connections::{ConnTable, Effect};
use qmon::pipeline::{Pipeline, Policy};
use qmon::sinks::store::{Store, StoreOptions, StoreSink};
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
    let mut table = ConnTable::new(ParserLimits::default());
    let mut fx: Vec<Effect> = Vec::new();
    let mut n = 0u64;
    let count = |fx: &mut Vec<Effect>| {
        let k = fx
            .iter()
            .filter(|e| matches!(e, Effect::Exchange { .. }))
            .count() as u64;
        fx.clear();
        k
    };
    let t = Instant::now();
    for r in 0..rounds {
        for ev in events {
            table.on_event(&replay::shifted(ev, r, span), &mut fx);
            n += count(&mut fx);
        }
    }
    table.flush_all(u64::MAX / 2, &mut fx);
    n += count(&mut fx);
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
    let opts = StoreOptions::default();
    let capacity = opts.queue_capacity;
    let store = Store::open(&args.db, opts)
        .with_context(|| format!("cannot open the database {}", args.db.display()))?;
    let handle = store.handle();
    let mut pipeline = Pipeline::new(ParserLimits::default(), Policy::default());
    // Measure throughput, not drops: wait while the queue is full.
    pipeline.add_sink(Box::new(StoreSink::new(store, capacity).waiting_for_room()));
    let t = Instant::now();
    for r in 0..rounds {
        for (i, ev) in events.iter().enumerate() {
            pipeline.feed(&replay::shifted(ev, r, span));
            // Hand calls on in small batches, as the live pipeline does.
            if i % 256 == 255 {
                pipeline.deliver();
            }
        }
    }
    let fed_s = t.elapsed().as_secs_f64();
    let status = pipeline.finish(None);
    let total_s = t.elapsed().as_secs_f64();
    let stored = handle.stats();

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
        stored.written,
        total_s,
        stored.written as f64 / total_s,
        fed_s,
        status.queue_dropped,
        stored.write_dropped
    );
    Ok(ExitCode::SUCCESS)
}
