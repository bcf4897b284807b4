//! The serialized form of capture events: `qmon trace` JSON Lines.
//!
//! One line per [`TraceRecord`], an object whose `type` names the record:
//!
//! | `type` | fields |
//! | --- | --- |
//! | `conn` | `pid tid fd conn_id role remote comm cgroup_id ts` |
//! | `close` | `pid fd conn_id ts` |
//! | `data` | `pid tid fd conn_id source dir pos len call_len ssl data_b64 ts` |
//! | `exec` | `pid path comm ts` |
//! | `lib_open` | `pid path fd ts` |
//! | `exit` | `pid ts` |
//! | `attach` | `path inode pid` (a TLS library qmon attached to) |
//! | `stats` | `events lost_events lost_bytes truncated_bytes decode_errors libs_attached` |
//!
//! `ts` is unix nanoseconds; `pos` is `null` when unknown; `remote` is
//! `IP:port` (`[v6]:port`) or `null`; `data_b64` is standard base64 with
//! padding. Readers skip records of a `type` they do not know.
//!
//! `qmon trace` writes these, `qmon replay` and the end-to-end harness
//! (`tests/src/events.rs`) read them, and `bench/data/*.jsonl` are
//! recordings of them: this type is the format, so change it compatibly.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::events::{CaptureEvent, Origin, Role, Source};
use super::CaptureStats;
use qmon_vocab::Direction;

/// One line of `qmon trace` output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TraceRecord {
    Conn(ConnRecord),
    Close(CloseRecord),
    Data(DataRecord),
    Exec(ExecRecord),
    LibOpen(LibOpenRecord),
    Exit(ExitRecord),
    Attach(AttachRecord),
    Stats(StatsRecord),
    /// A `type` this version does not know (read only; never written).
    #[serde(other)]
    Other,
}

/// A connection qmon started tracking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnRecord {
    pub pid: u32,
    /// Absent in hand-written lines: the pid's main thread.
    #[serde(default)]
    pub tid: Option<u32>,
    pub fd: i32,
    pub conn_id: u64,
    /// `client`, `server` or `unknown`; anything else reads as `unknown`.
    pub role: String,
    #[serde(default)]
    pub remote: Option<SocketAddr>,
    #[serde(default)]
    pub comm: Option<String>,
    #[serde(default)]
    pub cgroup_id: u64,
    pub ts: u64,
}

impl ConnRecord {
    /// Port part of `remote`.
    pub fn remote_port(&self) -> Option<u16> {
        self.remote.map(|r| r.port())
    }

    /// IP part of `remote`.
    pub fn remote_ip(&self) -> Option<std::net::IpAddr> {
        self.remote.map(|r| r.ip())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseRecord {
    pub pid: u32,
    pub fd: i32,
    pub conn_id: u64,
    pub ts: u64,
}

/// Where data was read: the socket syscalls, or a TLS stack's plaintext;
/// on the wire, its name (`"syscall"`, `"openssl"`, …).
pub type TraceSource = Source;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceDir {
    Egress,
    Ingress,
}

/// Bytes one read or write call moved (or one chunk of them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataRecord {
    pub pid: u32,
    #[serde(default)]
    pub tid: Option<u32>,
    pub fd: i32,
    pub conn_id: u64,
    pub source: TraceSource,
    pub dir: TraceDir,
    /// Offset within the (conn, source, dir) stream; `null` when unknown.
    pub pos: Option<u64>,
    /// Bytes carried (`data_b64` decoded).
    pub len: u64,
    /// Bytes the whole call moved (more than `len` when split or capped).
    pub call_len: u64,
    /// The `SSL*` of OpenSSL data, else 0.
    #[serde(default)]
    pub ssl: u64,
    /// The payload (`data_b64` on the wire).
    #[serde(rename = "data_b64", with = "base64_bytes")]
    pub bytes: Vec<u8>,
    pub ts: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRecord {
    pub pid: u32,
    pub path: String,
    pub comm: String,
    pub ts: u64,
}

/// A process opened a file whose name starts with `libssl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibOpenRecord {
    pub pid: u32,
    pub path: String,
    #[serde(default = "no_fd")]
    pub fd: i32,
    pub ts: u64,
}

fn no_fd() -> i32 {
    -1
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    pub pid: u32,
    pub ts: u64,
}

/// A TLS library copy qmon attached its probes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachRecord {
    pub path: String,
    pub inode: u64,
    #[serde(default)]
    pub pid: Option<u32>,
}

/// Capture counters, written every second and once at the end. A counter
/// a line lacks reads as 0.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatsRecord {
    pub events: u64,
    pub lost_events: u64,
    pub lost_bytes: u64,
    pub truncated_bytes: u64,
    pub decode_errors: u64,
    pub libs_attached: u64,
}

impl From<&CaptureStats> for StatsRecord {
    fn from(s: &CaptureStats) -> StatsRecord {
        let c = s.snapshot();
        StatsRecord {
            events: c.events,
            lost_events: c.lost_events,
            lost_bytes: c.lost_bytes,
            truncated_bytes: c.truncated_bytes,
            decode_errors: c.decode_errors,
            libs_attached: c.libs_attached,
        }
    }
}

impl From<Direction> for TraceDir {
    fn from(d: Direction) -> TraceDir {
        match d {
            Direction::Egress => TraceDir::Egress,
            Direction::Ingress => TraceDir::Ingress,
        }
    }
}

impl From<TraceDir> for Direction {
    fn from(d: TraceDir) -> Direction {
        match d {
            TraceDir::Egress => Direction::Egress,
            TraceDir::Ingress => Direction::Ingress,
        }
    }
}

