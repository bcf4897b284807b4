//! HTTP/1.x client-side parser: the requests a traced client sent (egress)
//! and the responses it received (ingress), on one connection.
//!
//! Heads are parsed with `httparse`; bodies are streamed through a framing
//! state machine (Content-Length, chunked with trailers, close-delimited),
//! never buffered beyond [`ParserLimits::body_bytes`]. An incomplete head is
//! buffered up to [`ParserLimits::header_bytes`]. Requests queue FIFO and
//! pair with responses in order (pipelining included).
//!
//! After a gap or malformed bytes the parser resynchronises by scanning for
//! the next plausible start line: `METHOD SP target SP HTTP/1.x` on egress
//! (any method at a line start, a known one anywhere in a line), and
//! `HTTP/1.x NNN` anywhere on ingress. Messages follow the previous body
//! directly, and bodies rarely end with a newline.

use std::collections::VecDeque;

use crate::{
    header, Body, CallError, Direction, Exchange, Headers, Parser, ParserLimits, Progress,
    Protocol, UpgradeTo,
};

/// Methods recognised by [`looks_like_request`].
const METHODS: &[&[u8]] = &[
    b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH", b"CONNECT", b"TRACE",
];

/// Longest chunk-size line (size plus extensions) accepted.
const CHUNK_LINE_MAX: usize = 1024;
/// Longest method token accepted while resynchronising.
const METHOD_MAX: usize = 16;
/// Longest request line considered while resynchronising.
const RESYNC_LINE_MAX: usize = 8192;

/// Cheap protocol detection for the connection layer: does this prefix of an
/// egress stream start with a known HTTP/1 method followed by a space?
pub fn looks_like_request(prefix: &[u8]) -> bool {
    METHODS
        .iter()
        .any(|m| prefix.starts_with(m) && prefix.get(m.len()) == Some(&b' '))
}

#[derive(Debug)]
enum Chunk {
    /// Reading a chunk-size line (bytes so far, without the `\n`).
    Size(Vec<u8>),
    /// Inside chunk data; bytes remaining.
    Data(u64),
    /// Expecting the CRLF after chunk data; `true` once the CR was seen.
    DataEnd(bool),
    /// Reading the trailer section; starts with a virtual `\n` so an empty
    /// section (a lone CRLF) is found by the same terminator search as heads.
    Trailers(Vec<u8>),
}

#[derive(Debug)]
enum Framing {
    Length(u64),
    Chunked(Chunk),
    /// Response body ended by the connection closing.
    Close,
}

#[derive(Debug)]
enum State {
    Head,
    Body(Framing),
    Resync,
    /// The connection switched protocols; bytes are no longer ours.
    Upgraded,
}

/// Per-direction parsing state.
#[derive(Debug)]
struct Side {
    state: State,
    /// Bytes of an incomplete head (capped at `header_bytes`).
    head: Vec<u8>,
    /// When the head being read began.
    head_ts: Option<u64>,
    /// Resynchronisation window.
    rs: Vec<u8>,
    /// `rs[0]` is known to begin a line.
    rs_line_start: bool,
    last_ts: Option<u64>,
}

impl Side {
    fn new() -> Self {
        Self {
            state: State::Head,
            head: Vec::new(),
            head_ts: None,
            rs: Vec::new(),
            rs_line_start: true,
            last_ts: None,
        }
    }

    fn resync(&mut self, at_line_start: bool) {
        self.state = State::Resync;
        self.head.clear();
        self.head_ts = None;
        self.rs.clear();
        self.rs_line_start = at_line_start;
    }
}

/// A request waiting for (or receiving) its response.
#[derive(Debug)]
struct Pending {
    id: u64,
    ex: Exchange,
    is_head: bool,
    is_connect: bool,
}

/// HTTP/1.0 and HTTP/1.1 parser for one client connection.
pub struct Http1Parser {
    limits: ParserLimits,
    eg: Side,
    ing: Side,
    /// Requests whose response has not started, oldest first.
    queue: VecDeque<Pending>,
    next_id: u64,
    /// The request whose body egress is currently streaming.
    req_body_id: Option<u64>,
    /// The response whose body ingress is currently streaming.
    resp: Option<Pending>,
    /// First byte of the current response, including interim 1xx heads.
    resp_first_ts: Option<u64>,
    upgrade_req: Option<Exchange>,
    saw_gap: bool,
}

/// What one pass over a byte slice ended with.
enum Step {
    Done,
    /// Upgrade; index just after the 101 head in the slice.
    Upgrade(UpgradeTo, usize),
    /// Resync found a message start: feed these bytes (which end with the
    /// rest of the slice) from the top.
    Reprocess(Vec<u8>),
}

enum HeadStep {
    /// Everything up to `used` was consumed; the head is incomplete.
    NeedMore,
    /// Complete head: `data[from..to]`, or `side.head` when `buffered`.
    Complete {
        from: usize,
        to: usize,
        buffered: bool,
    },
    /// Head exceeds the cap; the first `header_bytes` are in `side.head`.
    /// Parsing resumes at `used`.
    TooLarge { used: usize, at_line_start: bool },
}

