//! Which protocol a connection speaks, from its first bytes.

use crate::protocols::{http1, http2};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    /// Not enough bytes yet.
    NeedMore,
    Http1,
    /// HTTP/2 from its connection preface (TLS ALPN h2, or h2c prior
    /// knowledge).
    Http2,
    /// HTTP/2 frames without the preface: capture started mid-connection.
    Http2MidStream,
    /// The traced process *receives* requests: it is the server.
    ServerSide,
    /// Anything else: switched off.
    Other,
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Longest prefix needed to decide: the HTTP/2 preface.
const DECIDE_AT: usize = PREFACE.len();

/// Decide from what each direction has sent so far. `mid` is set when the
/// stream did not start at its beginning.
pub fn detect(egress: &[u8], ingress: &[u8], mid: bool) -> Detected {
    if !egress.is_empty() {
        if http2::looks_like_preface(egress) {
            return if egress.len() >= PREFACE.len() || !PREFACE.starts_with(egress) {
                Detected::Http2
            } else {
                Detected::NeedMore
            };
        }
        if PREFACE.starts_with(egress) {
            return Detected::NeedMore;
        }
        if http1::looks_like_request(egress) {
            return Detected::Http1;
        }
        if mid && http2::looks_like_frames(egress) {
            return Detected::Http2MidStream;
        }
        if egress.len() < 8 && ingress.is_empty() {
            // A method token may still be arriving.
            return Detected::NeedMore;
        }
        if ingress.is_empty() || egress.len() >= DECIDE_AT {
            return Detected::Other;
        }
    }
    if !ingress.is_empty() {
        if ingress.starts_with(b"HTTP/1.") {
            return Detected::Http1;
        }
        if http1::looks_like_request(ingress) || http2::looks_like_preface(ingress) {
            return Detected::ServerSide;
        }
        if mid && http2::looks_like_frames(ingress) {
            return Detected::Http2MidStream;
        }
        if ingress.len() < 8 {
            return Detected::NeedMore;
        }
        return Detected::Other;
    }
    Detected::NeedMore
}
