//! Which protocol a connection speaks, from its first bytes: the bytes are
//! held per direction until [`detect`] decides, then replayed into the
//! chosen parser.

use qmon_protocols::{http1, http2, Direction};

/// Bytes held per direction while deciding. Deciding needs at most the
/// 24-byte HTTP/2 preface, but everything held is replayed into the parser,
/// so a direction that runs ahead of the deciding one (an h2c server's
/// SETTINGS, WINDOW_UPDATE, ... before the client's preface is seen) must be
/// held whole. Past this, the held bytes are dropped and the direction is
/// treated as joined mid-stream.
pub(super) const DETECT_BYTES: usize = 16 * 1024;
const _: () = assert!(MID_EGRESS_WAIT <= DETECT_BYTES);
/// Bytes a connection may pass undecided, beyond those held, before it is
/// switched off as not HTTP. A client adopted mid-response waits for its
/// next request; this bounds the wait on a stream that never sends one.
pub(super) const DETECT_GIVE_UP: u64 = 1024 * 1024;

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
/// Egress bytes a connection joined mid-stream may send before the next
/// request must have appeared in them. The connection table holds
/// `DETECT_BYTES` per direction and decides when they are full, so this
/// must not exceed it.
pub(super) const MID_EGRESS_WAIT: usize = 16 * 1024;
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
            // A server's connection adopted mid-stream sends frames too:
            // responses give it away. Control frames alone (a server's
            // SETTINGS look like a client's) decide nothing: the ingress
            // or a later HEADERS frame will.
            return match http2::first_headers_is_response(egress) {
                Some(true) => Detected::ServerSide,
                Some(false) => Detected::Http2MidStream,
                None => detect_ingress(ingress, mid).unwrap_or(Detected::NeedMore),
            };
        }
        if mid {
            // Joined mid-upload, the rest of a body comes first: a
            // response, or the next request within the held bytes,
            // decides; past them the stream is taken for not HTTP.
            if let Some(d) = detect_ingress(ingress, mid) {
                return d;
            }
            if http1::contains_request_start(egress) {
                return Detected::Http1;
            }
            return if egress.len() < MID_EGRESS_WAIT {
                Detected::NeedMore
            } else {
                Detected::Other
            };
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
        if let Some(d) = detect_ingress(ingress, mid) {
            return d;
        }
        if mid && egress.is_empty() {
            // A client adopted mid-response (a keep-alive connection open
            // before qmon started): its next request decides.
            return Detected::NeedMore;
        }
        if !mid && egress.is_empty() && could_be_server_settings(ingress) {
            // h2c with prior knowledge: an HTTP/2 server may send its
            // SETTINGS before the client's preface is seen (grpc does).
            // The client's first bytes decide.
            return Detected::NeedMore;
        }
        if ingress.len() < 8 {
            return Detected::NeedMore;
        }
        return Detected::Other;
    }
    Detected::NeedMore
}

/// What the ingress alone decides, if anything.
fn detect_ingress(ingress: &[u8], mid: bool) -> Option<Detected> {
    if ingress.starts_with(b"HTTP/1.") {
        return Some(Detected::Http1);
    }
    if http1::looks_like_request(ingress) || http2::looks_like_preface(ingress) {
        return Some(Detected::ServerSide);
    }
    if mid && http2::looks_like_frames(ingress) {
        return match http2::first_headers_is_response(ingress) {
            Some(false) => Some(Detected::ServerSide),
            _ => Some(Detected::Http2MidStream),
        };
    }
    None
}

/// True when `ingress` starts like (a prefix of) an HTTP/2 server's first
/// frame: a non-ACK SETTINGS frame on stream 0.
fn could_be_server_settings(ingress: &[u8]) -> bool {
    // length (3) | type 0x4 | flags 0 | stream id 0 (4)
    let want: [Option<u8>; 9] = [
        None,
        None,
        None,
        Some(4),
        Some(0),
        Some(0),
        Some(0),
        Some(0),
        Some(0),
    ];
    if ingress.len() >= 3 {
        let len = u32::from_be_bytes([0, ingress[0], ingress[1], ingress[2]]);
        if len % 6 != 0 || len > 16_384 {
            return false;
        }
    }
    ingress
        .iter()
        .zip(want)
        .all(|(b, w)| w.is_none_or(|w| *b == w))
}

/// The first bytes of each direction, held until the protocol is known.
#[derive(Debug, Default)]
pub(super) struct Detector {
    held: [Vec<u8>; 2],
    /// Bytes seen but not held.
    dropped: u64,
}

/// What one offered chunk led to.
#[derive(Debug)]
pub(super) struct Offer {
    /// The decision, if made.
    pub decided: Detected,
    /// Bytes of the chunk that could not be held: a gap for whatever parses
    /// this stream later.
    pub lost: u64,
    /// Bytes of the chunk now held (the rest goes straight to the parser).
    pub held: usize,
    /// The decision took the stream as possibly joined mid-message: its
    /// parser must look for a message start first.
    pub mid_stream: bool,
}