enum BodyOutcome {
    NeedMore,
    Done,
    Error(&'static str),
}

/// What the framing needs from a head, computed over all of its headers
/// (not just the kept ones).
#[derive(Debug)]
struct HeadFacts {
    /// `None`: no Transfer-Encoding. `Some(true)`: final coding is chunked.
    chunked: Option<bool>,
    /// `Err` when Content-Length is unparseable or contradictory.
    content_length: Result<Option<u64>, ()>,
    upgrade: Option<String>,
}

#[derive(Debug, Default)]
struct ReqHead {
    ok: bool,
    method: Option<String>,
    path: Option<String>,
    version: Option<u8>,
    headers: Headers,
    facts: HeadFacts,
}

#[derive(Debug, Default)]
struct RespHead {
    ok: bool,
    version: Option<u8>,
    status: Option<u16>,
    headers: Headers,
    facts: HeadFacts,
}

impl Default for HeadFacts {
    fn default() -> Self {
        Self {
            chunked: None,
            content_length: Ok(None),
            upgrade: None,
        }
    }
}

fn set_err(ex: &mut Exchange, e: CallError) {
    if ex.error.is_none() {
        ex.error = Some(e);
    }
}

fn protocol_of(version: Option<u8>) -> Protocol {
    match version {
        Some(0) => Protocol::Http10,
        _ => Protocol::Http11,
    }
}

/// Index just past the end of a head (`\n\n` or `\n\r\n`) in `new`, given
/// the bytes `prev` that precede it.
fn find_head_end(prev: &[u8], new: &[u8]) -> Option<usize> {
    let p1 = prev.last().copied();
    let p2 = prev.len().checked_sub(2).and_then(|i| prev.get(i)).copied();
    let mut from = 0;
    while let Some(rel) = new.get(from..)?.iter().position(|&b| b == b'\n') {
        let i = from + rel;
        let b1 = match i {
            0 => p1,
            _ => new.get(i - 1).copied(),
        };
        let b2 = match i {
            0 => p2,
            1 => p1,
            _ => new.get(i - 2).copied(),
        };
        if b1 == Some(b'\n') || (b1 == Some(b'\r') && b2 == Some(b'\n')) {
            return Some(i + 1);
        }
        from = i + 1;
    }
    None
}

/// Accumulate head bytes from `data`; see [`HeadStep`].
fn take_head(side: &mut Side, data: &[u8], ts: u64, cap: usize) -> HeadStep {
    let mut start = 0;
    if side.head.is_empty() {
        // Blank lines between messages are allowed (and common after bodies).
        start = data
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .unwrap_or(data.len());
        if start == data.len() {
            return HeadStep::NeedMore;
        }
        if side.head_ts.is_none() {
            side.head_ts = Some(ts);
        }
    }
    let new = data.get(start..).unwrap_or(&[]);
    let room = cap.saturating_sub(side.head.len());
    match find_head_end(&side.head, new) {
        Some(end) if end <= room => {
            if side.head.is_empty() {
                HeadStep::Complete {
                    from: start,
                    to: start + end,
                    buffered: false,
                }
            } else {
                side.head.extend_from_slice(&new[..end]);
                HeadStep::Complete {
                    from: 0,
                    to: start + end,
                    buffered: true,
                }
            }
        }
        Some(end) => {
            side.head.extend_from_slice(&new[..room]);
            HeadStep::TooLarge {
                used: start + end,
                at_line_start: true,
            }
        }
        None if new.len() > room => {
            side.head.extend_from_slice(&new[..room]);
            HeadStep::TooLarge {
                used: start + room,
                at_line_start: false,
            }
        }
        None => {
            side.head.extend_from_slice(new);
            HeadStep::NeedMore
        }
    }
}

fn newline_count(b: &[u8]) -> usize {
    b.iter().filter(|&&c| c == b'\n').count()
}

fn convert_headers(hs: &[httparse::Header<'_>], max: usize) -> Headers {
    hs.iter()
        .filter(|h| !h.name.is_empty())
        .take(max)
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect()
}

fn head_facts(hs: &[httparse::Header<'_>]) -> HeadFacts {
    let mut facts = HeadFacts::default();
    let mut te: Option<String> = None;
    for h in hs {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let v = String::from_utf8_lossy(h.value);
            match &mut te {
                Some(t) => {
                    t.push(',');
                    t.push_str(&v);
                }
                None => te = Some(v.into_owned()),
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let prev = facts.content_length;
            facts.content_length = match (prev, parse_content_length(h.value)) {
                (Err(()), _) | (_, Err(())) => Err(()),
                (Ok(None), Ok(n)) => Ok(n),
                (Ok(Some(a)), Ok(Some(b))) if a == b => Ok(Some(a)),
                _ => Err(()),
            };
        } else if h.name.eq_ignore_ascii_case("upgrade") {
            facts.upgrade = Some(String::from_utf8_lossy(h.value).into_owned());
        }
    }
    facts.chunked = te.map(|t| {
        t.split(',')
            .map(str::trim)
            .rfind(|c| !c.is_empty())
            .is_some_and(|c| c.eq_ignore_ascii_case("chunked"))
    });
    facts
}

/// `Content-Length` value: digits, or a list of identical digit runs.
fn parse_content_length(v: &[u8]) -> Result<Option<u64>, ()> {
    let mut out: Option<u64> = None;
    for part in v.split(|&b| b == b',') {
        let part = part.trim_ascii();
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return Err(());
        }
        let mut n: u64 = 0;
        for &d in part {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(d - b'0')))
                .ok_or(())?;
        }
        match out {
            Some(prev) if prev != n => return Err(()),
            _ => out = Some(n),
        }
    }
    Ok(out)
}

