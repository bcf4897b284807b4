//! Connections: turn capture events into ordered per-direction byte streams,
//! detect gaps from stream positions, decide which protocol (if any) each
//! connection speaks, and wrap parsed exchanges into [`Call`]s.
//!
//! Muting: a connection that is not HTTP, or is server-side, is switched off
//! in the kernel so it costs one map lookup per call from then on.

mod detect;

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::calls::{route::route, scope::Scope, Call, ConnInfo, Exchange};
use crate::capture::events::Origin;
use crate::capture::procinfo::ProcTable;
use crate::capture::{CaptureEvent, ConnControl, Mute, Role, Source};
use crate::protocols::http1::Http1Parser;
use crate::protocols::http2::Http2Parser;
use crate::protocols::{Direction, Parser, ParserLimits, Progress, UpgradeTo};
pub use detect::Detected;

/// Bytes held per direction while deciding the protocol. Deciding needs
/// at most the 24-byte HTTP/2 preface, but everything held is replayed into
/// the parser, so a direction that runs ahead of the deciding one (an h2c
/// server's SETTINGS, WINDOW_UPDATE, ... before the client's preface is
/// seen) must be held whole. Past this, the held bytes are dropped and the
/// direction is treated as joined mid-stream.
const DETECT_BYTES: usize = 16 * 1024;
const _: () = assert!(detect::MID_EGRESS_WAIT <= DETECT_BYTES);
/// Bytes a connection may pass undecided, beyond those held, before it is
/// switched off as not HTTP. A client adopted mid-response waits for its
/// next request; this bounds the wait on a stream that never sends one.
const DETECT_GIVE_UP: u64 = 1024 * 1024;

/// Counters for qmon's own health.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ConnStats {
    pub conns_opened: u64,
    pub server_conns: u64,
    /// Connections switched off because they are not HTTP.
    pub not_http: u64,
    pub gaps: u64,
    pub gap_bytes: u64,
    /// Connections dropped to keep the table bounded.
    pub evicted: u64,
    /// Connections switched off because the process or destination is out
    /// of the configured scope.
    pub out_of_scope: u64,
    pub calls: u64,
    pub http1_conns: u64,
    pub http2_conns: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ConnKey {
    tgid: u32,
    /// conn_id from the kernel; for TLS data whose fd is unknown, the SSL*
    /// with the top bit set.
    id: u64,
}

enum State {
    /// Not decided yet: first bytes of each direction.
    Detecting {
        held: [Vec<u8>; 2],
        /// Bytes seen but not held.
        dropped: u64,
    },
    Parsing(Box<dyn Parser>),
    /// Not HTTP, or server-side: nothing more is parsed.
    Ignored,
}

struct Conn {
    tgid: u32,
    fd: i32,
    conn_id: u64,
    role: Role,
    remote: Option<SocketAddr>,
    comm: String,
    tls: bool,
    /// The source feeding the parser; TLS plaintext wins over syscall bytes.
    source: Option<Source>,
    /// Next expected position per direction of `source`.
    next_pos: [Option<u64>; 2],
    /// The stream did not start at position 0: capture began mid-connection.
    mid: bool,
    state: State,
    last_ts: u64,
}

pub struct ConnTable {
    conns: HashMap<ConnKey, Conn>,
    procs: ProcTable,
    limits: ParserLimits,
    control: Option<ConnControl>,
    max_conns: usize,
    idle_ns: u64,
    pub stats: ConnStats,
    scope: Scope,
    out: Vec<Exchange>,
}

fn idx(d: Direction) -> usize {
    match d {
        Direction::Egress => 0,
        Direction::Ingress => 1,
    }
}

impl ConnTable {
    /// `control` mutes connections in the kernel; `None` in replays/tests.
    pub fn new(limits: ParserLimits, control: Option<ConnControl>) -> Self {
        Self {
            conns: HashMap::new(),
            procs: ProcTable::default(),
            limits,
            control,
            max_conns: 65536,
            idle_ns: 300_000_000_000,
            stats: ConnStats::default(),
            scope: Scope::default(),
            out: Vec::new(),
        }
    }

