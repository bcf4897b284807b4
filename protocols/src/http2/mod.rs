//! HTTP/2 (RFC 9113) and gRPC client-side parser.
//!
//! One [`Http2Parser`] per client connection. Egress carries the frames the
//! traced client sent, ingress the frames it received. Streams are rebuilt
//! into [`Exchange`]s; HPACK state is kept per direction.
//!
//! Loss of state is handled conservatively, never by guessing:
//!
//! - A connection seen from its start ([`Http2Parser::new`]) decodes HPACK
//!   fully. A connection whose start was missed
//!   ([`Http2Parser::mid_connection`]) or a direction that lost bytes
//!   ([`Parser::gap`]) hunts for a frame boundary: a candidate is trusted only
//!   once several consecutive frame headers are plausible (type, flags,
//!   length, stream id), or a plausible chain ends exactly where the captured
//!   bytes end.
//! - The HPACK dynamic table of such a direction is unknown. Fields that
//!   reference it are dropped and the stream is marked
//!   [`CallError::Degraded`]; static-table and literal fields still decode.
//!   This stays so for the rest of the connection: the peer never re-sends
//!   its table, so there is no point at which ours is known to match again.
//! - Malformed framing or HPACK marks the affected streams
//!   [`CallError::Malformed`] and resynchronises; after too many such events
//!   the parser gives up on the connection and emits what is pending.
//!
//! Memory is bounded by [`ParserLimits`]: at most `pending` streams, each
//! with bounded headers, bodies and gRPC message lists; header blocks are
//! accumulated up to `header_bytes`; control frame payloads are truncated;
//! DATA payloads are streamed, never buffered.
//!
//! The parser is split along its layers: `frames` reads frame headers and
//! payloads off the wire, `sync` finds frame boundaries again (after a gap,
//! or on a connection joined mid-way), `streams` keeps per-stream state and
//! emits exchanges, `grpc` adds the gRPC facts. This module ties them
//! together: what each complete frame means, header blocks through HPACK,
//! and the [`Parser`] implementation.

mod frames;
mod grpc;
mod streams;
mod sync;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet, VecDeque};

use crate::hpack::{HpackDecoder, ListLimits};
use crate::{CallError, Direction, Exchange, Headers, Parser, ParserLimits, Progress, Protocol};

use frames::*;
pub use frames::{looks_like_preface, PREFACE};
use grpc::is_grpc_content_type;
pub use grpc::{percent_decode, MAX_GRPC_MESSAGES};
use streams::{content_length_complete, finished_before_reset, set_error, Stream};
pub use sync::{first_headers_is_response, looks_like_frames};

/// Counters a connection keeps about what it could not represent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Http2Stats {
    /// Streams emitted early (as `Incomplete`) because `limits.pending`
    /// streams were already open.
    pub evicted_streams: u64,
    /// Times a direction lost frame sync (gap or malformed input).
    pub resyncs: u64,
    /// Malformed frames or header blocks seen.
    pub malformed: u64,
    /// Header fields dropped because they referenced unknown HPACK state.
    pub unresolved_fields: u64,
    /// The parser gave up on the connection.
    pub gave_up: bool,
}

#[derive(Debug)]
struct Block {
    stream: u32,
    buf: Vec<u8>,
    end_stream: bool,
    push: bool,
    too_big: bool,
}

#[derive(Debug)]
struct Dir {
    mode: Mode,
    hunt: Vec<u8>,
    /// Synced again after a gap or a mid-connection start and no complete
    /// header block seen yet: an orphan CONTINUATION is expected, not a
    /// protocol violation.
    resynced: bool,
    hpack: HpackDecoder,
    block: Option<Block>,
    /// Largest frame the receiver of this direction accepts (its SETTINGS);
    /// `None` when unknown.
    max_frame: Option<u32>,
}

impl Dir {
    fn new(mode: Mode, reliable: bool) -> Self {
        Self {
            mode,
            hunt: Vec::new(),
            resynced: !reliable,
            hpack: HpackDecoder::new(reliable),
            block: None,
            max_frame: reliable.then_some(DEFAULT_MAX_FRAME),
        }
    }
}