impl Detector {
    /// Offer the next in-order chunk of `dir`. `gap`: bytes were missed
    /// just before it. `mid`: the stream did not start at its beginning; it
    /// is set here when held bytes had to be dropped. `adopted`: qmon did not
    /// see the connection open, so even position 0 may be mid-stream.
    pub fn offer(
        &mut self,
        dir: Direction,
        data: &[u8],
        gap: bool,
        mid: &mut bool,
        adopted: bool,
    ) -> Offer {
        let d = dir.index();
        if gap {
            // Missed bytes before deciding: whatever comes next is
            // mid-stream.
            *mid = true;
            self.held[d].clear();
        }
        let room = DETECT_BYTES.saturating_sub(self.held[d].len());
        let held = data.len().min(room);
        self.held[d].extend_from_slice(&data[..held]);
        let mid_stream = *mid || adopted;
        let mut decided = detect(&self.held[0], &self.held[1], mid_stream);
        let mut lost = 0;
        if decided == Detected::NeedMore && data.len() > room {
            // Bytes not held are bytes lost to the parser.
            lost = (data.len() - room) as u64;
            *mid = true;
            self.held[d].clear();
            self.dropped += lost;
            if self.dropped > DETECT_GIVE_UP {
                decided = Detected::Other;
            }
        }
        Offer {
            decided,
            lost,
            held,
            mid_stream,
        }
    }

    /// The held bytes, egress first, to replay into the chosen parser.
    pub fn take(&mut self) -> [Vec<u8>; 2] {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// grpc's server writes SETTINGS as soon as it accepts; the client's
    /// preface can be captured after it.
    const SERVER_SETTINGS: &[u8] = b"\x00\x00\x18\x04\x00\x00\x00\x00\x00\x00\x04\x00\x3f\xff\xff\x00\x05\x00\x3f\xff\xff\x00\x06\x00\x00\x20\x00\xfe\x03\x00\x00\x00\x01";

    #[test]
    fn server_settings_before_client_preface_waits_for_the_client() {
        for n in 1..=SERVER_SETTINGS.len() {
            assert_eq!(
                detect(b"", &SERVER_SETTINGS[..n], false),
                Detected::NeedMore,
                "{n} bytes"
            );
        }
        assert_eq!(detect(PREFACE, SERVER_SETTINGS, false), Detected::Http2);
        assert_eq!(
            detect(b"GET / HTTP/1.1\r\n", SERVER_SETTINGS, false),
            Detected::Http1
        );
    }

    /// HEADERS on stream 9, END_STREAM|END_HEADERS, first field `first`.
    fn headers(first: u8) -> Vec<u8> {
        vec![0, 0, 1, 1, 5, 0, 0, 0, 9, first]
    }

    /// A server's socket adopted mid-connection (nginx, found by the e2e
    /// mid-connection test) writes response HEADERS: never a client.
    #[test]
    fn adopted_mid_stream_server_is_server_side() {
        // :status 200 out, or :method GET in: we are the server.
        assert_eq!(detect(&headers(0x88), b"", true), Detected::ServerSide);
        assert_eq!(detect(b"", &headers(0x82), true), Detected::ServerSide);
        // :method GET out, or :status 200 in: a client.
        assert_eq!(detect(&headers(0x82), b"", true), Detected::Http2MidStream);
        assert_eq!(detect(b"", &headers(0x88), true), Detected::Http2MidStream);
        // Literal :authority (name index 1, incremental) out: a client.
        assert_eq!(detect(&headers(0x41), b"", true), Detected::Http2MidStream);
        // A server's SETTINGS out (grpc over TLS with memory BIOs: no fd,
        // so adopted) decide nothing; the client's preface in does.
        let settings = [0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100];
        assert_eq!(detect(&settings, b"", true), Detected::NeedMore);
        assert_eq!(detect(&settings, PREFACE, true), Detected::ServerSide);
    }

    #[test]
    fn other_server_first_bytes_are_not_held() {
        // An SSH banner, a SETTINGS ACK, a frame on stream 1.
        assert_eq!(
            detect(b"", b"SSH-2.0-OpenSSH_9.2\r\n", false),
            Detected::Other
        );
        assert_eq!(
            detect(b"", b"\x00\x00\x00\x04\x01\x00\x00\x00\x00", false),
            Detected::Other
        );
        assert_eq!(
            detect(b"", b"\x00\x00\x06\x04\x00\x00\x00\x00\x01rest", false),
            Detected::Other
        );
    }

    #[test]
    fn client_adopted_mid_response_waits_for_its_request() {
        let body = [b'b'; 64];
        assert_eq!(detect(b"", &body, true), Detected::NeedMore);
        assert_eq!(detect(b"GET / HTTP/1.1\r\n", &body, true), Detected::Http1);
        // From the start of a stream the same bytes are not HTTP.
        assert_eq!(detect(b"", &body, false), Detected::Other);
    }
}