fn parse_request_head(head: &[u8], max_headers: usize) -> ReqHead {
    let mut hs = vec![httparse::EMPTY_HEADER; newline_count(head) + 1];
    let mut req = httparse::Request::new(&mut hs);
    let res = httparse::ParserConfig::default()
        .allow_multiple_spaces_in_request_line_delimiters(true)
        .ignore_invalid_headers_in_requests(true)
        .parse_request(&mut req, head);
    let mut out = ReqHead {
        method: req.method.map(str::to_string),
        path: req.path.map(str::to_string),
        version: req.version,
        ..ReqHead::default()
    };
    if let Ok(httparse::Status::Complete(_)) = res {
        out.ok = true;
        out.headers = convert_headers(req.headers, max_headers);
        out.facts = head_facts(req.headers);
    }
    out
}

fn parse_response_head(head: &[u8], max_headers: usize) -> RespHead {
    let mut hs = vec![httparse::EMPTY_HEADER; newline_count(head) + 1];
    let mut resp = httparse::Response::new(&mut hs);
    let res = httparse::ParserConfig::default()
        .allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .ignore_invalid_headers_in_responses(true)
        .parse_response(&mut resp, head);
    let mut out = RespHead {
        version: resp.version,
        status: resp.code,
        ..RespHead::default()
    };
    if let Ok(httparse::Status::Complete(_)) = res {
        out.ok = true;
        out.headers = convert_headers(resp.headers, max_headers);
        out.facts = head_facts(resp.headers);
    }
    out
}

/// Chunk-size line (without `\n`): hex digits, optional `;ext`.
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let size = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or(&[])
        .trim_ascii();
    if size.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &c in size {
        let d = char::from(c).to_digit(16)?;
        n = n.checked_mul(16)?.checked_add(u64::from(d))?;
    }
    Some(n)
}

