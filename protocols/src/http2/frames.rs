//! HTTP/2 framing: the wire constants, the 9-byte frame header and the
//! rules every frame must satisfy, and the reading state machine (`Mode`)
//! that turns one direction's bytes into frames. DATA payloads are
//! streamed, never buffered; other payloads are collected up to a cap.

use super::Http2Parser;
use crate::{CallError, Direction, Exchange};

/// The client connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub(super) const FRAME_HEADER_LEN: usize = 9;
pub(super) const DEFAULT_MAX_FRAME: u32 = 16_384;
/// The 24-bit length field's maximum (16 MiB - 1).
pub(super) const MAX_FRAME_LIMIT: u32 = (1 << 24) - 1;
/// Payload bytes kept of control frames (SETTINGS, GOAWAY, ...).
pub(super) const CONTROL_KEEP: usize = 1024;

pub(super) const T_DATA: u8 = 0x0;
pub(super) const T_HEADERS: u8 = 0x1;
pub(super) const T_PRIORITY: u8 = 0x2;
pub(super) const T_RST_STREAM: u8 = 0x3;
pub(super) const T_SETTINGS: u8 = 0x4;
pub(super) const T_PUSH_PROMISE: u8 = 0x5;
pub(super) const T_PING: u8 = 0x6;
pub(super) const T_GOAWAY: u8 = 0x7;
pub(super) const T_WINDOW_UPDATE: u8 = 0x8;
pub(super) const T_CONTINUATION: u8 = 0x9;

pub(super) const F_END_STREAM: u8 = 0x1;
pub(super) const F_ACK: u8 = 0x1;
pub(super) const F_END_HEADERS: u8 = 0x4;
pub(super) const F_PADDED: u8 = 0x8;
pub(super) const F_PRIORITY: u8 = 0x20;

pub(super) const S_HEADER_TABLE_SIZE: u16 = 0x1;
pub(super) const S_MAX_FRAME_SIZE: u16 = 0x5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FrameHeader {
    pub(super) len: u32,
    pub(super) ty: u8,
    pub(super) flags: u8,
    pub(super) stream: u32,
}

pub(super) fn parse_frame_header(b: &[u8]) -> Option<FrameHeader> {
    let h: &[u8; FRAME_HEADER_LEN] = b.get(..FRAME_HEADER_LEN)?.try_into().ok()?;
    Some(FrameHeader {
        len: u32::from_be_bytes([0, h[0], h[1], h[2]]),
        ty: h[3],
        flags: h[4],
        stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
    })
}

pub(super) fn reserved_bit(b: &[u8]) -> bool {
    b.get(5).is_some_and(|x| x & 0x80 != 0)
}

/// Rules any frame must satisfy, synced or not. `Err` names the violation.
pub(super) fn check_frame(h: &FrameHeader, max_len: u32) -> Result<(), &'static str> {
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

/// True when `prefix` starts like the HTTP/2 client preface. Prefixes
/// shorter than 4 bytes are ambiguous (`PRI ` vs `POST`, `PUT `) → false.
pub fn looks_like_preface(prefix: &[u8]) -> bool {
    let n = prefix.len().min(PREFACE.len());
    n >= 4 && prefix.get(..n) == PREFACE.get(..n)
}

#[derive(Debug)]
pub(super) enum Mode {
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

impl Http2Parser {
    pub(super) fn header_mode() -> Mode {
        Mode::Header {
            buf: [0; FRAME_HEADER_LEN],
            have: 0,
        }
    }

    /// Consume a prefix of `input` in synced mode; returns bytes used. Uses
    /// 0 bytes only when the direction just lost sync.
    pub(super) fn step(
        &mut self,
        d: Direction,
        input: &[u8],
        ts: u64,
        out: &mut Vec<Exchange>,
    ) -> usize {
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
}
