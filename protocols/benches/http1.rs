//! HTTP/1 parser throughput: replays a captured keep-alive connection (three
//! GETs with 1 KiB response bodies) in a loop on one core and prints
//! exchanges per second.
//!
//! Run: `cargo bench -p qmon-protocols --bench http1`

use std::hint::black_box;
use std::time::{Duration, Instant};

use qmon_protocols::fixture::{self, Segment};
use qmon_protocols::http1::Http1Parser;
use qmon_protocols::{Parser, ParserLimits};

const CAPTURE: &[u8] = include_bytes!("../tests/fixtures/http1/keepalive_1k.txt");

fn main() {
    let segments = fixture::parse(CAPTURE).expect("fixture parses");
    // One long-lived connection: the captured requests and responses again
    // and again (the close only at the very end).
    let data: Vec<Segment> = segments
        .into_iter()
        .filter(|s| matches!(s, Segment::Data(..)))
        .collect();
    let limits = ParserLimits::default();
    let mut out = Vec::with_capacity(64);

    let run = |rounds: u64, out: &mut Vec<_>| -> u64 {
        let mut parser = Http1Parser::new(limits);
        let mut n = 0u64;
        let mut ts = 0u64;
        for _ in 0..rounds {
            for s in &data {
                if let Segment::Data(d, b) = s {
                    ts += 1;
                    parser.data(*d, ts, black_box(b), out);
                }
            }
            n += out.len() as u64;
            black_box(&out);
            out.clear();
        }
        parser.close(ts + 1, out);
        n
    };

    // Warm up, then measure for about three seconds.
    run(2_000, &mut out);
    let start = Instant::now();
    let mut exchanges = 0u64;
    while start.elapsed() < Duration::from_secs(3) {
        exchanges += run(10_000, &mut out);
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "http1: {exchanges} exchanges in {secs:.2} s = {:.0} exchanges/s (1 KiB bodies, one core)",
        exchanges as f64 / secs
    );
}
