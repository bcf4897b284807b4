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

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet, VecDeque};

use crate::hpack::{HpackDecoder, ListLimits};
use crate::{
    CallError, Direction, Exchange, GrpcInfo, Headers, Parser, ParserLimits, Progress, Protocol,
};

/// The client connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const FRAME_HEADER_LEN: usize = 9;
const DEFAULT_MAX_FRAME: u32 = 16_384;
/// The 24-bit length field's maximum (16 MiB - 1).
const MAX_FRAME_LIMIT: u32 = (1 << 24) - 1;
/// Consecutive plausible frame headers required to trust a boundary.
const HUNT_FRAMES: usize = 3;
/// Bytes kept while hunting for a boundary; older bytes are given up.
const HUNT_BUF_MAX: usize = 4 * (DEFAULT_MAX_FRAME as usize + FRAME_HEADER_LEN);
/// Payload bytes kept of control frames (SETTINGS, GOAWAY, ...).
const CONTROL_KEEP: usize = 1024;
/// gRPC message sizes kept per direction per call.
pub const MAX_GRPC_MESSAGES: usize = 256;
/// Finished stream ids remembered, so late frames do not reopen them.
const RECENT_CLOSED: usize = 1024;
/// Malformed-input resyncs tolerated before giving up on a connection.
const MAX_MALFORMED: u32 = 16;

const T_DATA: u8 = 0x0;
const T_HEADERS: u8 = 0x1;
const T_PRIORITY: u8 = 0x2;
const T_RST_STREAM: u8 = 0x3;
const T_SETTINGS: u8 = 0x4;
const T_PUSH_PROMISE: u8 = 0x5;
const T_PING: u8 = 0x6;
const T_GOAWAY: u8 = 0x7;
const T_WINDOW_UPDATE: u8 = 0x8;
const T_CONTINUATION: u8 = 0x9;

const F_END_STREAM: u8 = 0x1;
const F_ACK: u8 = 0x1;
const F_END_HEADERS: u8 = 0x4;
const F_PADDED: u8 = 0x8;
const F_PRIORITY: u8 = 0x20;

const S_HEADER_TABLE_SIZE: u16 = 0x1;
const S_MAX_FRAME_SIZE: u16 = 0x5;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FrameHeader {
    len: u32,
    ty: u8,
    flags: u8,
    stream: u32,
}

fn parse_frame_header(b: &[u8]) -> Option<FrameHeader> {
    let h: &[u8; FRAME_HEADER_LEN] = b.get(..FRAME_HEADER_LEN)?.try_into().ok()?;
    Some(FrameHeader {
        len: u32::from_be_bytes([0, h[0], h[1], h[2]]),
        ty: h[3],
        flags: h[4],
        stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
    })
}

fn reserved_bit(b: &[u8]) -> bool {
    b.get(5).is_some_and(|x| x & 0x80 != 0)
}

/// Rules any frame must satisfy, synced or not. `Err` names the violation.
fn check_frame(h: &FrameHeader, max_len: u32) -> Result<(), &'static str> {
    if h.len > max_len {
        return Err("frame too large");
    }
    let on_stream = h.stream != 0;
    match h.ty {
        T_DATA | T_HEADERS | T_CONTINUATION | T_PUSH_PROMISE if !on_stream => {
            Err("stream frame on stream 0")
        }
        T_PRIORITY if !on_stream || h.len != 5 => Err("bad PRIORITY"),
        T_RST_STREAM if !on_stream || h.len != 4 => Err("bad RST_STREAM"),
        T_SETTINGS if on_stream || h.len % 6 != 0 || (h.flags & F_ACK != 0 && h.len != 0) => {
            Err("bad SETTINGS")
        }
        T_PING if on_stream || h.len != 8 => Err("bad PING"),
        T_GOAWAY if on_stream || h.len < 8 => Err("bad GOAWAY"),
        T_WINDOW_UPDATE if h.len != 4 => Err("bad WINDOW_UPDATE"),
        _ => Ok(()),
    }
}