fn other(d: Direction) -> Direction {
    match d {
        Direction::Egress => Direction::Ingress,
        Direction::Ingress => Direction::Egress,
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn valid_path(v: &[u8]) -> bool {
    (v.first() == Some(&b'/') || v == b"*") && v.iter().all(|&c| (0x21..=0x7e).contains(&c))
}

/// HTTP/2 parser for one client connection. See the module docs.
#[derive(Debug)]
pub struct Http2Parser {
    limits: ParserLimits,
    dirs: [Dir; 2],
    /// Open streams by id; ascending id is oldest first.
    streams: BTreeMap<u32, Stream>,
    recent: VecDeque<u32>,
    recent_set: HashSet<u32>,
    max_client_stream: u32,
    /// Start not seen or bytes lost: frames on unknown streams open
    /// (degraded) streams instead of being ignored.
    partial: bool,
    /// The connection start was not seen.
    mid: bool,
    malformed_events: u32,
    stats: Http2Stats,
    dead: bool,
}

impl Http2Parser {
    /// A connection seen from its start: egress begins with the preface.
    pub fn new(limits: ParserLimits) -> Self {
        Self::build(
            limits,
            [
                Dir::new(Mode::Preface(0), true),
                Dir::new(
                    Mode::Header {
                        buf: [0; FRAME_HEADER_LEN],
                        have: 0,
                    },
                    true,
                ),
            ],
            false,
        )
    }

    /// A connection whose start was not seen: no preface, frame boundaries
    /// found heuristically, HPACK dynamic state unknown (see module docs).
    pub fn mid_connection(limits: ParserLimits) -> Self {
        let mut p = Self::build(
            limits,
            [
                Dir::new(Mode::Hunting, false),
                Dir::new(Mode::Hunting, false),
            ],
            true,
        );
        p.mid = true;
        p
    }

    /// `Upgrade: h2c`: `request` is the HTTP/1.1 request that asked for the
    /// upgrade; it becomes stream 1, whose response arrives as HTTP/2. The
    /// client still sends the preface. The exchange is emitted with
    /// `protocol: Http2` and `stream_id: Some(1)`.
    pub fn upgraded(limits: ParserLimits, request: Exchange) -> Self {
        let mut p = Self::new(limits);
        let mut s = Stream::new(1, request.timing.req_first_ns);
        s.ex = request;
        s.ex.protocol = Protocol::Http2;
        s.ex.stream_id = Some(1);
        s.req_headers_done = true;
        s.req_ended = true;
        s.grpc =
            s.ex.req_header("content-type")
                .is_some_and(is_grpc_content_type);
        p.streams.insert(1, s);
        p.max_client_stream = 1;
        p
    }

    fn build(limits: ParserLimits, dirs: [Dir; 2], partial: bool) -> Self {
        Self {
            limits,
            dirs,
            streams: BTreeMap::new(),
            recent: VecDeque::new(),
            recent_set: HashSet::new(),
            max_client_stream: 0,
            partial,
            mid: false,
            malformed_events: 0,
            stats: Http2Stats::default(),
            dead: false,
        }
    }

    /// What this connection could not represent so far.
    pub fn stats(&self) -> Http2Stats {
        self.stats
    }

    /// Streams currently open (for tests and memory accounting).
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    fn dir(&mut self, d: Direction) -> &mut Dir {
        &mut self.dirs[d.index()]
    }

    // ---- byte feeding -------------------------------------------------

    fn feed(&mut self, d: Direction, bytes: &[u8], ts: u64, out: &mut Vec<Exchange>) {
        let mut cur: Cow<'_, [u8]> = Cow::Borrowed(bytes);
        let mut pos = 0usize;
        loop {
            if self.dead {
                return;
            }
            if matches!(self.dir(d).mode, Mode::Hunting) {
                let rest = cur.get(pos..).unwrap_or_default();
                self.dir(d).hunt.extend_from_slice(rest);
                match self.try_lock(d) {
                    Some(off) => {
                        let mut v = std::mem::take(&mut self.dir(d).hunt);
                        v.drain(..off.min(v.len()));
                        let dir = self.dir(d);
                        dir.mode = Self::header_mode();
                        dir.resynced = true;
                        cur = Cow::Owned(v);
                        pos = 0;
                        continue;
                    }
                    None => return,
                }
            }
            let rest = cur.get(pos..).unwrap_or_default();
            if rest.is_empty() {
                return;
            }
            let used = self.step(d, rest, ts, out);
            pos = pos.saturating_add(used).min(cur.len());
        }
    }

    fn give_up(&mut self, out: &mut Vec<Exchange>) {
        tracing::debug!("http2: too much malformed input, giving up on connection");
        self.stats.gave_up = true;
        self.dead = true;
        let streams = std::mem::take(&mut self.streams);
        for (_, s) in streams {
            self.emit(s, out);
        }
        for dir in &mut self.dirs {
            dir.hunt = Vec::new();
            dir.block = None;
            dir.mode = Mode::Hunting;
        }
    }

    // ---- complete frames, header blocks, DATA ---------------------------

    fn end_frame(
        &mut self,
        d: Direction,
        h: FrameHeader,
        buf: Vec<u8>,
        ts: u64,
        out: &mut Vec<Exchange>,
    ) {
        let truncated = buf.len() < h.len as usize;
        match h.ty {
            T_HEADERS | T_PUSH_PROMISE => {
                if h.ty == T_PUSH_PROMISE && d == Direction::Egress {
                    self.stats.malformed += 1;
                    return; // Clients never push; framing is intact, skip it.
                }
                let mut p = 0usize;
                let mut pad = 0usize;
                if h.flags & F_PADDED != 0 {
                    pad = buf.first().map_or(0, |&x| usize::from(x));
                    p += 1;
                }
                if h.ty == T_HEADERS && h.flags & F_PRIORITY != 0 {
                    p += 5;
                }
                if h.ty == T_PUSH_PROMISE {
                    p += 4;
                }
                let end = (h.len as usize).checked_sub(pad);
                let frag = match end {
                    Some(end) if end >= p && !truncated => buf.get(p..end),
                    _ => None,
                };
                if frag.is_none() && !truncated {
                    self.stats.malformed += 1;
                    self.dir(d).hpack.set_unreliable();
                    self.mark_or_open(
                        d,
                        h.stream,
                        ts,
                        CallError::Malformed("HEADERS padding"),
                        out,
                    );
                    return;
                }
                self.header_fragment(d, &h, true, frag.unwrap_or_default(), truncated, ts, out);
            }
            T_CONTINUATION => {
                if self.dir(d).block.is_some() {
                    self.header_fragment(d, &h, false, &buf, truncated, ts, out);
                } else if self.dir(d).resynced {
                    // Expected right after a resync: the HEADERS was lost.
                    if let Some(s) = self.streams.get_mut(&h.stream) {
                        s.lost_data();
                    }
                } else {
                    self.stats.malformed += 1;
                    self.dir(d).hpack.set_unreliable();
                    self.mark(
                        h.stream,
                        CallError::Malformed("CONTINUATION without HEADERS"),
                    );
                }
            }
            T_RST_STREAM => {
                let code = buf
                    .get(..4)
                    .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                if let Some(mut s) = self.streams.remove(&h.stream) {
                    if finished_before_reset(&s, d, code) {
                        if d == Direction::Egress {
                            // Done when the last body byte arrived.
                            s.ex.timing.resp_last_ns = s.resp_data_ns;
                        }
                    } else {
                        set_error(&mut s.ex, CallError::Reset(code));
                        if d == Direction::Ingress {
                            s.ex.timing.resp_first_ns.get_or_insert(ts);
                            s.ex.timing.resp_last_ns = Some(ts);
                        } else if !s.req_ended {
                            s.ex.timing.req_last_ns = ts;
                        }
                    }
                    self.emit(s, out);
                } else {
                    self.remember(h.stream);
                }
            }
            T_GOAWAY if d == Direction::Ingress => {
                let word = |i: usize| {
                    buf.get(i..i + 4)
                        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                };
                let last = word(0) & 0x7fff_ffff;
                let code = word(4);
                let doomed: Vec<u32> = self
                    .streams
                    .range(last.saturating_add(1)..)
                    .map(|(&id, _)| id)
                    .collect();
                for id in doomed {
                    if let Some(mut s) = self.streams.remove(&id) {
                        set_error(&mut s.ex, CallError::GoAway(code));
                        self.emit(s, out);
                    }
                }
            }
            T_SETTINGS if h.flags & F_ACK == 0 => {
                // The sender's settings bound what the *other* direction
                // may send: frame sizes and the peer encoder's table size.
                for e in buf.chunks_exact(6) {
                    let id = u16::from_be_bytes([e[0], e[1]]);
                    let v = u32::from_be_bytes([e[2], e[3], e[4], e[5]]);
                    match id {
                        S_HEADER_TABLE_SIZE => self.dir(other(d)).hpack.set_allowed(v),
                        S_MAX_FRAME_SIZE if (DEFAULT_MAX_FRAME..=MAX_FRAME_LIMIT).contains(&v) => {
                            self.dir(other(d)).max_frame = Some(v);
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn header_fragment(
        &mut self,
        d: Direction,
        h: &FrameHeader,
        first: bool,
        frag: &[u8],
        truncated: bool,
        ts: u64,
        out: &mut Vec<Exchange>,
    ) {
        let limit = self.limits.header_bytes;
        let dir = self.dir(d);
        if first {
            dir.block = Some(Block {
                stream: h.stream,
                buf: Vec::new(),
                end_stream: h.flags & F_END_STREAM != 0,
                push: h.ty == T_PUSH_PROMISE,
                too_big: false,
            });
        }
        let Some(block) = dir.block.as_mut() else {
            return;
        };
        let mut newly_too_big = false;
        if !block.too_big {
            if truncated || block.buf.len().saturating_add(frag.len()) > limit {
                block.too_big = true;
                block.buf = Vec::new();
                newly_too_big = true;
            } else {
                block.buf.extend_from_slice(frag);
            }
        }
        let stream = block.stream;
        let push = block.push;
        if newly_too_big {
            // Undecoded block: its table insertions are lost to us.
            dir.hpack.set_unreliable();
            self.stats.malformed += 1;
            if !push {
                self.mark_or_open(
                    d,
                    stream,
                    ts,
                    CallError::Malformed("header block too large"),
                    out,
                );
            }
        }
        if h.flags & F_END_HEADERS == 0 {
            return;
        }
        let Some(block) = self.dir(d).block.take() else {
            return;
        };
        self.dir(d).resynced = false;
        if block.too_big {
            if !block.push && block.end_stream {
                self.end_side(d, block.stream, ts, out);
            }
            return;
        }
        self.decode_block(d, block, ts, out);
    }

    fn decode_block(&mut self, d: Direction, block: Block, ts: u64, out: &mut Vec<Exchange>) {
        let limits = ListLimits {
            bytes: self.limits.header_bytes,
            count: self.limits.headers,
        };
        let mut fields: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let res = self.dir(d).hpack.decode(&block.buf, limits, |n, v| {
            fields.push((n.to_vec(), v.to_vec()));
        });
        let mut errors: Vec<CallError> = Vec::new();
        match res {
            Ok(o) => {
                if o.unresolved > 0 {
                    self.stats.unresolved_fields += o.unresolved as u64;
                    errors.push(CallError::Degraded);
                }
                if o.oversize {
                    errors.push(CallError::Malformed("header list too large"));
                }
                if o.too_many {
                    errors.push(CallError::Malformed("too many headers"));
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "http2: hpack decoding failed");
                self.dir(d).hpack.set_unreliable();
                errors.push(CallError::Malformed(e.as_static()));
            }
        }
        if errors.iter().any(|e| matches!(e, CallError::Malformed(_))) {
            self.stats.malformed += 1;
        }
        let id = block.stream;
        if block.push || id % 2 == 0 {
            return; // Server push: decoded for HPACK state only.
        }
        match d {
            Direction::Egress => self.request_block(id, fields, errors, block.end_stream, ts, out),
            Direction::Ingress => {
                self.response_block(id, fields, errors, block.end_stream, ts, out)
            }
        }
    }

    fn request_block(
        &mut self,
        id: u32,
        fields: Vec<(Vec<u8>, Vec<u8>)>,
        errors: Vec<CallError>,
        end_stream: bool,
        ts: u64,
        out: &mut Vec<Exchange>,
    ) {
        if !self.streams.contains_key(&id) {
            if self.recent_set.contains(&id) {
                return;
            }
            self.open(id, Stream::new(id, ts), out);
        }
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        for e in errors {
            set_error(&mut s.ex, e);
        }
        if s.req_headers_done {
            // HEADERS after the request headers: trailers.
            for (n, v) in fields {
                if n.first() != Some(&b':') {
                    s.ex.req_trailers.push((lossy(&n), lossy(&v)));
                }
            }
        } else {
            s.req_headers_done = true;
            for (n, v) in fields {
                match n.as_slice() {
                    b":method" => s.ex.method = Some(lossy(&v)),
                    b":scheme" => s.ex.scheme = Some(lossy(&v)),
                    b":authority" => s.ex.authority = Some(lossy(&v)),
                    b":path" => {
                        if valid_path(&v) {
                            s.ex.path = Some(lossy(&v));
                        } else {
                            set_error(&mut s.ex, CallError::Malformed("invalid :path"));
                        }
                    }
                    n if n.first() == Some(&b':') => {}
                    _ => s.ex.req_headers.push((lossy(&n), lossy(&v))),
                }
            }
            if s.ex
                .req_header("content-type")
                .is_some_and(is_grpc_content_type)
            {
                s.grpc = true;
            }
        }
        if end_stream {
            self.end_side(Direction::Egress, id, ts, out);
        }
    }

    fn response_block(
        &mut self,
        id: u32,
        fields: Vec<(Vec<u8>, Vec<u8>)>,
        errors: Vec<CallError>,
        end_stream: bool,
        ts: u64,
        out: &mut Vec<Exchange>,
    ) {
        let Some(s) = self.stream_for(Direction::Ingress, id, ts, out) else {
            return;
        };
        for e in errors {
            set_error(&mut s.ex, e);
        }
        let status = fields
            .iter()
            .find(|(n, _)| n.as_slice() == b":status")
            .map(|(_, v)| {
                std::str::from_utf8(v)
                    .ok()
                    .and_then(|x| x.parse::<u16>().ok())
            });
        let trailers = if s.resp_headers_done {
            true
        } else {
            match status {
                // A block carrying :status is a response header block.
                Some(_) => false,
                // No :status (possibly dropped as unresolvable): trailers if
                // a body was seen, else treat as the headers.
                None => s.ex.resp_body.total > 0,
            }
        };
        if !trailers {
            match status {
                Some(Some(code)) if (100..200).contains(&code) && code != 101 => {
                    // Informational: the final response follows.
                    return;
                }
                Some(Some(code)) => s.ex.status = Some(code),
                Some(None) => set_error(&mut s.ex, CallError::Malformed("invalid :status")),
                None => {}
            }
            s.resp_headers_done = true;
        }
        let list: &mut Headers = if trailers {
            &mut s.ex.resp_trailers
        } else {
            &mut s.ex.resp_headers
        };
        for (n, v) in fields {
            if n.first() != Some(&b':') {
                list.push((lossy(&n), lossy(&v)));
            }
        }
        if !trailers
            && s.ex
                .resp_header("content-type")
                .is_some_and(is_grpc_content_type)
        {
            s.grpc = true;
        }
        if end_stream {
            self.end_side(Direction::Ingress, id, ts, out);
        }
    }

    fn on_data(&mut self, d: Direction, id: u32, data: &[u8], ts: u64, out: &mut Vec<Exchange>) {
        let limit = self.limits.body_bytes;
        let Some(s) = self.stream_for(d, id, ts, out) else {
            return;
        };
        match d {
            Direction::Egress => {
                s.ex.req_body.push(data, limit);
                if s.grpc {
                    s.req_framer.feed(data, &mut s.req_msgs);
                }
            }
            Direction::Ingress => {
                s.ex.resp_body.push(data, limit);
                s.resp_data_ns = Some(ts);
                if s.grpc {
                    s.resp_framer.feed(data, &mut s.resp_msgs);
                }
            }
        }
    }

    fn on_data_end(&mut self, d: Direction, h: &FrameHeader, ts: u64, out: &mut Vec<Exchange>) {
        if h.flags & F_END_STREAM != 0 {
            self.end_side(d, h.stream, ts, out);
        }
    }
}

impl Parser for Http2Parser {
    fn data(
        &mut self,
        dir: Direction,
        ts_ns: u64,
        bytes: &[u8],
        out: &mut Vec<Exchange>,
    ) -> Progress {
        if !self.dead {
            self.feed(dir, bytes, ts_ns, out);
        }
        Progress::Continue
    }

    fn gap(&mut self, dir: Direction, len: u64, _ts_ns: u64, out: &mut Vec<Exchange>) {
        if self.dead || len == 0 {
            return;
        }
        tracing::debug!(?dir, len, "http2: gap, resynchronising");
        self.lose_sync(dir, None, out);
    }

    fn close(&mut self, _ts_ns: u64, out: &mut Vec<Exchange>) {
        let streams = std::mem::take(&mut self.streams);
        for (_, mut s) in streams {
            if content_length_complete(&s) {
                // The client read the whole body its Content-Length
                // announced and closed before the END_STREAM that followed
                // in its own (empty) frame: complete as the client saw it.
                s.ex.timing.resp_last_ns = s.resp_data_ns;
            } else {
                set_error(&mut s.ex, CallError::Incomplete);
            }
            self.emit(s, out);
        }
        self.dead = true;
        for dir in &mut self.dirs {
            dir.hunt = Vec::new();
            dir.block = None;
        }
    }
}

#[cfg(test)]
mod tests;
