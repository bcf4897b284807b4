//! Feeds arbitrary (direction, length, bytes) records, gaps and closes into
//! the HTTP/1 parser and checks it stays within its limits.
//!
//! Record layout: one op byte, then for data a length byte and that many
//! bytes (fewer at the end of input). op bit 0: direction; bits 1-3: kind
//! (0-5 data, 6 gap of `len << (op >> 4)` bytes, 7 close).
#![no_main]

use libfuzzer_sys::fuzz_target;
use qmon_protocols::http1::Http1Parser;
use qmon_protocols::{Direction, Parser, ParserLimits, Progress};

fuzz_target!(|data: &[u8]| {
    let limits = ParserLimits {
        body_bytes: 128,
        header_bytes: 512,
        headers: 8,
        pending: 4,
    };
    let mut p = Http1Parser::new(limits);
    let mut out = Vec::new();
    let mut rest = data;
    let mut ts = 0u64;
    while let Some((&op, tail)) = rest.split_first() {
        ts += 1;
        let dir = if op & 1 == 0 {
            Direction::Egress
        } else {
            Direction::Ingress
        };
        let Some((&len, tail)) = tail.split_first() else {
            break;
        };
        rest = tail;
        match (op >> 1) & 7 {
            6 => p.gap(dir, u64::from(len) << (op >> 4), ts, &mut out),
            7 => p.close(ts, &mut out),
            _ => {
                let n = usize::from(len).min(rest.len());
                let (chunk, tail) = rest.split_at(n);
                rest = tail;
                if let Progress::Upgrade { consumed, .. } = p.data(dir, ts, chunk, &mut out) {
                    assert!(consumed <= chunk.len());
                    let _ = p.take_upgrade_request();
                    break;
                }
            }
        }
        for e in &out {
            assert!(e.req_body.captured.len() <= limits.body_bytes);
            assert!(e.resp_body.captured.len() <= limits.body_bytes);
            assert!(e.req_headers.len() <= limits.headers);
            assert!(e.resp_headers.len() <= limits.headers);
            assert!(e.req_trailers.len() <= limits.headers);
            assert!(e.resp_trailers.len() <= limits.headers);
        }
        out.clear();
    }
    p.close(ts + 1, &mut out);
});
