//! `qmon trace` JSON Lines: parsing and per-stream reassembly by `pos`.
//!
//! The record types are qmon's own ([`qmon::capture::trace_format`]), so
//! the harness reads exactly the format `qmon trace` writes.

use anyhow::{anyhow, Result};
use std::collections::BTreeSet;
use std::fmt;

pub use qmon::capture::trace_format::{
    AttachRecord as AttachEvent, CloseRecord as CloseEvent, ConnRecord as ConnEvent,
    DataRecord as DataEvent, StatsRecord as StatsEvent, TraceDir as Dir, TraceRecord as Event,
    TraceSource as Source,
};

/// The payload of a data event, as the harness has always handed it out.
pub trait Payload {
    fn data(&self) -> Vec<u8>;
}

impl Payload for DataEvent {
    fn data(&self) -> Vec<u8> {
        self.bytes.clone()
    }
}

/// Parses JSON Lines; every non-empty line must be a JSON object with a
/// known layout for its `type`.
pub fn parse_lines<S: AsRef<str>>(lines: &[S]) -> Result<Vec<Event>> {
    qmon::capture::trace_format::parse_lines(lines.iter().map(|l| l.as_ref()))
        .map_err(|e| anyhow!("stdout {e}: {}", lines[e.line - 1].as_ref()))
}

/// One direction of one connection from one source, put back in order.
#[derive(Debug, Default, Clone)]
pub struct Stream {
    pub bytes: Vec<u8>,
    /// (expected position, position actually found) for each hole.
    pub gaps: Vec<(u64, u64)>,
    /// Position of the first event (0 when the stream was seen from its
    /// start).
    pub first_pos: Option<u64>,
    /// Events with `pos: null`, appended in arrival order.
    pub unknown_pos: usize,
    /// Bytes the kernel side dropped (call_len - len).
    pub truncated: u64,
    pub events: usize,
    pub pids: BTreeSet<u32>,
}

impl Stream {
    /// Seen from position 0, no holes, no unordered pieces, nothing truncated.
    pub fn is_complete(&self) -> bool {
        self.events > 0
            && self.first_pos == Some(0)
            && self.gaps.is_empty()
            && self.unknown_pos == 0
            && self.truncated == 0
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    pub fn contains(&self, needle: &[u8]) -> bool {
        find(&self.bytes, needle).is_some()
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} events, {} bytes, first_pos {:?}, gaps {:?}, unknown_pos {}, truncated {}, pids {:?}: {:?}",
            self.events,
            self.bytes.len(),
            self.first_pos,
            self.gaps,
            self.unknown_pos,
            self.truncated,
            self.pids,
            String::from_utf8_lossy(&self.bytes[..self.bytes.len().min(600)])
        )
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// True when `data` contains the first bytes of a TLS handshake (0x16 0x03)
/// or application-data (0x17 0x03) record header: ciphertext, which must
/// never show up in captured plaintext.
pub fn has_tls_record_header(data: &[u8]) -> bool {
    data.windows(2)
        .any(|w| (w[0] == 0x16 || w[0] == 0x17) && w[1] == 0x03)
}

/// All events of one `qmon trace` run.
#[derive(Debug, Clone, Default)]
pub struct Capture {
    pub events: Vec<Event>,
}

impl Capture {
    pub fn from_lines<S: AsRef<str>>(lines: &[S]) -> Result<Capture> {
        Ok(Capture {
            events: parse_lines(lines)?,
        })
    }

    pub fn conns(&self) -> impl Iterator<Item = &ConnEvent> {
        self.events.iter().filter_map(|e| match e {
            Event::Conn(c) => Some(c),
            _ => None,
        })
    }

    pub fn data(&self) -> impl Iterator<Item = &DataEvent> {
        self.events.iter().filter_map(|e| match e {
            Event::Data(d) => Some(d),
            _ => None,
        })
    }

    pub fn attaches(&self) -> impl Iterator<Item = &AttachEvent> {
        self.events.iter().filter_map(|e| match e {
            Event::Attach(a) => Some(a),
            _ => None,
        })
    }

    pub fn stats(&self) -> impl Iterator<Item = &StatsEvent> {
        self.events.iter().filter_map(|e| match e {
            Event::Stats(s) => Some(s),
            _ => None,
        })
    }

    pub fn conn(&self, conn_id: u64) -> Option<&ConnEvent> {
        self.conns().find(|c| c.conn_id == conn_id)
    }

    /// Data events of one connection, in arrival order.
    pub fn data_of(&self, conn_id: u64) -> Vec<&DataEvent> {
        self.data().filter(|d| d.conn_id == conn_id).collect()
    }

    /// Reassembles (conn_id, source, dir) by `pos`, recording holes.
    pub fn stream(&self, conn_id: u64, source: Source, dir: Dir) -> Stream {
        let evs: Vec<&DataEvent> = self
            .data()
            .filter(|d| d.conn_id == conn_id && d.source == source && d.dir == dir)
            .collect();
        let mut s = Stream {
            events: evs.len(),
            ..Default::default()
        };
        let mut known: Vec<&DataEvent> = evs.iter().copied().filter(|d| d.pos.is_some()).collect();
        known.sort_by_key(|d| d.pos.unwrap());
        let mut next: Option<u64> = None;
        for d in known {
            s.pids.insert(d.pid);
            let pos = d.pos.unwrap();
            let bytes = &d.bytes;
            s.truncated += d.call_len.saturating_sub(d.len);
            let start = match next {
                None => {
                    s.first_pos = Some(pos);
                    pos
                }
                Some(n) => n,
            };
            if pos > start {
                s.gaps.push((start, pos));
                s.bytes.extend_from_slice(bytes);
                next = Some(pos + bytes.len() as u64);
            } else {
                // Overlap (or exact continuation): skip what we already have.
                let skip = (start - pos) as usize;
                if skip < bytes.len() {
                    s.bytes.extend_from_slice(&bytes[skip..]);
                }
                next = Some(start.max(pos + bytes.len() as u64));
            }
        }
        for d in evs.iter().filter(|d| d.pos.is_none()) {
            s.pids.insert(d.pid);
            s.unknown_pos += 1;
            s.truncated += d.call_len.saturating_sub(d.len);
            s.bytes.extend_from_slice(&d.bytes);
        }
        s
    }