    /// Connections of out-of-scope processes or destinations are switched
    /// off in the kernel as they open; calls are checked in full later.
    pub fn set_scope(&mut self, scope: Scope) {
        self.scope = scope;
    }

    pub fn set_max_conns(&mut self, n: usize) {
        self.max_conns = n.max(1);
    }

    /// Connections currently tracked.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Feed one capture event; finished calls are appended to `calls`.
    pub fn on_event(&mut self, ev: &CaptureEvent, calls: &mut Vec<Call>) {
        match ev {
            CaptureEvent::ConnOpen {
                origin,
                role,
                remote,
                comm,
                ..
            } => {
                self.stats.conns_opened += 1;
                if *role == Role::Server {
                    // Labelled by the kernel and muted there: not outbound.
                    self.stats.server_conns += 1;
                    return;
                }
                if !self.scope.allows_process(origin.tgid, comm)
                    || !self.scope.allows_remote(*remote)
                {
                    self.stats.out_of_scope += 1;
                    if let Some(ctl) = &self.control {
                        ctl.mute(origin.tgid, origin.fd, Mute::All);
                    }
                    return;
                }
                let key = ConnKey {
                    tgid: origin.tgid,
                    id: origin.conn_id,
                };
                let conn = Conn::new(origin, *role, *remote, comm.clone());
                self.track(key, conn, calls);
            }
            CaptureEvent::ConnClose { origin } => {
                let key = ConnKey {
                    tgid: origin.tgid,
                    id: origin.conn_id,
                };
                if let Some(c) = self.conns.remove(&key) {
                    self.finish(c, origin.ts_ns, calls);
                }
            }
            CaptureEvent::Data {
                origin,
                source,
                dir,
                pos,
                ssl,
                bytes,
                ..
            } => {
                let key = ConnKey {
                    tgid: origin.tgid,
                    id: if origin.conn_id != 0 {
                        origin.conn_id
                    } else {
                        ssl | crate::capture::UNKNOWN_FD_STREAM_BIT
                    },
                };
                if !self.conns.contains_key(&key) {
                    // The open event was lost, or this TLS stream's fd is
                    // not known yet.
                    let conn = Conn::new(origin, Role::Unknown, None, String::new());
                    self.track(key, conn, calls);
                }
                self.on_data(key, *source, *dir, *pos, origin.ts_ns, bytes, calls);
            }
            CaptureEvent::Exec { origin, comm, .. } => self.procs.refresh(origin.tgid, comm),
            CaptureEvent::LibOpen { .. } => {}
            CaptureEvent::ProcExit { origin } => {
                let keys: Vec<ConnKey> = self
                    .conns
                    .keys()
                    .filter(|k| k.tgid == origin.tgid)
                    .copied()
                    .collect();
                let mut fds = Vec::new();
                for k in keys {
                    if let Some(c) = self.conns.remove(&k) {
                        fds.push(c.fd);
                        self.finish(c, origin.ts_ns, calls);
                    }
                }
                if let Some(ctl) = &self.control {
                    ctl.forget(origin.tgid, &fds);
                }
                self.procs.remove(origin.tgid);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_data(
        &mut self,
        key: ConnKey,
        source: Source,
        dir: Direction,
        pos: Option<u64>,
        ts: u64,
        bytes: &[u8],
        calls: &mut Vec<Call>,
    ) {
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        conn.last_ts = ts;
        if source.tls().is_some() {
            conn.tls = true;
        }
        match (conn.source, source) {
            (None, s) => conn.source = Some(s),
            (Some(Source::Syscall), Source::Tls(_)) => {
                // TLS began after plaintext (or the plaintext was the
                // handshake): start over on the decrypted stream.
                conn.source = Some(source);
                conn.next_pos = [None, None];
                conn.mid = false;
                conn.state = State::Detecting {
                    held: [Vec::new(), Vec::new()],
                    dropped: 0,
                };
            }
            (Some(Source::Tls(_)), Source::Syscall) => return,
            _ => {}
        }

        // Order and gaps, from positions.
        let d = idx(dir);
        let mut data = bytes;
        let mut gap = 0u64;
        if let Some(p) = pos {
            match conn.next_pos[d] {
                None if p > 0 => conn.mid = true,
                Some(expected) if p > expected => gap = p - expected,
                Some(expected) if p < expected => {
                    // Overlap: skip what was already seen.
                    let skip = (expected - p).min(data.len() as u64) as usize;
                    data = &data[skip..];
                }
                _ => {}
            }
            let end = p.saturating_add(bytes.len() as u64);
            conn.next_pos[d] = Some(conn.next_pos[d].map_or(end, |e| e.max(end)));
        }
        if gap > 0 {
            self.stats.gaps += 1;
            self.stats.gap_bytes += gap;
        }

        let limits = self.limits;
        let mut mute = None;
        let conn = match self.conns.get_mut(&key) {
            Some(c) => c,
            None => return,
        };
        if let State::Detecting { held, dropped } = &mut conn.state {
            if gap > 0 {
                // Missed bytes before deciding: whatever comes next is
                // mid-stream.
                conn.mid = true;
                held[d].clear();
            }
            let room = DETECT_BYTES.saturating_sub(held[d].len());
            held[d].extend_from_slice(&data[..data.len().min(room)]);
            // A connection qmon adopted (role unknown: it predates qmon, or
            // its open was missed) may be mid-stream even at position 0:
            // positions count from when qmon first saw it, and a TLS stream
            // found through SSL_read/SSL_write always starts at 0. Found by
            // the e2e mid-connection test: an h2 connection over TLS opened
            // before qmon started was switched off as "not HTTP". A preface
            // or HTTP/1 request is still recognised first.
            let maybe_mid = conn.mid || conn.role == Role::Unknown;
            let mut decided = detect::detect(&held[0], &held[1], maybe_mid);
            if decided == Detected::NeedMore && data.len() > room {
                // Bytes not held are bytes lost to the parser.
                let lost = (data.len() - room) as u64;
                self.stats.gaps += 1;
                self.stats.gap_bytes += lost;
                conn.mid = true;
                held[d].clear();
                *dropped += lost;
                if *dropped > DETECT_GIVE_UP {
                    decided = Detected::Other;
                }
            }
            let next = match decided {
                Detected::NeedMore => None,
                Detected::Http1 => {
                    self.stats.http1_conns += 1;
                    Some(State::Parsing(Box::new(if maybe_mid {
                        Http1Parser::mid_stream(limits)
                    } else {
                        Http1Parser::new(limits)
                    })))
                }
                Detected::Http2 => {
                    self.stats.http2_conns += 1;
                    Some(State::Parsing(Box::new(Http2Parser::new(limits))))
                }
                Detected::Http2MidStream => {
                    self.stats.http2_conns += 1;
                    Some(State::Parsing(Box::new(Http2Parser::mid_connection(
                        limits,
                    ))))
                }
                Detected::ServerSide => {
                    self.stats.server_conns += 1;
                    mute = Some(Mute::All);
                    Some(State::Ignored)
                }
                Detected::Other => {
                    self.stats.not_http += 1;
                    mute = Some(if matches!(conn.source, Some(Source::Tls(_))) {
                        Mute::All
                    } else {
                        Mute::Syscall
                    });
                    Some(State::Ignored)
                }
            };
            match next {
                None => return,
                Some(State::Parsing(mut parser)) => {
                    // Replay what was held, egress first: a request precedes
                    // its response.
                    let held = std::mem::take(held);
                    let mut progress = Progress::Continue;
                    for (i, dir) in [Direction::Egress, Direction::Ingress]
                        .into_iter()
                        .enumerate()
                    {
                        if !held[i].is_empty() && progress == Progress::Continue {
                            progress = parser.data(dir, ts, &held[i], &mut self.out);
                        }
                    }
                    conn.state = State::Parsing(parser);
                    // Bytes past what was held go through normally.
                    let fed = data.len().min(room);
                    let rest = &data[fed..];
                    if progress == Progress::Continue && !rest.is_empty() {
                        if let State::Parsing(p) = &mut conn.state {
                            progress = p.data(dir, ts, rest, &mut self.out);
                        }
                    }
                    self.after_progress(key, progress, dir, ts, &[], calls);
                    self.drain(key, calls);
                    return;
                }
                Some(s) => {
                    conn.state = s;
                }
            }
        } else if let State::Parsing(parser) = &mut conn.state {
            if gap > 0 {
                parser.gap(dir, gap, ts, &mut self.out);
            }
            let progress = if data.is_empty() {
                Progress::Continue
            } else {
                parser.data(dir, ts, data, &mut self.out)
            };
            let rest = match progress {
                Progress::Upgrade { consumed, .. } => data.get(consumed..).unwrap_or(&[]).to_vec(),
                Progress::Continue => Vec::new(),
            };
            self.after_progress(key, progress, dir, ts, &rest, calls);
        }
        if let Some(how) = mute {
            self.mute(key, how);
        }
        self.drain(key, calls);
    }

    /// Handle a protocol switch (HTTP/1 `101`).
    fn after_progress(
        &mut self,
        key: ConnKey,
        progress: Progress,
        dir: Direction,
        ts: u64,
        rest: &[u8],
        calls: &mut Vec<Call>,
    ) {
        let Progress::Upgrade { to, .. } = progress else {
            return;
        };
        let limits = self.limits;
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        match to {
            UpgradeTo::H2c => {
                let request = match &mut conn.state {
                    State::Parsing(p) => p.take_upgrade_request(),
                    _ => None,
                };
                let mut h2: Box<dyn Parser> = match request {
                    Some(r) => Box::new(Http2Parser::upgraded(limits, r)),
                    None => Box::new(Http2Parser::mid_connection(limits)),
                };
                self.stats.http2_conns += 1;
                if !rest.is_empty() {
                    let _ = h2.data(dir, ts, rest, &mut self.out);
                }
                conn.state = State::Parsing(h2);
            }
            UpgradeTo::Other => {
                conn.state = State::Ignored;
                self.mute(key, Mute::All);
            }
        }
        self.drain(key, calls);
    }

    fn mute(&mut self, key: ConnKey, how: Mute) {
        if let (Some(ctl), Some(c)) = (&self.control, self.conns.get(&key)) {
            if c.fd >= 0 {
                ctl.mute(c.tgid, c.fd, how);
            }
        }
    }

    /// Wrap exchanges the parser produced into calls.
    fn drain(&mut self, key: ConnKey, calls: &mut Vec<Call>) {
        if self.out.is_empty() {
            return;
        }
        let Some(conn) = self.conns.get(&key) else {
            self.out.clear();
            return;
        };
        for ex in self.out.drain(..) {
            calls.push(make_call(&mut self.procs, conn, ex));
            self.stats.calls += 1;
        }
    }

    /// A connection ended: flush its parser.
    fn finish(&mut self, mut conn: Conn, ts: u64, calls: &mut Vec<Call>) {
        if let State::Parsing(p) = &mut conn.state {
            p.close(ts, &mut self.out);
        }
        for ex in self.out.drain(..) {
            calls.push(make_call(&mut self.procs, &conn, ex));
            self.stats.calls += 1;
        }
    }

    /// Close connections idle for longer than the idle timeout; call about
    /// once a second with the current unix time.
    pub fn sweep(&mut self, now_ns: u64, calls: &mut Vec<Call>) {
        let idle = self.idle_ns;
        let stale: Vec<ConnKey> = self
            .conns
            .iter()
            .filter(|(_, c)| now_ns.saturating_sub(c.last_ts) > idle)
            .map(|(k, _)| *k)
            .collect();
        for k in stale {
            if let Some(c) = self.conns.remove(&k) {
                self.finish(c, now_ns, calls);
            }
        }
    }

    /// Flush everything (shutdown).
    pub fn flush_all(&mut self, now_ns: u64, calls: &mut Vec<Call>) {
        let keys: Vec<ConnKey> = self.conns.keys().copied().collect();
        for k in keys {
            if let Some(c) = self.conns.remove(&k) {
                self.finish(c, now_ns, calls);
            }
        }
    }

    /// Start tracking a connection, evicting the oldest if the table is full.
    fn track(&mut self, key: ConnKey, conn: Conn, calls: &mut Vec<Call>) {
        self.make_room(calls);
        self.conns.insert(key, conn);
    }

    fn make_room(&mut self, calls: &mut Vec<Call>) {
        if self.conns.len() < self.max_conns {
            return;
        }
        let oldest = self
            .conns
            .iter()
            .min_by_key(|(_, c)| c.last_ts)
            .map(|(k, _)| *k);
        if let Some(k) = oldest {
            if let Some(c) = self.conns.remove(&k) {
                self.stats.evicted += 1;
                let ts = c.last_ts;
                self.finish(c, ts, calls);
            }
        }
    }
}

impl Conn {
    fn new(origin: &Origin, role: Role, remote: Option<SocketAddr>, comm: String) -> Self {
        Conn {
            tgid: origin.tgid,
            fd: origin.fd,
            conn_id: origin.conn_id,
            role,
            remote,
            comm,
            tls: false,
            source: None,
            next_pos: [None, None],
            mid: false,
            state: State::Detecting {
                held: [Vec::new(), Vec::new()],
                dropped: 0,
            },
            last_ts: origin.ts_ns,
        }
    }
}

fn make_call(procs: &mut ProcTable, conn: &Conn, mut ex: Exchange) -> Call {
    let process = procs.get(conn.tgid, &conn.comm);
    if ex.scheme.is_none() {
        ex.scheme = Some(if conn.tls { "https" } else { "http" }.to_string());
    }
    let (host, port) = host_port(ex.authority.as_deref(), conn.remote);
    let route = ex.path.as_deref().map(route);
    let _ = conn.role;
    Call {
        process,
        conn: ConnInfo {
            conn_id: conn.conn_id,
            remote: conn.remote,
            tls: conn.tls,
            tls_lib: conn.source.and_then(Source::tls).map(|s| s.name.into()),
        },
        exchange: ex,
        host,
        port,
        route,
    }
}

/// Host and port the client asked for: from the authority, else the remote
/// address. IPv6 literals keep their brackets off.
pub fn host_port(authority: Option<&str>, remote: Option<SocketAddr>) -> (String, Option<u16>) {
    let remote_port = remote.map(|r| r.port());
    let Some(auth) = authority.map(str::trim).filter(|a| !a.is_empty()) else {
        return (
            remote.map(|r| r.ip().to_string()).unwrap_or_default(),
            remote_port,
        );
    };
    // Strip userinfo, if any.
    let auth = auth.rsplit('@').next().unwrap_or(auth);
    if let Some(rest) = auth.strip_prefix('[') {
        if let Some((h, tail)) = rest.split_once(']') {
            let port = tail.strip_prefix(':').and_then(|p| p.parse().ok());
            return (h.to_ascii_lowercase(), port.or(remote_port));
        }
    }
    match auth.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => match p.parse() {
            Ok(port) => (h.to_ascii_lowercase(), Some(port)),
            Err(_) => (h.to_ascii_lowercase(), remote_port),
        },
        _ => (auth.to_ascii_lowercase(), remote_port),
    }
}

#[cfg(test)]
mod tests;
