//! Connections: turn capture events into ordered per-direction byte streams
//! and feed them to the protocol parser each connection turns out to speak.
//!
//! The table has one job, streams and their parsers. It changes nothing
//! outside itself: what it finds out comes back as [`Effect`]s (a finished
//! exchange, "mute this connection in the kernel", "forget that process's
//! sockets"), which the pipeline carries out. Each data event goes through
//! three steps: [`reorder`] (positions, overlaps, gaps), [`detect`] (which
//! protocol, while undecided) and [`ConnTable::feed`] (the parser).

mod detect;
mod reorder;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::capture::events::Origin;
use crate::capture::{CaptureEvent, Mute, Role, Source};
pub use detect::Detected;
use detect::Detector;
#[cfg(test)]
use detect::DETECT_GIVE_UP;
use qmon_protocols::http1::Http1Parser;
use qmon_protocols::http2::Http2Parser;
use qmon_protocols::{Direction, Exchange, Parser, ParserLimits, Progress, UpgradeTo};
use reorder::Positions;

/// Counters for qmon's own health.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ConnStats {
    pub conns_opened: u64,
    pub server_conns: u64,
    /// Connections switched off because they are not HTTP.
    pub not_http: u64,
    /// Gaps seen in streams: missing bytes, whatever the cause (lost in the
    /// kernel, past the copy cap, or not held while deciding).
    pub gaps: u64,
    pub gap_bytes: u64,
    /// Connections dropped to keep the table bounded.
    pub evicted: u64,
    /// Exchanges the parsers finished.
    pub calls: u64,
    pub http1_conns: u64,
    pub http2_conns: u64,
}

/// What the pipeline must do on the table's behalf.
// Effects pass through one reused vector, so the large variant costs a
// move; boxing it would cost an allocation per call.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Effect {
    /// A finished exchange, with the connection it travelled on.
    Exchange { conn: ConnFacts, exchange: Exchange },
    /// Stop the kernel sending this connection's bytes.
    Mute { tgid: u32, fd: i32, how: Mute },
    /// The process exited: its sockets closed without close() calls the
    /// kernel hooks could see, so their kernel state must go.
    Forget { tgid: u32, fds: Vec<i32> },
}

/// What the table knows of a connection, handed on with each exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnFacts {
    pub tgid: u32,
    pub fd: i32,
    /// qmon's connection id: unique per (pid, fd, connect time).
    pub conn_id: u64,
    pub role: Role,
    pub remote: Option<SocketAddr>,
    /// The process name the kernel reported at connect; empty if unknown.
    pub comm: Arc<str>,
    /// The source whose bytes were parsed: syscall plaintext, or a TLS
    /// library's plaintext.
    pub source: Option<Source>,
}

impl ConnFacts {
    pub fn tls(&self) -> bool {
        matches!(self.source, Some(s) if s != Source::Syscall)
    }
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
    Detecting(Detector),
    Parsing(Box<dyn Parser>),
    /// Not HTTP, or server-side: nothing more is parsed.
    Ignored,
}

struct Conn {
    facts: ConnFacts,
    /// Positions of `facts.source`'s stream.
    positions: Positions,
    state: State,
    last_ts: u64,
}

pub struct ConnTable {
    conns: HashMap<ConnKey, Conn>,
    limits: ParserLimits,
    max_conns: usize,
    idle_ns: u64,
    pub stats: ConnStats,
    /// Parser output, before it is wrapped into effects.
    out: Vec<Exchange>,
}