    /// Connection ids whose reassembled (source, dir) stream contains
    /// `needle`.
    pub fn conns_containing(&self, source: Source, dir: Dir, needle: &[u8]) -> Vec<u64> {
        let ids: BTreeSet<u64> = self
            .data()
            .filter(|d| d.source == source && d.dir == dir)
            .map(|d| d.conn_id)
            .collect();
        ids.into_iter()
            .filter(|&id| self.stream(id, source, dir).contains(needle))
            .collect()
    }

    /// True when any data event of this connection came from `source`.
    pub fn has_source(&self, conn_id: u64, source: Source) -> bool {
        self.data()
            .any(|d| d.conn_id == conn_id && d.source == source)
    }

    pub fn max_lost_events(&self) -> u64 {
        self.stats().map(|s| s.lost_events).max().unwrap_or(0)
    }

    /// Short description for assertion messages.
    pub fn summary(&self) -> String {
        let mut kinds = std::collections::BTreeMap::new();
        for e in &self.events {
            let k = match e {
                Event::Conn(_) => "conn",
                Event::Data(_) => "data",
                Event::Close(_) => "close",
                Event::Exec(_) => "exec",
                Event::LibOpen(_) => "lib_open",
                Event::Exit(_) => "exit",
                Event::Attach(_) => "attach",
                Event::Stats(_) => "stats",
                Event::Other => "other",
            };
            *kinds.entry(k).or_insert(0usize) += 1;
        }
        format!("{kinds:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn data(conn: u64, dir: &str, pos: Option<u64>, bytes: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        let pos = pos.map_or("null".to_string(), |p| p.to_string());
        format!(
            r#"{{"type":"data","pid":7,"tid":7,"fd":3,"conn_id":{conn},"source":"openssl","dir":"{dir}","pos":{pos},"len":{l},"call_len":{l},"data_b64":"{b64}","ts":1}}"#,
            l = bytes.len()
        )
    }

    #[test]
    fn reassembles_out_of_order_and_reports_gaps() {
        let lines = vec![
            data(1, "egress", Some(5), b"world"),
            data(1, "egress", Some(0), b"hello"),
            data(1, "egress", Some(20), b"late"),
            data(1, "ingress", Some(0), b"x"),
            r#"{"type":"stats","events":4,"lost_events":2,"lost_bytes":10,"truncated_bytes":0}"#
                .to_string(),
            r#"{"type":"something_new","x":1}"#.to_string(),
        ];
        let cap = Capture::from_lines(&lines).unwrap();
        let s = cap.stream(1, Source::OpenSsl, Dir::Egress);
        assert_eq!(s.bytes, b"helloworldlate");
        assert_eq!(s.gaps, vec![(10, 20)]);
        assert_eq!(s.first_pos, Some(0));
        assert!(!s.is_complete());
        let s = cap.stream(1, Source::OpenSsl, Dir::Ingress);
        assert!(s.is_complete());
        assert_eq!(cap.max_lost_events(), 2);
        assert_eq!(
            cap.conns_containing(Source::OpenSsl, Dir::Egress, b"owor"),
            vec![1]
        );
    }

    #[test]
    fn complete_stream_and_unknown_positions() {
        let lines = vec![
            data(2, "egress", Some(0), b"GET / HTTP/1.1\r\n"),
            data(2, "egress", Some(16), b"\r\n"),
        ];
        let cap = Capture::from_lines(&lines).unwrap();
        assert!(cap.stream(2, Source::OpenSsl, Dir::Egress).is_complete());
        let lines = vec![data(3, "egress", None, b"abc")];
        let cap = Capture::from_lines(&lines).unwrap();
        let s = cap.stream(3, Source::OpenSsl, Dir::Egress);
        assert_eq!(s.unknown_pos, 1);
        assert!(!s.is_complete());
    }

    #[test]
    fn rejects_malformed_lines() {
        assert!(parse_lines(&["not json"]).is_err());
        assert!(parse_lines(&[r#"{"type":"conn","pid":1}"#]).is_err());
    }

    #[test]
    fn tls_header_detection() {
        assert!(has_tls_record_header(&[0x41, 0x17, 0x03, 0x03, 0x00]));
        assert!(has_tls_record_header(&[0x16, 0x03, 0x01]));
        assert!(!has_tls_record_header(b"GET / HTTP/1.1\r\n"));
    }

    #[test]
    fn remote_parsing() {
        let c: ConnEvent = serde_json::from_str(
            r#"{"pid":1,"tid":1,"fd":3,"conn_id":1,"role":"client","remote":"[::1]:8443","comm":"curl","ts":1}"#,
        )
        .unwrap();
        assert_eq!(c.remote_port(), Some(8443));
        assert_eq!(c.remote_ip(), Some("::1".parse().unwrap()));
    }
}