/// Stream body bytes through the framing. Returns bytes consumed.
fn body_advance(
    fr: &mut Framing,
    data: &[u8],
    limits: &ParserLimits,
    mut target: Option<(&mut Body, &mut Headers)>,
) -> (usize, BodyOutcome) {
    let mut off = 0;
    let push = |bytes: &[u8], target: &mut Option<(&mut Body, &mut Headers)>| {
        if let Some((body, _)) = target {
            body.push(bytes, limits.body_bytes);
        }
    };
    loop {
        let rest = data.get(off..).unwrap_or(&[]);
        match fr {
            Framing::Length(rem) => {
                let take = usize::try_from(*rem).unwrap_or(usize::MAX).min(rest.len());
                push(&rest[..take], &mut target);
                *rem -= take as u64;
                off += take;
                let outcome = if *rem == 0 {
                    BodyOutcome::Done
                } else {
                    BodyOutcome::NeedMore
                };
                return (off, outcome);
            }
            Framing::Close => {
                push(rest, &mut target);
                return (data.len(), BodyOutcome::NeedMore);
            }
            Framing::Chunked(ch) => {
                if rest.is_empty() {
                    return (off, BodyOutcome::NeedMore);
                }
                match ch {
                    Chunk::Size(line) => match rest.iter().position(|&b| b == b'\n') {
                        None => {
                            if line.len().saturating_add(rest.len()) > CHUNK_LINE_MAX {
                                return (data.len(), BodyOutcome::Error("bad_chunk_size"));
                            }
                            line.extend_from_slice(rest);
                            return (data.len(), BodyOutcome::NeedMore);
                        }
                        Some(i) => {
                            if line.len().saturating_add(i) > CHUNK_LINE_MAX {
                                return (off + i + 1, BodyOutcome::Error("bad_chunk_size"));
                            }
                            line.extend_from_slice(&rest[..i]);
                            off += i + 1;
                            *ch = match parse_chunk_size(line) {
                                None => return (off, BodyOutcome::Error("bad_chunk_size")),
                                Some(0) => Chunk::Trailers(vec![b'\n']),
                                Some(n) => Chunk::Data(n),
                            };
                        }
                    },
                    Chunk::Data(rem) => {
                        let take = usize::try_from(*rem).unwrap_or(usize::MAX).min(rest.len());
                        push(&rest[..take], &mut target);
                        *rem -= take as u64;
                        off += take;
                        if *rem == 0 {
                            *ch = Chunk::DataEnd(false);
                        }
                    }
                    Chunk::DataEnd(seen_cr) => match rest.first() {
                        Some(b'\r') if !*seen_cr => {
                            *seen_cr = true;
                            off += 1;
                        }
                        Some(b'\n') => {
                            off += 1;
                            *ch = Chunk::Size(Vec::new());
                        }
                        _ => return (off, BodyOutcome::Error("bad_chunk")),
                    },
                    Chunk::Trailers(buf) => {
                        let room = limits
                            .header_bytes
                            .saturating_add(1)
                            .saturating_sub(buf.len());
                        match find_head_end(buf, rest) {
                            Some(end) if end <= room => {
                                buf.extend_from_slice(&rest[..end]);
                                off += end;
                                let section = buf.get(1..).unwrap_or(&[]);
                                let mut hs = vec![httparse::EMPTY_HEADER; newline_count(section)];
                                if let Ok(httparse::Status::Complete((_, hs))) =
                                    httparse::parse_headers(section, &mut hs)
                                {
                                    if let Some((_, trailers)) = &mut target {
                                        **trailers = convert_headers(hs, limits.headers);
                                    }
                                }
                                return (off, BodyOutcome::Done);
                            }
                            Some(end) => {
                                return (off + end, BodyOutcome::Error("trailers_too_large"))
                            }
                            None if rest.len() > room => {
                                return (data.len(), BodyOutcome::Error("trailers_too_large"))
                            }
                            None => {
                                buf.extend_from_slice(rest);
                                return (data.len(), BodyOutcome::NeedMore);
                            }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum LineMatch {
    Yes,
    Maybe,
    No,
}

/// Is `line` (from a line start; `complete` when its `\n` was seen, which is
/// excluded) a plausible request line?
fn match_request_line(line: &[u8], complete: bool) -> LineMatch {
    let sp = line.iter().position(|&b| b == b' ');
    let method = &line[..sp.unwrap_or(line.len())];
    if method.len() > METHOD_MAX || !method.iter().all(|b| b.is_ascii_uppercase()) {
        return LineMatch::No;
    }
    let Some(sp) = sp else {
        return if complete || method.is_empty() && !line.is_empty() {
            LineMatch::No
        } else {
            LineMatch::Maybe
        };
    };
    if method.is_empty() {
        return LineMatch::No;
    }
    if !complete {
        return if line.len() > RESYNC_LINE_MAX {
            LineMatch::No
        } else {
            LineMatch::Maybe
        };
    }
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let rest = line.get(sp + 1..).unwrap_or(&[]);
    let Some(target) = rest
        .strip_suffix(b" HTTP/1.1")
        .or_else(|| rest.strip_suffix(b" HTTP/1.0"))
    else {
        return LineMatch::No;
    };
    if target.is_empty() || target.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return LineMatch::No;
    }
    LineMatch::Yes
}

/// Does `rest` begin with `HTTP/1.x NNN` and then a space or CR?
fn match_status_line(rest: &[u8]) -> LineMatch {
    const PAT: &[u8] = b"HTTP/1.d ddd";
    for (i, &p) in PAT.iter().enumerate() {
        let Some(&b) = rest.get(i) else {
            return LineMatch::Maybe;
        };
        let ok = if p == b'd' {
            b.is_ascii_digit()
        } else {
            b == p
        };
        if !ok {
            return LineMatch::No;
        }
    }
    match rest.get(PAT.len()) {
        None => LineMatch::Maybe,
        Some(b' ' | b'\r') => LineMatch::Yes,
        Some(_) => LineMatch::No,
    }
}

/// Where a complete egress line (without its `\n`) holds a request line:
/// the whole line when it starts at a line start, or one that begins with a
/// known method after other bytes. The latter happens when a body with no
/// trailing newline is followed by the next request, so a resync that only
/// looked at line starts would never find it again.
fn request_line_start(line: &[u8], at_line_start: bool) -> Option<usize> {
    if at_line_start && match_request_line(line, true) == LineMatch::Yes {
        return Some(0);
    }
    let l = line.strip_suffix(b"\r").unwrap_or(line);
    let rest = l
        .strip_suffix(b" HTTP/1.1")
        .or_else(|| l.strip_suffix(b" HTTP/1.0"))?;
    let sp = rest.iter().rposition(|&b| b == b' ')?;
    let target = &rest[sp + 1..];
    if target.is_empty() || target.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return None;
    }
    let prefix = &rest[..sp];
    METHODS
        .iter()
        .filter(|m| prefix.ends_with(m))
        .map(|m| prefix.len() - m.len())
        .min()
}

/// Does `egress` hold the start of a request anywhere (for a connection
/// joined mid-stream, whose first bytes are the rest of an upload)?
pub fn contains_request_start(egress: &[u8]) -> bool {
    matches!(scan_request(egress, true), Scan::Found(_))
}

/// First position in `tail` (an incomplete line) where a known method and
/// its space begin, or could begin once more bytes arrive.
fn method_in_tail(tail: &[u8]) -> Option<usize> {
    (0..tail.len()).find(|&q| {
        let t = &tail[q..];
        METHODS.iter().any(|m| {
            let n = t.len().min(m.len());
            t[..n] == m[..n] && t.get(m.len()).is_none_or(|&b| b == b' ')
        })
    })
}

enum Scan {
    Found(usize),
    /// A message start could still begin here once more bytes arrive.
    Maybe {
        at: usize,
        line_start: bool,
    },
    None,
}

fn scan_for_start(buf: &[u8], line_start: bool, dir: Direction) -> Scan {
    match dir {
        Direction::Ingress => scan_status(buf),
        Direction::Egress => scan_request(buf, line_start),
    }
}

/// A status line may start anywhere: a response follows the previous body
/// directly, and bodies rarely end with a newline.
fn scan_status(buf: &[u8]) -> Scan {
    let mut p = 0;
    while let Some(i) = buf[p..].iter().position(|&b| b == b'H') {
        let at = p + i;
        match match_status_line(&buf[at..]) {
            LineMatch::Yes => return Scan::Found(at),
            LineMatch::Maybe => {
                return Scan::Maybe {
                    at,
                    line_start: false,
                }
            }
            LineMatch::No => p = at + 1,
        }
    }
    Scan::None
}

fn scan_request(buf: &[u8], line_start: bool) -> Scan {
    let mut p = 0;
    let mut at_line_start = line_start;
    while p < buf.len() {
        let rest = &buf[p..];
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            if at_line_start && match_request_line(rest, false) == LineMatch::Maybe {
                return Scan::Maybe {
                    at: p,
                    line_start: true,
                };
            }
            // Only the last RESYNC_LINE_MAX bytes can still end up in a
            // request line.
            let from = rest.len().saturating_sub(RESYNC_LINE_MAX);
            return match method_in_tail(&rest[from..]) {
                Some(q) => Scan::Maybe {
                    at: p + from + q,
                    line_start: false,
                },
                None => Scan::None,
            };
        };
        if let Some(q) = request_line_start(&rest[..nl], at_line_start) {
            return Scan::Found(p + q);
        }
        p += nl + 1;
        at_line_start = true;
    }
    Scan::None
}

/// Scan `data` for the next message start. `Some(bytes)` to reprocess.
fn resync_step(side: &mut Side, data: &[u8], dir: Direction, cap: usize) -> Option<Vec<u8>> {
    let window = cap.max(64);
    let mut off = 0;
    while off < data.len() {
        let room = window.saturating_sub(side.rs.len()).max(1);
        let take = room.min(data.len() - off);
        side.rs.extend_from_slice(&data[off..off + take]);
        off += take;
        match scan_for_start(&side.rs, side.rs_line_start, dir) {
            Scan::Found(p) => {
                let mut v = side.rs.split_off(p);
                side.rs.clear();
                v.extend_from_slice(&data[off..]);
                side.state = State::Head;
                side.rs_line_start = true;
                return Some(v);
            }
            Scan::Maybe { at, line_start } => {
                side.rs.drain(..at);
                side.rs_line_start = line_start;
                if side.rs.len() >= window {
                    side.rs.clear();
                    side.rs_line_start = false;
                }
            }
            Scan::None => {
                side.rs_line_start = side.rs.last() == Some(&b'\n');
                side.rs.clear();
            }
        }
    }
    None
}

impl Http1Parser {
    pub fn new(limits: ParserLimits) -> Self {
        Self {
            limits,
            eg: Side::new(),
            ing: Side::new(),
            queue: VecDeque::new(),
            next_id: 0,
            req_body_id: None,
            resp: None,
            resp_first_ts: None,
            upgrade_req: None,
            saw_gap: false,
        }
    }

    /// A connection whose start was not seen (adopted, or joined after a
    /// gap): each side first looks for a message start, so leftover body
    /// bytes are skipped instead of being taken for a head. A stream that
    /// does start with one is found at once.
    pub fn mid_stream(limits: ParserLimits) -> Self {
        let mut p = Self::new(limits);
        p.eg.resync(true);
        p.ing.resync(true);
        p
    }

    /// The request that asked for `Upgrade: h2c` and got `101`: its response
    /// arrives on HTTP/2 stream 1, so the HTTP/2 parser finishes it.
    pub fn take_upgrade_request(&mut self) -> Option<Exchange> {
        self.upgrade_req.take()
    }

    fn push_pending(&mut self, p: Pending, out: &mut Vec<Exchange>) {
        while self.queue.len() >= self.limits.pending.max(1) {
            if let Some(mut old) = self.queue.pop_front() {
                set_err(&mut old.ex, CallError::Incomplete);
                out.push(old.ex);
            }
        }
        self.queue.push_back(p);
    }

    fn new_pending(&mut self, ex: Exchange) -> Pending {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let is_head = ex.method.as_deref() == Some("HEAD");
        let is_connect = ex.method.as_deref() == Some("CONNECT");
        Pending {
            id,
            ex,
            is_head,
            is_connect,
        }
    }

    /// A request known only to have existed (lost in a gap, or unparseable).
    fn placeholder(&mut self, head: Option<ReqHead>, err: CallError, ts: u64) -> Pending {
        let head = head.unwrap_or_default();
        let mut ex = Exchange::new(protocol_of(head.version));
        ex.method = head.method;
        ex.path = head.path;
        ex.timing.req_first_ns = self.eg.head_ts.unwrap_or(ts);
        ex.timing.req_last_ns = ts;
        ex.error = Some(err);
        self.new_pending(ex)
    }

    /// The request whose body egress is streaming, wherever it now is.
    fn req_body_target(&mut self) -> Option<&mut Pending> {
        let id = self.req_body_id?;
        if let Some(p) = self.resp.as_mut().filter(|p| p.id == id) {
            return Some(p);
        }
        self.queue.iter_mut().rev().find(|p| p.id == id)
    }

    fn run_egress(&mut self, ts: u64, data: &[u8], out: &mut Vec<Exchange>) -> Step {
        let mut off = 0;
        while off < data.len() {
            let rest = &data[off..];
            let state = std::mem::replace(&mut self.eg.state, State::Head);
            match state {
                State::Upgraded => {
                    self.eg.state = State::Upgraded;
                    return Step::Done;
                }
                State::Resync => {
                    self.eg.state = State::Resync;
                    let cap = self.limits.header_bytes;
                    return match resync_step(&mut self.eg, rest, Direction::Egress, cap) {
                        Some(v) => Step::Reprocess(v),
                        None => Step::Done,
                    };
                }
                State::Body(mut fr) => {
                    let limits = self.limits;
                    let target = self.req_body_target();
                    let (used, outcome) = match target {
                        Some(p) => {
                            p.ex.timing.req_last_ns = ts;
                            body_advance(
                                &mut fr,
                                rest,
                                &limits,
                                Some((&mut p.ex.req_body, &mut p.ex.req_trailers)),
                            )
                        }
                        None => body_advance(&mut fr, rest, &limits, None),
                    };
                    off += used;
                    match outcome {
                        BodyOutcome::NeedMore => self.eg.state = State::Body(fr),
                        BodyOutcome::Done => self.req_body_id = None,
                        BodyOutcome::Error(e) => {
                            if let Some(p) = self.req_body_target() {
                                set_err(&mut p.ex, CallError::Malformed(e));
                            }
                            self.req_body_id = None;
                            self.eg.resync(false);
                        }
                    }
                }
                State::Head => {
                    let cap = self.limits.header_bytes;
                    match take_head(&mut self.eg, rest, ts, cap) {
                        HeadStep::NeedMore => return Step::Done,
                        HeadStep::Complete { from, to, buffered } => {
                            let buf = std::mem::take(&mut self.eg.head);
                            let head = if buffered {
                                parse_request_head(&buf, self.limits.headers)
                            } else {
                                parse_request_head(&rest[from..to], self.limits.headers)
                            };
                            self.eg.head = buf;
                            self.eg.head.clear();
                            off += to;
                            self.on_request(head, ts, out);
                        }
                        HeadStep::TooLarge {
                            used,
                            at_line_start,
                        } => {
                            let head = parse_request_head(&self.eg.head, 0);
                            let p = self.placeholder(
                                Some(head),
                                CallError::Malformed("header_too_large"),
                                ts,
                            );
                            self.push_pending(p, out);
                            off += used;
                            self.eg.resync(at_line_start);
                        }
                    }
                }
            }
        }
        Step::Done
    }

    fn on_request(&mut self, head: ReqHead, ts: u64, out: &mut Vec<Exchange>) {
        let first = self.eg.head_ts.take().unwrap_or(ts);
        if !head.ok {
            // Not HTTP: skip it unless it at least had a request line.
            if head.method.is_some() {
                let mut p = self.placeholder(Some(head), CallError::Malformed("bad_request"), ts);
                p.ex.timing.req_first_ns = first;
                self.push_pending(p, out);
            }
            self.eg.resync(true);
            return;
        }
        let mut ex = Exchange::new(protocol_of(head.version));
        ex.method = head.method;
        ex.path = head.path;
        ex.authority = header(&head.headers, "host").map(str::to_string);
        ex.req_headers = head.headers;
        ex.timing.req_first_ns = first;
        ex.timing.req_last_ns = ts;
        let framing = match (head.facts.chunked, head.facts.content_length) {
            (Some(true), _) => Ok(Some(Framing::Chunked(Chunk::Size(Vec::new())))),
            (Some(false), _) => Err("bad_transfer_encoding"),
            (None, Err(())) => Err("bad_content_length"),
            (None, Ok(Some(n))) if n > 0 => Ok(Some(Framing::Length(n))),
            (None, Ok(_)) => Ok(None),
        };
        let mut p = self.new_pending(ex);
        match framing {
            Ok(Some(fr)) => {
                self.req_body_id = Some(p.id);
                self.eg.state = State::Body(fr);
            }
            Ok(None) => self.eg.state = State::Head,
            Err(e) => {
                set_err(&mut p.ex, CallError::Malformed(e));
                self.eg.resync(true);
            }
        }
        self.push_pending(p, out);
    }

    fn run_ingress(&mut self, ts: u64, data: &[u8], out: &mut Vec<Exchange>) -> Step {
        let mut off = 0;
        while off < data.len() {
            let rest = &data[off..];
            let state = std::mem::replace(&mut self.ing.state, State::Head);
            match state {
                State::Upgraded => {
                    self.ing.state = State::Upgraded;
                    return Step::Done;
                }
                State::Resync => {
                    self.ing.state = State::Resync;
                    let cap = self.limits.header_bytes;
                    return match resync_step(&mut self.ing, rest, Direction::Ingress, cap) {
                        Some(v) => Step::Reprocess(v),
                        None => Step::Done,
                    };
                }
                State::Body(mut fr) => {
                    let limits = self.limits;
                    let (used, outcome) = match self.resp.as_mut() {
                        Some(p) => body_advance(
                            &mut fr,
                            rest,
                            &limits,
                            Some((&mut p.ex.resp_body, &mut p.ex.resp_trailers)),
                        ),
                        None => body_advance(&mut fr, rest, &limits, None),
                    };
                    off += used;
                    match outcome {
                        BodyOutcome::NeedMore => self.ing.state = State::Body(fr),
                        BodyOutcome::Done => self.finish_response(None, ts, out),
                        BodyOutcome::Error(e) => {
                            self.finish_response(Some(CallError::Malformed(e)), ts, out);
                            self.ing.resync(false);
                        }
                    }
                }
                State::Head => {
                    let cap = self.limits.header_bytes;
                    match take_head(&mut self.ing, rest, ts, cap) {
                        HeadStep::NeedMore => {
                            if self.resp_first_ts.is_none() {
                                self.resp_first_ts = self.ing.head_ts;
                            }
                            return Step::Done;
                        }
                        HeadStep::Complete { from, to, buffered } => {
                            let buf = std::mem::take(&mut self.ing.head);
                            let head = if buffered {
                                parse_response_head(&buf, self.limits.headers)
                            } else {
                                parse_response_head(&rest[from..to], self.limits.headers)
                            };
                            self.ing.head = buf;
                            self.ing.head.clear();
                            off += to;
                            if let Some(to) = self.on_response(head, ts, out) {
                                return Step::Upgrade(to, off);
                            }
                        }
                        HeadStep::TooLarge {
                            used,
                            at_line_start,
                        } => {
                            let head = parse_response_head(&self.ing.head, 0);
                            let mut p = self.take_for_response(head.version, ts);
                            p.ex.status = head.status;
                            self.resp = Some(p);
                            self.finish_response(
                                Some(CallError::Malformed("header_too_large")),
                                ts,
                                out,
                            );
                            off += used;
                            self.ing.resync(at_line_start);
                        }
                    }
                }
            }
        }
        Step::Done
    }

    /// The request a response pairs with: the oldest pending one, or an
    /// unpaired record when none is waiting.
    fn take_for_response(&mut self, version: Option<u8>, ts: u64) -> Pending {
        let first = self.resp_first_ts.take().or(self.ing.head_ts.take());
        self.ing.head_ts = None;
        let mut p = match self.queue.pop_front() {
            Some(p) => p,
            None => {
                let mut ex = Exchange::new(protocol_of(version));
                ex.timing.req_first_ns = first.unwrap_or(ts);
                ex.timing.req_last_ns = first.unwrap_or(ts);
                ex.error = Some(if self.saw_gap {
                    CallError::DataLost
                } else {
                    CallError::Malformed("unpaired_response")
                });
                self.new_pending(ex)
            }
        };
        p.ex.timing.resp_first_ns = Some(first.unwrap_or(ts));
        p
    }

    /// Emit the response in progress.
    fn finish_response(&mut self, err: Option<CallError>, ts: u64, out: &mut Vec<Exchange>) {
        if let Some(mut p) = self.resp.take() {
            if let Some(e) = err {
                set_err(&mut p.ex, e);
            }
            p.ex.timing.resp_last_ns = Some(ts);
            if self.req_body_id == Some(p.id) {
                self.req_body_id = None;
            }
            out.push(p.ex);
        }
        self.resp_first_ts = None;
        self.ing.state = State::Head;
    }

    fn on_response(
        &mut self,
        head: RespHead,
        ts: u64,
        out: &mut Vec<Exchange>,
    ) -> Option<UpgradeTo> {
        let status = head.status.unwrap_or(0);
        if head.ok && (100..200).contains(&status) && status != 101 {
            // Interim response (100 Continue, 103 Early Hints): the final
            // response still pairs with the same request.
            if self.resp_first_ts.is_none() {
                self.resp_first_ts = self.ing.head_ts;
            }
            self.ing.head_ts = None;
            self.ing.state = State::Head;
            return None;
        }
        let mut p = self.take_for_response(head.version, ts);
        p.ex.status = head.status;
        if !head.ok {
            self.resp = Some(p);
            self.finish_response(Some(CallError::Malformed("bad_response")), ts, out);
            self.ing.resync(true);
            return None;
        }
        p.ex.resp_headers = head.headers;
        let tunnel = p.is_connect && (200..300).contains(&status);
        if status == 101 || tunnel {
            p.ex.timing.resp_last_ns = Some(ts);
            self.ing.state = State::Upgraded;
            self.eg.state = State::Upgraded;
            self.resp_first_ts = None;
            let h2c =
                status == 101
                    && head.facts.upgrade.as_deref().is_some_and(|u| {
                        u.split(',').any(|t| t.trim().eq_ignore_ascii_case("h2c"))
                    });
            if h2c {
                self.upgrade_req = Some(p.ex);
                return Some(UpgradeTo::H2c);
            }
            out.push(p.ex);
            return Some(UpgradeTo::Other);
        }
        let no_body = p.is_head || (100..200).contains(&status) || status == 204 || status == 304;
        let framing = if no_body {
            None
        } else {
            match (head.facts.chunked, head.facts.content_length) {
                (Some(true), _) => Some(Framing::Chunked(Chunk::Size(Vec::new()))),
                (Some(false), _) => Some(Framing::Close),
                (None, Ok(Some(0))) => None,
                (None, Ok(Some(n))) => Some(Framing::Length(n)),
                (None, Ok(None)) => Some(Framing::Close),
                (None, Err(())) => {
                    set_err(&mut p.ex, CallError::Malformed("bad_content_length"));
                    Some(Framing::Close)
                }
            }
        };
        self.resp = Some(p);
        match framing {
            Some(fr) => self.ing.state = State::Body(fr),
            None => self.finish_response(None, ts, out),
        }
        None
    }

    fn egress_gap(&mut self, len: u64, ts: u64, out: &mut Vec<Exchange>) {
        let state = std::mem::replace(&mut self.eg.state, State::Head);
        let mut spill = len;
        match state {
            State::Upgraded => {
                self.eg.state = State::Upgraded;
                return;
            }
            State::Resync => {
                self.eg.resync(true);
                return;
            }
            State::Body(mut fr) => {
                let rem = match &mut fr {
                    Framing::Length(rem) | Framing::Chunked(Chunk::Data(rem)) => Some(rem),
                    _ => None,
                };
                let target = self.req_body_target();
                if let Some(rem) = rem {
                    let lost = len.min(*rem);
                    *rem -= lost;
                    spill = len - lost;
                    if let Some(p) = target {
                        account_lost(&mut p.ex.req_body, lost);
                        set_err(&mut p.ex, CallError::DataLost);
                        p.ex.timing.req_last_ns = ts;
                    }
                    let body_done = matches!(fr, Framing::Length(0));
                    if spill == 0 {
                        if body_done {
                            self.req_body_id = None;
                        } else {
                            if let Framing::Chunked(ch @ Chunk::Data(0)) = &mut fr {
                                *ch = Chunk::DataEnd(false);
                            }
                            self.eg.state = State::Body(fr);
                        }
                        return;
                    }
                    if !body_done {
                        // The chunked framing was lost past the chunk end.
                        self.req_body_id = None;
                        self.eg.resync(true);
                        return;
                    }
                    self.req_body_id = None;
                } else {
                    if let Some(p) = target {
                        set_err(&mut p.ex, CallError::DataLost);
                        p.ex.timing.req_last_ns = ts;
                    }
                    self.req_body_id = None;
                    self.eg.resync(true);
                    return;
                }
            }
            State::Head => {}
        }
        // Lost bytes where a request head was (or began): a request existed.
        if spill > 0 {
            let partial = (!self.eg.head.is_empty()).then(|| parse_request_head(&self.eg.head, 0));
            let p = self.placeholder(partial, CallError::DataLost, ts);
            self.push_pending(p, out);
            self.eg.resync(true);
        }
    }

    fn ingress_gap(&mut self, len: u64, ts: u64, out: &mut Vec<Exchange>) {
        let state = std::mem::replace(&mut self.ing.state, State::Head);
        let mut spill = len;
        match state {
            State::Upgraded => {
                self.ing.state = State::Upgraded;
                return;
            }
            State::Resync => {
                self.ing.resync(true);
                return;
            }
            State::Body(mut fr) => {
                match &mut fr {
                    Framing::Close => {
                        if let Some(p) = self.resp.as_mut() {
                            account_lost(&mut p.ex.resp_body, len);
                            set_err(&mut p.ex, CallError::DataLost);
                        }
                        self.ing.state = State::Body(fr);
                        return;
                    }
                    Framing::Length(rem) | Framing::Chunked(Chunk::Data(rem)) => {
                        let lost = len.min(*rem);
                        *rem -= lost;
                        spill = len - lost;
                        if let Some(p) = self.resp.as_mut() {
                            account_lost(&mut p.ex.resp_body, lost);
                            set_err(&mut p.ex, CallError::DataLost);
                        }
                    }
                    Framing::Chunked(_) => {
                        self.finish_response(Some(CallError::DataLost), ts, out);
                        self.ing.resync(true);
                        return;
                    }
                }
                let body_done = matches!(fr, Framing::Length(0));
                if spill == 0 {
                    if body_done {
                        self.finish_response(None, ts, out);
                    } else {
                        if let Framing::Chunked(ch @ Chunk::Data(0)) = &mut fr {
                            *ch = Chunk::DataEnd(false);
                        }
                        self.ing.state = State::Body(fr);
                    }
                    return;
                }
                self.finish_response(Some(CallError::DataLost), ts, out);
                if !body_done {
                    self.ing.resync(true);
                    return;
                }
            }
            State::Head => {}
        }
        // Lost bytes where a response head was: the oldest waiting request
        // lost its response.
        if spill > 0 {
            let started = !self.ing.head.is_empty() || self.resp_first_ts.is_some();
            if started || !self.queue.is_empty() {
                let mut p = self.take_for_response(None, ts);
                if !started {
                    p.ex.timing.resp_first_ns = None;
                }
                set_err(&mut p.ex, CallError::DataLost);
                self.resp = Some(p);
                self.finish_response(None, ts, out);
            }
            self.ing.resync(true);
        }
    }
}

fn account_lost(body: &mut Body, lost: u64) {
    body.total = body.total.saturating_add(lost);
    if lost > 0 {
        body.truncated = true;
    }
}

impl Parser for Http1Parser {
    fn take_upgrade_request(&mut self) -> Option<Exchange> {
        Http1Parser::take_upgrade_request(self)
    }

    fn data(
        &mut self,
        dir: Direction,
        ts_ns: u64,
        bytes: &[u8],
        out: &mut Vec<Exchange>,
    ) -> Progress {
        match dir {
            Direction::Egress => self.eg.last_ts = Some(ts_ns),
            Direction::Ingress => self.ing.last_ts = Some(ts_ns),
        }
        let mut replay: Option<Vec<u8>> = None;
        loop {
            let cur: &[u8] = replay.as_deref().unwrap_or(bytes);
            let cur_len = cur.len();
            let step = match dir {
                Direction::Egress => self.run_egress(ts_ns, cur, out),
                Direction::Ingress => self.run_ingress(ts_ns, cur, out),
            };
            match step {
                Step::Done => return Progress::Continue,
                Step::Upgrade(to, idx) => {
                    // `cur` always ends with the unprocessed tail of `bytes`.
                    let consumed = idx
                        .saturating_add(bytes.len())
                        .saturating_sub(cur_len)
                        .min(bytes.len());
                    return Progress::Upgrade { to, consumed };
                }
                Step::Reprocess(v) => replay = Some(v),
            }
        }
    }

    fn gap(&mut self, dir: Direction, len: u64, ts_ns: u64, out: &mut Vec<Exchange>) {
        self.saw_gap = true;
        match dir {
            Direction::Egress => self.egress_gap(len, ts_ns, out),
            Direction::Ingress => self.ingress_gap(len, ts_ns, out),
        }
    }

    fn close(&mut self, ts_ns: u64, out: &mut Vec<Exchange>) {
        if self.resp.is_some() {
            let close_delimited = matches!(self.ing.state, State::Body(Framing::Close));
            let last = self.ing.last_ts.unwrap_or(ts_ns);
            let err = (!close_delimited).then_some(CallError::Incomplete);
            self.finish_response(err, last, out);
        }
        let resp_started = !self.ing.head.is_empty() || self.resp_first_ts.is_some();
        let first_ts = self.resp_first_ts.take().or(self.ing.head_ts.take());
        for (i, mut p) in std::mem::take(&mut self.queue).into_iter().enumerate() {
            if i == 0 && resp_started {
                p.ex.timing.resp_first_ns = first_ts;
            }
            set_err(&mut p.ex, CallError::Incomplete);
            out.push(p.ex);
        }
        if !self.eg.head.is_empty() {
            let head = parse_request_head(&self.eg.head, self.limits.headers);
            if head.method.is_some() {
                let p = self.placeholder(Some(head), CallError::Incomplete, ts_ns);
                out.push(p.ex);
            }
        }
        let upgraded = matches!(self.eg.state, State::Upgraded);
        self.eg = Side::new();
        self.ing = Side::new();
        if upgraded {
            self.eg.state = State::Upgraded;
            self.ing.state = State::Upgraded;
        }
        self.req_body_id = None;
        self.resp_first_ts = None;
    }
}

#[cfg(test)]
mod tests;
