//! Finding frame boundaries where the start of a direction was not seen
//! (capture began mid-connection) or bytes were lost. A candidate boundary
//! is trusted only once several consecutive frame headers are plausible
//! (type, flags, length, stream id), or a plausible chain ends exactly where
//! the captured bytes end. Also the checks the connection layer makes on
//! connections it joined late.

use super::frames::*;
use super::{set_error, Http2Parser};
use crate::{CallError, Direction, Exchange};

/// Consecutive plausible frame headers required to trust a boundary.
const HUNT_FRAMES: usize = 3;
/// Bytes kept while hunting for a boundary; older bytes are given up.
pub(super) const HUNT_BUF_MAX: usize = 4 * (DEFAULT_MAX_FRAME as usize + FRAME_HEADER_LEN);
/// Malformed-input resyncs tolerated before giving up on a connection.
const MAX_MALFORMED: u32 = 16;

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

impl Http2Parser {
    /// Find a trustworthy frame boundary in the hunt buffer; trims bytes
    /// that cannot start one and keeps the buffer bounded.
    pub(super) fn try_lock(&mut self, d: Direction) -> Option<usize> {
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

    pub(super) fn lose_sync(
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
}
