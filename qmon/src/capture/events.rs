//! Ring buffer records decoded into owned, typed events. Records come from
//! the kernel, so every length is checked; a malformed record is reported,
//! never trusted.

use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use qmon_bpf::types::{
    qmon_conn_event, qmon_data_event, qmon_event_header, qmon_event_kind, qmon_proc_event,
    qmon_role, qmon_source, qmon_stream,
};

use super::tls::{self, TlsStack};
use super::BufPool;
use qmon_vocab::Direction;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Unknown,
    Client,
    Server,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Unknown => "unknown",
            Role::Client => "client",
            Role::Server => "server",
        }
    }
}

/// Where data was seen: at the socket syscall, or as plaintext inside a TLS
/// stack (decoded from the event's `source`, one value per stack).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Syscall,
    Tls(&'static TlsStack),
}

/// On the wire (trace JSON Lines) a source is its name: `"syscall"`,
/// `"openssl"`, … so a new TLS stack needs no new format.
impl serde::Serialize for Source {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Source {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Source, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Source::from_name(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown source {name:?}: not \"syscall\" or a TLS stack qmon knows"
            ))
        })
    }
}

impl Source {
    /// OpenSSL's plaintext, spelt as the variant it was before the TLS-stack
    /// table, so tests and replays written against it read the same.
    #[allow(non_upper_case_globals)]
    pub const OpenSsl: Source = Source::Tls(&tls::OPENSSL);

    /// "syscall", or the TLS stack's name ("openssl").
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Syscall => "syscall",
            Source::Tls(stack) => stack.name,
        }
    }

    /// The source called `name` (as [`Source::as_str`] spells it).
    pub fn from_name(name: &str) -> Option<Source> {
        match name {
            "syscall" => Some(Source::Syscall),
            _ => TlsStack::by_name(name).map(Source::Tls),
        }
    }

    /// The TLS stack, for TLS plaintext.
    pub fn tls(self) -> Option<&'static TlsStack> {
        match self {
            Source::Syscall => None,
            Source::Tls(stack) => Some(stack),
        }
    }

    fn from_raw(raw: u8) -> Result<Source, DecodeError> {
        let source = qmon_source(raw as u32);
        if source == qmon_source::QMON_SRC_SYSCALL {
            return Ok(Source::Syscall);
        }
        TlsStack::by_source(source)
            .map(Source::Tls)
            .ok_or(DecodeError::UnknownSource(raw))
    }
}

/// `qmon_data_event.pos` when the position is unknown (qmon.h: -1, carried
/// as 32 bits through BTF, so sign-extended here).
pub const POS_UNKNOWN: u64 = qmon_stream::QMON_POS_UNKNOWN.0 as i32 as i64 as u64;

/// Identity of the thread and socket an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub tgid: u32,
    pub tid: u32,
    /// -1 when not known (TLS data served from OpenSSL's buffer before any
    /// syscall revealed the fd).
    pub fd: i32,
    /// 0 when the connection is not known.
    pub conn_id: u64,
    /// Unix nanoseconds.
    pub ts_ns: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureEvent {
    ConnOpen {
        origin: Origin,
        role: Role,
        remote: Option<SocketAddr>,
        comm: String,
        cgroup_id: u64,
    },
    ConnClose {
        origin: Origin,
    },
    Data {
        origin: Origin,
        source: Source,
        dir: Direction,
        /// Offset within the (conn, source, dir) stream; None when unknown.
        pos: Option<u64>,
        /// Bytes the whole call moved (more than `bytes` when split/capped).
        call_len: u64,
        /// The TLS session (SSL* for OpenSSL) for TLS data, else 0.
        ssl: u64,
        bytes: Vec<u8>,
    },
    Exec {
        origin: Origin,
        path: String,
        comm: String,
        cgroup_id: u64,
    },
    LibOpen {
        origin: Origin,
        path: String,
    },
    ProcExit {
        origin: Origin,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {0} bytes is shorter than its header")]
    Short(usize),
    #[error("unknown event kind {0}")]
    UnknownKind(u8),
    #[error("unknown data source {0}")]
    UnknownSource(u8),
    #[error("data event claims {claimed} payload bytes but carries {carried}")]
    BadLength { claimed: usize, carried: usize },
}

fn read<T: Copy>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() < size_of::<T>() {
        return Err(DecodeError::Short(bytes.len()));
    }
    // SAFETY: length checked; T is a plain-old-data #[repr(C)] struct
    // generated from qmon.h, valid for any bit pattern; read_unaligned
    // because ring buffer records are only 8-byte aligned.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr() as *const T) })
}

