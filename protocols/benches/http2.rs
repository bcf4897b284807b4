//! HTTP/2 parser throughput on one core: replays a captured multi-stream
//! fixture (6 concurrent streams, real Huffman/dynamic-table HPACK) through a
//! fresh parser per connection and prints exchanges per second.
//!
//! `cargo bench -p qmon-protocols --bench http2`

use std::time::{Duration, Instant};

use qmon_protocols::fixture;
use qmon_protocols::http2::Http2Parser;
use qmon_protocols::ParserLimits;

fn main() {
    let fixtures: [(&str, &[u8]); 2] = [
        (
            "concurrent (6 streams)",
            include_bytes!("../tests/fixtures/http2/concurrent.txt"),
        ),
        (
            "sequential (6 streams, dynamic table)",
            include_bytes!("../tests/fixtures/http2/sequential.txt"),
        ),
    ];
    for (name, bytes) in fixtures {
        let segments = match fixture::parse(bytes) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{name}: {e}");
                std::process::exit(1);
            }
        };
        let wire: usize = segments
            .iter()
            .map(|s| match s {
                fixture::Segment::Data(_, b) => b.len(),
                _ => 0,
            })
            .sum();
        // Warm up, then run for a fixed wall time.
        let mut exchanges = 0u64;
        let mut conns = 0u64;
        let start = Instant::now();
        let mut measured = None;
        while start.elapsed() < Duration::from_secs(3) {
            let mut p = Http2Parser::new(ParserLimits::default());
            let (out, _) = fixture::replay(&mut p, &segments);
            exchanges += out.len() as u64;
            conns += 1;
            if measured.is_none() && start.elapsed() > Duration::from_millis(500) {
                measured = Some((Instant::now(), exchanges, conns));
            }
        }
        let (t0, e0, c0) = measured.unwrap_or((start, 0, 0));
        let secs = t0.elapsed().as_secs_f64();
        let ex = (exchanges - e0) as f64 / secs;
        let mb = ((conns - c0) as f64 * wire as f64) / secs / 1e6;
        println!("http2 {name}: {ex:.0} exchanges/s, {mb:.1} MB/s of wire bytes");
    }
}