/// Stricter test used when hunting for a boundary: known type, only defined
/// flags, reserved bit clear, direction-specific rules.
fn plausible(raw: &[u8], h: &FrameHeader, dir: Option<Direction>, max_len: u32) -> bool {
    if reserved_bit(raw) || check_frame(h, max_len).is_err() {
        return false;
    }
    let allowed_flags = match h.ty {
        T_DATA => F_END_STREAM | F_PADDED,
        T_HEADERS => F_END_STREAM | F_END_HEADERS | F_PADDED | F_PRIORITY,
        T_PRIORITY | T_RST_STREAM | T_GOAWAY | T_WINDOW_UPDATE => 0,
        T_SETTINGS | T_PING => F_ACK,
        T_PUSH_PROMISE => F_END_HEADERS | F_PADDED,
        T_CONTINUATION => F_END_HEADERS,
        _ => return false,
    };
    if h.flags & !allowed_flags != 0 {
        return false;
    }
    if h.ty == T_HEADERS {
        let mut min = 0u32;
        if h.flags & F_PADDED != 0 {
            min += 1;
        }
        if h.flags & F_PRIORITY != 0 {
            min += 5;
        }
        if h.len < min {
            return false;
        }
    }
    if dir == Some(Direction::Egress) {
        if h.ty == T_PUSH_PROMISE {
            return false;
        }
        if matches!(h.ty, T_DATA | T_HEADERS) && h.stream % 2 == 0 {
            return false;
        }
    }
    true
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Accept,
    NeedMore,
    Reject,
}

/// Is there a trustworthy chain of frames starting at `start`?
fn chain(buf: &[u8], start: usize, dir: Option<Direction>, max_len: u32) -> Verdict {
    let mut p = start;
    let mut n = 0usize;
    loop {
        if n >= HUNT_FRAMES {
            return Verdict::Accept;
        }
        if p == buf.len() && (n >= 2 || (n >= 1 && start == 0)) {
            return Verdict::Accept;
        }
        let Some(raw) = p
            .checked_add(FRAME_HEADER_LEN)
            .and_then(|end| buf.get(p..end))
        else {
            // The next header, or the last frame's payload, is still arriving.
            return Verdict::NeedMore;
        };
        let Some(h) = parse_frame_header(raw) else {
            return Verdict::NeedMore;
        };
        if !plausible(raw, &h, dir, max_len) {
            return Verdict::Reject;
        }
        p = match p.checked_add(FRAME_HEADER_LEN + h.len as usize) {
            Some(x) => x,
            None => return Verdict::Reject,
        };
        n += 1;
    }
}

/// True when `prefix` starts like the HTTP/2 client preface. Prefixes
/// shorter than 4 bytes are ambiguous (`PRI ` vs `POST`, `PUT `) → false.
pub fn looks_like_preface(prefix: &[u8]) -> bool {
    let n = prefix.len().min(PREFACE.len());
    n >= 4 && prefix.get(..n) == PREFACE.get(..n)
}

/// True when `prefix` starts with plausible HTTP/2 frames (for connections
/// whose start was not seen). Needs at least one complete frame header.
pub fn looks_like_frames(prefix: &[u8]) -> bool {
    if prefix.len() < FRAME_HEADER_LEN {
        return false;
    }
    match chain(prefix, 0, None, DEFAULT_MAX_FRAME) {
        Verdict::Accept => true,
        // Every complete header seen so far was plausible.
        Verdict::NeedMore => true,
        Verdict::Reject => false,
    }
}