impl ConnTable {
    pub fn new(limits: ParserLimits) -> Self {
        Self {
            conns: HashMap::new(),
            limits,
            max_conns: 65536,
            idle_ns: 300_000_000_000,
            stats: ConnStats::default(),
            out: Vec::new(),
        }
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

    /// Feed one capture event; what follows from it is appended to `fx`.
    /// Process events (exec) are not the table's business and are ignored;
    /// so is scope, which the pipeline decides before a connection gets here.
    pub fn on_event(&mut self, ev: &CaptureEvent, fx: &mut Vec<Effect>) {
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
                let key = ConnKey {
                    tgid: origin.tgid,
                    id: origin.conn_id,
                };
                let conn = Conn::new(origin, *role, *remote, comm.as_str().into());
                self.track(key, conn, fx);
            }
            CaptureEvent::ConnClose { origin } => {
                let key = ConnKey {
                    tgid: origin.tgid,
                    id: origin.conn_id,
                };
                if let Some(c) = self.conns.remove(&key) {
                    self.finish(c, origin.ts_ns, fx);
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
                    let conn = Conn::new(origin, Role::Unknown, None, "".into());
                    self.track(key, conn, fx);
                }
                self.on_data(key, *source, *dir, *pos, origin.ts_ns, bytes, fx);
            }
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
                        fds.push(c.facts.fd);
                        self.finish(c, origin.ts_ns, fx);
                    }
                }
                fx.push(Effect::Forget {
                    tgid: origin.tgid,
                    fds,
                });
            }
            CaptureEvent::Exec { .. } | CaptureEvent::LibOpen { .. } => {}
        }
    }

    /// One data event: reorder, then detect or feed.
    #[allow(clippy::too_many_arguments)]
    fn on_data(
        &mut self,
        key: ConnKey,
        source: Source,
        dir: Direction,
        pos: Option<u64>,
        ts: u64,
        bytes: &[u8],
        fx: &mut Vec<Effect>,
    ) {
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        conn.last_ts = ts;
        match (conn.facts.source, source) {
            (None, s) => conn.facts.source = Some(s),
            (Some(Source::Syscall), s) if s != Source::Syscall => {
                // TLS began after plaintext (or the plaintext was the
                // handshake): start over on the decrypted stream.
                conn.facts.source = Some(s);
                conn.positions = Positions::default();
                conn.state = State::Detecting(Detector::default());
            }
            (Some(current), s) if s != current => return,
            _ => {}
        }

        let placed = conn.positions.place(dir, pos, bytes.len());
        let data = &bytes[placed.skip..];
        if placed.gap > 0 {
            self.stats.gaps += 1;
            self.stats.gap_bytes += placed.gap;
        }
        if matches!(conn.state, State::Detecting(_)) {
            self.detect(key, dir, ts, data, placed.gap, fx);
        } else {
            self.feed(key, dir, ts, data, placed.gap, fx);
        }
        self.drain(key, fx);
    }

    /// Hold the first bytes until the protocol is known; then start its
    /// parser with what was held.
    fn detect(
        &mut self,
        key: ConnKey,
        dir: Direction,
        ts: u64,
        data: &[u8],
        gap: u64,
        fx: &mut Vec<Effect>,
    ) {
        let limits = self.limits;
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        let State::Detecting(detector) = &mut conn.state else {
            return;
        };
        // A connection qmon adopted (role unknown: it predates qmon, or its
        // open was missed) may be mid-stream even at position 0: positions
        // count from when qmon first saw it, and a TLS stream found through
        // SSL_read/SSL_write always starts at 0. Found by the e2e
        // mid-connection test: an h2 connection over TLS opened before qmon
        // started was switched off as "not HTTP". A preface or HTTP/1
        // request is still recognised first.
        let adopted = conn.facts.role == Role::Unknown;
        let offer = detector.offer(dir, data, gap > 0, &mut conn.positions.mid, adopted);
        if offer.lost > 0 {
            self.stats.gaps += 1;
            self.stats.gap_bytes += offer.lost;
        }
        let parser: Box<dyn Parser> = match offer.decided {
            Detected::NeedMore => return,
            Detected::Http1 => {
                self.stats.http1_conns += 1;
                Box::new(if offer.mid_stream {
                    Http1Parser::mid_stream(limits)
                } else {
                    Http1Parser::new(limits)
                })
            }
            Detected::Http2 => {
                self.stats.http2_conns += 1;
                Box::new(Http2Parser::new(limits))
            }
            Detected::Http2MidStream => {
                self.stats.http2_conns += 1;
                Box::new(Http2Parser::mid_connection(limits))
            }
            Detected::ServerSide => {
                self.stats.server_conns += 1;
                conn.state = State::Ignored;
                fx.extend(conn.mute(Mute::All));
                return;
            }
            Detected::Other => {
                self.stats.not_http += 1;
                conn.state = State::Ignored;
                // Plaintext that is not HTTP may still turn into TLS
                // plaintext that is; TLS plaintext that is not is done.
                let how = if conn.facts.tls() {
                    Mute::All
                } else {
                    Mute::Syscall
                };
                fx.extend(conn.mute(how));
                return;
            }
        };
        // Replay what was held, egress first: a request precedes its
        // response. Bytes past what was held go through normally.
        let held = detector.take();
        conn.state = State::Parsing(parser);
        let mut progress = Progress::Continue;
        for (i, d) in [Direction::Egress, Direction::Ingress]
            .into_iter()
            .enumerate()
        {
            if !held[i].is_empty() && progress == Progress::Continue {
                progress = self.parse(key, d, ts, &held[i]);
            }
        }
        let rest = &data[offer.held..];
        if progress == Progress::Continue && !rest.is_empty() {
            progress = self.parse(key, dir, ts, rest);
        }
        self.after_progress(key, progress, dir, ts, &[], fx);
    }

    /// Feed the parser in-order bytes, telling it about a gap first.
    fn feed(
        &mut self,
        key: ConnKey,
        dir: Direction,
        ts: u64,
        data: &[u8],
        gap: u64,
        fx: &mut Vec<Effect>,
    ) {
        let Some(Conn {
            state: State::Parsing(parser),
            ..
        }) = self.conns.get_mut(&key)
        else {
            return;
        };
        if gap > 0 {
            parser.gap(dir, gap, ts, &mut self.out);
        }
        if data.is_empty() {
            return;
        }
        let progress = parser.data(dir, ts, data, &mut self.out);
        let rest = match progress {
            Progress::Upgrade { consumed, .. } => data.get(consumed..).unwrap_or(&[]),
            Progress::Continue => &[],
        };
        self.after_progress(key, progress, dir, ts, rest, fx);
    }

    fn parse(&mut self, key: ConnKey, dir: Direction, ts: u64, bytes: &[u8]) -> Progress {
        match self.conns.get_mut(&key) {
            Some(Conn {
                state: State::Parsing(p),
                ..
            }) => p.data(dir, ts, bytes, &mut self.out),
            _ => Progress::Continue,
        }
    }

    /// Handle a protocol switch (HTTP/1 `101`).
    fn after_progress(
        &mut self,
        key: ConnKey,
        progress: Progress,
        dir: Direction,
        ts: u64,
        rest: &[u8],
        fx: &mut Vec<Effect>,
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
                fx.extend(conn.mute(Mute::All));
            }
        }
    }

    /// Wrap exchanges the parser produced into effects.
    fn drain(&mut self, key: ConnKey, fx: &mut Vec<Effect>) {
        if self.out.is_empty() {
            return;
        }
        let Some(conn) = self.conns.get(&key) else {
            self.out.clear();
            return;
        };
        for exchange in self.out.drain(..) {
            self.stats.calls += 1;
            fx.push(Effect::Exchange {
                conn: conn.facts.clone(),
                exchange,
            });
        }
    }

    /// A connection ended: flush its parser.
    fn finish(&mut self, mut conn: Conn, ts: u64, fx: &mut Vec<Effect>) {
        if let State::Parsing(p) = &mut conn.state {
            p.close(ts, &mut self.out);
        }
        for exchange in self.out.drain(..) {
            self.stats.calls += 1;
            fx.push(Effect::Exchange {
                conn: conn.facts.clone(),
                exchange,
            });
        }
    }

    /// Close connections idle for longer than the idle timeout; call about
    /// once a second with the current unix time.
    pub fn sweep(&mut self, now_ns: u64, fx: &mut Vec<Effect>) {
        let idle = self.idle_ns;
        let stale: Vec<ConnKey> = self
            .conns
            .iter()
            .filter(|(_, c)| now_ns.saturating_sub(c.last_ts) > idle)
            .map(|(k, _)| *k)
            .collect();
        for k in stale {
            if let Some(c) = self.conns.remove(&k) {
                self.finish(c, now_ns, fx);
            }
        }
    }

    /// Flush everything (shutdown).
    pub fn flush_all(&mut self, now_ns: u64, fx: &mut Vec<Effect>) {
        let keys: Vec<ConnKey> = self.conns.keys().copied().collect();
        for k in keys {
            if let Some(c) = self.conns.remove(&k) {
                self.finish(c, now_ns, fx);
            }
        }
    }

    /// Start tracking a connection, evicting the oldest if the table is full.
    fn track(&mut self, key: ConnKey, conn: Conn, fx: &mut Vec<Effect>) {
        if self.conns.len() >= self.max_conns {
            let oldest = self
                .conns
                .iter()
                .min_by_key(|(_, c)| c.last_ts)
                .map(|(k, _)| *k);
            if let Some(c) = oldest.and_then(|k| self.conns.remove(&k)) {
                self.stats.evicted += 1;
                let ts = c.last_ts;
                self.finish(c, ts, fx);
            }
        }
        self.conns.insert(key, conn);
    }
}

impl Conn {
    fn new(origin: &Origin, role: Role, remote: Option<SocketAddr>, comm: Arc<str>) -> Self {
        Conn {
            facts: ConnFacts {
                tgid: origin.tgid,
                fd: origin.fd,
                conn_id: origin.conn_id,
                role,
                remote,
                comm,
                source: None,
            },
            positions: Positions::default(),
            state: State::Detecting(Detector::default()),
            last_ts: origin.ts_ns,
        }
    }

    /// The effect that mutes this connection in the kernel, if its fd is
    /// known.
    fn mute(&self, how: Mute) -> Option<Effect> {
        (self.facts.fd >= 0).then_some(Effect::Mute {
            tgid: self.facts.tgid,
            fd: self.facts.fd,
            how,
        })
    }
}

#[cfg(test)]
mod tests;