fn origin(pid: u32, tid: Option<u32>, fd: i32, conn_id: u64, ts: u64) -> Origin {
    Origin {
        tgid: pid,
        tid: tid.unwrap_or(pid),
        fd,
        conn_id,
        ts_ns: ts,
    }
}

impl From<&CaptureEvent> for TraceRecord {
    fn from(ev: &CaptureEvent) -> TraceRecord {
        match ev {
            CaptureEvent::ConnOpen {
                origin,
                role,
                remote,
                comm,
                cgroup_id,
            } => TraceRecord::Conn(ConnRecord {
                pid: origin.tgid,
                tid: Some(origin.tid),
                fd: origin.fd,
                conn_id: origin.conn_id,
                role: role.as_str().to_string(),
                remote: *remote,
                comm: Some(comm.clone()),
                cgroup_id: *cgroup_id,
                ts: origin.ts_ns,
            }),
            CaptureEvent::ConnClose { origin } => TraceRecord::Close(CloseRecord {
                pid: origin.tgid,
                fd: origin.fd,
                conn_id: origin.conn_id,
                ts: origin.ts_ns,
            }),
            CaptureEvent::Data {
                origin,
                source,
                dir,
                pos,
                call_len,
                ssl,
                bytes,
            } => TraceRecord::Data(DataRecord {
                pid: origin.tgid,
                tid: Some(origin.tid),
                fd: origin.fd,
                conn_id: origin.conn_id,
                source: *source,
                dir: (*dir).into(),
                pos: *pos,
                len: bytes.len() as u64,
                call_len: *call_len,
                ssl: *ssl,
                bytes: bytes.clone(),
                ts: origin.ts_ns,
            }),
            CaptureEvent::Exec {
                origin, path, comm, ..
            } => TraceRecord::Exec(ExecRecord {
                pid: origin.tgid,
                path: path.clone(),
                comm: comm.clone(),
                ts: origin.ts_ns,
            }),
            CaptureEvent::LibOpen { origin, path } => TraceRecord::LibOpen(LibOpenRecord {
                pid: origin.tgid,
                path: path.clone(),
                fd: origin.fd,
                ts: origin.ts_ns,
            }),
            CaptureEvent::ProcExit { origin } => TraceRecord::Exit(ExitRecord {
                pid: origin.tgid,
                ts: origin.ts_ns,
            }),
        }
    }
}

impl TraceRecord {
    /// The capture event this line records; `None` for lines that are not
    /// events (`attach`, `stats`, unknown types). Fields the format does not
    /// carry (an exec's cgroup) are 0.
    pub fn into_event(self) -> Option<CaptureEvent> {
        Some(match self {
            TraceRecord::Conn(c) => CaptureEvent::ConnOpen {
                origin: origin(c.pid, c.tid, c.fd, c.conn_id, c.ts),
                role: match c.role.as_str() {
                    "client" => Role::Client,
                    "server" => Role::Server,
                    _ => Role::Unknown,
                },
                remote: c.remote,
                comm: c.comm.unwrap_or_default(),
                cgroup_id: c.cgroup_id,
            },
            TraceRecord::Close(c) => CaptureEvent::ConnClose {
                origin: origin(c.pid, None, c.fd, c.conn_id, c.ts),
            },
            TraceRecord::Data(d) => CaptureEvent::Data {
                origin: origin(d.pid, d.tid, d.fd, d.conn_id, d.ts),
                source: d.source,
                dir: d.dir.into(),
                pos: d.pos,
                call_len: d.call_len,
                ssl: d.ssl,
                bytes: d.bytes,
            },
            TraceRecord::Exec(e) => CaptureEvent::Exec {
                origin: origin(e.pid, None, -1, 0, e.ts),
                path: e.path,
                comm: e.comm,
                cgroup_id: 0,
            },
            TraceRecord::LibOpen(l) => CaptureEvent::LibOpen {
                origin: origin(l.pid, None, l.fd, 0, l.ts),
                path: l.path,
            },
            TraceRecord::Exit(e) => CaptureEvent::ProcExit {
                origin: origin(e.pid, None, -1, 0, e.ts),
            },
            TraceRecord::Attach(_) | TraceRecord::Stats(_) | TraceRecord::Other => return None,
        })
    }

    /// The record as one line of JSON, without the newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("a trace record always serializes")
    }

    /// Parse one line; `line` (1-based) names it in the error.
    pub fn from_line(text: &str, line: usize) -> Result<TraceRecord, TraceLineError> {
        serde_json::from_str(text).map_err(|e| TraceLineError::new(line, &e))
    }
}

/// Parse JSON Lines, skipping blank lines.
pub fn parse_lines<'a>(
    lines: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<TraceRecord>, TraceLineError> {
    lines
        .into_iter()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| TraceRecord::from_line(l, i + 1))
        .collect()
}

/// A line that is not a trace record: which line, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: not a qmon trace record: {reason}")]
pub struct TraceLineError {
    /// 1-based.
    pub line: usize,
    /// What serde found wrong, with the column when it is known.
    pub reason: String,
}

impl TraceLineError {
    fn new(line: usize, e: &serde_json::Error) -> TraceLineError {
        // serde_json ends its message with " at line 1 column N"; every
        // record is one line, so only the column says anything.
        let full = e.to_string();
        let reason =
            match full.strip_suffix(&format!(" at line {} column {}", e.line(), e.column())) {
                Some(msg) => format!("{msg} (column {})", e.column()),
                None => full,
            };
        TraceLineError { line, reason }
    }
}

/// `data_b64`: standard base64, with padding.
mod base64_bytes {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD
            .decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format_args!("data_b64: {e}")))
    }
}

#[cfg(test)]
mod tests;