/// For a direction joined mid-connection: does its first HEADERS frame
/// carry a response (`Some(true)`: first field `:status`) or a request
/// (`Some(false)`: `:method`, `:scheme`, `:path` or `:authority`)? Only
/// static-table references are used, so no HPACK state is needed; `None`
/// when no HEADERS frame is seen or its first field says nothing.
pub fn first_headers_is_response(frames: &[u8]) -> Option<bool> {
    let mut p = 0usize;
    while let Some(h) = frames.get(p..).and_then(parse_frame_header) {
        let payload = p + FRAME_HEADER_LEN;
        if h.ty == T_HEADERS {
            let mut q = payload;
            if h.flags & F_PADDED != 0 {
                q += 1;
            }
            if h.flags & F_PRIORITY != 0 {
                q += 5;
            }
            let b = *frames.get(q)?;
            let idx = if b & 0x80 != 0 {
                b & 0x7f
            } else if b & 0xc0 == 0x40 {
                b & 0x3f
            } else if b & 0xe0 == 0 || b & 0xf0 == 0x10 {
                b & 0x0f
            } else {
                return None;
            };
            return match idx {
                1..=7 => Some(false),
                8..=14 => Some(true),
                _ => None,
            };
        }
        p = payload.checked_add(h.len as usize)?;
    }
    None
}

#[derive(Debug)]
enum Mode {
    /// Expecting the client preface; bytes matched so far.
    Preface(usize),
    /// Reading a 9-byte frame header.
    Header {
        buf: [u8; FRAME_HEADER_LEN],
        have: usize,
    },
    /// Streaming a DATA payload.
    Data {
        h: FrameHeader,
        /// Payload bytes still to read.
        left: u32,
        /// Trailing padding length (known once the pad length byte is read).
        pad: u32,
        need_pad_len: bool,
    },
    /// Collecting a non-DATA payload, keeping at most `cap` bytes.
    Buffered {
        h: FrameHeader,
        buf: Vec<u8>,
        left: u32,
        cap: usize,
    },
    /// Looking for a frame boundary.
    Hunting,
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

/// gRPC length-prefixed message framing across DATA frames.
#[derive(Debug, Default)]
struct GrpcFramer {
    hdr: [u8; 5],
    have: usize,
    remaining: u64,
    broken: bool,
}

impl GrpcFramer {
    fn feed(&mut self, mut b: &[u8], sizes: &mut Vec<u32>) {
        while !self.broken && !b.is_empty() {
            if self.remaining > 0 {
                let take = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(b.len());
                self.remaining -= take as u64;
                b = b.get(take..).unwrap_or_default();
                continue;
            }
            let take = (5 - self.have).min(b.len());
            if let (Some(dst), Some(src)) =
                (self.hdr.get_mut(self.have..self.have + take), b.get(..take))
            {
                dst.copy_from_slice(src);
            }
            self.have += take;
            b = b.get(take..).unwrap_or_default();
            if self.have == 5 {
                let len = u32::from_be_bytes([self.hdr[1], self.hdr[2], self.hdr[3], self.hdr[4]]);
                if sizes.len() < MAX_GRPC_MESSAGES {
                    sizes.push(len);
                }
                self.remaining = u64::from(len);
                self.have = 0;
            }
        }
    }
}

#[derive(Debug)]
struct Stream {
    ex: Exchange,
    req_headers_done: bool,
    req_ended: bool,
    resp_headers_done: bool,
    resp_ended: bool,
    /// When the last response DATA arrived.
    resp_data_ns: Option<u64>,
    grpc: bool,
    req_msgs: Vec<u32>,
    resp_msgs: Vec<u32>,
    req_framer: GrpcFramer,
    resp_framer: GrpcFramer,
}

impl Stream {
    fn new(id: u32, ts: u64) -> Self {
        let mut ex = Exchange::new(Protocol::Http2);
        ex.stream_id = Some(id);
        ex.timing.req_first_ns = ts;
        ex.timing.req_last_ns = ts;
        Self {
            ex,
            req_headers_done: false,
            req_ended: false,
            resp_headers_done: false,
            resp_ended: false,
            resp_data_ns: None,
            grpc: false,
            req_msgs: Vec::new(),
            resp_msgs: Vec::new(),
            req_framer: GrpcFramer::default(),
            resp_framer: GrpcFramer::default(),
        }
    }