fn c_string(raw: &[i8]) -> String {
    let bytes: Vec<u8> = raw
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Decodes records, converting kernel monotonic timestamps to unix time.
#[derive(Debug, Clone, Default)]
pub struct Decoder {
    pub mono_to_unix_ns: i128,
    /// Where payload buffers come from.
    pub pool: BufPool,
}

impl Decoder {
    fn origin(&self, h: &qmon_event_header) -> Origin {
        let ts = (h.ts_ns as i128 + self.mono_to_unix_ns).max(0) as u64;
        Origin {
            tgid: h.tgid,
            tid: h.tid,
            fd: h.fd,
            conn_id: h.conn_id,
            ts_ns: ts,
        }
    }

    pub fn decode(&self, rec: &[u8]) -> Result<CaptureEvent, DecodeError> {
        let hdr: qmon_event_header = read(rec)?;
        let origin = self.origin(&hdr);
        let kind = qmon_event_kind(hdr.kind as u32);
        Ok(match kind {
            qmon_event_kind::QMON_EV_DATA => {
                let ev: qmon_data_event = read(rec)?;
                let payload = &rec[size_of::<qmon_data_event>()..];
                let len = ev.len as usize;
                if len > payload.len() {
                    return Err(DecodeError::BadLength {
                        claimed: len,
                        carried: payload.len(),
                    });
                }
                CaptureEvent::Data {
                    origin,
                    source: Source::from_raw(ev.source)?,
                    dir: if ev.dir == 0 {
                        Direction::Egress
                    } else {
                        Direction::Ingress
                    },
                    pos: (ev.pos != POS_UNKNOWN).then_some(ev.pos),
                    call_len: ev.call_len,
                    ssl: ev.session,
                    bytes: self.pool.filled(&payload[..len]),
                }
            }
            qmon_event_kind::QMON_EV_CONN_OPEN => {
                let ev: qmon_conn_event = read(rec)?;
                CaptureEvent::ConnOpen {
                    origin,
                    role: match qmon_role(ev.role as u32) {
                        qmon_role::QMON_ROLE_CLIENT => Role::Client,
                        qmon_role::QMON_ROLE_SERVER => Role::Server,
                        _ => Role::Unknown,
                    },
                    remote: remote_addr(ev.family, &ev.addr, ev.port),
                    comm: c_string(&ev.comm),
                    cgroup_id: ev.cgroup_id,
                }
            }
            qmon_event_kind::QMON_EV_CONN_CLOSE => CaptureEvent::ConnClose { origin },
            qmon_event_kind::QMON_EV_EXEC
            | qmon_event_kind::QMON_EV_LIB_OPEN
            | qmon_event_kind::QMON_EV_PROC_EXIT => {
                let ev: qmon_proc_event = read(rec)?;
                let path = c_string(&ev.path);
                match kind {
                    qmon_event_kind::QMON_EV_EXEC => CaptureEvent::Exec {
                        origin,
                        path,
                        comm: c_string(&ev.comm),
                        cgroup_id: ev.cgroup_id,
                    },
                    qmon_event_kind::QMON_EV_LIB_OPEN => CaptureEvent::LibOpen { origin, path },
                    _ => CaptureEvent::ProcExit { origin },
                }
            }
            _ => return Err(DecodeError::UnknownKind(hdr.kind)),
        })
    }
}

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

fn remote_addr(family: u16, addr: &[u8; 16], port: u16) -> Option<SocketAddr> {
    let ip = match family {
        AF_INET => IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3])),
        AF_INET6 => {
            let v6 = Ipv6Addr::from(*addr);
            // v4-mapped (dual-stack sockets) reads better as plain v4.
            match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            }
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_bytes<T>(v: &T) -> Vec<u8> {
        // SAFETY: reading the bytes of a POD value for a test.
        unsafe { std::slice::from_raw_parts(v as *const T as *const u8, size_of::<T>()).to_vec() }
    }

    #[test]
    fn decodes_data_and_rejects_lies() {
        let mut ev = qmon_data_event::default();
        ev.hdr.kind = qmon_event_kind::QMON_EV_DATA.0 as u8;
        ev.hdr.tgid = 42;
        ev.len = 5;
        ev.dir = 1;
        ev.pos = 7;
        let mut rec = as_bytes(&ev);
        rec.extend_from_slice(b"hello");
        let d = Decoder::default();
        match d.decode(&rec).unwrap() {
            CaptureEvent::Data {
                origin,
                dir,
                pos,
                bytes,
                ..
            } => {
                assert_eq!(origin.tgid, 42);
                assert_eq!(dir, Direction::Ingress);
                assert_eq!(pos, Some(7));
                assert_eq!(bytes, b"hello");
            }
            other => panic!("unexpected {other:?}"),
        }
        ev.len = 100;
        let mut rec = as_bytes(&ev);
        rec.extend_from_slice(b"hello");
        assert!(matches!(d.decode(&rec), Err(DecodeError::BadLength { .. })));
        assert!(matches!(d.decode(&rec[..3]), Err(DecodeError::Short(3))));
    }

    #[test]
    fn decodes_tls_sources_and_unknown_positions() {
        let mut ev = qmon_data_event::default();
        ev.hdr.kind = qmon_event_kind::QMON_EV_DATA.0 as u8;
        ev.source = qmon_source::QMON_SRC_OPENSSL.0 as u8;
        ev.pos = u64::MAX;
        ev.session = 0x1234;
        let d = Decoder::default();
        match d.decode(&as_bytes(&ev)).unwrap() {
            CaptureEvent::Data {
                source, pos, ssl, ..
            } => {
                assert_eq!(source, Source::Tls(&tls::OPENSSL));
                assert_eq!(source.as_str(), "openssl");
                assert_eq!(Source::from_name("openssl"), Some(source));
                assert_eq!(pos, None);
                assert_eq!(ssl, 0x1234);
            }
            other => panic!("unexpected {other:?}"),
        }
        ev.source = 200;
        assert_eq!(
            d.decode(&as_bytes(&ev)),
            Err(DecodeError::UnknownSource(200))
        );
    }

    #[test]
    fn a_recycled_buffer_carries_only_the_new_payload() {
        let mut ev = qmon_data_event::default();
        ev.hdr.kind = qmon_event_kind::QMON_EV_DATA.0 as u8;
        ev.len = 3;
        let mut rec = as_bytes(&ev);
        rec.extend_from_slice(b"new");
        let d = Decoder::default();
        d.pool.put(b"an older, longer payload".to_vec());
        let decoded = d.decode(&rec).unwrap();
        assert_eq!(d.pool.pooled_bytes(), 0, "the pooled buffer was not used");
        match &decoded {
            CaptureEvent::Data { bytes, .. } => assert_eq!(bytes, b"new"),
            other => panic!("unexpected {other:?}"),
        }
        if let CaptureEvent::Data { bytes, .. } = decoded {
            d.pool.put(bytes);
        }
        assert!(d.pool.pooled_bytes() > 0, "the buffer did not come back");
    }

    #[test]
    fn maps_v4_mapped_addresses() {
        let mut a = [0u8; 16];
        a[10] = 0xff;
        a[11] = 0xff;
        a[12..].copy_from_slice(&[127, 0, 0, 1]);
        assert_eq!(
            remote_addr(AF_INET6, &a, 443),
            Some("127.0.0.1:443".parse().unwrap())
        );
        assert_eq!(remote_addr(1, &a, 1), None);
    }
}
