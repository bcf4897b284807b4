//! `qmon trace` JSON Lines back into [`CaptureEvent`]s, so a recorded event
//! stream can be pushed through reassembly, parsing and the store with no
//! kernel involved (`qmon replay`, the pipeline benchmark).
//!
//! The inverse of `event_json` in `cmd/trace.rs`. Lines that are not events
//! (`attach`, `stats`) decode to `None`.

use std::net::SocketAddr;

use base64::Engine;
use serde_json::Value;

use super::events::{CaptureEvent, Origin, Role, Source};
use crate::protocols::Direction;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("line {line}: not JSON: {err}")]
    Json { line: usize, err: serde_json::Error },
    #[error("line {line}: {what}")]
    Field { line: usize, what: String },
}

fn u64_of(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

fn origin(v: &Value) -> Origin {
    Origin {
        tgid: u64_of(v, "pid") as u32,
        tid: v
            .get("tid")
            .and_then(Value::as_u64)
            .unwrap_or(u64_of(v, "pid")) as u32,
        fd: v.get("fd").and_then(Value::as_i64).unwrap_or(-1) as i32,
        conn_id: u64_of(v, "conn_id"),
        ts_ns: u64_of(v, "ts"),
    }
}

fn str_of(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or("").to_string()
}

/// Decode one line of `qmon trace` output; `line` (1-based) is for errors.
pub fn decode_line(text: &str, line: usize) -> Result<Option<CaptureEvent>, ReplayError> {
    let v: Value = serde_json::from_str(text).map_err(|err| ReplayError::Json { line, err })?;
    let field = |what: &str| ReplayError::Field {
        line,
        what: what.to_string(),
    };
    let ty = v
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| field("no \"type\""))?;
    Ok(Some(match ty {
        "conn" => CaptureEvent::ConnOpen {
            origin: origin(&v),
            role: match v.get("role").and_then(Value::as_str) {
                Some("client") => Role::Client,
                Some("server") => Role::Server,
                _ => Role::Unknown,
            },
            remote: v
                .get("remote")
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<SocketAddr>().ok()),
            comm: str_of(&v, "comm"),
            cgroup_id: u64_of(&v, "cgroup_id"),
        },
        "close" => CaptureEvent::ConnClose { origin: origin(&v) },
        "data" => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.get("data_b64").and_then(Value::as_str).unwrap_or(""))
                .map_err(|e| field(&format!("data_b64: {e}")))?;
            CaptureEvent::Data {
                origin: origin(&v),
                source: match v.get("source").and_then(Value::as_str) {
                    Some(name) => Source::from_name(name).unwrap_or(Source::Syscall),
                    None => Source::Syscall,
                },
                dir: match v.get("dir").and_then(Value::as_str) {
                    Some("ingress") => Direction::Ingress,
                    _ => Direction::Egress,
                },
                pos: v.get("pos").and_then(Value::as_u64),
                call_len: v
                    .get("call_len")
                    .and_then(Value::as_u64)
                    .unwrap_or(bytes.len() as u64),
                ssl: u64_of(&v, "ssl"),
                bytes,
            }
        }
        "exec" => CaptureEvent::Exec {
            origin: origin(&v),
            path: str_of(&v, "path"),
            comm: str_of(&v, "comm"),
            cgroup_id: 0,
        },
        "lib_open" => CaptureEvent::LibOpen {
            origin: origin(&v),
            path: str_of(&v, "path"),
        },
        "exit" => CaptureEvent::ProcExit { origin: origin(&v) },
        _ => return Ok(None),
    }))
}

/// Decode a whole `qmon trace` capture.
pub fn decode_all(text: &str) -> Result<Vec<CaptureEvent>, ReplayError> {
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
    use super::*;

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