    fn lost_data(&mut self) {
        set_error(&mut self.ex, CallError::DataLost);
        self.req_framer.broken = true;
        self.resp_framer.broken = true;
    }
}

/// Which error wins when several apply: the most specific fact.
fn rank(e: &CallError) -> u8 {
    match e {
        CallError::Degraded => 1,
        CallError::Incomplete => 2,
        CallError::DataLost => 3,
        CallError::GoAway(_) => 4,
        CallError::Reset(_) => 5,
        CallError::Malformed(_) => 6,
    }
}

/// The response announced a Content-Length and exactly that much body
/// arrived, with nothing lost on the way (loss sets an error).
fn content_length_complete(s: &Stream) -> bool {
    s.resp_headers_done
        && s.ex.error.is_none()
        && s.ex
            .resp_header("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n == s.ex.resp_body.total && s.resp_data_ns.is_some())
}

/// A reset that ends a stream whose response was already whole is not a
/// failure: the client read every byte its Content-Length announced and
/// reset the stream (curl: STREAM_CLOSED) before a separate END_STREAM
/// frame arrived, or the server, done answering, tells the client to stop
/// sending the request with NO_ERROR (RFC 9113 8.1).
fn finished_before_reset(s: &Stream, d: Direction, code: u32) -> bool {
    match d {
        Direction::Egress => content_length_complete(s),
        Direction::Ingress => code == 0 && s.resp_ended && s.ex.error.is_none(),
    }
}

fn set_error(ex: &mut Exchange, e: CallError) {
    if ex.error.as_ref().is_none_or(|cur| rank(&e) > rank(cur)) {
        ex.error = Some(e);
    }
}

fn idx(d: Direction) -> usize {
    match d {
        Direction::Egress => 0,
        Direction::Ingress => 1,
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

fn is_grpc_content_type(v: &str) -> bool {
    v.len() >= 16
        && v.get(..16)
            .is_some_and(|p| p.eq_ignore_ascii_case("application/grpc"))
}

/// `/pkg.Service/Method` → (`pkg.Service`, `Method`).
fn grpc_service_method(path: &str) -> (Option<String>, Option<String>) {
    match path.strip_prefix('/').and_then(|p| p.split_once('/')) {
        Some((s, m)) if !s.is_empty() && !m.is_empty() => (Some(s.into()), Some(m.into())),
        _ => (None, None),
    }
}

/// gRPC's `grpc-message` is percent-encoded UTF-8.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = hex {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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
        &mut self.dirs[idx(d)]
    }

    fn header_mode() -> Mode {
        Mode::Header {
            buf: [0; FRAME_HEADER_LEN],
            have: 0,
        }
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

    /// Find a trustworthy frame boundary in the hunt buffer; trims bytes
    /// that cannot start one and keeps the buffer bounded.
    fn try_lock(&mut self, d: Direction) -> Option<usize> {
        let max_len = self.dir(d).max_frame.unwrap_or(DEFAULT_MAX_FRAME);
        let dir = self.dir(d);
        let buf = &dir.hunt;
        let mut i = 0usize;
        let mut keep_from = None;
        while i < buf.len() {
            match chain(buf, i, Some(d), max_len) {
                Verdict::Accept => return Some(i),
                Verdict::NeedMore => {
                    if buf.len() - i <= HUNT_BUF_MAX {
                        keep_from = Some(i);
                        break;
                    }
                    // Waited too long for this candidate: give it up.
                }
                Verdict::Reject => {}
            }
            i += 1;
        }
        let from = keep_from.unwrap_or(buf.len());
        dir.hunt.drain(..from.min(dir.hunt.len()));
        None
    }

    /// Consume a prefix of `input` in synced mode; returns bytes used. Uses
    /// 0 bytes only when the direction just lost sync.
    fn step(&mut self, d: Direction, input: &[u8], ts: u64, out: &mut Vec<Exchange>) -> usize {
        let mode = std::mem::replace(&mut self.dir(d).mode, Mode::Hunting);
        match mode {
            Mode::Hunting => 0,
            Mode::Preface(m) => {
                let want = PREFACE.get(m..).unwrap_or_default();
                let n = want.len().min(input.len());
                if input.get(..n) == want.get(..n) {
                    let m = m + n;
                    self.dir(d).mode = if m >= PREFACE.len() {
                        Self::header_mode()
                    } else {
                        Mode::Preface(m)
                    };
                    n
                } else {
                    self.lose_sync(d, Some("bad preface"), out);
                    0
                }
            }
            Mode::Header { mut buf, have } => {
                let n = (FRAME_HEADER_LEN - have).min(input.len());
                if let (Some(dst), Some(src)) = (buf.get_mut(have..have + n), input.get(..n)) {
                    dst.copy_from_slice(src);
                }
                let have = have + n;
                if have < FRAME_HEADER_LEN {
                    self.dir(d).mode = Mode::Header { buf, have };
                } else {
                    self.dir(d).mode = Self::header_mode();
                    match parse_frame_header(&buf) {
                        Some(h) => self.begin_frame(d, h, ts, out),
                        None => self.lose_sync(d, Some("frame header"), out),
                    }
                }
                n
            }
            Mode::Data {
                h,
                mut left,
                mut pad,
                mut need_pad_len,
            } => {
                let mut used = 0usize;
                if need_pad_len {
                    let Some(&p) = input.first() else {
                        self.dir(d).mode = Mode::Data {
                            h,
                            left,
                            pad,
                            need_pad_len,
                        };
                        return 0;
                    };
                    used = 1;
                    left -= 1;
                    need_pad_len = false;
                    pad = u32::from(p);
                    if pad > left {
                        // Framing is intact; only this frame is bad.
                        self.stats.malformed += 1;
                        self.mark(h.stream, CallError::Malformed("DATA padding"));
                        if left == 0 {
                            self.dir(d).mode = Self::header_mode();
                        } else {
                            self.dir(d).mode = Mode::Buffered {
                                h,
                                buf: Vec::new(),
                                left,
                                cap: 0,
                            };
                        }
                        return used;
                    }
                }
                let rest = input.get(used..).unwrap_or_default();
                let data_left = left - pad;
                let take_data = (data_left as usize).min(rest.len());
                let data = rest.get(..take_data).unwrap_or_default();
                let after = rest.get(take_data..).unwrap_or_default();
                let take_pad = if take_data as u32 == data_left {
                    (pad as usize).min(after.len())
                } else {
                    0
                };
                left -= take_data as u32;
                left -= take_pad as u32;
                if take_data == data_left as usize {
                    pad -= take_pad as u32;
                }
                used += take_data + take_pad;
                let done = left == 0;
                self.dir(d).mode = if done {
                    Self::header_mode()
                } else {
                    Mode::Data {
                        h,
                        left,
                        pad,
                        need_pad_len,
                    }
                };
                if !data.is_empty() {
                    self.on_data(d, h.stream, data, ts, out);
                }
                if done {
                    self.on_data_end(d, &h, ts, out);
                }
                used
            }
            Mode::Buffered {
                h,
                mut buf,
                left,
                cap,
            } => {
                let take = (left as usize).min(input.len());
                let keep = take.min(cap.saturating_sub(buf.len()));
                buf.extend_from_slice(input.get(..keep).unwrap_or_default());
                let left = left - take as u32;
                if left == 0 {
                    self.dir(d).mode = Self::header_mode();
                    self.end_frame(d, h, buf, ts, out);
                } else {
                    self.dir(d).mode = Mode::Buffered { h, buf, left, cap };
                }
                take
            }
        }
    }

    fn lose_sync(
        &mut self,
        d: Direction,
        malformed: Option<&'static str>,
        out: &mut Vec<Exchange>,
    ) {
        self.stats.resyncs += 1;
        self.partial = true;
        let in_data = match self.dir(d).mode {
            Mode::Data { h, .. } => Some(h.stream),
            _ => None,
        };
        let dir = self.dir(d);
        dir.mode = Mode::Hunting;
        dir.hunt.clear();
        dir.block = None;
        dir.hpack.set_unreliable();
        if let Some(id) = in_data {
            if let Some(s) = self.streams.get_mut(&id) {
                match d {
                    Direction::Egress => s.ex.req_body.truncated = true,
                    Direction::Ingress => s.ex.resp_body.truncated = true,
                }
            }
        }
        match malformed {
            Some(why) => {
                tracing::debug!(why, "http2: malformed input, resynchronising");
                self.stats.malformed += 1;
                self.malformed_events += 1;
                for s in self.streams.values_mut() {
                    set_error(&mut s.ex, CallError::Malformed(why));
                    s.req_framer.broken = true;
                    s.resp_framer.broken = true;
                }
                if self.malformed_events > MAX_MALFORMED {
                    self.give_up(out);
                }
            }
            None => {
                for s in self.streams.values_mut() {
                    s.lost_data();
                }
            }
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

    // ---- frames ---------------------------------------------------------

    fn begin_frame(&mut self, d: Direction, h: FrameHeader, ts: u64, out: &mut Vec<Exchange>) {
        // A header block must be followed only by its CONTINUATIONs.
        if let Some(b) = &self.dir(d).block {
            if !(h.ty == T_CONTINUATION && h.stream == b.stream) {
                let id = b.stream;
                let dir = self.dir(d);
                dir.block = None;
                dir.hpack.set_unreliable();
                self.stats.malformed += 1;
                self.mark(id, CallError::Malformed("interleaved header block"));
            }
        }
        let max_len = self.dir(d).max_frame.unwrap_or(MAX_FRAME_LIMIT);
        if let Err(why) = check_frame(&h, max_len) {
            self.lose_sync(d, Some(why), out);
            return;
        }
        if d == Direction::Ingress && matches!(h.ty, T_DATA | T_HEADERS | T_RST_STREAM) {
            if let Some(s) = self.streams.get_mut(&h.stream) {
                s.ex.timing.resp_first_ns.get_or_insert(ts);
            }
        }
        let header_cap = self.limits.header_bytes.saturating_add(6);
        let mode = match h.ty {
            T_DATA => {
                if h.len == 0 {
                    self.on_data_end(d, &h, ts, out);
                    return;
                }
                Mode::Data {
                    h,
                    left: h.len,
                    pad: 0,
                    need_pad_len: h.flags & F_PADDED != 0,
                }
            }
            T_HEADERS | T_CONTINUATION | T_PUSH_PROMISE => {
                let cap = if h.len as usize > header_cap {
                    0
                } else {
                    h.len as usize
                };
                Mode::Buffered {
                    h,
                    buf: Vec::with_capacity(cap),
                    left: h.len,
                    cap,
                }
            }
            T_SETTINGS | T_GOAWAY | T_RST_STREAM => Mode::Buffered {
                h,
                buf: Vec::new(),
                left: h.len,
                cap: CONTROL_KEEP,
            },
            // PING, PRIORITY, WINDOW_UPDATE and unknown types: skip.
            _ => Mode::Buffered {
                h,
                buf: Vec::new(),
                left: h.len,
                cap: 0,
            },
        };
        if h.len == 0 {
            self.end_frame(d, h, Vec::new(), ts, out);
        } else {
            self.dir(d).mode = mode;
        }
    }

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

    fn end_side(&mut self, d: Direction, id: u32, ts: u64, out: &mut Vec<Exchange>) {
        let Some(s) = self.stream_for(d, id, ts, out) else {
            return;
        };
        match d {
            Direction::Egress => {
                s.req_ended = true;
                s.ex.timing.req_last_ns = ts;
            }
            Direction::Ingress => {
                s.resp_ended = true;
                s.ex.timing.resp_first_ns.get_or_insert(ts);
                s.ex.timing.resp_last_ns = Some(ts);
            }
        }
        if s.req_ended && s.resp_ended {
            if let Some(s) = self.streams.remove(&id) {
                self.emit(s, out);
            }
        }
    }

    // ---- streams --------------------------------------------------------

    /// The open stream `id`, or a new degraded one when the connection is
    /// partial (start unseen or bytes lost) and `id` is not known finished.
    fn stream_for(
        &mut self,
        d: Direction,
        id: u32,
        ts: u64,
        out: &mut Vec<Exchange>,
    ) -> Option<&mut Stream> {
        if !self.streams.contains_key(&id) {
            if !self.partial || id % 2 == 0 || id == 0 || self.recent_set.contains(&id) {
                return None;
            }
            let mut s = Stream::new(id, ts);
            // The request (or its start) was never seen.
            s.req_headers_done = true;
            s.req_ended = d == Direction::Ingress;
            if d == Direction::Ingress {
                s.ex.timing.resp_first_ns = Some(ts);
            }
            set_error(
                &mut s.ex,
                if self.mid {
                    CallError::Degraded
                } else {
                    CallError::DataLost
                },
            );
            s.req_framer.broken = true;
            s.resp_framer.broken = true;
            self.open(id, s, out);
        }
        self.streams.get_mut(&id)
    }

    fn open(&mut self, id: u32, s: Stream, out: &mut Vec<Exchange>) {
        let cap = self.limits.pending.max(1);
        while self.streams.len() >= cap {
            let Some((_, mut old)) = self.streams.pop_first() else {
                break;
            };
            self.stats.evicted_streams += 1;
            set_error(&mut old.ex, CallError::Incomplete);
            self.emit(old, out);
        }
        if id % 2 == 1 {
            self.max_client_stream = self.max_client_stream.max(id);
        }
        self.streams.insert(id, s);
    }

    fn mark(&mut self, id: u32, e: CallError) {
        if let Some(s) = self.streams.get_mut(&id) {
            set_error(&mut s.ex, e);
        }
    }

    fn mark_or_open(
        &mut self,
        d: Direction,
        id: u32,
        ts: u64,
        e: CallError,
        out: &mut Vec<Exchange>,
    ) {
        if d == Direction::Egress
            && id % 2 == 1
            && !self.streams.contains_key(&id)
            && !self.recent_set.contains(&id)
        {
            let mut s = Stream::new(id, ts);
            s.req_headers_done = true;
            self.open(id, s, out);
        }
        self.mark(id, e);
    }

    fn remember(&mut self, id: u32) {
        if self.recent_set.insert(id) {
            self.recent.push_back(id);
            while self.recent.len() > RECENT_CLOSED {
                if let Some(old) = self.recent.pop_front() {
                    self.recent_set.remove(&old);
                }
            }
        }
    }

    fn emit(&mut self, s: Stream, out: &mut Vec<Exchange>) {
        let Stream {
            mut ex,
            grpc,
            req_msgs,
            resp_msgs,
            ..
        } = s;
        if let Some(id) = ex.stream_id {
            self.remember(id);
        }
        if grpc {
            let (service, method) = ex.path.as_deref().map_or((None, None), grpc_service_method);
            let status_src = crate::header(&ex.resp_trailers, "grpc-status")
                .or_else(|| ex.resp_header("grpc-status"));
            let msg_src = crate::header(&ex.resp_trailers, "grpc-message")
                .or_else(|| ex.resp_header("grpc-message"));
            ex.grpc = Some(GrpcInfo {
                service,
                method,
                status: status_src.and_then(|v| v.trim().parse().ok()),
                message: msg_src.map(percent_decode),
                req_messages: req_msgs,
                resp_messages: resp_msgs,
            });
        }
        out.push(ex);
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
