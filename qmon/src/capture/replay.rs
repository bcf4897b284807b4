//! `qmon trace` JSON Lines back into [`CaptureEvent`]s, so a recorded event
//! stream can be pushed through reassembly, parsing and the store with no
//! kernel involved (`qmon replay`, the pipeline benchmark).
//!
//! The format is [`TraceRecord`]. Lines that are not events (`attach`,
//! `stats`, unknown types) decode to `None`.

use super::events::{CaptureEvent, Origin};
use super::trace_format::{TraceLineError, TraceRecord};

/// Decode one line of `qmon trace` output; `line` (1-based) is for errors.
pub fn decode_line(text: &str, line: usize) -> Result<Option<CaptureEvent>, TraceLineError> {
    Ok(TraceRecord::from_line(text, line)?.into_event())
}

/// Decode a whole `qmon trace` capture; the first malformed line is the
/// error.
pub fn decode_all(text: &str) -> Result<Vec<CaptureEvent>, TraceLineError> {
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        if let Some(ev) = decode_line(l, i + 1)? {
            out.push(ev);
        }
    }
    Ok(out)
}

/// A copy of `ev` for the `round`-th pass over a recording: connection ids,
/// SSL pointers and timestamps are moved so rounds never share a
/// connection, and a recording can be replayed as long as a benchmark needs.
pub fn shifted(ev: &CaptureEvent, round: u64, span_ns: u64) -> CaptureEvent {
    let mut ev = ev.clone();
    let shift = |o: &mut Origin| {
        if o.conn_id != 0 {
            o.conn_id += round << 40;
        }
        o.ts_ns += round * span_ns;
    };
    match &mut ev {
        CaptureEvent::ConnOpen { origin, .. }
        | CaptureEvent::ConnClose { origin }
        | CaptureEvent::Exec { origin, .. }
        | CaptureEvent::LibOpen { origin, .. }
        | CaptureEvent::ProcExit { origin } => shift(origin),
        CaptureEvent::Data { origin, ssl, .. } => {
            shift(origin);
            if *ssl != 0 {
                *ssl += round << 48;
            }
        }
    }
    ev
}

#[cfg(test)]
mod tests {
    use super::super::events::{Role, Source};
    use super::*;
    use qmon_vocab::Direction;

    #[test]
    fn decodes_trace_lines() {
        let conn = r#"{"type":"conn","pid":7,"tid":8,"fd":3,"conn_id":9,"role":"client","remote":"127.0.0.1:443","comm":"curl","cgroup_id":1,"ts":5}"#;
        match decode_line(conn, 1).unwrap().unwrap() {
            CaptureEvent::ConnOpen {
                origin,
                role,
                remote,
                comm,
                ..
            } => {
                assert_eq!(
                    (origin.tgid, origin.tid, origin.fd, origin.conn_id),
                    (7, 8, 3, 9)
                );
                assert_eq!(role, Role::Client);
                assert_eq!(remote, Some("127.0.0.1:443".parse().unwrap()));
                assert_eq!(comm, "curl");
            }
            other => panic!("{other:?}"),
        }
        let data = r#"{"type":"data","pid":7,"tid":8,"fd":3,"conn_id":9,"source":"openssl","dir":"ingress","pos":null,"len":5,"call_len":5,"ssl":11,"data_b64":"aGVsbG8=","ts":6}"#;
        match decode_line(data, 2).unwrap().unwrap() {
            CaptureEvent::Data {
                source,
                dir,
                pos,
                bytes,
                ssl,
                ..
            } => {
                assert_eq!(source, Source::OpenSsl);
                assert_eq!(dir, Direction::Ingress);
                assert_eq!(pos, None);
                assert_eq!(ssl, 11);
                assert_eq!(bytes, b"hello");
            }
            other => panic!("{other:?}"),
        }
        assert!(decode_line(r#"{"type":"stats","events":1}"#, 3)
            .unwrap()
            .is_none());
        assert!(decode_line("nope", 4).is_err());
    }

    #[test]
    fn shifting_separates_rounds() {
        let ev = decode_line(r#"{"type":"close","pid":7,"fd":3,"conn_id":9,"ts":6}"#, 1)
            .unwrap()
            .unwrap();
        match shifted(&ev, 2, 100) {
            CaptureEvent::ConnClose { origin } => {
                assert_eq!(origin.conn_id, 9 + (2 << 40));
                assert_eq!(origin.ts_ns, 206);
            }
            other => panic!("{other:?}"),
        }
    }
}
