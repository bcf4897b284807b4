//! HTTP/2 frame + HPACK decoder fuzz target.
//!
//! Input: byte 0 picks the mode, then a sequence of operations
//! `[op][len: u16 le][bytes]`. Mode 0: `Http2Parser::new` (the preface is
//! sent first so frames are reached); mode 1: `mid_connection`; mode 2:
//! `new`, and every chunk is wrapped in a HEADERS frame (flags from `op`) so
//! the HPACK decoder sees arbitrary header blocks. Op bit 0: direction;
//! bits 1-2: data / gap / data / close. Small limits make the bounds bite.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qmon_protocols::http2::{Http2Parser, PREFACE};
use qmon_protocols::{Direction, Parser, ParserLimits};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let limits = ParserLimits {
        body_bytes: 64,
        header_bytes: 512,
        headers: 16,
        pending: 8,
    };
    let mut p = match mode % 3 {
        1 => Http2Parser::mid_connection(limits),
        _ => Http2Parser::new(limits),
    };
    let mut out = Vec::new();
    let mut ts = 1u64;
    if mode % 3 != 1 {
        p.data(Direction::Egress, ts, PREFACE, &mut out);
    }
    let mut stream = 1u32;
    while rest.len() >= 3 {
        let op = rest[0];
        let len = usize::from(u16::from_le_bytes([rest[1], rest[2]]));
        rest = &rest[3..];
        let chunk = &rest[..len.min(rest.len())];
        rest = &rest[chunk.len()..];
        ts += 1;
        let dir = if op & 1 == 0 {
            Direction::Egress
        } else {
            Direction::Ingress
        };
        match (op >> 1) & 3 {
            1 => p.gap(dir, len as u64, ts, &mut out),
            3 if op & 0x80 != 0 => p.close(ts, &mut out),
            _ if mode % 3 == 2 => {
                // HEADERS frame around the chunk: flags from the op byte.
                let l = chunk.len() as u32;
                let mut f = l.to_be_bytes()[1..].to_vec();
                f.push(if op & 0x40 != 0 { 0x9 } else { 0x1 });
                f.push((op >> 3) & 0x0d);
                f.extend_from_slice(&stream.to_be_bytes());
                f.extend_from_slice(chunk);
                if op & 0x20 != 0 {
                    stream = stream.wrapping_add(2) & 0x7fff_ffff;
                }
                p.data(dir, ts, &f, &mut out);
            }
            _ => {
                p.data(dir, ts, chunk, &mut out);
            }
        }
        assert!(p.open_streams() <= limits.pending);
        for e in out.drain(..) {
            assert!(e.req_body.captured.len() <= limits.body_bytes);
            assert!(e.resp_body.captured.len() <= limits.body_bytes);
            assert!(e.req_headers.len() <= limits.headers);
            assert!(e.resp_headers.len() <= limits.headers);
        }
    }
    p.close(ts + 1, &mut out);
    assert_eq!(p.open_streams(), 0);
});
